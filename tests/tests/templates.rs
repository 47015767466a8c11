//! The templates in `infra/` against the rules in `tests::checks`. Every rule is tested twice:
//! it holds for the real templates, and it catches a deliberately broken snippet.

use tests::checks::{self, Check};
use tests::template::Template;
use tests::{root, STACKS};

fn all() -> Vec<Template> {
    STACKS.iter().map(|s| Template::load(s)).collect()
}

fn snippet(yaml: &str) -> Template {
    Template::parse("broken", yaml).unwrap()
}

/// No violations.
fn assert_holds(found: &[String]) {
    assert!(found.is_empty(), "{}", found.join("\n"));
}

/// A violation that says `expect`.
fn assert_caught(found: &[String], expect: &str) {
    assert!(found.iter().any(|v| v.contains(expect)), "{found:#?}");
}

/// `rule!(name, check, broken snippet, words the violation must contain)`.
macro_rules! rule {
    ($name:ident, $check:path, $broken:expr, $expect:expr) => {
        mod $name {
            use super::*;

            #[test]
            fn holds_for_infra() {
                let found: Vec<String> = all().iter().flat_map(|t| ($check as Check)(t)).collect();
                assert_holds(&found);
            }

            #[test]
            fn catches_a_broken_template() {
                let found = ($check as Check)(&snippet($broken));
                assert_caught(&found, $expect);
            }
        }
    };
}

rule!(
    private_dns,
    checks::interface_endpoints_have_private_dns,
    r#"
Resources:
  EcrApi:
    Type: AWS::EC2::VPCEndpoint
    Properties: { VpcEndpointType: Interface, PrivateDnsEnabled: false }
"#,
    "EcrApi is an interface endpoint without PrivateDnsEnabled"
);

rule!(
    endpoint_sg,
    checks::endpoint_sg_admits_only_tasks_on_443,
    r#"
Resources:
  EndpointSg:
    Type: AWS::EC2::SecurityGroup
    Properties:
      SecurityGroupIngress:
        - { IpProtocol: tcp, FromPort: 443, ToPort: 443, CidrIp: 10.0.0.0/16 }
  Logs:
    Type: AWS::EC2::VPCEndpoint
    Properties: { VpcEndpointType: Interface, PrivateDnsEnabled: true, SecurityGroupIds: [!Ref EndpointSg] }
"#,
    "EndpointSg (VPC endpoints) must admit only tcp 443 from the task security group"
);

rule!(
    open_ingress,
    checks::no_open_ingress_except_load_balancer,
    r#"
Resources:
  TaskSg:
    Type: AWS::EC2::SecurityGroup
    Properties:
      SecurityGroupIngress:
        - { IpProtocol: tcp, FromPort: 8080, ToPort: 8080, CidrIp: 0.0.0.0/0 }
"#,
    "TaskSg admits traffic from anywhere"
);

rule!(
    log_retention,
    checks::log_groups_have_retention,
    r#"
Resources:
  Logs:
    Type: AWS::Logs::LogGroup
    Properties: { LogGroupName: /ecs/x }
"#,
    "Logs has no RetentionInDays"
);

rule!(
    logs_retained,
    checks::log_groups_survive_their_stack,
    r#"
Resources:
  Logs:
    Type: AWS::Logs::LogGroup
    UpdateReplacePolicy: Retain
    Properties: { RetentionInDays: 30 }
"#,
    "Logs must set DeletionPolicy: Retain (deleting the stack must not delete the logs)"
);

rule!(
    ip_targets,
    checks::target_groups_use_ip_targets,
    r#"
Resources:
  Tg:
    Type: AWS::ElasticLoadBalancingV2::TargetGroup
    Properties: { TargetType: instance, Port: 80, HealthCheckPath: /health }
"#,
    "Tg needs TargetType: ip"
);

