//! End to end: the real `cargo xtask deploy --local` against fakecloud and the Docker engine.
//!
//! Needs a running Docker engine and fakecloud installed (or running). Without them the test
//! fails under CI (`CI` set) and is skipped with a loud message elsewhere.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

use aws_config::{BehaviorVersion, Region};
use aws_sdk_cloudformation::config::Credentials;

fn root() -> PathBuf {
    tests::root()
}

/// Docker and fakecloud, or a reason they are missing.
fn missing_prerequisite() -> Option<String> {
    let docker = Command::new("docker")
        .args(["version", "--format", "{{.Server.APIVersion}}"])
        .output();
    if !docker.as_ref().is_ok_and(|o| o.status.success()) {
        return Some("no running Docker engine (`docker version` failed)".into());
    }
    let running = http_get("127.0.0.1:4566", "/_fakecloud/health").is_ok_and(|(s, _)| s == 200);
    let home = std::env::var("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cargo")
        });
    let installed =
        home.join("bin").join("fakecloud").is_file() || std::env::var_os("FAKECLOUD_BIN").is_some();
    if !running && !installed {
        return Some("fakecloud is neither running nor installed (`cargo install fakecloud --version 0.51.0 --locked`)".into());
    }
    None
}

/// True when the test may run; panics in CI when it cannot.
fn prerequisites() -> bool {
    match missing_prerequisite() {
        None => true,
        Some(why) if std::env::var_os("CI").is_some() => {
            panic!("end-to-end test cannot run in CI: {why}")
        }
        Some(why) => {
            eprintln!("\n*** SKIPPED end-to-end test: {why}. `.ci/run` installs and starts what it needs. ***\n");
            false
        }
    }
}

fn xtask(args: &[&str]) -> (Output, String) {
    let out = Command::new(env!("CARGO"))
        .arg("xtask")
        .args(args)
        .current_dir(root())
        .env("CI", "1") // plain progress lines
        .output()
        .expect("cannot run cargo xtask");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    eprintln!("---- cargo xtask {} ----\n{text}", args.join(" "));
    (out, text)
}

fn value_after<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    text.lines()
        .find_map(|l| l.strip_prefix(prefix))
        .map(str::trim)
}

fn http_get(addr: &str, path: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = String::new();
    s.read_to_string(&mut raw)?;
    let status = raw.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    Ok((
        status,
        raw.split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default(),
    ))
}

struct Aws {
    cfn: aws_sdk_cloudformation::Client,
    ecr: aws_sdk_ecr::Client,
    ecs: aws_sdk_ecs::Client,
}

async fn fakecloud() -> Aws {
    let config = aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url("http://127.0.0.1:4566")
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "e2e"))
        .load()
        .await;
    Aws {
        cfn: aws_sdk_cloudformation::Client::new(&config),
        ecr: aws_sdk_ecr::Client::new(&config),
        ecs: aws_sdk_ecs::Client::new(&config),
    }
}

/// (status, last change) of each stack.
async fn stack_states(aws: &Aws, prefix: &str) -> Vec<(String, String, String)> {
    let mut states = Vec::new();
    for stack in tests::STACKS {
        let name = format!("{prefix}-{stack}");
        let out = aws
            .cfn
            .describe_stacks()
            .stack_name(&name)
            .send()
            .await
            .expect("stack exists");
        let s = &out.stacks()[0];
        let changed = s
            .last_updated_time()
            .or(s.creation_time())
            .map(|t| t.to_string())
            .unwrap_or_default();
        states.push((name, s.stack_status().unwrap().as_str().to_owned(), changed));
    }
    states
}

#[test]
fn deploy_local_end_to_end() {
    if !prerequisites() {
        return;
    }
    let env: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(root().join("infra/env/dev.yaml")).unwrap())
            .unwrap();
    let prefix = format!("{}-dev", env["project"].as_str().unwrap());
    let rt = tokio::runtime::Runtime::new().unwrap();

    // First deploy: everything comes up and the app answers on a localhost URL.
    let (out, text) = xtask(&["deploy", "--local"]);
    assert!(out.status.success(), "first deploy failed");
    let url = value_after(&text, "url: ").expect("no `url:` line");
    let addr = url.strip_prefix("http://").expect("an http URL");
    assert!(addr.starts_with("127.0.0.1:"), "{url}");
    let (status, body) = http_get(addr, "/health").unwrap();
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    // CloudFront is on by default: the load balancer refuses requests without the origin secret.
    let (status, page) = http_get(addr, "/").unwrap();
    assert_eq!(
        (status, page.as_str()),
        (403, "Forbidden: use the CloudFront URL")
    );
    let front_door = value_after(&text, "service url: ").expect("no `service url:` line");
    assert!(
        front_door.starts_with("https://") && front_door.ends_with(".cloudfront.net"),
        "{front_door}"
    );

    let aws = rt.block_on(fakecloud());
    let before = rt.block_on(stack_states(&aws, &prefix));
    for (name, status, _) in &before {
        assert!(
            status == "CREATE_COMPLETE" || status == "UPDATE_COMPLETE",
            "{name} is {status}"
        );
    }

    // ECR holds the image, and the task definition runs exactly that digest.
    let pinned = value_after(&text, "image: ").expect("no `image:` line");
    let (_, digest) = pinned.split_once('@').expect("pinned by digest");
    let images = rt
        .block_on(aws.ecr.describe_images().repository_name(&prefix).send())
        .expect("the repository exists");
    assert!(
        images
            .image_details()
            .iter()
            .any(|d| d.image_digest() == Some(digest)),
        "ECR has no image {digest}"
    );
    let service = rt
        .block_on(
            aws.ecs
                .describe_services()
                .cluster(&prefix)
                .services(&prefix)
                .send(),
        )
        .unwrap();
    let task_def_arn = service.services()[0].task_definition().unwrap().to_owned();
    let task_def = rt
        .block_on(
            aws.ecs
                .describe_task_definition()
                .task_definition(&task_def_arn)
                .send(),
        )
        .unwrap();
    let image = task_def.task_definition().unwrap().container_definitions()[0]
        .image()
        .unwrap()
        .to_owned();
    assert_eq!(
        image, pinned,
        "the task definition does not run the pushed digest"
    );
    assert!(service.services()[0].running_count() >= 1);

    // Second deploy with nothing changed: no stack touched, nothing pushed, and it says so.
    let (out, text) = xtask(&["deploy", "--local"]);
    assert!(out.status.success(), "second deploy failed");
    assert_eq!(
        value_after(&text, "stacks changed: "),
        Some("0"),
        "a stack changed"
    );
    assert_eq!(
        value_after(&text, "pushed: "),
        Some("0 bytes"),
        "bytes were pushed"
    );
    assert!(text.contains("Nothing to do"), "the no-op was not reported");
    assert_eq!(
        rt.block_on(stack_states(&aws, &prefix)),
        before,
        "a stack was updated"
    );
    assert_eq!(value_after(&text, "image: "), Some(pinned));
}
