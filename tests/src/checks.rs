//! Security and reliability rules for the templates. Each check returns the violations it found,
//! each naming the template, the resource and the rule it breaks; an empty list means it holds.

use std::collections::BTreeSet;

use serde_yaml::Value;

use crate::template::{intrinsic, name_pattern, prop, walk, Template};

pub type Violations = Vec<String>;

/// A check over one template.
pub type Check = fn(&Template) -> Violations;

/// Every single-template rule, by name.
pub const CHECKS: &[(&str, Check)] = &[
    (
        "interface endpoints have private DNS",
        interface_endpoints_have_private_dns,
    ),
    (
        "endpoint security groups admit only the task SG on 443",
        endpoint_sg_admits_only_tasks_on_443,
    ),
    (
        "no ingress from anywhere except the load balancer",
        no_open_ingress_except_load_balancer,
    ),
    ("every log group has retention", log_groups_have_retention),
    (
        "log groups survive their stack (destroy --delete-logs deletes them)",
        log_groups_survive_their_stack,
    ),
    (
        "target groups use ip targets registered by the service",
        target_groups_use_ip_targets,
    ),
    (
        "services attach through LoadBalancers after the load balancer forwards to them",
        services_attach_after_listener,
    ),
    (
        "services wait for the interface endpoints their tasks need",
        services_wait_for_endpoints,
    ),
    (
        "nothing depends on a resource that may not exist",
        no_dependency_on_a_conditional_resource,
    ),
    (
        "security groups let the load balancer reach the tasks, and the tasks the endpoints",
        security_groups_let_the_service_work,
    ),
    ("tasks get no public IP", tasks_have_no_public_ip),
    (
        "deployment circuit breaker with rollback",
        circuit_breaker_with_rollback,
    ),
    (
        "execution role has the ECS task execution policy",
        execution_role_has_managed_policy,
    ),
    (
        "containers run as non-root on a read-only filesystem",
        containers_non_root_read_only,
    ),
    (
        "repositories are immutable, scanned, expiring and retained",
        repositories_are_safe,
    ),
    (
        "the lifecycle policy never expires the deployed image",
        deployed_images_never_expire,
    ),
    (
        "no hard-coded account ids, regions or availability zones",
        nothing_hard_coded,
    ),
];

fn str_of(v: Option<&Value>) -> Option<&str> {
    v.and_then(Value::as_str)
}

fn is_true(v: Option<&Value>) -> bool {
    matches!(v, Some(Value::Bool(true))) || str_of(v) == Some("true")
}

/// The logical id a value refers to with `Ref` or `Fn::GetAtt`.
fn target_of(v: &Value) -> Option<&str> {
    match intrinsic(v)? {
        ("Ref", Value::String(id)) => Some(id),
        ("Fn::GetAtt", Value::Sequence(parts)) => parts.first()?.as_str(),
        _ => None,
    }
}

fn list(v: Option<&Value>) -> Vec<&Value> {
    v.and_then(Value::as_sequence)
        .map(|s| s.iter().collect())
        .unwrap_or_default()
}

pub fn interface_endpoints_have_private_dns(t: &Template) -> Violations {
    t.of_type("AWS::EC2::VPCEndpoint")
        .filter(|(_, r)| str_of(prop(r, &["VpcEndpointType"])) == Some("Interface"))
        .filter(|(_, r)| !is_true(prop(r, &["PrivateDnsEnabled"])))
        .map(|(id, _)| format!("{}: {id} is an interface endpoint without PrivateDnsEnabled: true (tasks would resolve the public endpoint and need a NAT)", t.name))
        .collect()
}

/// Security groups attached to interface endpoints.
fn endpoint_security_groups(t: &Template) -> BTreeSet<String> {
    t.of_type("AWS::EC2::VPCEndpoint")
        .flat_map(|(_, r)| list(prop(r, &["SecurityGroupIds"])))
        .filter_map(|v| target_of(v).map(str::to_owned))
        .collect()
}

pub fn endpoint_sg_admits_only_tasks_on_443(t: &Template) -> Violations {
    let mut out = Vec::new();
    for sg in endpoint_security_groups(t) {
        let Some(r) = t.resource(&sg) else {
            continue;
        };
        let rules = list(prop(r, &["SecurityGroupIngress"]));
        if rules.is_empty() {
            out.push(format!(
                "{}: {sg} guards VPC endpoints but admits nothing (tasks cannot reach ECR or Logs)",
                t.name
            ));
        }
        for rule in rules {
            let port_443 = [rule.get("FromPort"), rule.get("ToPort")]
                .iter()
                .all(|p| p.and_then(Value::as_i64) == Some(443) || str_of(*p) == Some("443"));
            let from_sg = rule.get("SourceSecurityGroupId").and_then(target_of);
            let from_task_sg = from_sg.is_some_and(|s| s.contains("Task"));
            if !(port_443 && from_task_sg && rule.get("CidrIp").is_none()) {
                out.push(format!(
                    "{}: {sg} (VPC endpoints) must admit only tcp 443 from the task security group",
                    t.name
                ));
            }
        }
    }
    out
}