rule!(
    service_after_listener,
    checks::services_attach_after_listener,
    r#"
Resources:
  Listener:
    Type: AWS::ElasticLoadBalancingV2::Listener
    Properties: { DefaultActions: [{ Type: forward, TargetGroupArn: !Ref Tg }] }
  Service:
    Type: AWS::ECS::Service
    Properties:
      LoadBalancers: [{ ContainerName: app, ContainerPort: 8080, TargetGroupArn: !Ref Tg }]
"#,
    "Service must have DependsOn: <a listener or listener rule that always forwards to Tg>"
);

// The listener exists, but with CloudFront on its default action is a fixed 403, and the rule that
// forwards exists only with CloudFront on: in either case ECS may see the target group unattached.
rule!(
    service_after_forwarding_rule,
    checks::services_attach_after_listener,
    r#"
Resources:
  Listener:
    Type: AWS::ElasticLoadBalancingV2::Listener
    Properties:
      DefaultActions:
        - !If [UseCloudFront, { Type: fixed-response }, { Type: forward, TargetGroupArn: !Ref Tg }]
  FromCloudFront:
    Type: AWS::ElasticLoadBalancingV2::ListenerRule
    Condition: UseCloudFront
    Properties: { Actions: [{ Type: forward, TargetGroupArn: !Ref Tg }] }
  Service:
    Type: AWS::ECS::Service
    DependsOn: [Listener, FromCloudFront]
    Properties:
      LoadBalancers: [{ ContainerName: app, ContainerPort: 8080, TargetGroupArn: !Ref Tg }]
"#,
    "ECS refuses a target group that the load balancer does not forward to yet"
);

rule!(
    service_after_endpoints,
    checks::services_wait_for_endpoints,
    r#"
Resources:
  EcrDkr:
    Type: AWS::EC2::VPCEndpoint
    Properties: { VpcEndpointType: Interface, PrivateDnsEnabled: true }
  Logs:
    Type: AWS::EC2::VPCEndpoint
    Properties: { VpcEndpointType: Interface, PrivateDnsEnabled: true }
  Service:
    Type: AWS::ECS::Service
    DependsOn: [Listener, EcrDkr]
    Properties: {}
"#,
    "Service must have DependsOn: Logs"
);

rule!(
    unconditional_dependencies,
    checks::no_dependency_on_a_conditional_resource,
    r#"
Resources:
  FromCloudFront:
    Type: AWS::ElasticLoadBalancingV2::ListenerRule
    Condition: UseCloudFront
    Properties: {}
  Service:
    Type: AWS::ECS::Service
    DependsOn: [Listener, FromCloudFront]
    Properties: {}
"#,
    "Service depends on FromCloudFront, which exists only when UseCloudFront holds"
);

rule!(
    load_balancer_reaches_tasks,
    checks::security_groups_let_the_service_work,
    r#"
Resources:
  LbSg:
    Type: AWS::EC2::SecurityGroup
    Properties:
      SecurityGroupEgress: [{ IpProtocol: tcp, FromPort: 80, ToPort: 80, CidrIp: 10.0.0.0/16 }]
  TaskSg:
    Type: AWS::EC2::SecurityGroup
    Properties:
      SecurityGroupIngress: [{ IpProtocol: tcp, FromPort: 8080, ToPort: 8080, SourceSecurityGroupId: !Ref LbSg }]
  Lb:
    Type: AWS::ElasticLoadBalancingV2::LoadBalancer
    Properties: { SecurityGroups: [!Ref LbSg] }
  Service:
    Type: AWS::ECS::Service
    Properties:
      NetworkConfiguration: { AwsvpcConfiguration: { SecurityGroups: [!Ref TaskSg] } }
"#,
    "LbSg (load balancer) has no egress to the port TaskSg admits it on"
);

rule!(
    tasks_reach_endpoints,
    checks::security_groups_let_the_service_work,
    r#"
Resources:
  TaskSg:
    Type: AWS::EC2::SecurityGroup
    Properties:
      SecurityGroupEgress: [{ IpProtocol: tcp, FromPort: 80, ToPort: 80, CidrIp: 0.0.0.0/0 }]
  Service:
    Type: AWS::ECS::Service
    Properties:
      NetworkConfiguration: { AwsvpcConfiguration: { SecurityGroups: [!Ref TaskSg] } }
"#,
    "TaskSg (tasks of Service) has no egress on 443"
);

