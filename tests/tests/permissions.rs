//! README's "What your AWS identity needs" against the code: every AWS action xtask calls is
//! listed, nothing listed is no longer called, and every resource type's service is named.

use std::collections::BTreeSet;

use tests::template::Template;
use tests::{root, STACKS};

/// The IAM prefix of each client xtask holds, by the name it goes by in the code: SDK clients,
/// then the hand-signed ones (`aws/signed.rs`).
const CLIENTS: [(&str, &str); 6] = [
    ("cfn", "cloudformation"),
    ("ecr", "ecr"),
    ("ecs", "ecs"),
    ("logs", "logs"),
    ("ec2", "ec2"),
    ("quotas", "servicequotas"),
];

/// `cfn` → `cloudformation`.
fn prefix_of(client: &str) -> &'static str {
    CLIENTS.iter().find(|(name, _)| *name == client).unwrap().1
}

/// What `docker push` to ECR needs besides xtask's own calls (the registry protocol).
const PUSH: [&str; 5] = [
    "ecr:BatchCheckLayerAvailability",
    "ecr:InitiateLayerUpload",
    "ecr:UploadLayerPart",
    "ecr:CompleteLayerUpload",
    "ecr:PutImage",
];

/// `describe_stacks` → `DescribeStacks`.
fn pascal(snake: &str) -> String {
    snake
        .split('_')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// The non-test source of xtask, without fakecloud.rs (its calls run only with `--local`).
fn sources() -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut dirs = vec![root().join("xtask/src")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if path.is_dir() {
                dirs.push(path);
            } else if name.ends_with(".rs")
                && !["tests.rs", "mock.rs", "fakecloud.rs"].contains(&name.as_str())
            {
                let text = std::fs::read_to_string(&path).unwrap();
                let code = match text.find("#[cfg(test)]\nmod tests") {
                    Some(at) => text[..at].to_owned(),
                    None => text,
                };
                out.push((name, code));
            }
        }
    }
    out
}

/// Every AWS action the code calls: SDK operations started on a client (`cfn.describe_stacks()`
/// followed by its builder), and the actions of the hand-signed EC2 and Service Quotas calls
/// (`ec2.call("X", ..)`, `quotas.call("X", ..)`).
fn called() -> BTreeSet<String> {
    let sdk = regex_lite::Regex::new(r"\b(cfn|ecr|ecs|logs)\s*\.\s*([a-z_]+)\(\)\s*\.").unwrap();
    let query = regex_lite::Regex::new(r#"\b(ec2|quotas)\s*\.\s*call\(\s*"([A-Za-z]+)""#).unwrap();
    let mut actions = BTreeSet::new();
    for (_, code) in sources() {
        for c in sdk.captures_iter(&code) {
            actions.insert(format!("{}:{}", prefix_of(&c[1]), pascal(&c[2])));
        }
        for c in query.captures_iter(&code) {
            actions.insert(format!("{}:{}", prefix_of(&c[1]), &c[2]));
        }
    }
    actions
}

fn readme_section() -> String {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let start = readme
        .find("## What your AWS identity needs")
        .expect("README has no section \"What your AWS identity needs\"");
    let rest = &readme[start + 3..];
    rest[..rest.find("\n## ").unwrap_or(rest.len())].to_owned()
}

/// `` `service:Action` `` names in the section's table of xtask's own calls.
fn listed() -> BTreeSet<String> {
    let section = readme_section();
    let table = &section[section
        .find("| service | actions |")
        .expect("no table of actions")..];
    let name = regex_lite::Regex::new(r"`([a-z0-9]+:[A-Za-z]+)`").unwrap();
    name.captures_iter(table).map(|c| c[1].to_owned()).collect()
}

#[test]
fn the_code_calls_aws_actions_it_can_see() {
    // The scan itself works: the calls every deploy makes are found.
    let found = called();
    for action in [
        "cloudformation:CreateChangeSet",
        "ecr:GetAuthorizationToken",
        "ecs:DescribeServices",
        "logs:FilterLogEvents",
        "ec2:DescribeManagedPrefixLists",
        "servicequotas:GetServiceQuota",
    ] {
        assert!(found.contains(action), "{action} not found in {found:?}");
    }
}

#[test]
fn readme_lists_every_action_xtask_calls() {
    let listed = listed();
    let missing: Vec<_> = called().difference(&listed).cloned().collect();
    assert!(
        missing.is_empty(),
        "README's \"What your AWS identity needs\" does not list {missing:?}"
    );
}

#[test]
fn readme_lists_no_action_xtask_no_longer_calls() {
    let called = called();
    let stale: Vec<_> = listed()
        .into_iter()
        .filter(|a| !called.contains(a) && !PUSH.contains(&a.as_str()))
        .collect();
    assert!(
        stale.is_empty(),
        "README lists {stale:?}, which xtask does not call"
    );
}

#[test]
fn readme_names_the_service_of_every_resource_type() {
    let section = readme_section();
    let mut services = BTreeSet::new();
    for stack in STACKS {
        for (_, r) in Template::load(stack).resources() {
            let ty = r.get("Type").and_then(|t| t.as_str()).unwrap_or_default();
            let service = ty.rsplit_once("::").map(|(s, _)| s).unwrap_or(ty);
            services.insert(service.to_owned());
        }
    }
    let missing: Vec<_> = services
        .iter()
        .filter(|s| !section.contains(&format!("`{s}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "README's \"What your AWS identity needs\" does not name {missing:?}"
    );
}