/// Security groups attached to load balancers.
fn load_balancer_security_groups(t: &Template) -> BTreeSet<String> {
    t.of_type("AWS::ElasticLoadBalancingV2::LoadBalancer")
        .flat_map(|(_, r)| list(prop(r, &["SecurityGroups"])))
        .filter_map(|v| target_of(v).map(str::to_owned))
        .collect()
}

/// A value with its `Fn::If` alternatives spelled out: each branch with the condition that selects
/// it (`("UseCloudFront", false)` = the else branch). `AWS::NoValue` branches are dropped.
pub fn branches(value: &Value) -> Vec<(Option<(&str, bool)>, &Value)> {
    if let Some(("Fn::If", Value::Sequence(args))) = intrinsic(value) {
        if let [Value::String(cond), yes, no] = args.as_slice() {
            return [(yes, true), (no, false)]
                .into_iter()
                .filter(|(v, _)| !matches!(intrinsic(v), Some(("Ref", Value::String(r))) if r == "AWS::NoValue"))
                .map(|(v, taken)| (Some((cond.as_str(), taken)), v))
                .collect();
        }
    }
    vec![(None, value)]
}

/// Ingress rules of a security group resource, with the condition that selects each.
/// A security group's rules under `key`, each branch of an `!If` apart.
fn rules<'a>(sg: &'a Value, key: &str) -> Vec<(Option<(&'a str, bool)>, &'a Value)> {
    list(prop(sg, &[key]))
        .into_iter()
        .flat_map(branches)
        .collect()
}

fn ingress_rules(sg: &Value) -> Vec<(Option<(&str, bool)>, &Value)> {
    rules(sg, "SecurityGroupIngress")
}

/// A security group's egress rules; `None` when it lists none (all traffic may leave).
fn egress_rules(sg: &Value) -> Option<Vec<&Value>> {
    prop(sg, &["SecurityGroupEgress"])?;
    let all = rules(sg, "SecurityGroupEgress");
    Some(all.into_iter().map(|(_, rule)| rule).collect())
}

fn is_open(rule: &Value) -> bool {
    str_of(rule.get("CidrIp")) == Some("0.0.0.0/0") || str_of(rule.get("CidrIpv6")) == Some("::/0")
}

/// No ingress from anywhere, except the load balancer's when CloudFront is off.
pub fn no_open_ingress_except_load_balancer(t: &Template) -> Violations {
    let lbs = load_balancer_security_groups(t);
    let mut out = Vec::new();
    for (id, r) in t.of_type("AWS::EC2::SecurityGroup") {
        for (when, rule) in ingress_rules(r) {
            let cloudfront_off = when == Some(("UseCloudFront", false));
            if is_open(rule) && !(lbs.contains(id) && cloudfront_off) {
                out.push(format!(
                    "{}: {id} admits traffic from anywhere (0.0.0.0/0); only the load balancer may, and only when CloudFront is off",
                    t.name
                ));
            }
        }
    }
    for (id, r) in t.of_type("AWS::EC2::SecurityGroupIngress") {
        if is_open(r.get("Properties").unwrap_or(&Value::Null)) {
            out.push(format!(
                "{}: {id} opens a security group to anywhere (0.0.0.0/0)",
                t.name
            ));
        }
    }
    out
}

/// With CloudFront on, the load balancer admits only CloudFront's origin-facing prefix list.
pub fn load_balancer_admits_only_cloudfront(t: &Template) -> Violations {
    let mut out = Vec::new();
    for sg in load_balancer_security_groups(t) {
        let Some(r) = t.resource(&sg) else {
            continue;
        };
        let rules = ingress_rules(r);
        let on: Vec<_> = rules
            .iter()
            .filter(|(w, _)| *w != Some(("UseCloudFront", false)))
            .collect();
        let only_prefix_list = !on.is_empty()
            && on
                .iter()
                .all(|(_, rule)| rule.get("SourcePrefixListId").is_some());
        if !only_prefix_list {
            out.push(format!(
                "{}: {sg} (load balancer) must admit only the CloudFront prefix list when CloudFront is on",
                t.name
            ));
        }
    }
    out
}

pub fn log_groups_have_retention(t: &Template) -> Violations {
    t.of_type("AWS::Logs::LogGroup")
        .filter(|(_, r)| prop(r, &["RetentionInDays"]).is_none())
        .map(|(id, _)| {
            format!(
                "{}: {id} has no RetentionInDays (logs would be kept, and billed, forever)",
                t.name
            )
        })
        .collect()
}

pub fn target_groups_use_ip_targets(t: &Template) -> Violations {
    let mut out = Vec::new();
    for (id, r) in t.of_type("AWS::ElasticLoadBalancingV2::TargetGroup") {
        if str_of(prop(r, &["TargetType"])) != Some("ip") {
            out.push(format!(
                "{}: {id} needs TargetType: ip (Fargate tasks in awsvpc mode register by IP)",
                t.name
            ));
        }
        if prop(r, &["Targets"]).is_some() {
            out.push(format!(
                "{}: {id} lists Targets; the ECS service registers its tasks itself",
                t.name
            ));
        }
        if prop(r, &["HealthCheckPath"]).is_none() {
            out.push(format!(
                "{}: {id} has no HealthCheckPath (the default `/` may not be a health route)",
                t.name
            ));
        }
    }
    out
}

/// Depending on the listener is not enough: ECS refuses a target group that nothing on the load
/// balancer forwards to yet, and with CloudFront on the listener's default action is a fixed 403.
/// The service must depend on a listener or rule that, whatever the conditions, exists and forwards
/// to its target group.
pub fn services_attach_after_listener(t: &Template) -> Violations {
    let mut out = Vec::new();
    for (id, r) in t.of_type("AWS::ECS::Service") {
        let depends = depends_on(r);
        let mut attached = false;
        for lb in list(prop(r, &["LoadBalancers"])) {
            if lb.get("ContainerName").is_none() || lb.get("ContainerPort").is_none() {
                continue;
            }
            let Some(tg) = lb.get("TargetGroupArn").and_then(target_of) else {
                continue;
            };
            attached = true;
            if !depends.iter().any(|d| always_forwards(t, d, tg)) {
                out.push(format!(
                    "{}: {id} must have DependsOn: <a listener or listener rule that always forwards to {tg}> \
                     (ECS refuses a target group that the load balancer does not forward to yet)",
                    t.name
                ));
            }
        }
        if !attached {
            out.push(format!("{}: {id} must attach to the target group through LoadBalancers (ContainerName, ContainerPort, TargetGroupArn)", t.name));
        }
    }
    out
}

/// A resource's `DependsOn`, as a list.
fn depends_on(resource: &Value) -> Vec<&str> {
    match resource.get("DependsOn") {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Sequence(s)) => s.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    }
}