rule!(
    no_public_ip,
    checks::tasks_have_no_public_ip,
    r#"
Resources:
  Service:
    Type: AWS::ECS::Service
    Properties:
      NetworkConfiguration: { AwsvpcConfiguration: { AssignPublicIp: ENABLED } }
"#,
    "AssignPublicIp: DISABLED"
);

rule!(
    circuit_breaker,
    checks::circuit_breaker_with_rollback,
    r#"
Resources:
  Service:
    Type: AWS::ECS::Service
    Properties:
      DeploymentConfiguration: { DeploymentCircuitBreaker: { Enable: true, Rollback: false } }
"#,
    "DeploymentCircuitBreaker"
);

rule!(
    execution_role,
    checks::execution_role_has_managed_policy,
    r#"
Resources:
  Role:
    Type: AWS::IAM::Role
    Properties: { ManagedPolicyArns: [arn:aws:iam::aws:policy/ReadOnlyAccess] }
  Task:
    Type: AWS::ECS::TaskDefinition
    Properties: { ExecutionRoleArn: !GetAtt Role.Arn }
"#,
    "Role (execution role of Task) lacks the managed policy"
);

rule!(
    non_root,
    checks::containers_non_root_read_only,
    r#"
Resources:
  Task:
    Type: AWS::ECS::TaskDefinition
    Properties:
      ContainerDefinitions: [{ Name: app, User: "0:0", ReadonlyRootFilesystem: true }]
"#,
    "container app must set a non-root User"
);

rule!(
    repository,
    checks::repositories_are_safe,
    r#"
Resources:
  Repo:
    Type: AWS::ECR::Repository
    Properties: { ImageTagMutability: MUTABLE, ImageScanningConfiguration: { ScanOnPush: true } }
"#,
    "Repo must set ImageTagMutability: IMMUTABLE"
);

/// A repository `Repo` with this lifecycle policy (YAML for `LifecyclePolicyText`).
fn repository_with_lifecycle(policy: &str) -> String {
    format!(
        "Resources:\n  Repo:\n    Type: AWS::ECR::Repository\n    Properties:\n      \
         LifecyclePolicy:\n        LifecyclePolicyText: {policy}\n"
    )
}

rule!(
    deployed_image_kept,
    checks::deployed_images_never_expire,
    &repository_with_lifecycle(
        r#"!Sub '{"rules": [{"rulePriority": 1, "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": ${ImagesToKeep}}, "action": {"type": "expire"}}]}'"#
    ),
    "Repo's lifecycle policy expires the running image"
);

rule!(
    hard_coded,
    checks::nothing_hard_coded,
    r#"
Resources:
  Subnet:
    Type: AWS::EC2::Subnet
    Properties: { AvailabilityZone: ap-northeast-1a }
"#,
    "hard-codes \"ap-northeast-1a\""
);

#[test]
fn every_rule_in_the_catalogue_holds_for_infra() {
    for (name, check) in checks::CHECKS {
        let found: Vec<String> = all().iter().flat_map(check).collect();
        assert!(found.is_empty(), "rule {name:?}:\n{}", found.join("\n"));
    }
}

#[test]
fn every_import_matches_an_earlier_export() {
    let found = checks::imports_match_earlier_exports(&all());
    assert_holds(&found);
}

#[test]
fn an_import_before_its_export_is_caught() {
    let mut templates = all();
    templates.reverse(); // ecs first: its imports are not exported yet
    let found = checks::imports_match_earlier_exports(&templates);
    assert_caught(&found, "${ProjectName}-${EnvName}-VpcId");
}

#[test]
fn every_environment_file_matches_the_templates() {
    let dir = root().join("infra").join("env");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let env = path.file_stem().unwrap().to_str().unwrap().to_owned();
        let found = checks::env_file_matches_templates(
            &env,
            &std::fs::read_to_string(&path).unwrap(),
            &all(),
        );
        assert_holds(&found);
        seen += 1;
    }
    assert!(seen >= 1, "no environment files in {}", dir.display());
}

