//! What to do about AWS failures that do not explain themselves: the error codes any call can
//! meet, a resource's failure in a stack event, a stopped task's `stoppedReason`. Each table is
//! tried in order, the first entry whose words the message contains wins.

/// A recognised message: it contains one of `says`, and one of `and` when that is not empty.
struct Known {
    says: &'static [&'static str],
    and: &'static [&'static str],
    fix: &'static str,
}

/// Resource failures: quotas, and what else a first deploy into a fresh account meets.
const STACK_FAILURES: &[Known] = &[
    Known {
        says: &["RulesPerSecurityGroupLimitExceeded", "rules per security group"],
        and: &[],
        fix: concat!(
            "CloudFront's origin-facing prefix list counts as ",
            crate::cloudfront::usual_weight!(),
            " rules: raise the quota \"Inbound or outbound rules per security group\" (Service \
             Quotas, vpc ",
            crate::cloudfront::rules_per_group_quota!(),
            ") to ",
            crate::cloudfront::usual_weight!(),
            " or more, or set CloudFrontEnabled: \"false\" in infra/env"
        ),
    },
    Known {
        says: &["service linked role", "service-linked role"],
        and: &[],
        fix: "the account lacks ECS's service-linked role (a first ECS deploy can race its creation): \
              create it once with `aws iam create-service-linked-role --aws-service-name ecs.amazonaws.com`",
    },
    Known {
        says: &["account must be verified"],
        and: &[],
        fix: "a new AWS account must be verified before it may create CloudFront distributions: ask \
              AWS Support to verify it, or deploy without CloudFront (CloudFrontEnabled: \"false\" in infra/env)",
    },
    Known {
        says: &["Circuit Breaker was triggered"],
        and: &[],
        fix: "the new tasks did not start or did not pass their health checks, so ECS rolled the service \
              back: fix the cause that the stopped tasks' reasons and the service's last log lines show \
              (`cargo xtask logs` for more)",
    },
    Known {
        says: &["does not have an associated load balancer"],
        and: &[],
        fix: "ECS refuses a target group no listener forwards to yet: give the service `DependsOn` a \
              listener or listener rule that forwards to it in every configuration (infra/ecs.yaml)",
    },
    Known {
        says: &["as it is in use by"],
        and: &["Export"],
        fix: "another stack imports an export this change would change or delete (the ecs stack imports \
              the vpc stack's VPC and subnets): put the old value back in infra/env, or delete the \
              importing stack first (`cargo xtask destroy` deletes all in order, keeping images and logs)",
    },
    Known {
        says: &["custom-named resource requires replacing"],
        and: &[],
        fix: "the change replaces a resource that has a fixed name (the service's, the cluster's, the \
              load balancer's), and CloudFormation cannot make the new one under the same name: undo \
              the change that replaces it (the change set's table marks it), or run `cargo xtask destroy` \
              first (images and logs are kept)",
    },
    Known {
        says: &["LimitExceeded", "maximum number of"],
        and: &[],
        fix: "an account quota is reached: raise it in Service Quotas, or delete what you no longer use",
    },
];

/// Stopped tasks' reasons.
const STOPPED_TASKS: &[Known] = &[
    Known {
        says: &["exec format error"],
        and: &[],
        fix: "The image is built for another CPU than the task's: set CpuArchitecture in infra/env to the image's",
    },
    Known {
        says: &["OutOfMemory", "out of memory"],
        and: &[],
        fix: "The container ran out of memory: raise Memory in infra/env (with a Cpu that allows it)",
    },
    Known {
        says: &["CannotPullContainerError", "ResourceInitializationError"],
        and: &["not found", "manifest unknown"],
        fix: "The image is gone from ECR (deleted or expired): `cargo xtask deploy` pushes it again",
    },
    Known {
        says: &["CannotPullContainerError", "ResourceInitializationError"],
        and: &["timeout", "timed out"],
        fix: "Tasks cannot reach ECR, S3 or CloudWatch Logs: check the ecs stack's VPC endpoints and \
              their security group, and the private route tables' S3 endpoint, for changes made by hand",
    },
    Known {
        says: &["vCPUs you can run concurrently"],
        and: &[],
        fix: "The account's Fargate vCPU quota is reached: raise \"Fargate On-Demand vCPU resource count\" \
              in Service Quotas, or lower MaxCount or Cpu",
    },
];

