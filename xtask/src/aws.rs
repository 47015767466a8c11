//! One AWS configuration for every client: the standard chain for real AWS, fakecloud for `--local`.

use anyhow::{bail, Context, Result};
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_cloudformation::config::{Credentials, ProvideCredentials, SharedCredentialsProvider};

use crate::fakecloud;

pub mod signed;

/// The clients a command needs, built from one `SdkConfig`.
#[derive(Clone)]
pub struct Clients {
    pub cfn: aws_sdk_cloudformation::Client,
    pub ecr: aws_sdk_ecr::Client,
    pub ecs: aws_sdk_ecs::Client,
    /// EC2's Query API, for the one action we need (see `signed.rs`).
    pub ec2: signed::SignedClient,
    /// Service Quotas' JSON API, for the one quota we check before deploying.
    pub quotas: signed::SignedClient,
    pub logs: aws_sdk_cloudwatchlogs::Client,
}

impl Clients {
    pub fn new(config: &SdkConfig) -> Clients {
        Clients {
            cfn: aws_sdk_cloudformation::Client::new(config),
            ecr: aws_sdk_ecr::Client::new(config),
            ecs: aws_sdk_ecs::Client::new(config),
            ec2: signed::SignedClient::new(config, signed::EC2),
            quotas: signed::SignedClient::new(config, signed::SERVICE_QUOTAS),
            logs: aws_sdk_cloudwatchlogs::Client::new(config),
        }
    }
}

/// Load the configuration and check, before any AWS call, that it has a region and credentials.
/// The credentials that check resolves are kept (see `Resolved`).
pub async fn load(local: bool) -> Result<SdkConfig> {
    let config = if local {
        aws_config::defaults(BehaviorVersion::latest())
            .endpoint_url(fakecloud::ENDPOINT)
            .region(Region::new(fakecloud::REGION))
            .credentials_provider(Credentials::new("test", "test", None, None, "fakecloud"))
            .load()
            .await
    } else {
        aws_config::defaults(BehaviorVersion::latest()).load().await
    };
    if config.region().is_none() {
        bail!("no AWS region is configured: set AWS_REGION (or `region` in your AWS profile), or use --local");
    }
    let provider = config
        .credentials_provider()
        .context("no AWS credentials provider is configured")?;
    let credentials = match provider.provide_credentials().await {
        Ok(credentials) => credentials,
        Err(e) => bail!(
            "no AWS credentials found ({e}): run `aws configure` or `aws sso login`, set AWS_PROFILE \
             or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or use --local"
        ),
    };
    let resolved = Resolved::new(credentials, provider);
    Ok(config
        .into_builder()
        .credentials_provider(SharedCredentialsProvider::new(resolved))
        .build())
}

/// A credentials provider that hands out the credentials already resolved while they stay valid
/// for five more minutes, and only then asks the real one: with an SSO or assume-role profile,
/// the check in `load`, the SDK clients and the hand-signed calls (`signed.rs`) share one round
/// trip instead of making one each.
#[derive(Debug)]
struct Resolved {
    held: tokio::sync::Mutex<Credentials>,
    inner: SharedCredentialsProvider,
}

impl Resolved {
    fn new(credentials: Credentials, inner: SharedCredentialsProvider) -> Resolved {
        Resolved {
            held: tokio::sync::Mutex::new(credentials),
            inner,
        }
    }

    async fn get(&self) -> aws_credential_types::provider::Result {
        let mut held = self.held.lock().await;
        if !fresh(&held, std::time::SystemTime::now()) {
            *held = self.inner.provide_credentials().await?;
        }
        Ok(held.clone())
    }
}

impl ProvideCredentials for Resolved {
    fn provide_credentials<'a>(
        &'a self,
    ) -> aws_credential_types::provider::future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        aws_credential_types::provider::future::ProvideCredentials::new(self.get())
    }
}

/// Whether credentials stay valid for the next five minutes (or never expire).
fn fresh(credentials: &Credentials, now: std::time::SystemTime) -> bool {
    credentials
        .expiry()
        .is_none_or(|at| at > now + std::time::Duration::from_secs(300))
}

