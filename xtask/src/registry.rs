//! The registry logic: the ECR repository, its authorization token, and pushing an image with
//! bollard (reading the push stream to its end, where the errors are).

use std::collections::BTreeSet;

use anyhow::{bail, Context, Result};
use aws_sdk_ecr::types::ImageIdentifier;
use base64::Engine;
use bollard::auth::DockerCredentials;
use bollard::query_parameters::{PushImageOptionsBuilder, TagImageOptionsBuilder};
use bollard::Docker;

use crate::aws::aws_error;
use crate::image::Image;
use crate::ui::Ui;

/// The image as ECR holds it.
#[derive(Debug, Clone)]
pub struct Pushed {
    /// `<registry>/<repo>`.
    pub repository_uri: String,
    pub digest: String,
    pub bytes_pushed: u64,
    /// True when ECR already had the tag and nothing was sent.
    pub already_there: bool,
}

impl Pushed {
    /// `<registry>/<repo>@sha256:...`, what the task definition runs.
    pub fn pinned_uri(&self) -> String {
        format!("{}@{}", self.repository_uri, self.digest)
    }
}

/// Push `image` to the repository `repository` unless ECR already has its tag.
pub async fn push(
    ecr: &aws_sdk_ecr::Client,
    docker: &Docker,
    ui: &Ui,
    image: &Image,
    repository: &str,
) -> Result<Pushed> {
    let spinner = ui.spinner("push");
    spinner.set(format!("looking for {}:{} in ECR", repository, image.tag));
    let repository_uri = repository_uri(ecr, repository).await?;
    if let Some(digest) = find_tag(ecr, repository, &image.tag).await? {
        spinner.done(format!(
            "ECR already has {repository}:{} ({digest}): pushed nothing",
            image.tag
        ));
        return Ok(Pushed {
            repository_uri,
            digest,
            bytes_pushed: 0,
            already_there: true,
        });
    }

    let credentials = credentials(ecr).await?;
    docker
        .tag_image(
            &image.local_ref,
            Some(
                TagImageOptionsBuilder::default()
                    .repo(&repository_uri)
                    .tag(&image.tag)
                    .build(),
            ),
        )
        .await
        .with_context(|| {
            format!(
                "cannot tag {} as {repository_uri}:{}",
                image.local_ref, image.tag
            )
        })?;
    spinner.set(format!("pushing to {repository_uri}:{}", image.tag));
    let mut progress = PushProgress::default();
    let stream = docker.push_image(
        &repository_uri,
        Some(PushImageOptionsBuilder::default().tag(&image.tag).build()),
        Some(credentials),
    );
    let pushed = crate::docker::drain(stream, |info: &bollard::models::PushImageInfo| {
        progress.update(info)?;
        spinner.set(progress.summary());
        Ok(())
    })
    .await;
    if let Err(e) = pushed {
        spinner.failed("push failed");
        return Err(e).with_context(|| format!("pushing {repository_uri}:{} failed", image.tag));
    }
    let digest = find_tag(ecr, repository, &image.tag)
        .await?
        .or(progress.digest.clone())
        .with_context(|| {
            format!(
                "the push finished but ECR has no {repository}:{}",
                image.tag
            )
        })?;
    spinner.done(format!(
        "{repository_uri}:{} {digest} ({})",
        image.tag,
        human_bytes(progress.bytes())
    ));
    Ok(Pushed {
        repository_uri,
        digest,
        bytes_pushed: progress.bytes(),
        already_there: false,
    })
}

pub async fn repository_uri(ecr: &aws_sdk_ecr::Client, repository: &str) -> Result<String> {
    let out = ecr
        .describe_repositories()
        .repository_names(repository)
        .send()
        .await
        .map_err(aws_error)
        .with_context(|| format!("cannot find the ECR repository {repository}: deploy the ecr stack first (`cargo xtask deploy`)"))?;
    out.repositories()
        .first()
        .and_then(|r| r.repository_uri())
        .map(str::to_owned)
        .with_context(|| format!("ECR did not report a URI for repository {repository}"))
}

/// The digest ECR holds under `tag`, if any.
pub async fn find_tag(
    ecr: &aws_sdk_ecr::Client,
    repository: &str,
    tag: &str,
) -> Result<Option<String>> {
    let result = ecr
        .describe_images()
        .repository_name(repository)
        .image_ids(ImageIdentifier::builder().image_tag(tag).build())
        .send()
        .await;
    match result {
        Ok(out) => Ok(out
            .image_details()
            .first()
            .and_then(|d| d.image_digest())
            .map(str::to_owned)),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_image_not_found_exception()) =>
        {
            Ok(None)
        }
        Err(e) => {
            Err(aws_error(e)).with_context(|| format!("cannot look up {repository}:{tag} in ECR"))
        }
    }
}

async fn credentials(ecr: &aws_sdk_ecr::Client) -> Result<DockerCredentials> {
    let out = ecr
        .get_authorization_token()
        .send()
        .await
        .map_err(aws_error)
        .context("cannot get an ECR authorization token (ecr:GetAuthorizationToken)")?;
    let data = out
        .authorization_data()
        .first()
        .context("ECR returned no authorization data")?;
    let token = data
        .authorization_token()
        .context("ECR returned an empty authorization token")?;
    let (username, password) = decode_token(token)?;
    Ok(DockerCredentials {
        username: Some(username),
        password: Some(password),
        serveraddress: data.proxy_endpoint().map(registry_host),
        ..Default::default()
    })
}

/// ECR tokens are base64 of `user:password` (the user is `AWS`).
pub fn decode_token(token: &str) -> Result<(String, String)> {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(token.trim())
        .context("the ECR authorization token is not base64")?;
    let text = String::from_utf8(raw).context("the ECR authorization token is not text")?;
    let (user, pass) = text
        .split_once(':')
        .context("the ECR authorization token has no `user:password` form")?;
    Ok((user.to_owned(), pass.to_owned()))
}