/// CloudFormation silently skips a resource whose `DependsOn` names a resource its condition
/// leaves out: a service that depends on a CloudFront-only rule would vanish with CloudFront off.
pub fn no_dependency_on_a_conditional_resource(t: &Template) -> Violations {
    let condition = |id: &str| str_of(t.resource(id)?.get("Condition"));
    let mut out = Vec::new();
    for (id, r) in t.resources() {
        let own = str_of(r.get("Condition"));
        for dep in depends_on(r) {
            if let Some(theirs) = condition(dep).filter(|c| Some(*c) != own) {
                out.push(format!(
                    "{}: {id} depends on {dep}, which exists only when {theirs} holds: without it \
                     CloudFormation would not create {id} either",
                    t.name
                ));
            }
        }
    }
    out
}

/// Tasks in private subnets reach ECR and CloudWatch Logs only through the interface endpoints:
/// a service created before them starts tasks that cannot pull their image, and on a first
/// create three such failures trip the circuit breaker and roll the whole stack back.
pub fn services_wait_for_endpoints(t: &Template) -> Violations {
    let endpoints: Vec<&str> = t
        .of_type("AWS::EC2::VPCEndpoint")
        .filter(|(_, r)| str_of(prop(r, &["VpcEndpointType"])) == Some("Interface"))
        .map(|(id, _)| id)
        .collect();
    let mut out = Vec::new();
    for (id, r) in t.of_type("AWS::ECS::Service") {
        let depends = depends_on(r);
        for endpoint in endpoints.iter().filter(|e| !depends.contains(e)) {
            out.push(format!(
                "{}: {id} must have DependsOn: {endpoint} (its tasks pull images and ship logs through \
                 it; started before it exists, they fail and can trip the circuit breaker)",
                t.name
            ));
        }
    }
    out
}

/// Whether resource `id` is a listener or listener rule without a `Condition` with an action that
/// forwards to `target_group` in every branch.
fn always_forwards(t: &Template, id: &str, target_group: &str) -> bool {
    let Some(r) = t.resource(id) else {
        return false;
    };
    let actions = match str_of(r.get("Type")) {
        Some("AWS::ElasticLoadBalancingV2::Listener") => prop(r, &["DefaultActions"]),
        Some("AWS::ElasticLoadBalancingV2::ListenerRule") => prop(r, &["Actions"]),
        _ => None,
    };
    r.get("Condition").is_none()
        && list(actions).into_iter().any(|action| {
            branches(action).iter().all(|(_, a)| {
                str_of(a.get("Type")) == Some("forward")
                    && a.get("TargetGroupArn").and_then(target_of) == Some(target_group)
            })
        })
}