/// Turn an SDK error into one readable line: the service's code and message when there is one.
pub fn aws_error<E, R>(err: aws_sdk_cloudformation::error::SdkError<E, R>) -> anyhow::Error
where
    E: aws_sdk_cloudformation::error::ProvideErrorMetadata
        + std::error::Error
        + Send
        + Sync
        + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let (code, message) = match err.as_service_error() {
        Some(e) => (e.code().map(str::to_owned), e.message().map(str::to_owned)),
        None => (None, None),
    };
    match (code, message) {
        (Some(code), Some(msg)) => service_error(&code, &msg),
        (None, Some(msg)) => anyhow::anyhow!("{msg}"),
        _ => anyhow::anyhow!(aws_sdk_cloudformation::error::DisplayErrorContext(err).to_string()),
    }
}

/// A service's error code and message (when it gave one), with the fix when the code says what
/// it is.
pub fn service_error(code: &str, message: &str) -> anyhow::Error {
    let said = if message.is_empty() {
        code.to_owned()
    } else {
        format!("{code}: {message}")
    };
    match crate::fixes::for_error_code(code) {
        Some(fix) => anyhow::anyhow!("{said}: {fix}"),
        None => anyhow::anyhow!("{said}"),
    }
}

/// Now, in the milliseconds since the epoch that AWS APIs take and return.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_errors_come_with_their_fix() {
        let text = |code| {
            service_error(
                code,
                "The security token included in the request is expired",
            )
            .to_string()
        };
        assert!(text("ExpiredToken").ends_with(
            "renew them (`aws sso login`, or your usual way) and run the command again"
        ));
        assert!(text("ExpiredTokenException").contains("have expired"));
        assert!(text("InvalidClientTokenId").contains("does not accept these credentials"));
        assert!(text("RequestTimeTooSkewed").contains("clock"));
        assert!(text("AccessDeniedException").contains("may not do this"));
        assert_eq!(
            service_error("ValidationError", "Stack x does not exist").to_string(),
            "ValidationError: Stack x does not exist"
        );
        assert_eq!(service_error("Throttling", "").to_string(), "Throttling");
    }

    /// A provider that counts how often it is asked, answering with credentials expiring at `expiry`.
    #[derive(Debug, Clone)]
    struct Counting(
        std::sync::Arc<std::sync::atomic::AtomicUsize>,
        Option<std::time::SystemTime>,
    );

    impl ProvideCredentials for Counting {
        fn provide_credentials<'a>(
            &'a self,
        ) -> aws_credential_types::provider::future::ProvideCredentials<'a>
        where
            Self: 'a,
        {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            aws_credential_types::provider::future::ProvideCredentials::ready(Ok(Credentials::new(
                "AKID", "SECRET", None, self.1, "counting",
            )))
        }
    }

    #[tokio::test]
    async fn resolved_credentials_are_reused_until_five_minutes_before_they_expire() {
        use std::sync::atomic::Ordering::SeqCst;
        use std::time::{Duration, SystemTime};
        let asked = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let in_an_hour = Some(SystemTime::now() + Duration::from_secs(3600));
        let inner = SharedCredentialsProvider::new(Counting(asked.clone(), in_an_hour));
        let expiring = |at| Credentials::new("A", "S", None, at, "load");

        let fresh_ones = Resolved::new(expiring(in_an_hour), inner.clone());
        fresh_ones.provide_credentials().await.unwrap();
        fresh_ones.provide_credentials().await.unwrap();
        assert_eq!(
            asked.load(SeqCst),
            0,
            "fresh credentials were resolved again"
        );

        let soon = Some(SystemTime::now() + Duration::from_secs(240));
        let stale_ones = Resolved::new(expiring(soon), inner);
        let renewed = stale_ones.provide_credentials().await.unwrap();
        assert_eq!(renewed.expiry(), in_an_hour);
        stale_ones.provide_credentials().await.unwrap();
        assert_eq!(asked.load(SeqCst), 1, "renewed once, then reused");

        assert!(fresh(&expiring(None), SystemTime::now()));
    }

    #[tokio::test]
    async fn an_sdk_error_reads_as_code_message_and_fix() {
        use aws_sdk_cloudformation::operation::describe_stacks::DescribeStacksError;
        let expired = aws_smithy_mocks::mock!(aws_sdk_cloudformation::Client::describe_stacks)
            .then_error(|| {
                DescribeStacksError::generic(crate::mock::service_error(
                    "ExpiredToken",
                    "The security token included in the request is expired",
                ))
            });
        let cfn = crate::mock::mock_sdk!(aws_sdk_cloudformation, [&expired]);
        let err = cfn
            .describe_stacks()
            .send()
            .await
            .map_err(aws_error)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "ExpiredToken: The security token included in the request is expired: your AWS credentials \
             have expired: renew them (`aws sso login`, or your usual way) and run the command again"
        );
    }
}
