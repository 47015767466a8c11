//! Test helper: an SDK client whose responses come from `aws-smithy-mocks` rules.

/// `mock_sdk!(aws_sdk_cloudformation, [&rule, ...])`, or `mock_sdk!(sdk, rules: iterator of
/// &Rule)`: like `aws_smithy_mocks::mock_client!`, but without the SDK's `test-util` feature
/// (see Cargo.toml). Rules match in any order.
macro_rules! mock_sdk {
    ($sdk:ident, [$($rule:expr),* $(,)?]) => {
        $crate::mock::mock_sdk!($sdk, rules: [$($rule),*])
    };
    ($sdk:ident, rules: $rules:expr) => {{
        let mut interceptor = aws_smithy_mocks::MockResponseInterceptor::new()
            .rule_mode(aws_smithy_mocks::RuleMode::MatchAny);
        for rule in $rules {
            interceptor = interceptor.with_rule(rule);
        }
        let config = $sdk::Config::builder()
            .behavior_version($sdk::config::BehaviorVersion::latest())
            .region($sdk::config::Region::new("us-east-1"))
            .credentials_provider($sdk::config::Credentials::new("AKID", "SECRET", None, None, "test"))
            .retry_config($sdk::config::retry::RetryConfig::disabled())
            .http_client(aws_smithy_mocks::create_mock_http_client())
            .interceptor(interceptor)
            .build();
        $sdk::Client::from_conf(config)
    }};
}

pub(crate) use mock_sdk;

/// What an AWS service answers an error with: its code and message (the same type in every SDK).
pub fn service_error(code: &str, message: &str) -> aws_smithy_types::error::ErrorMetadata {
    aws_smithy_types::error::ErrorMetadata::builder()
        .code(code)
        .message(message)
        .build()
}