#[test]
fn an_environment_file_naming_an_unknown_parameter_is_caught() {
    let found = checks::env_file_matches_templates(
        "dev",
        "project: x\nstacks:\n  ecs:\n    Cpus: 256\n",
        &all(),
    );
    assert_caught(&found, "stacks.ecs.Cpus is not a parameter");
}

#[test]
fn a_required_parameter_missing_from_the_environment_is_caught() {
    let t = snippet("Parameters:\n  Domain: { Type: String }\nResources: {}\n");
    let t = Template {
        name: "ecs".into(),
        ..t
    };
    let found = checks::env_file_matches_templates("dev", "project: x\n", &[t]);
    assert_caught(&found, "stacks.ecs.Domain is required");
}

#[test]
fn the_reference_architecture_is_all_there() {
    let [vpc, ecr, ecs] = [0, 1, 2].map(|i| all().swap_remove(i));
    let count = |t: &Template, ty: &str| t.of_type(ty).count();
    // vpc: two AZs, public + private subnets, no NAT, an S3 *Gateway* endpoint on the private route tables.
    assert_eq!(count(&vpc, "AWS::EC2::Subnet"), 4);
    assert_eq!(count(&vpc, "AWS::EC2::NatGateway"), 0);
    let (_, s3) = vpc
        .of_type("AWS::EC2::VPCEndpoint")
        .next()
        .expect("S3 endpoint");
    assert_eq!(
        tests::template::prop(s3, &["VpcEndpointType"])
            .unwrap()
            .as_str(),
        Some("Gateway")
    );
    assert_eq!(
        tests::template::prop(s3, &["RouteTableIds"])
            .unwrap()
            .as_sequence()
            .unwrap()
            .len(),
        2
    );
    // ecr: the repository.
    assert_eq!(count(&ecr, "AWS::ECR::Repository"), 1);
    // ecs: ecr.api, ecr.dkr and logs interface endpoints, cluster, task definition, ALB, listener, service.
    let services: Vec<String> = ecs
        .of_type("AWS::EC2::VPCEndpoint")
        .map(|(_, r)| format!("{:?}", tests::template::prop(r, &["ServiceName"]).unwrap()))
        .collect();
    for suffix in [".ecr.api", ".ecr.dkr", ".logs"] {
        assert!(
            services.iter().any(|s| s.contains(suffix)),
            "no {suffix} endpoint in {services:?}"
        );
    }
    for ty in [
        "AWS::ECS::Cluster",
        "AWS::ECS::TaskDefinition",
        "AWS::ECS::Service",
        "AWS::ElasticLoadBalancingV2::LoadBalancer",
        "AWS::ElasticLoadBalancingV2::Listener",
        "AWS::ElasticLoadBalancingV2::TargetGroup",
        "AWS::Logs::LogGroup",
    ] {
        assert_eq!(count(&ecs, ty), 1, "{ty}");
    }
}

/// A load balancer open to the world exactly when CloudFront is on: it breaks two rules.
const LB_OPEN_TO_THE_WORLD_WITH_CLOUDFRONT_ON: &str = r#"
Resources:
  LbSg:
    Type: AWS::EC2::SecurityGroup
    Properties:
      SecurityGroupIngress:
        - !If [UseCloudFront, { IpProtocol: tcp, FromPort: 80, ToPort: 80, CidrIp: 0.0.0.0/0 }, !Ref AWS::NoValue]
  Lb:
    Type: AWS::ElasticLoadBalancingV2::LoadBalancer
    Properties: { SecurityGroups: [!Ref LbSg] }
"#;

rule!(
    lb_only_cloudfront,
    checks::load_balancer_admits_only_cloudfront,
    super::LB_OPEN_TO_THE_WORLD_WITH_CLOUDFRONT_ON,
    "LbSg (load balancer) must admit only the CloudFront prefix list"
);

