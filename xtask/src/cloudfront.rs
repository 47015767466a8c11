//! CloudFront in front of the load balancer: the id of the AWS-managed origin-facing prefix list,
//! which CloudFormation cannot look up by name, so the ALB security group can admit only CloudFront.

use anyhow::{Context, Result};
use aws_sdk_ec2::types::Filter;

use crate::aws::aws_error;

pub const ORIGIN_FACING_PREFIX_LIST: &str = "com.amazonaws.global.cloudfront.origin-facing";

/// Whether the ecs stack's parameters turn CloudFront on (it is on unless `CloudFrontEnabled: false`).
pub fn enabled(ecs_parameters: &std::collections::BTreeMap<String, String>) -> bool {
    ecs_parameters
        .get("CloudFrontEnabled")
        .is_none_or(|v| v != "false")
}

/// The region's id of `com.amazonaws.global.cloudfront.origin-facing` (`pl-...`).
pub async fn origin_facing_prefix_list(ec2: &aws_sdk_ec2::Client) -> Result<String> {
    let out = ec2
        .describe_managed_prefix_lists()
        .filters(Filter::builder().name("prefix-list-name").values(ORIGIN_FACING_PREFIX_LIST).build())
        .send()
        .await
        .map_err(aws_error)
        .context("cannot look up CloudFront's origin-facing prefix list (ec2:DescribeManagedPrefixLists)")?;
    out.prefix_lists()
        .iter()
        .find_map(|p| p.prefix_list_id())
        .map(str::to_owned)
        .with_context(|| {
            format!(
                "this region has no {ORIGIN_FACING_PREFIX_LIST} prefix list: set `CloudFrontEnabled: false` \
                 under stacks.ecs in the environment file, or deploy to another region"
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mock::mock_sdk;
    use aws_sdk_ec2::operation::describe_managed_prefix_lists::DescribeManagedPrefixListsOutput;
    use aws_sdk_ec2::types::ManagedPrefixList;
    use aws_smithy_mocks::mock;

    #[test]
    fn cloudfront_is_on_unless_switched_off() {
        let mut p = std::collections::BTreeMap::new();
        assert!(enabled(&p));
        p.insert("CloudFrontEnabled".to_owned(), "true".to_owned());
        assert!(enabled(&p));
        p.insert("CloudFrontEnabled".to_owned(), "false".to_owned());
        assert!(!enabled(&p));
    }

    #[tokio::test]
    async fn looks_the_list_up_by_name() {
        let rule = mock!(aws_sdk_ec2::Client::describe_managed_prefix_lists)
            .match_requests(|r| {
                r.filters()
                    .iter()
                    .any(|f| f.values().iter().any(|v| v == ORIGIN_FACING_PREFIX_LIST))
            })
            .then_output(|| {
                DescribeManagedPrefixListsOutput::builder()
                    .prefix_lists(
                        ManagedPrefixList::builder()
                            .prefix_list_id("pl-3b927c52")
                            .build(),
                    )
                    .build()
            });
        let ec2 = mock_sdk!(aws_sdk_ec2, [&rule]);
        assert_eq!(
            origin_facing_prefix_list(&ec2).await.unwrap(),
            "pl-3b927c52"
        );
    }

    #[tokio::test]
    async fn a_region_without_the_list_says_how_to_switch_cloudfront_off() {
        let rule = mock!(aws_sdk_ec2::Client::describe_managed_prefix_lists)
            .then_output(|| DescribeManagedPrefixListsOutput::builder().build());
        let ec2 = mock_sdk!(aws_sdk_ec2, [&rule]);
        let err = origin_facing_prefix_list(&ec2)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("CloudFrontEnabled: false"), "{err}");
    }
}
