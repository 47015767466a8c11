//! CloudFront in front of the load balancer: the id of the AWS-managed origin-facing prefix list,
//! which CloudFormation cannot look up by name, so the ALB security group can admit only CloudFront.

use crate::aws::query::{xml_values, QueryClient};
use anyhow::{Context, Result};

pub const ORIGIN_FACING_PREFIX_LIST: &str = "com.amazonaws.global.cloudfront.origin-facing";

/// Whether the ecs stack's parameters turn CloudFront on (it is on unless `CloudFrontEnabled: false`).
pub fn enabled(ecs_parameters: &std::collections::BTreeMap<String, String>) -> bool {
    ecs_parameters
        .get("CloudFrontEnabled")
        .is_none_or(|v| v != "false")
}

/// The region's id of `com.amazonaws.global.cloudfront.origin-facing` (`pl-...`).
pub async fn origin_facing_prefix_list(ec2: &QueryClient) -> Result<String> {
    let answer = ec2
        .call(
            "DescribeManagedPrefixLists",
            &[
                ("Filter.1.Name", "prefix-list-name"),
                ("Filter.1.Value.1", ORIGIN_FACING_PREFIX_LIST),
            ],
        )
        .await
        .context("cannot look up CloudFront's origin-facing prefix list (ec2:DescribeManagedPrefixLists)")?;
    prefix_list_id(&answer)
}

fn prefix_list_id(answer: &str) -> Result<String> {
    xml_values(answer, "prefixListId")
        .into_iter()
        .next()
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

    #[test]
    fn cloudfront_is_on_unless_switched_off() {
        let mut p = std::collections::BTreeMap::new();
        assert!(enabled(&p));
        p.insert("CloudFrontEnabled".to_owned(), "true".to_owned());
        assert!(enabled(&p));
        p.insert("CloudFrontEnabled".to_owned(), "false".to_owned());
        assert!(!enabled(&p));
    }

    #[test]
    fn the_id_is_read_from_the_answer() {
        // As EC2 answers (trimmed).
        let answer = r#"<DescribeManagedPrefixListsResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
            <requestId>1</requestId><prefixListSet><item><prefixListId>pl-3b927c52</prefixListId>
            <prefixListName>com.amazonaws.global.cloudfront.origin-facing</prefixListName></item></prefixListSet>
            </DescribeManagedPrefixListsResponse>"#;
        assert_eq!(prefix_list_id(answer).unwrap(), "pl-3b927c52");
    }

    #[test]
    fn a_region_without_the_list_says_how_to_switch_cloudfront_off() {
        let empty = "<DescribeManagedPrefixListsResponse><prefixListSet/></DescribeManagedPrefixListsResponse>";
        let err = prefix_list_id(empty).unwrap_err().to_string();
        assert!(err.contains("CloudFrontEnabled: false"), "{err}");
    }
}