rule!(
    open_when_cloudfront_on,
    checks::no_open_ingress_except_load_balancer,
    super::LB_OPEN_TO_THE_WORLD_WITH_CLOUDFRONT_ON,
    "only when CloudFront is off"
);

rule!(
    cloudfront_https,
    checks::cloudfront_is_https_uncached_and_signed,
    r#"
Resources:
  Cdn:
    Type: AWS::CloudFront::Distribution
    Properties:
      DistributionConfig:
        Origins: [{ Id: alb, DomainName: x }]
        DefaultCacheBehavior: { ViewerProtocolPolicy: allow-all, CachePolicyId: 4135ea2d-6df8-44a3-9df3-4b5a84be39ad, OriginRequestPolicyId: 216adef6-5c7f-47e4-b989-5492eafa07d3 }
"#,
    "Cdn must serve viewers over HTTPS"
);

rule!(
    cloudfront_secret_header,
    checks::cloudfront_is_https_uncached_and_signed,
    r#"
Resources:
  Cdn:
    Type: AWS::CloudFront::Distribution
    Properties:
      DistributionConfig:
        Origins: [{ Id: alb, DomainName: x }]
        DefaultCacheBehavior: { ViewerProtocolPolicy: redirect-to-https, CachePolicyId: 4135ea2d-6df8-44a3-9df3-4b5a84be39ad, OriginRequestPolicyId: 216adef6-5c7f-47e4-b989-5492eafa07d3 }
"#,
    "must add the X-Origin-Verify secret header"
);

rule!(
    listener_secret,
    checks::listener_requires_the_origin_secret,
    r#"
Resources:
  Cdn:
    Type: AWS::CloudFront::Distribution
    Properties: {}
  Listener:
    Type: AWS::ElasticLoadBalancingV2::Listener
    Properties:
      DefaultActions: [{ Type: forward, TargetGroupArn: !Ref Tg }]
"#,
    "Listener must answer 403 by default"
);

rule!(
    trust_scoped,
    checks::task_trust_policies_are_scoped,
    r#"
Resources:
  Role:
    Type: AWS::IAM::Role
    Properties:
      AssumeRolePolicyDocument:
        Statement: [{ Effect: Allow, Principal: { Service: ecs-tasks.amazonaws.com }, Action: sts:AssumeRole }]
"#,
    "Role trusts ecs-tasks.amazonaws.com without an aws:SourceAccount condition"
);

rule!(
    task_role,
    checks::task_role_is_separate,
    r#"
Resources:
  Task:
    Type: AWS::ECS::TaskDefinition
    Properties: { ExecutionRoleArn: !GetAtt Role.Arn, TaskRoleArn: !GetAtt Role.Arn }
"#,
    "Task needs its own TaskRoleArn"
);

rule!(
    insights,
    checks::container_insights_on,
    r#"
Resources:
  Cluster:
    Type: AWS::ECS::Cluster
    Properties: { ClusterSettings: [{ Name: containerInsights, Value: disabled }] }
"#,
    "Cluster must enable Container Insights"
);

rule!(
    rollouts,
    checks::fast_safe_rollouts,
    r#"
Resources:
  Tg:
    Type: AWS::ElasticLoadBalancingV2::TargetGroup
    Properties: { HealthCheckIntervalSeconds: 30, HealthyThresholdCount: 5 }
"#,
    "allow no rollout under 60 s"
);

rule!(
    graceful_containers,
    checks::containers_check_health_and_stop_gracefully,
    r#"
Resources:
  Task:
    Type: AWS::ECS::TaskDefinition
    Properties:
      ContainerDefinitions: [{ Name: app, HealthCheck: { Command: [CMD, /app, --health-check] } }]
"#,
    "container app must set StopTimeout"
);

rule!(
    scaling,
    checks::services_scale,
    r#"
Resources:
  Service:
    Type: AWS::ECS::Service
    Properties: {}
"#,
    "Service has no Application Auto Scaling target"
);