/// `https://123.dkr.ecr.eu-west-1.amazonaws.com` → `123.dkr.ecr.eu-west-1.amazonaws.com`.
pub fn registry_host(endpoint: &str) -> String {
    endpoint
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned()
}

/// Follows a push stream: bytes sent, the digest the engine reports, and errors in the stream.
#[derive(Debug, Default)]
pub struct PushProgress {
    /// Layer sizes seen while pushing (the stream carries no layer ids, so sizes identify layers).
    layer_totals: BTreeSet<u64>,
    layers_pushed: usize,
    layers_existing: usize,
    pub digest: Option<String>,
}

impl PushProgress {
    pub fn update(&mut self, info: &bollard::models::PushImageInfo) -> Result<()> {
        if let Some(err) = &info.error_detail {
            let message = err.message.clone().unwrap_or_default();
            bail!(explain_push_error(&message));
        }
        let status = info.status.as_deref().unwrap_or_default();
        match status {
            "Pushing" => {
                if let Some(total) = info
                    .progress_detail
                    .as_ref()
                    .and_then(|p| p.total)
                    .filter(|t| *t > 0)
                {
                    self.layer_totals.insert(total as u64);
                }
            }
            "Pushed" => self.layers_pushed += 1,
            "Layer already exists" => self.layers_existing += 1,
            _ => {
                if let Some(at) = status.find("digest: ") {
                    self.digest = status[at + 8..]
                        .split_whitespace()
                        .next()
                        .map(str::to_owned);
                }
            }
        }
        Ok(())
    }

    pub fn bytes(&self) -> u64 {
        if self.layers_pushed == 0 {
            0
        } else {
            self.layer_totals.iter().sum()
        }
    }

    pub fn summary(&self) -> String {
        format!(
            "{} layer(s) pushed, {} already there, {}",
            self.layers_pushed,
            self.layers_existing,
            human_bytes(self.bytes())
        )
    }
}

/// One line that says what went wrong and what to do.
pub fn explain_push_error(message: &str) -> String {
    let lower = message.to_ascii_lowercase();
    if lower.contains("immutable") || lower.contains("already exists") && lower.contains("tag") {
        format!(
            "the registry refused the push because the tag already holds a different image (tags are immutable): \
             commit or change the app so it gets a new tag ({message})"
        )
    } else if lower.contains("unauthorized")
        || lower.contains("authentication required")
        || lower.contains("denied")
    {
        format!(
            "the registry rejected our credentials ({message}): check that your AWS identity may push to ECR \
             (ecr:InitiateLayerUpload, ecr:PutImage, ...) and try again"
        )
    } else {
        format!("the registry reported: {message}")
    }
}

pub fn human_bytes(n: u64) -> String {
    match n {
        0..=1023 => format!("{n} B"),
        1024..=1_048_575 => format!("{:.1} KiB", n as f64 / 1024.0),
        _ => format!("{:.1} MiB", n as f64 / 1_048_576.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::{ErrorDetail, ProgressDetail, PushImageInfo};

    fn info(status: &str, total: Option<i64>) -> PushImageInfo {
        PushImageInfo {
            status: Some(status.into()),
            progress_detail: total.map(|t| ProgressDetail {
                current: Some(t / 2),
                total: Some(t),
            }),
            error_detail: None,
        }
    }

    #[test]
    fn tokens_decode_to_user_and_password() {
        let token = base64::engine::general_purpose::STANDARD.encode("AWS:s3cr:et");
        assert_eq!(
            decode_token(&token).unwrap(),
            ("AWS".into(), "s3cr:et".into())
        );
        assert!(decode_token("%%%").is_err());
        assert!(
            decode_token(&base64::engine::general_purpose::STANDARD.encode("nocolon")).is_err()
        );
    }

    #[test]
    fn registry_host_strips_the_scheme() {
        assert_eq!(registry_host("http://127.0.0.1:4566"), "127.0.0.1:4566");
        assert_eq!(
            registry_host("https://1.dkr.ecr.eu-west-1.amazonaws.com/"),
            "1.dkr.ecr.eu-west-1.amazonaws.com"
        );
    }

    #[test]
    fn progress_counts_pushed_bytes_and_reads_the_digest() {
        let mut p = PushProgress::default();
        for i in [
            info("Preparing", None),
            info("Pushing", Some(3_000_000)),
            info("Pushing", Some(3_000_000)),
            info("Pushed", None),
            info("abc: digest: sha256:feed size: 527", None),
        ] {
            p.update(&i).unwrap();
        }
        assert_eq!(p.bytes(), 3_000_000);
        assert_eq!(p.digest.as_deref(), Some("sha256:feed"));
    }

    #[test]
    fn layers_already_there_count_zero_bytes() {
        let mut p = PushProgress::default();
        p.update(&info("Layer already exists", None)).unwrap();
        assert_eq!(p.bytes(), 0);
    }

    #[test]
    fn errors_inside_the_stream_fail_the_push_with_an_explanation() {
        let mut p = PushProgress::default();
        let err = p
            .update(&PushImageInfo {
                error_detail: Some(ErrorDetail {
                    code: None,
                    message: Some("unauthorized: authentication required".into()),
                }),
                ..Default::default()
            })
            .unwrap_err()
            .to_string();
        assert!(err.contains("rejected our credentials"), "{err}");
        assert!(explain_push_error("tag invalid: the image tag 'x' already exists and cannot be overwritten because the repository is immutable")
            .contains("tags are immutable"));
    }
}