/// The traffic a service cannot do without gets through: the load balancer's group may send to
/// the port the tasks' group admits it on (health checks included), and the tasks' group may
/// send HTTPS to the VPC endpoints. Listing any egress rule drops the default allow-all, so a
/// tightened group that forgets one starves the service without any error at deploy time.
pub fn security_groups_let_the_service_work(t: &Template) -> Violations {
    let all_traffic = |rule: &Value| {
        matches!(rule.get("IpProtocol"), Some(Value::String(p)) if p == "-1")
            || matches!(rule.get("IpProtocol"), Some(Value::Number(n)) if n.as_i64() == Some(-1))
    };
    let load_balancers = load_balancer_security_groups(t);
    let mut out = Vec::new();
    for (service, r) in t.of_type("AWS::ECS::Service") {
        let task_groups = list(prop(
            r,
            &[
                "NetworkConfiguration",
                "AwsvpcConfiguration",
                "SecurityGroups",
            ],
        ));
        for task_sg in task_groups.into_iter().filter_map(target_of) {
            let Some(task) = t.resource(task_sg) else {
                continue;
            };
            for (_, rule) in ingress_rules(task) {
                let Some(lb) = rule.get("SourceSecurityGroupId").and_then(target_of) else {
                    continue;
                };
                let (Some(port), Some(lb_group)) = (rule.get("FromPort"), t.resource(lb)) else {
                    continue;
                };
                let reaches = egress_rules(lb_group).is_none_or(|rules| {
                    rules
                        .iter()
                        .any(|e| all_traffic(e) || e.get("FromPort") == Some(port))
                });
                if load_balancers.contains(lb) && !reaches {
                    out.push(format!(
                        "{}: {lb} (load balancer) has no egress to the port {task_sg} admits it on, so \
                         health checks and requests never reach {service}'s tasks",
                        t.name
                    ));
                }
            }
            let https = egress_rules(task).is_none_or(|rules| {
                rules.iter().any(|e| {
                    let port = |k| e.get(k).and_then(Value::as_i64);
                    all_traffic(e)
                        || matches!((port("FromPort"), port("ToPort")), (Some(a), Some(b)) if a <= 443 && 443 <= b)
                })
            });
            if !https {
                out.push(format!(
                    "{}: {task_sg} (tasks of {service}) has no egress on 443, so the tasks cannot reach \
                     the VPC endpoints to pull their image or ship logs",
                    t.name
                ));
            }
        }
    }
    out
}

pub fn tasks_have_no_public_ip(t: &Template) -> Violations {
    t.of_type("AWS::ECS::Service")
        .filter(|(_, r)| {
            str_of(prop(
                r,
                &[
                    "NetworkConfiguration",
                    "AwsvpcConfiguration",
                    "AssignPublicIp",
                ],
            )) != Some("DISABLED")
        })
        .map(|(id, _)| {
            format!(
                "{}: {id} must set AssignPublicIp: DISABLED (tasks live in private subnets)",
                t.name
            )
        })
        .collect()
}

pub fn circuit_breaker_with_rollback(t: &Template) -> Violations {
    t.of_type("AWS::ECS::Service")
        .filter(|(_, r)| {
            let cb = prop(r, &["DeploymentConfiguration", "DeploymentCircuitBreaker"]);
            !(is_true(cb.and_then(|c| c.get("Enable"))) && is_true(cb.and_then(|c| c.get("Rollback"))))
        })
        .map(|(id, _)| format!("{}: {id} needs DeploymentCircuitBreaker {{Enable: true, Rollback: true}} (a bad image would otherwise retry for hours)", t.name))
        .collect()
}

pub fn execution_role_has_managed_policy(t: &Template) -> Violations {
    let mut out = Vec::new();
    for (id, r) in t.of_type("AWS::ECS::TaskDefinition") {
        let Some(role) = prop(r, &["ExecutionRoleArn"]).and_then(target_of) else {
            out.push(format!(
                "{}: {id} has no ExecutionRoleArn (ECS could not pull the image or write logs)",
                t.name
            ));
            continue;
        };
        let has_policy = t
            .resources()
            .find(|(rid, _)| *rid == role)
            .is_some_and(|(_, role)| {
                let mut found = false;
                walk(
                    prop(role, &["ManagedPolicyArns"]).unwrap_or(&Value::Null),
                    &mut |v| {
                        found |= v.as_str().is_some_and(|s| {
                            s.ends_with(":policy/service-role/AmazonECSTaskExecutionRolePolicy")
                        });
                    },
                );
                found
            });
        if !has_policy {
            out.push(format!("{}: {role} (execution role of {id}) lacks the managed policy AmazonECSTaskExecutionRolePolicy", t.name));
        }
    }
    out
}

pub fn containers_non_root_read_only(t: &Template) -> Violations {
    let mut out = Vec::new();
    for (id, r) in t.of_type("AWS::ECS::TaskDefinition") {
        for c in list(prop(r, &["ContainerDefinitions"])) {
            let name = str_of(c.get("Name")).unwrap_or("?");
            let user = str_of(c.get("User")).unwrap_or("");
            if user.is_empty() || user == "root" || user == "0" || user.starts_with("0:") {
                out.push(format!(
                    "{}: {id} container {name} must set a non-root User",
                    t.name
                ));
            }
            if !is_true(c.get("ReadonlyRootFilesystem")) {
                out.push(format!(
                    "{}: {id} container {name} must set ReadonlyRootFilesystem: true",
                    t.name
                ));
            }
        }
    }
    out
}

