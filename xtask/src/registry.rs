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
    /// The repository's name.
    pub repository: String,
    /// `<registry>/<repo>`.
    pub repository_uri: String,
    pub digest: String,
    /// Every tag ECR has for the image (the content tag, and `deployed-…` once deployed).
    pub tags: Vec<String>,
    pub bytes_pushed: u64,
    /// True when ECR already had the tag and nothing was sent.
    pub already_there: bool,
}

/// The tag prefix `deploy` gives an image once the service runs it. The repository's lifecycle
/// policy keeps images tagged so apart from the count of recent pushes, so the running image (and
/// the ones before it) never expires, however many images were pushed since.
pub const DEPLOYED_TAG_PREFIX: &str = "deployed-";

/// Whether an image with these tags was tagged by a deploy.
pub fn is_deployed(tags: &[String]) -> bool {
    tags.iter().any(|t| t.starts_with(DEPLOYED_TAG_PREFIX))
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
    if let Some((digest, tags)) = find_tag(ecr, repository, &image.tag).await? {
        spinner.done(format!(
            "ECR already has {repository}:{} ({digest}): pushed nothing",
            image.tag
        ));
        return Ok(Pushed {
            repository: repository.to_owned(),
            repository_uri,
            digest,
            tags,
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
    let (digest, tags) = find_tag(ecr, repository, &image.tag)
        .await?
        .or_else(|| Some((progress.digest.clone()?, vec![image.tag.clone()])))
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
        repository: repository.to_owned(),
        repository_uri,
        digest,
        tags,
        bytes_pushed: progress.bytes(),
        already_there: false,
    })
}

/// Tag the image `deployed-<UTC time>` (a second tag on the same manifest: ECR's immutable tags
/// allow adding one), unless a deploy already did. Returns the new tag.
pub async fn mark_deployed(
    ecr: &aws_sdk_ecr::Client,
    pushed: &Pushed,
    now: std::time::SystemTime,
) -> Result<Option<String>> {
    if is_deployed(&pushed.tags) {
        return Ok(None);
    }
    let repository = &pushed.repository;
    let failed = || format!("cannot tag {repository}@{} as deployed", pushed.digest);
    let found = ecr
        .batch_get_image()
        .repository_name(repository)
        .image_ids(
            ImageIdentifier::builder()
                .image_digest(&pushed.digest)
                .build(),
        )
        .accepted_media_types("application/vnd.docker.distribution.manifest.v2+json")
        .accepted_media_types("application/vnd.oci.image.manifest.v1+json")
        .accepted_media_types("application/vnd.oci.image.index.v1+json")
        .accepted_media_types("application/vnd.docker.distribution.manifest.list.v2+json")
        .send()
        .await
        .map_err(aws_error)
        .with_context(failed)?;
    let image = found
        .images()
        .first()
        .with_context(|| format!("ECR has no image {repository}@{}", pushed.digest))?;
    let manifest = image.image_manifest().with_context(|| {
        format!(
            "ECR returned no manifest for {repository}@{}",
            pushed.digest
        )
    })?;
    let tag = deployed_tag(now, &pushed.digest);
    ecr.put_image()
        .repository_name(repository)
        .image_manifest(manifest)
        .set_image_manifest_media_type(image.image_manifest_media_type().map(str::to_owned))
        .image_digest(&pushed.digest)
        .image_tag(&tag)
        .send()
        .await
        .map_err(aws_error)
        .with_context(failed)?;
    Ok(Some(tag))
}

/// `deployed-20261125T230115Z-d08293a373c8`: when, and which image (so two images deployed in
/// the same second cannot ask for the same immutable tag).
pub fn deployed_tag(now: std::time::SystemTime, digest: &str) -> String {
    // Whole seconds, so the format has no fraction: 2026-11-25T23:01:15Z.
    let secs = aws_smithy_types::DateTime::from(now).secs();
    let time = aws_smithy_types::DateTime::from_secs(secs)
        .fmt(aws_smithy_types::date_time::Format::DateTime)
        .unwrap_or_default();
    let compact: String = time.chars().filter(char::is_ascii_alphanumeric).collect();
    let short = digest.trim_start_matches("sha256:");
    format!(
        "{DEPLOYED_TAG_PREFIX}{compact}-{}",
        &short[..short.len().min(12)]
    )
}

pub async fn repository_uri(ecr: &aws_sdk_ecr::Client, repository: &str) -> Result<String> {
    find_repository(ecr, repository)
        .await?
        .with_context(|| format!("cannot find the ECR repository {repository}: deploy the ecr stack first (`cargo xtask deploy`)"))?
        .repository_uri()
        .map(str::to_owned)
        .with_context(|| format!("ECR did not report a URI for repository {repository}"))
}

/// The repository, `None` when there is no such repository (any other error is one).
pub async fn find_repository(
    ecr: &aws_sdk_ecr::Client,
    repository: &str,
) -> Result<Option<aws_sdk_ecr::types::Repository>> {
    match ecr
        .describe_repositories()
        .repository_names(repository)
        .send()
        .await
    {
        Ok(out) => Ok(out.repositories().first().cloned()),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_repository_not_found_exception()) =>
        {
            Ok(None)
        }
        Err(e) => Err(aws_error(e))
            .with_context(|| format!("cannot look up the ECR repository {repository}")),
    }
}

