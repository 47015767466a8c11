//! What every command starts from: the environment's parameters, the AWS clients (real AWS or
//! fakecloud), the UI, and how often to poll.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::aws::{self, Clients};
use crate::flags::Target;
use crate::project::{Environment, StackKind};
use crate::stack;
use crate::ui::Ui;
use crate::{cloudfront, fakecloud};

pub struct Session {
    pub env: Environment,
    pub clients: Clients,
    pub ui: Ui,
    pub local: bool,
    /// Delay between status checks: short locally, a few seconds on AWS (never the SDK waiters' 30 s).
    pub poll: Duration,
    /// CloudFront's prefix list, looked up once per command.
    prefix_list: tokio::sync::OnceCell<cloudfront::PrefixList>,
}

impl Session {
    /// Load the environment named by `target`, then open the session.
    pub async fn open(root: &Path, target: &Target, ui: Ui) -> Result<Session> {
        Self::with_env(root, Environment::load(root, &target.env)?, target, ui).await
    }

    /// Open the session for an environment the command has already loaded.
    pub async fn with_env(
        root: &Path,
        env: Environment,
        target: &Target,
        ui: Ui,
    ) -> Result<Session> {
        if target.local {
            fakecloud::ensure_running(&ui, root).await?;
        }
        let config = aws::load(target.local).await?;
        Ok(Session {
            env,
            clients: Clients::new(&config),
            ui,
            local: target.local,
            poll: poll_interval(
                target.local,
                std::env::var("XTASK_POLL_SECONDS").ok().as_deref(),
            )?,
            prefix_list: Default::default(),
        })
    }

    /// Whether the environment puts CloudFront in front of the load balancer.
    pub fn cloudfront(&self) -> bool {
        cloudfront::enabled(&self.env.parameters(StackKind::Ecs, &[]))
    }

    /// CloudFront's origin-facing prefix list in this region.
    pub async fn prefix_list(&self) -> Result<&cloudfront::PrefixList> {
        self.prefix_list
            .get_or_try_init(|| cloudfront::origin_facing_prefix_list(&self.clients.ec2))
            .await
    }

    /// Before anything is deployed: with CloudFront on, the account's rules-per-security-group
    /// quota must hold the rules its prefix list counts as.
    pub async fn check_cloudfront_quota(&self) -> Result<()> {
        if !self.cloudfront() {
            return Ok(());
        }
        let list = self.prefix_list().await?;
        let quota = cloudfront::rules_per_group(&self.clients.quotas).await;
        cloudfront::check_rules_quota(list, quota, &self.env.file_name())
    }

    /// The stack of `kind`, with its template and parameters (plus `extra` computed values),
    /// once the template's `Rules` accept them.
    pub fn stack(&self, kind: StackKind, extra: &[(&str, String)]) -> Result<stack::Stack> {
        let stack = self.env.stack(kind, extra)?;
        self.env.check_rules(&stack, &[])?;
        Ok(stack)
    }

    /// The ECR repository name, from the ecr stack's outputs.
    pub async fn repository_name(&self) -> Result<String> {
        let name = self.env.stack_name(StackKind::Ecr);
        let stack = stack::describe(&self.clients.cfn, &name)
            .await?
            .with_context(|| {
                format!(
                    "the ecr stack {name} does not exist yet: run `cargo xtask deploy{}` first",
                    self.flag_suffix()
                )
            })?;
        stack::outputs(&stack)
            .remove("RepositoryName")
            .with_context(|| format!("stack {name} has no RepositoryName output: deploy it again"))
    }

    /// The ecs stack's computed parameters: the pinned image, its architecture, and (with
    /// CloudFront on) the id of CloudFront's origin-facing prefix list.
    pub async fn ecs_parameters(
        &self,
        image_uri: String,
        cpu_architecture: &str,
    ) -> Result<Vec<(&'static str, String)>> {
        let mut extra = vec![
            ("ImageUri", image_uri),
            ("CpuArchitecture", cpu_architecture.to_owned()),
        ];
        if self.local {
            // fakecloud runs container health checks through /bin/sh, which FROM scratch lacks;
            // the load balancer's health check still guards the service.
            extra.push(("ContainerHealthCheck", "false".to_owned()));
        }
        if self.cloudfront() {
            extra.push((
                "CloudFrontPrefixListId",
                self.prefix_list().await?.id.clone(),
            ));
        }
        Ok(extra)
    }

    /// A parameter of a deployed stack, `None` when the stack or the parameter does not exist.
    pub async fn deployed_parameter(&self, kind: StackKind, key: &str) -> Result<Option<String>> {
        let stack = stack::describe(&self.clients.cfn, &self.env.stack_name(kind)).await?;
        Ok(stack.and_then(|s| {
            s.parameters()
                .iter()
                .find(|p| p.parameter_key() == Some(key))
                .and_then(|p| p.parameter_value())
                .map(str::to_owned)
        }))
    }

    /// The outputs of a deployed stack (empty when it does not exist).
    pub async fn outputs(
        &self,
        kind: StackKind,
    ) -> Result<std::collections::BTreeMap<String, String>> {
        stack::current_outputs(&self.clients.cfn, &self.env.stack_name(kind)).await
    }

    /// The service the deployed ecs stack made, `None` when there is none.
    pub async fn deployed_service(&self) -> Result<Option<crate::service::StackService>> {
        Ok(crate::service::StackService::from_outputs(
            &self.outputs(StackKind::Ecs).await?,
        ))
    }

    /// `--env X --local` as the user would type it, for messages that suggest a command.
    pub fn flag_suffix(&self) -> String {
        crate::flags::flag_suffix(&self.env.name, self.local)
    }
}

/// How often to ask AWS for progress: `XTASK_POLL_SECONDS` when set, else 3 s on AWS (well
/// under the SDK waiters' 30 s, well within API rate limits) and 0.5 s against fakecloud.
fn poll_interval(local: bool, setting: Option<&str>) -> Result<Duration> {
    match setting {
        None | Some("") => Ok(Duration::from_millis(if local { 500 } else { 3000 })),
        Some(text) => text
            .parse::<f64>()
            .ok()
            .filter(|s| s.is_finite() && *s >= 0.1 && *s <= 600.0)
            .map(Duration::from_secs_f64)
            .with_context(|| {
                format!("XTASK_POLL_SECONDS={text:?} is not a number of seconds between 0.1 and 600: set it like 5 or 0.5, or unset it")
            }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_poll_interval_defaults_per_target_and_can_be_set() {
        assert_eq!(poll_interval(false, None).unwrap(), Duration::from_secs(3));
        assert_eq!(
            poll_interval(true, None).unwrap(),
            Duration::from_millis(500)
        );
        assert_eq!(
            poll_interval(true, Some("10")).unwrap(),
            Duration::from_secs(10)
        );
        assert_eq!(
            poll_interval(false, Some("0.5")).unwrap(),
            Duration::from_millis(500)
        );
        for bad in ["fast", "0", "-1", "1e9", "NaN"] {
            let e = poll_interval(false, Some(bad)).unwrap_err().to_string();
            assert!(
                e.contains("XTASK_POLL_SECONDS") && e.contains("unset it"),
                "{bad}: {e}"
            );
        }
    }
}
