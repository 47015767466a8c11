//! Bad input that needs no AWS: each gives one line that names the cause and the fix, and a
//! non-zero exit. Runs the real `cargo xtask`.

mod common;

use common::*;

/// `cargo xtask <command> --env <env> --local` with `infra/env/<env>.yaml` holding `file`.
fn with_env_file(env: &str, file: &str, command: &str) -> (std::process::Output, String) {
    let _file = EnvFile::write(env, file);
    xtask(&[command, "--env", env, "--local"])
}

#[test]
fn docker_host_pointing_nowhere() {
    let (out, text) = xtask_with(
        &["deploy", "--local"],
        &[("DOCKER_HOST", "unix:///nonexistent/docker.sock")],
    );
    assert_eq!(out.status.code(), Some(1));
    let line = error_line(&text);
    assert!(
        line.contains("unix:///nonexistent/docker.sock")
            && line.contains("start the Docker engine"),
        "{line}"
    );
}

#[test]
fn docker_context_pointing_nowhere() {
    // A context made and chosen by the docker CLI itself, as Docker Desktop or rootless Docker do.
    let config = std::env::temp_dir().join(format!("cli-errors-docker-{}", std::process::id()));
    let docker = |args: &[&str]| {
        let out = std::process::Command::new("docker")
            .args(args)
            .env("DOCKER_CONFIG", &config)
            .output()
            .expect("cannot run the docker CLI");
        assert!(out.status.success(), "docker {args:?} failed");
    };
    docker(&[
        "context",
        "create",
        "gone-ctx",
        "--docker",
        "host=unix:///nonexistent/ctx.sock",
    ]);
    docker(&["context", "use", "gone-ctx"]);
    let (out, text) = xtask_with(
        &["deploy", "--local"],
        &[
            ("DOCKER_HOST", ""),
            ("DOCKER_CONFIG", config.to_str().unwrap()),
        ],
    );
    let _ = std::fs::remove_dir_all(&config);
    assert_eq!(out.status.code(), Some(1));
    let line = error_line(&text);
    assert!(
        line.contains("unix:///nonexistent/ctx.sock (docker context \"gone-ctx\")")
            && line.contains("start the Docker engine"),
        "{line}"
    );
}

#[test]
fn unknown_environment() {
    let (out, text) = xtask(&["deploy", "--env", "nosuchenv", "--local"]);
    assert_eq!(out.status.code(), Some(1));
    let line = error_line(&text);
    // Other tests may add environment files meanwhile: `dev` must be among the known ones.
    let known = line.split("known: ").nth(1).unwrap_or_default();
    assert!(
        line.contains("unknown environment \"nosuchenv\"") && known.contains("dev"),
        "{line}"
    );
}

#[test]
fn no_region_for_real_aws() {
    let (out, text) = xtask_with(
        &["status"],
        &[
            ("AWS_REGION", ""),
            ("AWS_DEFAULT_REGION", ""),
            ("AWS_CONFIG_FILE", "/nonexistent"),
            ("AWS_PROFILE", ""),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let line = error_line(&text);
    assert!(
        line.contains("no AWS region") && line.contains("AWS_REGION"),
        "{line}"
    );
}

#[test]
fn no_credentials_for_real_aws() {
    let (out, text) = xtask_with(
        &["status"],
        &[
            ("AWS_REGION", "eu-west-1"),
            ("AWS_CONFIG_FILE", "/nonexistent"),
            ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent"),
            ("AWS_ACCESS_KEY_ID", ""),
            ("AWS_SECRET_ACCESS_KEY", ""),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let line = error_line(&text);
    assert!(
        line.contains("no AWS credentials") && line.contains("aws configure"),
        "{line}"
    );
}

#[test]
fn destroy_without_a_terminal_refuses_without_yes() {
    let (out, text) = xtask(&["destroy", "--local"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(error_line(&text).contains("pass --yes"), "{text}");
}

#[test]
fn parameter_file_naming_an_unknown_parameter() {
    let (out, text) = with_env_file(
        "badparam",
        "project: badparam\nstacks:\n  vpc:\n    VpcCidrr: 10.0.0.0/16\n",
        "diff",
    );
    assert_eq!(out.status.code(), Some(2), "diff's error exit code");
    let line = error_line(&text);
    assert!(
        line.contains("\"VpcCidrr\" under stacks.vpc") && line.contains("VpcCidr"),
        "{line}"
    );
}

#[test]
fn parameter_value_the_template_refuses() {
    let (out, text) = with_env_file(
        "badvalue",
        "project: badvalue\nstacks:\n  ecs:\n    Cpu: 300\n",
        "deploy",
    );
    assert_eq!(out.status.code(), Some(1));
    let line = error_line(&text);
    assert!(
        line.contains("stacks.ecs.Cpu = \"300\" is refused by infra/ecs.yaml (allowed: 256, 512")
            && line.contains("change it in infra/env/badvalue.yaml"),
        "{line}"
    );
    // Refused before anything was built or deployed.
    assert!(!text.contains("app binary"), "{text}");
}

#[test]
fn parameters_a_template_rule_refuses_together() {
    let (out, text) = with_env_file(
        "badrange",
        "project: badrange\nstacks:\n  ecs:\n    MinCount: \"5\"\n    MaxCount: \"2\"\n",
        "deploy",
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        error_line(&text),
        "error: infra/ecs.yaml refuses the parameters of infra/env/badrange.yaml: MinCount must not \
         exceed MaxCount (2). Change them and run again"
    );
    assert!(!text.contains("app binary"), "{text}");
}

#[test]
fn an_image_that_fails_the_target_groups_health_check_stops_before_aws() {
    // The app answers /health only: a target group checking another path would never see it
    // healthy. The pre-flight runs the image and asks what the target group will ask.
    let _file = EnvFile::write(
        "badhealth",
        "project: badhealth\nstacks:\n  ecs:\n    HealthCheckPath: /ready\n",
    );
    let (out, text) = xtask(&["deploy", "--env", "badhealth", "--local"]);
    assert_eq!(out.status.code(), Some(1));
    let line = error_line(&text);
    assert!(
        line.contains("pre-flight of badhealth-badhealth:")
            && line.contains("failed, so nothing was deployed")
            && line.ends_with(
                "/ready answered 404, the target group wants 200: serve /ready, or set \
                 HealthCheckPath under stacks.ecs to a path the app answers"
            ),
        "{line}"
    );
    // The container's last log lines: the app logged the probe it refused.
    assert!(
        text.contains(r#""path":"/ready","status":404"#),
        "no log lines of the container:\n{text}"
    );
    assert!(
        !text.contains("badhealth-badhealth-vpc") && !text.contains("fakecloud"),
        "AWS was called:\n{text}"
    );

    // --no-preflight goes on to AWS (where this environment has no repository yet).
    let (out, text) = xtask(&[
        "push-image",
        "--env",
        "badhealth",
        "--local",
        "--no-preflight",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text.contains("skipped (--no-preflight)"), "{text}");
    assert!(
        error_line(&text).contains("the ecr stack badhealth-badhealth-ecr does not exist yet"),
        "{text}"
    );
}