/// How many images the repository holds, `None` when there is no such repository.
pub async fn count_images(ecr: &aws_sdk_ecr::Client, repository: &str) -> Result<Option<usize>> {
    Ok(list_images(ecr, repository, None)
        .await?
        .map(|images| images.len()))
}

/// Every image of the repository (only the tagged or untagged ones with `only`), over all
/// pages; `None` when there is no such repository.
async fn list_images(
    ecr: &aws_sdk_ecr::Client,
    repository: &str,
    only: Option<aws_sdk_ecr::types::TagStatus>,
) -> Result<Option<Vec<aws_sdk_ecr::types::ImageDetail>>> {
    let filter = only.map(|status| {
        aws_sdk_ecr::types::DescribeImagesFilter::builder()
            .tag_status(status)
            .build()
    });
    let images = ecr
        .describe_images()
        .repository_name(repository)
        .set_filter(filter)
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await;
    match images {
        Ok(images) => Ok(Some(images)),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_repository_not_found_exception()) =>
        {
            Ok(None)
        }
        Err(e) => Err(aws_error(e))
            .with_context(|| format!("cannot list the images of ECR repository {repository}")),
    }
}

/// How many deployed images (tagged `deployed-…`) were pushed after the image `digest`: the
/// repository's lifecycle policy keeps the `ImagesToKeep` most recently pushed of them, so an
/// image a deploy went back to can stand beyond them and expire while it runs. `None` when the
/// image is not tagged as deployed.
pub async fn deployed_pushed_after(
    ecr: &aws_sdk_ecr::Client,
    repository: &str,
    digest: &str,
) -> Result<Option<usize>> {
    let tagged = list_images(ecr, repository, Some(aws_sdk_ecr::types::TagStatus::Tagged)).await?;
    Ok(count_deployed_pushed_after(
        &tagged.unwrap_or_default(),
        digest,
    ))
}

fn count_deployed_pushed_after(
    images: &[aws_sdk_ecr::types::ImageDetail],
    digest: &str,
) -> Option<usize> {
    let deployed: Vec<_> = images
        .iter()
        .filter(|i| is_deployed(i.image_tags()))
        .collect();
    let pushed_at = deployed
        .iter()
        .find(|i| i.image_digest() == Some(digest))?
        .image_pushed_at()?;
    Some(
        deployed
            .iter()
            .filter(|i| i.image_pushed_at().is_some_and(|t| t > pushed_at))
            .count(),
    )
}

/// The tags of the image `digest` in `repository`; `None` when ECR does not hold it (any more).
pub async fn tags_of(
    ecr: &aws_sdk_ecr::Client,
    repository: &str,
    digest: &str,
) -> Result<Option<Vec<String>>> {
    let id = ImageIdentifier::builder().image_digest(digest).build();
    let image = describe_image(ecr, repository, id, &format!("{repository}@{digest}")).await?;
    Ok(image.map(|d| d.image_tags().to_vec()))
}

/// One image as ECR describes it; `None` when ECR has no such image (or no such repository).
async fn describe_image(
    ecr: &aws_sdk_ecr::Client,
    repository: &str,
    id: ImageIdentifier,
    what: &str,
) -> Result<Option<aws_sdk_ecr::types::ImageDetail>> {
    let result = ecr
        .describe_images()
        .repository_name(repository)
        .image_ids(id)
        .send()
        .await;
    match result {
        Ok(out) => Ok(out.image_details().first().cloned()),
        Err(e)
            if e.as_service_error().is_some_and(|s| {
                s.is_image_not_found_exception() || s.is_repository_not_found_exception()
            }) =>
        {
            Ok(None)
        }
        Err(e) => Err(aws_error(e)).with_context(|| format!("cannot look up {what} in ECR")),
    }
}