pub fn repositories_are_safe(t: &Template) -> Violations {
    let mut out = Vec::new();
    for (id, r) in t.of_type("AWS::ECR::Repository") {
        if str_of(prop(r, &["ImageTagMutability"])) != Some("IMMUTABLE") {
            out.push(format!("{}: {id} must set ImageTagMutability: IMMUTABLE (a tag must always mean one image)", t.name));
        }
        if !is_true(prop(r, &["ImageScanningConfiguration", "ScanOnPush"])) {
            out.push(format!("{}: {id} must scan on push", t.name));
        }
        if prop(r, &["LifecyclePolicy", "LifecyclePolicyText"]).is_none() {
            out.push(format!(
                "{}: {id} needs a lifecycle policy (old images pile up and cost money)",
                t.name
            ));
        }
        out.extend(must_be_retained(t, id, r, "the images"));
    }
    out
}

/// `cargo xtask deploy` tags each image it deploys `deployed-<time>-<digest>` (xtask's
/// `registry::DEPLOYED_TAG_PREFIX`). However many images are pushed afterwards without a deploy
/// (`push-image` in CI, deploys that failed and rolled back), the lifecycle policy must keep the
/// last deployed one, the image the service runs, or the next task it starts cannot pull it.
pub fn deployed_images_never_expire(t: &Template) -> Violations {
    let mut out = Vec::new();
    for (id, r) in t.of_type("AWS::ECR::Repository") {
        let Some(text) =
            prop(r, &["LifecyclePolicy", "LifecyclePolicyText"]).and_then(name_pattern)
        else {
            continue;
        };
        let Ok(policy) = serde_json::from_str::<serde_json::Value>(&with_parameters(&text, "3"))
        else {
            out.push(format!("{}: {id}'s lifecycle policy is not JSON", t.name));
            continue;
        };
        // One image deployed, then 30 pushes without a deploy.
        let mut images = vec![vec![
            "c0".to_owned(),
            "deployed-20261125T230115Z-0".to_owned(),
        ]];
        images.extend((1..=30).map(|i| vec![format!("c{i}")]));
        let gone = lifecycle_expires(&policy, &images);
        if gone.contains(&0) {
            out.push(format!(
                "{}: {id}'s lifecycle policy expires the running image once enough images are pushed \
                 without a deploy: keep images tagged deployed-* in a rule of higher priority",
                t.name
            ));
        }
        // Ten deploys, then the same 30 pushes: old images of both kinds must still go.
        let mut images: Vec<Vec<String>> = (0..10)
            .map(|i| vec![format!("c{i}"), format!("deployed-2026112{i}T000000Z-{i}")])
            .collect();
        images.extend((10..40).map(|i| vec![format!("c{i}")]));
        let gone = lifecycle_expires(&policy, &images);
        if !gone.contains(&0) || !gone.contains(&10) {
            out.push(format!(
                "{}: {id}'s lifecycle policy keeps old images forever (deployed or not): bound both",
                t.name
            ));
        }
    }
    out
}