fn first_fix(table: &[Known], message: &str) -> Option<&'static str> {
    let any = |words: &[&str]| words.iter().any(|w| message.contains(w));
    table
        .iter()
        .find(|k| any(k.says) && (k.and.is_empty() || any(k.and)))
        .map(|k| k.fix)
}

/// The fix for a resource's failure reason, when we recognise it.
pub fn for_stack_failure(reason: &str) -> Option<&'static str> {
    first_fix(STACK_FAILURES, reason)
}

/// What a stack failure's fix leads to: `<fix>, then deploy again`.
pub fn then_deploy_again(fix: &str) -> String {
    format!("{fix}, then deploy again")
}

/// The fix for a task's `stoppedReason`, when we recognise it.
pub fn for_stopped_task(reason: &str) -> Option<&'static str> {
    first_fix(STOPPED_TASKS, reason)
}

/// The fix for the errors any AWS call can meet: credentials, clock, permissions.
pub fn for_error_code(code: &str) -> Option<&'static str> {
    Some(match code {
        "ExpiredToken" | "ExpiredTokenException" | "TokenRefreshRequired" => {
            "your AWS credentials have expired: renew them (`aws sso login`, or your usual way) and run the command again"
        }
        "InvalidClientTokenId" | "UnrecognizedClientException" | "InvalidAccessKeyId"
        | "SignatureDoesNotMatch" | "AuthFailure" | "IncompleteSignature" => {
            "AWS does not accept these credentials: check AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY \
             (`aws sts get-caller-identity` shows who you are)"
        }
        "RequestExpired" | "RequestTimeTooSkewed" | "InvalidSignatureException" => {
            "this machine's clock may be off (AWS rejects requests signed more than 5 minutes away from its time): \
             sync it (`timedatectl set-ntp true`) and run the command again"
        }
        "AccessDenied" | "AccessDeniedException" | "UnauthorizedOperation" => {
            "your AWS identity may not do this: use a role or user whose policy allows the action named above"
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quota_failures_say_which_quota_to_raise() {
        // As AWS words them in a stack event.
        let rules =
            "The maximum number of rules per security group has been reached. (Service: Ec2, \
                     Status Code: 400, Request ID: 1f2e)";
        assert!(for_stack_failure(rules)
            .unwrap()
            .contains("vpc L-0EA8095F) to 55 or more"));
        let vpcs = "The maximum number of VPCs has been reached. (Service: Ec2, Status Code: 400)";
        assert!(for_stack_failure(vpcs)
            .unwrap()
            .starts_with("an account quota is reached"));
        let elb = "TooManyLoadBalancers: LimitExceeded";
        assert!(for_stack_failure(elb)
            .unwrap()
            .starts_with("an account quota is reached"));
        assert_eq!(for_stack_failure("The CIDR '10.0.0.0/8' is invalid."), None);
    }

    #[test]
    fn first_deploy_failures_of_a_new_account_say_the_fix() {
        let role =
            "Invalid request provided: CreateService error: Unable to assume the service linked \
                    role. Please verify that the ECS service linked role exists.";
        assert!(for_stack_failure(role)
            .unwrap()
            .contains("--aws-service-name ecs.amazonaws.com"));
        let cloudfront =
            "Your account must be verified before you can add new CloudFront resources. \
                          To verify your account, please contact AWS Support";
        assert!(for_stack_failure(cloudfront)
            .unwrap()
            .contains("CloudFrontEnabled: \"false\""));
    }

    #[test]
    fn service_failures_point_at_their_cause() {
        // As CloudFormation words an ECS service's failure.
        let breaker = "Resource handler returned message: \"Error occurred during operation 'ECS \
                       Deployment Circuit Breaker was triggered'.\" (RequestToken: 3f2a, HandlerErrorCode: \
                       GeneralServiceException)";
        assert!(for_stack_failure(breaker)
            .unwrap()
            .contains("stopped tasks' reasons"));
        let unattached = "Invalid request provided: CreateService error: The target group with \
                          targetGroupArn arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/x/1 does \
                          not have an associated load balancer.";
        assert!(for_stack_failure(unattached).unwrap().contains("DependsOn"));
        let named = "CloudFormation cannot update a stack when a custom-named resource requires \
                     replacing. Rename p-dev and update the stack again.";
        assert!(for_stack_failure(named).unwrap().contains("fixed name"));
        let in_use = "Export p-dev-VpcId cannot be updated as it is in use by p-dev-ecs";
        assert!(for_stack_failure(in_use)
            .unwrap()
            .starts_with("another stack imports an export"));
    }
}