/// The repository name and digest of an image pinned by digest, `<registry>/<name>@sha256:…`.
pub fn pinned_parts(image: &str) -> Option<(&str, &str)> {
    let (_, path) = image.split_once('/')?;
    path.split_once('@')
}

/// The digest ECR holds under `tag`, and all the image's tags, if it has it.
pub async fn find_tag(
    ecr: &aws_sdk_ecr::Client,
    repository: &str,
    tag: &str,
) -> Result<Option<(String, Vec<String>)>> {
    let id = ImageIdentifier::builder().image_tag(tag).build();
    let image = describe_image(ecr, repository, id, &format!("{repository}:{tag}")).await?;
    Ok(image.and_then(|d| Some((d.image_digest()?.to_owned(), d.image_tags().to_vec()))))
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
             change the app (or commit its changes) so it gets a new tag ({message})"
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

    fn pushed(tags: &[&str]) -> Pushed {
        Pushed {
            repository: "demo-dev".into(),
            repository_uri: "1.dkr.ecr.us-east-1.amazonaws.com/demo-dev".into(),
            digest: format!("sha256:{}", "ab".repeat(32)),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            bytes_pushed: 0,
            already_there: true,
        }
    }

    #[test]
    fn deployed_tags_say_when_and_which_image() {
        let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(1_795_647_675_250);
        let tag = deployed_tag(at, &pushed(&[]).digest);
        assert_eq!(tag, "deployed-20261125T230115Z-abababababab");
        // ECR's tag grammar.
        assert!(tag.len() <= 128);
        assert!(tag
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)));
    }

    #[test]
    fn the_lifecycle_policy_holds_images_by_the_prefix_deploy_tags_them_with() {
        let template =
            std::fs::read_to_string(crate::project::root().join("infra/ecr.yaml")).unwrap();
        assert!(
            template.contains(&format!("\"tagPrefixList\": [\"{DEPLOYED_TAG_PREFIX}\"]")),
            "infra/ecr.yaml's lifecycle policy does not hold {DEPLOYED_TAG_PREFIX}* images"
        );
    }

    #[tokio::test]
    async fn a_deployed_image_gets_a_second_tag_on_the_same_manifest() {
        use crate::mock::mock_sdk;
        use aws_sdk_ecr::operation::{
            batch_get_image::BatchGetImageOutput, put_image::PutImageOutput,
        };
        use aws_smithy_mocks::mock;
        let digest = pushed(&[]).digest;
        let wanted = digest.clone();
        let get = mock!(aws_sdk_ecr::Client::batch_get_image)
            .match_requests(move |r| {
                r.repository_name() == Some("demo-dev")
                    && r.image_ids()[0].image_digest() == Some(wanted.as_str())
            })
            .then_output(|| {
                BatchGetImageOutput::builder()
                    .images(
                        aws_sdk_ecr::types::Image::builder()
                            .image_manifest("{\"schemaVersion\":2}")
                            .image_manifest_media_type("application/vnd.oci.image.manifest.v1+json")
                            .build(),
                    )
                    .build()
            });
        let wanted = digest.clone();
        let put = mock!(aws_sdk_ecr::Client::put_image)
            .match_requests(move |r| {
                r.image_manifest() == Some("{\"schemaVersion\":2}")
                    && r.image_manifest_media_type()
                        == Some("application/vnd.oci.image.manifest.v1+json")
                    && r.image_digest() == Some(wanted.as_str())
                    && r.image_tag() == Some("deployed-20261125T230115Z-abababababab")
            })
            .then_output(|| PutImageOutput::builder().build());
        let ecr = mock_sdk!(aws_sdk_ecr, [&get, &put]);
        let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_795_647_675);

        let tag = mark_deployed(&ecr, &pushed(&["abc123-0f0f"]), at)
            .await
            .unwrap();
        assert_eq!(
            tag.as_deref(),
            Some("deployed-20261125T230115Z-abababababab")
        );
        assert_eq!((get.num_calls(), put.num_calls()), (1, 1));

        // Deployed before (a no-op deploy, a redeploy): no call at all.
        let again = pushed(&["abc123-0f0f", "deployed-20261101T080000Z-abababababab"]);
        assert_eq!(mark_deployed(&ecr, &again, at).await.unwrap(), None);
        assert_eq!((get.num_calls(), put.num_calls()), (1, 1));
    }

    #[test]
    fn the_repository_and_digest_are_read_from_a_pinned_image() {
        assert_eq!(
            pinned_parts("1.dkr.ecr.eu-west-1.amazonaws.com/demo-dev@sha256:ab"),
            Some(("demo-dev", "sha256:ab"))
        );
        assert_eq!(
            pinned_parts("127.0.0.1:4566/demo-dev@sha256:cd"),
            Some(("demo-dev", "sha256:cd"))
        );
        assert_eq!(pinned_parts("127.0.0.1:4566/demo-dev:v1"), None);
        assert_eq!(pinned_parts("demo-dev"), None);
    }

    #[tokio::test]
    async fn the_tags_of_an_image_or_none_when_ecr_no_longer_holds_it() {
        use crate::mock::mock_sdk;
        use aws_sdk_ecr::operation::describe_images::{DescribeImagesError, DescribeImagesOutput};
        use aws_sdk_ecr::types::ImageDetail;
        use aws_smithy_mocks::mock;
        let found = mock!(aws_sdk_ecr::Client::describe_images)
            .match_requests(|r| {
                r.image_ids().first().and_then(|i| i.image_digest()) == Some("sha256:ab")
            })
            .then_output(|| {
                DescribeImagesOutput::builder()
                    .image_details(
                        ImageDetail::builder()
                            .image_tags("rev-hash")
                            .image_tags("deployed-20261126T004138Z-ab")
                            .build(),
                    )
                    .build()
            });
        let ecr = mock_sdk!(aws_sdk_ecr, [&found]);
        assert_eq!(
            tags_of(&ecr, "demo-dev", "sha256:ab").await.unwrap(),
            Some(vec![
                "rev-hash".into(),
                "deployed-20261126T004138Z-ab".into()
            ])
        );
        let expired = mock!(aws_sdk_ecr::Client::describe_images).then_error(|| {
            DescribeImagesError::ImageNotFoundException(
                aws_sdk_ecr::types::error::ImageNotFoundException::builder().build(),
            )
        });
        let ecr = mock_sdk!(aws_sdk_ecr, [&expired]);
        assert_eq!(tags_of(&ecr, "demo-dev", "sha256:ab").await.unwrap(), None);
    }

    #[tokio::test]
    async fn counts_the_deployed_images_pushed_after_one() {
        use crate::mock::mock_sdk;
        use aws_sdk_ecr::operation::describe_images::DescribeImagesOutput;
        use aws_sdk_ecr::types::{ImageDetail, TagStatus};
        use aws_smithy_mocks::mock;
        let image = |digest: &str, pushed: i64, tags: &[&str]| {
            ImageDetail::builder()
                .image_digest(digest)
                .image_pushed_at(aws_smithy_types::DateTime::from_secs(pushed))
                .set_image_tags(Some(tags.iter().map(|t| t.to_string()).collect()))
                .build()
        };
        let pages = || {
            mock!(aws_sdk_ecr::Client::describe_images)
                .match_requests(|r| {
                    r.repository_name() == Some("demo-dev")
                        && r.filter().and_then(|f| f.tag_status()) == Some(&TagStatus::Tagged)
                })
                .sequence()
                .output(move || {
                    DescribeImagesOutput::builder()
                        .image_details(image("sha256:old", 100, &["a", "deployed-1-old"]))
                        .image_details(image("sha256:mid", 200, &["b", "deployed-2-mid"]))
                        .next_token("more")
                        .build()
                })
                .output(move || {
                    DescribeImagesOutput::builder()
                        // Pushed later but never deployed: rule 2's business, not counted.
                        .image_details(image("sha256:pushed", 300, &["c"]))
                        .image_details(image("sha256:new", 400, &["d", "deployed-4-new"]))
                        .build()
                })
                .build()
        };
        let after = |digest: &'static str| async move {
            let rule = pages();
            let ecr = mock_sdk!(aws_sdk_ecr, [&rule]);
            deployed_pushed_after(&ecr, "demo-dev", digest)
                .await
                .unwrap()
        };
        assert_eq!(after("sha256:old").await, Some(2));
        assert_eq!(after("sha256:mid").await, Some(1));
        assert_eq!(after("sha256:new").await, Some(0));
        assert_eq!(
            after("sha256:pushed").await,
            None,
            "an image never deployed has no place among the deployed"
        );
    }

    #[tokio::test]
    async fn a_missing_repository_is_none_and_other_errors_are_errors() {
        use crate::mock::mock_sdk;
        use aws_sdk_ecr::operation::describe_repositories::{
            DescribeRepositoriesError, DescribeRepositoriesOutput,
        };
        use aws_sdk_ecr::types::Repository;
        use aws_smithy_mocks::mock;
        let found = mock!(aws_sdk_ecr::Client::describe_repositories)
            .match_requests(|r| r.repository_names() == ["demo-dev"])
            .then_output(|| {
                DescribeRepositoriesOutput::builder()
                    .repositories(
                        Repository::builder()
                            .repository_uri("1.dkr.ecr.eu-west-1.amazonaws.com/demo-dev")
                            .build(),
                    )
                    .build()
            });
        let ecr = mock_sdk!(aws_sdk_ecr, [&found]);
        assert_eq!(
            repository_uri(&ecr, "demo-dev").await.unwrap(),
            "1.dkr.ecr.eu-west-1.amazonaws.com/demo-dev"
        );

        let gone = mock!(aws_sdk_ecr::Client::describe_repositories).then_error(|| {
            DescribeRepositoriesError::RepositoryNotFoundException(
                aws_sdk_ecr::types::error::RepositoryNotFoundException::builder().build(),
            )
        });
        let ecr = mock_sdk!(aws_sdk_ecr, [&gone]);
        assert!(find_repository(&ecr, "demo-dev").await.unwrap().is_none());
        let err = format!("{:#}", repository_uri(&ecr, "demo-dev").await.unwrap_err());
        assert!(err.contains("deploy the ecr stack first"), "{err}");

        let denied = mock!(aws_sdk_ecr::Client::describe_repositories).then_error(|| {
            DescribeRepositoriesError::generic(crate::mock::service_error(
                "AccessDeniedException",
                "not allowed",
            ))
        });
        let ecr = mock_sdk!(aws_sdk_ecr, [&denied]);
        let err = format!("{:#}", find_repository(&ecr, "demo-dev").await.unwrap_err());
        assert!(
            err.contains("cannot look up the ECR repository demo-dev")
                && err.contains("AccessDenied"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn images_are_counted_over_every_page_and_a_missing_repository_is_none() {
        use crate::mock::mock_sdk;
        use aws_sdk_ecr::operation::describe_images::{DescribeImagesError, DescribeImagesOutput};
        use aws_sdk_ecr::types::ImageDetail;
        use aws_smithy_mocks::mock;
        let page = |n: usize, next: Option<&str>| {
            DescribeImagesOutput::builder()
                .set_image_details(Some(vec![ImageDetail::builder().build(); n]))
                .set_next_token(next.map(str::to_owned))
                .build()
        };
        let pages = mock!(aws_sdk_ecr::Client::describe_images)
            .sequence()
            .output(move || page(100, Some("more")))
            .output(move || page(7, None))
            .build();
        let ecr = mock_sdk!(aws_sdk_ecr, [&pages]);
        assert_eq!(count_images(&ecr, "demo-dev").await.unwrap(), Some(107));

        let gone = mock!(aws_sdk_ecr::Client::describe_images).then_error(|| {
            DescribeImagesError::RepositoryNotFoundException(
                aws_sdk_ecr::types::error::RepositoryNotFoundException::builder()
                    .message("no repository")
                    .build(),
            )
        });
        let ecr = mock_sdk!(aws_sdk_ecr, [&gone]);
        assert_eq!(count_images(&ecr, "demo-dev").await.unwrap(), None);

        // Any other error is one, not a missing repository.
        let denied = mock!(aws_sdk_ecr::Client::describe_images).then_error(|| {
            DescribeImagesError::generic(crate::mock::service_error(
                "AccessDeniedException",
                "not allowed",
            ))
        });
        let ecr = mock_sdk!(aws_sdk_ecr, [&denied]);
        let err = format!("{:#}", count_images(&ecr, "demo-dev").await.unwrap_err());
        assert!(
            err.contains("cannot list the images of ECR repository demo-dev"),
            "{err}"
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