/// A scaling service whose template sets DesiredCount unconditionally: every deploy would undo a
/// scale-out. Left out, or behind a condition with an `AWS::NoValue` branch, it passes.
#[test]
fn deploys_leave_the_task_count_to_auto_scaling() {
    let with = |desired: &str| {
        snippet(&format!(
            r#"
Resources:
  Service:
    Type: AWS::ECS::Service
    Properties: {{ {desired} }}
  Target:
    Type: AWS::ApplicationAutoScaling::ScalableTarget
    Properties: {{ ResourceId: !Sub "service/${{Cluster}}/${{Service.Name}}" }}
  Policy:
    Type: AWS::ApplicationAutoScaling::ScalingPolicy
    Properties: {{ PolicyType: TargetTrackingScaling, ScalingTargetId: !Ref Target }}
"#
        ))
    };
    let resets = "sets DesiredCount on every deploy";
    for always in [
        "DesiredCount: 1",
        "DesiredCount: !Ref Count",
        "DesiredCount: !If [Pin, 2, 1]",
    ] {
        let found = checks::services_scale(&with(always));
        assert!(
            found.iter().any(|v| v.contains(resets)),
            "{always}: {found:#?}"
        );
    }
    for left_to_scaling in ["", "DesiredCount: !If [Pin, !Ref Count, !Ref AWS::NoValue]"] {
        let found = checks::services_scale(&with(left_to_scaling));
        assert!(found.is_empty(), "{left_to_scaling}: {found:#?}");
    }
}

/// The load balancer is named `${ProjectName}-${EnvName}`, and AWS allows such a name 32
/// characters, letters, digits and hyphens, no hyphen at either end. The name patterns (the same
/// in every template) must admit nothing longer, or a deploy fails at the load balancer.
#[test]
fn the_longest_accepted_names_fit_the_load_balancer_name() {
    let pattern = |param: &str| {
        let found: std::collections::BTreeSet<String> = all()
            .iter()
            .filter_map(|t| {
                t.root["Parameters"][param]["AllowedPattern"]
                    .as_str()
                    .map(str::to_owned)
            })
            .collect();
        assert_eq!(
            found.len(),
            1,
            "{param} differs between templates: {found:?}"
        );
        regex_lite::Regex::new(found.first().unwrap()).unwrap()
    };
    let longest = |param: &str| {
        let re = pattern(param);
        assert!(
            !re.is_match("a-") && !re.is_match("-a"),
            "{param} admits a hyphen at an end"
        );
        (1..=64)
            .map(|n| "a".repeat(n))
            .filter(|name| re.is_match(name))
            .last()
            .unwrap_or_else(|| panic!("{param} admits no name"))
    };
    let ecs = Template::load("ecs");
    let name = ecs.root["Resources"]["LoadBalancer"]["Properties"]["Name"]["Fn::Sub"]
        .as_str()
        .expect("the load balancer is named with !Sub");
    let longest_name = name
        .replace("${ProjectName}", &longest("ProjectName"))
        .replace("${EnvName}", &longest("EnvName"));
    println!(
        "longest load balancer name: {longest_name} ({} characters)",
        longest_name.len()
    );
    assert!(!longest_name.contains("${"), "{name}");
    assert!(
        longest_name.len() <= 32,
        "{longest_name} has {} characters",
        longest_name.len()
    );
}