/// `${Name}` placeholders of a `!Sub` string replaced by `value`.
fn with_parameters(text: &str, value: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        match rest[start..].find('}') {
            Some(end) => {
                out.push_str(value);
                rest = &rest[start + end + 1..];
            }
            None => {
                rest = &rest[start..];
                break;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The images (by index, oldest push first, each with its tags) that an ECR lifecycle policy of
/// `imageCountMoreThan` rules expires, by AWS's rules: rules apply in priority order, newest
/// images are kept first, and an image a rule's tag filter matched cannot be expired by a rule of
/// lower priority.
pub fn lifecycle_expires(policy: &serde_json::Value, images: &[Vec<String>]) -> BTreeSet<usize> {
    let mut rules: Vec<&serde_json::Value> =
        policy["rules"].as_array().into_iter().flatten().collect();
    rules.sort_by_key(|r| r["rulePriority"].as_i64());
    let mut expired = BTreeSet::new();
    let mut held = BTreeSet::new();
    for rule in rules {
        let selection = &rule["selection"];
        let prefixes: Vec<&str> = selection["tagPrefixList"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p.as_str())
            .collect();
        let selects = |tags: &Vec<String>| match selection["tagStatus"].as_str() {
            Some("tagged") => {
                !tags.is_empty()
                    && prefixes
                        .iter()
                        .all(|p| tags.iter().any(|t| t.starts_with(p)))
            }
            Some("untagged") => tags.is_empty(),
            _ => true,
        };
        let newest_first: Vec<usize> = (0..images.len())
            .rev()
            .filter(|i| selects(&images[*i]))
            .collect();
        if selection["countType"] == "imageCountMoreThan" {
            let keep = selection["countNumber"].as_u64().unwrap_or(u64::MAX) as usize;
            expired.extend(
                newest_first
                    .iter()
                    .skip(keep)
                    .filter(|i| !held.contains(*i)),
            );
        }
        held.extend(newest_first);
    }
    expired
}

/// Deleting or replacing the resource through its stack must leave it (and its data) in place.
fn must_be_retained(t: &Template, id: &str, r: &Value, data: &str) -> Violations {
    ["DeletionPolicy", "UpdateReplacePolicy"]
        .into_iter()
        .filter(|policy| str_of(r.get(*policy)) != Some("Retain"))
        .map(|policy| {
            format!(
                "{}: {id} must set {policy}: Retain (deleting the stack must not delete {data})",
                t.name
            )
        })
        .collect()
}

pub fn log_groups_survive_their_stack(t: &Template) -> Violations {
    t.of_type("AWS::Logs::LogGroup")
        .flat_map(|(id, r)| must_be_retained(t, id, r, "the logs"))
        .collect()
}

/// Managed policy ids (the same in every account and region).
pub const CACHING_DISABLED: &str = "4135ea2d-6df8-44a3-9df3-4b5a84be39ad";
pub const ALL_VIEWER: &str = "216adef6-5c7f-47e4-b989-5492eafa07d3";
pub const ORIGIN_HEADER: &str = "X-Origin-Verify";

pub fn cloudfront_is_https_uncached_and_signed(t: &Template) -> Violations {
    let mut out = Vec::new();
    for (id, r) in t.of_type("AWS::CloudFront::Distribution") {
        let b = prop(r, &["DistributionConfig", "DefaultCacheBehavior"]);
        let field = |k: &str| str_of(b.and_then(|b| b.get(k)));
        if !matches!(
            field("ViewerProtocolPolicy"),
            Some("redirect-to-https" | "https-only")
        ) {
            out.push(format!(
                "{}: {id} must serve viewers over HTTPS (ViewerProtocolPolicy: redirect-to-https)",
                t.name
            ));
        }
        if field("CachePolicyId") != Some(CACHING_DISABLED) {
            out.push(format!(
                "{}: {id} must use the managed CachingDisabled policy (the app is dynamic)",
                t.name
            ));
        }
        if field("OriginRequestPolicyId") != Some(ALL_VIEWER) {
            out.push(format!("{}: {id} must forward all viewer headers and query strings (managed AllViewer policy)", t.name));
        }
        let signed = list(prop(r, &["DistributionConfig", "Origins"]))
            .iter()
            .all(|o| {
                list(o.get("OriginCustomHeaders"))
                    .iter()
                    .any(|h| str_of(h.get("HeaderName")) == Some(ORIGIN_HEADER))
            });
        if !signed {
            out.push(format!(
                "{}: {id} must add the {ORIGIN_HEADER} secret header to every origin request",
                t.name
            ));
        }
    }
    out
}

/// With CloudFront on, the listener answers 403 unless a rule sees the secret header.
pub fn listener_requires_the_origin_secret(t: &Template) -> Violations {
    if t.of_type("AWS::CloudFront::Distribution").next().is_none() {
        return vec![];
    }
    let mut out = Vec::new();
    for (id, r) in t.of_type("AWS::ElasticLoadBalancingV2::Listener") {
        let defaults: Vec<_> = list(prop(r, &["DefaultActions"]))
            .into_iter()
            .flat_map(branches)
            .collect();
        let refuses = defaults.iter().any(|(w, a)| {
            *w == Some(("UseCloudFront", true))
                && str_of(a.get("Type")) == Some("fixed-response")
                && str_of(
                    a.get("FixedResponseConfig")
                        .and_then(|c| c.get("StatusCode")),
                ) == Some("403")
        });
        if !refuses {
            out.push(format!(
                "{}: {id} must answer 403 by default when CloudFront is on",
                t.name
            ));
        }
        let checks_header =
            t.of_type("AWS::ElasticLoadBalancingV2::ListenerRule")
                .any(|(_, rule)| {
                    prop(rule, &["ListenerArn"]).and_then(target_of) == Some(id)
                        && list(prop(rule, &["Conditions"])).iter().any(|c| {
                            str_of(
                                c.get("HttpHeaderConfig")
                                    .and_then(|h| h.get("HttpHeaderName")),
                            ) == Some(ORIGIN_HEADER)
                        })
                });
        if !checks_header {
            out.push(format!(
                "{}: {id} has no rule forwarding requests that carry {ORIGIN_HEADER}",
                t.name
            ));
        }
    }
    out
}

/// Roles assumed by ECS tasks are scoped to this account (confused-deputy protection).
pub fn task_trust_policies_are_scoped(t: &Template) -> Violations {
    let mut out = Vec::new();
    for (id, r) in t.of_type("AWS::IAM::Role") {
        for st in list(prop(r, &["AssumeRolePolicyDocument", "Statement"])) {
            let principal = format!("{:?}", st.get("Principal"));
            if principal.contains("ecs-tasks.amazonaws.com") {
                let cond = format!("{:?}", st.get("Condition"));
                if !cond.contains("aws:SourceAccount") {
                    out.push(format!("{}: {id} trusts ecs-tasks.amazonaws.com without an aws:SourceAccount condition", t.name));
                }
            }
        }
    }
    out
}

pub fn task_role_is_separate(t: &Template) -> Violations {
    t.of_type("AWS::ECS::TaskDefinition")
        .filter(|(_, r)| {
            let task = prop(r, &["TaskRoleArn"]).and_then(target_of);
            task.is_none() || task == prop(r, &["ExecutionRoleArn"]).and_then(target_of)
        })
        .map(|(id, _)| {
            format!(
                "{}: {id} needs its own TaskRoleArn, separate from the execution role",
                t.name
            )
        })
        .collect()
}

pub fn container_insights_on(t: &Template) -> Violations {
    t.of_type("AWS::ECS::Cluster")
        .filter(|(_, r)| {
            !list(prop(r, &["ClusterSettings"])).iter().any(|s| {
                str_of(s.get("Name")) == Some("containerInsights")
                    && matches!(str_of(s.get("Value")), Some("enabled" | "enhanced"))
            })
        })
        .map(|(id, _)| format!("{}: {id} must enable Container Insights", t.name))
        .collect()
}

fn number(v: Option<&Value>) -> Option<i64> {
    v.and_then(|v| v.as_i64().or_else(|| v.as_str()?.parse().ok()))
}

/// Rollouts keep full capacity and take about a minute, not AWS's default ~7.
pub fn fast_safe_rollouts(t: &Template) -> Violations {
    let mut out = Vec::new();
    for (id, r) in t.of_type("AWS::ECS::Service") {
        let dc = |k| number(prop(r, &["DeploymentConfiguration", k]));
        if dc("MinimumHealthyPercent") != Some(100) || dc("MaximumPercent") != Some(200) {
            out.push(format!(
                "{}: {id} must roll out with MinimumHealthyPercent 100 and MaximumPercent 200",
                t.name
            ));
        }
        if number(prop(r, &["HealthCheckGracePeriodSeconds"])).is_none() {
            out.push(format!(
                "{}: {id} needs a HealthCheckGracePeriodSeconds",
                t.name
            ));
        }
    }
    for (id, r) in t.of_type("AWS::ElasticLoadBalancingV2::TargetGroup") {
        let floor = rollout_floor_seconds(r);
        if floor.is_none_or(|f| f > 60) {
            out.push(format!("{}: {id} health check and deregistration settings allow no rollout under 60 s ({floor:?} s)", t.name));
        }
    }
    out
}

/// The fastest possible rollout a target group allows: a new task must pass `HealthyThresholdCount`
/// checks `HealthCheckIntervalSeconds` apart, then the old one drains for the deregistration delay.
pub fn rollout_floor_seconds(target_group: &Value) -> Option<i64> {
    let interval = number(prop(target_group, &["HealthCheckIntervalSeconds"]))?;
    let healthy = number(prop(target_group, &["HealthyThresholdCount"]))?;
    let delay = list(prop(target_group, &["TargetGroupAttributes"]))
        .iter()
        .find(|a| str_of(a.get("Key")) == Some("deregistration_delay.timeout_seconds"))
        .and_then(|a| number(a.get("Value")))
        .unwrap_or(300);
    Some(interval * healthy + delay)
}

pub fn containers_check_health_and_stop_gracefully(t: &Template) -> Violations {
    let mut out = Vec::new();
    for (id, r) in t.of_type("AWS::ECS::TaskDefinition") {
        for c in list(prop(r, &["ContainerDefinitions"])) {
            let name = str_of(c.get("Name")).unwrap_or("?");
            let checks: Vec<_> = c.get("HealthCheck").map(branches).unwrap_or_default();
            let cmd = format!(
                "{:?}",
                checks
                    .iter()
                    .map(|(_, h)| h.get("Command"))
                    .collect::<Vec<_>>()
            );
            if !cmd.contains("--health-check") {
                out.push(format!("{}: {id} container {name} must run the binary's --health-check as its HealthCheck", t.name));
            }
            if number(c.get("StopTimeout")).is_none() {
                out.push(format!(
                    "{}: {id} container {name} must set StopTimeout (time to drain after SIGTERM)",
                    t.name
                ));
            }
        }
    }
    out
}

pub fn services_scale(t: &Template) -> Violations {
    let services: Vec<(&str, &Value)> = t.of_type("AWS::ECS::Service").collect();
    let targets: Vec<(&str, &Value)> = t
        .of_type("AWS::ApplicationAutoScaling::ScalableTarget")
        .collect();
    let mut out = Vec::new();
    for (svc, service) in services {
        let target = targets
            .iter()
            .find(|(_, r)| format!("{:?}", prop(r, &["ResourceId"])).contains(svc));
        let Some((target_id, _)) = target else {
            out.push(format!("{}: {svc} has no Application Auto Scaling target (it cannot grow without a redeploy)", t.name));
            continue;
        };
        // CloudFormation sets a DesiredCount in the template on every deploy that updates the
        // service: a service auto scaling had grown would shrink back mid-deploy.
        // Set on every deploy unless one `Fn::If` branch is `AWS::NoValue`.
        let always_set = |d: &Value| !matches!(branches(d).as_slice(), [(Some(_), _)]);
        if prop(service, &["DesiredCount"]).is_some_and(always_set) {
            out.push(format!("{}: {svc} sets DesiredCount on every deploy while auto scaling manages it (each deploy would undo a scale-out): leave it out, or set it under a condition with an AWS::NoValue branch", t.name));
        }
        let tracked = t
            .of_type("AWS::ApplicationAutoScaling::ScalingPolicy")
            .any(|(_, p)| {
                // The policy names its target by id, or by the same ResourceId.
                let by_id = prop(p, &["ScalingTargetId"]).and_then(target_of) == Some(target_id);
                let by_resource = format!("{:?}", prop(p, &["ResourceId"])).contains(svc);
                (by_id || by_resource)
                    && str_of(prop(p, &["PolicyType"])) == Some("TargetTrackingScaling")
            });
        if !tracked {
            out.push(format!(
                "{}: {svc} scales with no target-tracking policy",
                t.name
            ));
        }
    }
    out
}

/// `123456789012`, `us-east-1`, `eu-west-3b`, ... anywhere in the template's values.
pub fn nothing_hard_coded(t: &Template) -> Violations {
    let mut out = Vec::new();
    walk(&t.root, &mut |v| {
        let Some(s) = v.as_str() else { return };
        for word in s.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-')) {
            if looks_like_account_id(word) || looks_like_region_or_zone(word) {
                out.push(format!("{}: the value {s:?} hard-codes {word:?}; use AWS::AccountId, AWS::Region or !GetAZs", t.name));
            }
        }
    });
    out
}

fn looks_like_account_id(word: &str) -> bool {
    word.len() == 12 && word.bytes().all(|b| b.is_ascii_digit())
}

fn looks_like_region_or_zone(word: &str) -> bool {
    let parts: Vec<&str> = word.split('-').collect();
    let geo = ["us", "eu", "ap", "sa", "ca", "me", "af", "il", "mx", "cn"];
    match parts.as_slice() {
        [g, dir, n] | [g, "gov", dir, n] => {
            geo.contains(g)
                && dir.len() >= 4
                && dir.bytes().all(|b| b.is_ascii_lowercase())
                && n.starts_with(|c: char| c.is_ascii_digit())
                && n.len() <= 2
        }
        _ => false,
    }
}

/// Every `Fn::ImportValue` must name an export of a stack deployed earlier (templates in order).
pub fn imports_match_earlier_exports(templates: &[Template]) -> Violations {
    let mut exported: BTreeSet<String> = BTreeSet::new();
    let mut out = Vec::new();
    for t in templates {
        walk(&t.root, &mut |v| {
            if let Some(("Fn::ImportValue", arg)) = intrinsic(v) {
                match name_pattern(arg) {
                    Some(name) if exported.contains(&name) => {}
                    Some(name) => out.push(format!(
                        "{}: imports {name:?}, which no earlier stack exports",
                        t.name
                    )),
                    None => out.push(format!(
                        "{}: an ImportValue whose name is not a plain string or !Sub",
                        t.name
                    )),
                }
            }
        });
        for (_, o) in t.outputs() {
            if let Some(name) = o
                .get("Export")
                .and_then(|e| e.get("Name"))
                .and_then(name_pattern)
            {
                exported.insert(name);
            }
        }
    }
    out
}

/// An environment file names only declared parameters and supplies every one without a default.
pub fn env_file_matches_templates(env: &str, text: &str, templates: &[Template]) -> Violations {
    let file: Value = match serde_yaml::from_str(text) {
        Ok(v) => v,
        Err(e) => return vec![format!("env/{env}.yaml: not valid YAML: {e}")],
    };
    let mut out = Vec::new();
    for t in templates {
        let declared: BTreeSet<&str> = t.parameters().map(|(k, _)| k).collect();
        let given: BTreeSet<&str> = file
            .get("stacks")
            .and_then(|s| s.get(t.name.as_str()))
            .and_then(Value::as_mapping)
            .map(|m| m.keys().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        for p in given.difference(&declared) {
            out.push(format!(
                "env/{env}.yaml: stacks.{}.{p} is not a parameter of infra/{}.yaml",
                t.name, t.name
            ));
        }
        for (p, decl) in t.parameters() {
            let defaulted = decl.get("Default").is_some();
            if !defaulted && !given.contains(p) && !crate::SUPPLIED_BY_XTASK.contains(&p) {
                out.push(format!(
                    "env/{env}.yaml: stacks.{}.{p} is required (no default in infra/{}.yaml)",
                    t.name, t.name
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_and_account_detection() {
        assert!(looks_like_region_or_zone("us-east-1"));
        assert!(looks_like_region_or_zone("ap-northeast-1a"));
        assert!(looks_like_region_or_zone("us-gov-west-1"));
        assert!(!looks_like_region_or_zone("fargate-app-dev"));
        assert!(!looks_like_region_or_zone("public-1"));
        assert!(looks_like_account_id("123456789012"));
        assert!(!looks_like_account_id("2010-09-09"));
    }
}
