//! CloudFront in front of the load balancer: the id of the AWS-managed origin-facing prefix list,
//! which CloudFormation cannot look up by name, so the ALB security group can admit only CloudFront.

use crate::aws::signed::{xml_values, SignedClient};
use anyhow::{bail, Context, Result};

pub const ORIGIN_FACING_PREFIX_LIST: &str = "com.amazonaws.global.cloudfront.origin-facing";

/// Service Quotas' code of "Inbound or outbound rules per security group" (service `vpc`), and
/// the prefix list's weight in it when EC2 does not say (its maximum entries in every region
/// today): literals, so that `fixes`' static advice can `concat!` them too.
macro_rules! rules_per_group_quota {
    () => {
        "L-0EA8095F"
    };
}
macro_rules! usual_weight {
    () => {
        55
    };
}
pub(crate) use {rules_per_group_quota, usual_weight};

pub const RULES_PER_GROUP_QUOTA: &str = rules_per_group_quota!();

/// CloudFront's origin-facing prefix list in this region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrefixList {
    pub id: String,
    /// The rules it counts as in a security group: its maximum number of entries.
    pub weight: u32,
}

const WEIGHT_UNSAID: u32 = usual_weight!();

/// Whether the ecs stack's parameters turn CloudFront on (it is on unless `CloudFrontEnabled: false`).
pub fn enabled(ecs_parameters: &std::collections::BTreeMap<String, String>) -> bool {
    ecs_parameters
        .get("CloudFrontEnabled")
        .is_none_or(|v| v != "false")
}

/// The region's `com.amazonaws.global.cloudfront.origin-facing` (`pl-...`).
pub async fn origin_facing_prefix_list(ec2: &SignedClient) -> Result<PrefixList> {
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
    prefix_list(&answer)
}

fn prefix_list(answer: &str) -> Result<PrefixList> {
    let id = xml_values(answer, "prefixListId")
        .into_iter()
        .next()
        .with_context(|| {
            format!(
                "this region has no {ORIGIN_FACING_PREFIX_LIST} prefix list: set `CloudFrontEnabled: false` \
                 under stacks.ecs in the environment file, or deploy to another region"
            )
        })?;
    let weight = xml_values(answer, "maxEntries")
        .first()
        .and_then(|n| n.parse().ok())
        .unwrap_or(WEIGHT_UNSAID);
    Ok(PrefixList { id, weight })
}

/// The account's "Inbound or outbound rules per security group" quota; `None` when it cannot be
/// read (no `servicequotas:GetServiceQuota` permission, say): the check it feeds is a courtesy,
/// and the stack itself would fail with the same advice.
pub async fn rules_per_group(quotas: &SignedClient) -> Option<u32> {
    let answer = quotas
        .call(
            "GetServiceQuota",
            &[("ServiceCode", "vpc"), ("QuotaCode", RULES_PER_GROUP_QUOTA)],
        )
        .await
        .ok()?;
    let answer: serde_json::Value = serde_json::from_str(&answer).ok()?;
    answer["Quota"]["Value"].as_f64().map(|v| v as u32)
}

/// With CloudFront on, the load balancer's security group holds the prefix list as its one
/// ingress rule, which counts as `weight` rules: refuse, before anything is deployed, an account
/// whose quota is lower (its first deploy would fail minutes in and roll back).
pub fn check_rules_quota(list: &PrefixList, quota: Option<u32>, env_file: &str) -> Result<()> {
    match quota {
        Some(quota) if quota < list.weight => bail!(
            "this account's quota \"Inbound or outbound rules per security group\" is {quota}, below the \
             {} rules CloudFront's origin-facing prefix list counts as in the load balancer's security \
             group: raise it to {} or more (Service Quotas, vpc {RULES_PER_GROUP_QUOTA}), or set \
             CloudFrontEnabled: \"false\" under stacks.ecs in {env_file}; nothing was deployed",
            list.weight,
            list.weight
        ),
        _ => Ok(()),
    }
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
    fn the_id_and_weight_are_read_from_the_answer() {
        // As EC2 answers (trimmed).
        let answer = r#"<DescribeManagedPrefixListsResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
            <requestId>1</requestId><prefixListSet><item><prefixListId>pl-3b927c52</prefixListId>
            <maxEntries>55</maxEntries>
            <prefixListName>com.amazonaws.global.cloudfront.origin-facing</prefixListName></item></prefixListSet>
            </DescribeManagedPrefixListsResponse>"#;
        let list = prefix_list(answer).unwrap();
        assert_eq!((list.id.as_str(), list.weight), ("pl-3b927c52", 55));
        let unsaid = answer.replace("<maxEntries>55</maxEntries>", "");
        assert_eq!(prefix_list(&unsaid).unwrap().weight, WEIGHT_UNSAID);
    }

    #[test]
    fn a_region_without_the_list_says_how_to_switch_cloudfront_off() {
        let empty = "<DescribeManagedPrefixListsResponse><prefixListSet/></DescribeManagedPrefixListsResponse>";
        let err = prefix_list(empty).unwrap_err().to_string();
        assert!(err.contains("CloudFrontEnabled: false"), "{err}");
    }

    #[test]
    fn a_quota_below_the_lists_weight_is_refused_before_deploying() {
        let list = PrefixList {
            id: "pl-1".into(),
            weight: 55,
        };
        let err = check_rules_quota(&list, Some(50), "infra/env/dev.yaml")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("is 50, below the 55 rules")
                && err.contains("vpc L-0EA8095F")
                && err.contains("in infra/env/dev.yaml; nothing was deployed"),
            "{err}"
        );
        // Enough, or unknown (the stack failure would say the same): go on.
        assert!(check_rules_quota(&list, Some(60), "x").is_ok());
        assert!(check_rules_quota(&list, Some(55), "x").is_ok());
        assert!(check_rules_quota(&list, None, "x").is_ok());
    }
}