/// Every `!Cidr [!Ref VpcCidr, count, bits]` must fit in every VPC range the parameter admits:
/// `count` subnets of `2^bits` addresses in a `/N` range need `count * 2^bits <= 2^(32 - N)`.
#[test]
fn every_accepted_vpc_range_holds_its_subnets() {
    let vpc = Template::load("vpc");
    let pattern = vpc.root["Parameters"]["VpcCidr"]["AllowedPattern"]
        .as_str()
        .expect("VpcCidr has an AllowedPattern");
    let re = regex_lite::Regex::new(pattern).unwrap();
    let accepted: Vec<u32> = (8..=28)
        .filter(|n| re.is_match(&format!("10.0.0.0/{n}")))
        .collect();
    assert!(!accepted.is_empty(), "{pattern} admits no range");
    let mut splits = Vec::new();
    tests::template::walk(&vpc.root, &mut |v| {
        if let Some(("Fn::Cidr", serde_yaml::Value::Sequence(args))) = tests::template::intrinsic(v)
        {
            if let [_, count, bits] = args.as_slice() {
                splits.push((count.as_u64().unwrap(), bits.as_u64().unwrap()));
            }
        }
    });
    assert!(!splits.is_empty(), "no !Cidr in the vpc template");
    for (count, bits) in splits {
        for n in &accepted {
            assert!(
                count << bits <= 1u64 << (32 - n),
                "VpcCidr admits /{n}, which cannot hold {count} subnets of /{}",
                32 - bits
            );
        }
    }
}

#[test]
fn rollout_floor_is_a_minute_or_less() {
    let ecs = Template::load("ecs");
    for (id, tg) in ecs.of_type("AWS::ElasticLoadBalancingV2::TargetGroup") {
        let floor = checks::rollout_floor_seconds(tg).expect("health check settings present");
        println!("rollout floor for {id}: {floor} s (healthy threshold x interval + deregistration delay)");
        assert!(floor <= 60, "{id}: {floor} s");
    }
}

/// xtask's pre-flight reads the port from the template; the image must expose the same one.
#[test]
fn the_container_port_is_the_same_in_dockerfile_and_template() {
    let ecs = Template::load("ecs");
    let template_port = ecs.root["Mappings"]["App"]["Container"]["Port"]
        .as_u64()
        .expect("App.Container.Port");
    let dockerfile = std::fs::read_to_string(root().join("app/Dockerfile")).unwrap();
    let line = |prefix: &str| -> u64 {
        dockerfile
            .lines()
            .find_map(|l| l.strip_prefix(prefix))
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("{prefix}<port> in app/Dockerfile"))
    };
    assert_eq!(
        (line("EXPOSE "), line("ENV PORT=")),
        (template_port, template_port),
        "app/Dockerfile's EXPOSE and PORT must be infra/ecs.yaml's App.Container.Port"
    );
}

#[test]
fn a_lifecycle_policy_that_keeps_every_deployed_image_is_caught() {
    let forever = snippet(&repository_with_lifecycle(
        r#"'{"rules": [
          {"rulePriority": 1, "selection": {"tagStatus": "tagged", "tagPrefixList": ["deployed-"], "countType": "imageCountMoreThan", "countNumber": 9999}, "action": {"type": "expire"}},
          {"rulePriority": 2, "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 3}, "action": {"type": "expire"}}]}'"#,
    ));
    let found = checks::deployed_images_never_expire(&forever);
    assert_caught(&found, "keeps old images forever");
}

#[test]
fn lifecycle_rules_of_lower_priority_cannot_expire_what_a_tag_rule_matched() {
    // By the documented semantics: keep 1 image tagged prod*, then keep 1 image of any kind.
    let policy: serde_json::Value = serde_json::from_str(
        r#"{"rules": [
          {"rulePriority": 1, "selection": {"tagStatus": "tagged", "tagPrefixList": ["prod"], "countType": "imageCountMoreThan", "countNumber": 1}},
          {"rulePriority": 2, "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 1}}]}"#,
    )
    .unwrap();
    let tags = |t: &[&str]| t.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    // Oldest first: prod-a, prod-b, beta-a, beta-b, untagged.
    let images = [
        tags(&["prod-a"]),
        tags(&["prod-b"]),
        tags(&["beta-a"]),
        tags(&["beta-b"]),
        tags(&[]),
    ];
    let gone = checks::lifecycle_expires(&policy, &images);
    // prod-a: rule 1 (second prod image). prod-b: kept by rule 1, out of rule 2's reach.
    // Rule 2 keeps the newest image (untagged) and expires both betas.
    assert_eq!(gone, [0, 2, 3].into_iter().collect());
}
