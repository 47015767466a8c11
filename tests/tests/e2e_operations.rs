//! End to end, day 2: a quota refused before deploying, a failed first create (1 for `diff`)
//! followed by a successful deploy,
//! `diff` (0, then 1 after a parameter change), Ctrl-C during a rollout and at a question, a
//! deploy that leaves auto scaling's task count alone, `logs` (the replaced task's start and
//! graceful drain), `status --json`, CloudFront switched off (the load balancer answers `/`),
//! and `destroy` (stacks gone, images kept). Runs in its own environment
//! (`infra/env/e2eops.yaml`, written and removed by the test).

mod common;

use common::*;

const ENV: &str = "e2eops";

/// This test's environment file (removed again when dropped, pass or fail), with `ecs_params`.
fn env_file(ecs_params: &str) -> EnvFile {
    // Its own VPC range: fakecloud routes a load balancer to a task by the task's IP, so two
    // local environments with the same range would take each other's targets down.
    EnvFile::write(
        ENV,
        &format!(
            "project: opsdemo\nstacks:\n  vpc:\n    VpcCidr: 10.42.0.0/16\n  ecs:\n{ecs_params}"
        ),
    )
}

fn run(args: &[&str]) -> (std::process::Output, String) {
    let mut all = args.to_vec();
    all.extend(["--env", ENV, "--local"]);
    xtask(&all)
}

#[test]
fn diff_status_destroy_and_recovery_from_a_failed_create() {
    if !prerequisites() {
        return;
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let aws = rt.block_on(fakecloud());
    let prefix = format!("opsdemo-{ENV}");
    // Start from nothing, whatever an earlier run left.
    let _env = env_file("    LogRetentionDays: 30\n");
    let (out, _) = run(&["destroy", "--yes", "--delete-images", "--delete-logs"]);
    assert!(out.status.success(), "cleanup before the test failed");

    // An account whose "rules per security group" quota is 50 (as when "security groups per
    // network interface" was raised to 20), below the 55 rules CloudFront's prefix list weighs
    // in the load balancer's security group: refused before anything is deployed.
    let rules = LoweredQuota::set("vpc", "L-0EA8095F", 50);
    let (out, text) = run(&["deploy"]);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let error = error_line(&text);
    assert!(
        error
            .contains("\"Inbound or outbound rules per security group\" is 50, below the 55 rules")
            && error.contains("nothing was deployed"),
        "the error does not name the quota: {error}"
    );
    let all = || tests::STACKS.map(|stack| format!("{prefix}-{stack}"));
    assert_stacks_gone(&rt, &aws, all(), "after the refused deploy");
    drop(rules);

    // A first create that fails: an account that may attach no managed policy to a role, so the
    // execution role cannot be created...
    let policies = LoweredQuota::set("iam", "L-0DA4ABF3", 0);
    let (out, text) = run(&["deploy"]);
    assert!(
        !out.status.success(),
        "a deploy over quota succeeded: {text}"
    );
    let error = error_line(&text);
    assert!(
        error.contains("ExecutionRole") && error.contains("an account quota is reached"),
        "the error does not name the resource and the quota: {error}"
    );
    assert_eq!(
        rt.block_on(stack_states(&aws, &prefix))[2].1,
        "ROLLBACK_COMPLETE"
    );
    // diff counts replacing the failed stack as a change.
    let (out, text) = run(&["diff"]);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains(&format!(
            "{prefix}-ecs: ROLLBACK_COMPLETE (its first create failed): deploy deletes it and creates it again"
        )),
        "{text}"
    );
    // ...then, with the quota raised, the next deploy replaces the failed stack.
    drop(policies);
    let (out, text) = run(&["deploy"]);
    assert!(
        out.status.success(),
        "the deploy after a failed first create failed: {text}"
    );
    assert!(text.contains("ROLLBACK_COMPLETE"), "{text}");

    // diff: nothing to change (exit 0), then a parameter change (exit 1).
    let (out, text) = run(&["diff"]);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains(&format!("{prefix}-ecs: no changes")),
        "{text}"
    );
    let _env = env_file("    LogRetentionDays: 14\n");
    let (out, text) = run(&["diff"]);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("LogGroup"),
        "the log group change is not listed: {text}"
    );
    let after = rt.block_on(stack_states(&aws, &prefix));
    assert!(
        after
            .iter()
            .all(|(_, status, _)| !status.contains("REVIEW")),
        "diff left a stack shell: {after:?}"
    );

    // Deploying the change replaces the task. Ctrl-C while the new task starts (polling slowed
    // down so the wait lasts): exit 130, the rollout named as still running, how to watch it.
    // The stack update had finished, so deploying again changes nothing and waits for the task.
    // (Deleting a change set an interrupt catches before execution is unit-tested in
    // xtask/src/interrupt.rs: without a terminal to answer the question, that window is too short.)
    let (code, text) = xtask_interrupted(
        &["deploy", "--env", ENV, "--local"],
        &[("XTASK_POLL_SECONDS", "60")],
        "] service: ",
    );
    assert_eq!(
        code,
        Some(130),
        "not interrupted during the service wait: {text}"
    );
    assert!(
        text.contains("Still running in AWS: ECS service") && text.contains("is rolling out"),
        "the interrupt does not say what keeps running: {text}"
    );
    assert!(
        text.contains(&format!("`cargo xtask status --env {ENV} --local`")),
        "the interrupt does not say how to watch it: {text}"
    );
    // fakecloud hands the stopped task's output to CloudWatch Logs, where `logs` finds its start
    // and its graceful drain on SIGTERM.
    let (out, text) = run(&["deploy"]);
    assert!(
        out.status.success(),
        "deploying after the interrupt failed: {text}"
    );
    assert!(
        text.contains("stacks changed: 0"),
        "the interrupted deploy was not complete: {text}"
    );
    let (out, text) = run(&["logs", "--since", "10m"]);
    assert!(out.status.success(), "logs failed: {text}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let started = stdout
        .find("listening on port 8080")
        .unwrap_or_else(|| panic!("no start line in the logs: {text}"));
    let drained = stdout
        .find("shutdown complete")
        .unwrap_or_else(|| panic!("no drain line in the logs: {text}"));
    assert!(started < drained, "logs are not oldest first: {stdout}");
    let (out, text) = run(&["diff"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "deployed, yet diff sees changes: {text}"
    );

    // Deploys leave the task count to auto scaling: scale out as it would, then deploy a change
    // that updates the service. The count stays (a template that sets DesiredCount resets it).
    rt.block_on(
        aws.ecs
            .update_service()
            .cluster(&prefix)
            .service(&prefix)
            .desired_count(2)
            .send(),
    )
    .expect("scaling the service out");
    let _env = env_file("    LogRetentionDays: 14\n    Memory: 1024\n");
    let (out, text) = run(&["deploy"]);
    assert!(
        out.status.success(),
        "the deploy after a scale-out failed: {text}"
    );
    assert!(text.contains("stacks changed: 1"), "{text}");
    assert_eq!(
        rt.block_on(service(&aws, &prefix)).desired_count(),
        2,
        "the deploy reset the task count auto scaling had set: {text}"
    );

    // status --json: the documented fields.
    let (out, _) = run(&["status", "--json"]);
    assert!(out.status.success());
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("status --json is JSON");
    assert_eq!(report["environment"], ENV);
    assert_eq!(report["stacks"].as_array().unwrap().len(), 3);
    assert!(report["stacks"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["status"].as_str().unwrap().ends_with("_COMPLETE")));
    assert_eq!(report["service"]["running"], report["service"]["desired"]);
    assert!(report["service"]["digest"]
        .as_str()
        .unwrap()
        .starts_with("sha256:"));
    assert!(report["url"].as_str().unwrap().starts_with("https://"));
    assert_eq!(report["service"]["imageInEcr"], true);
    assert!(
        report["service"]["imageTags"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t.as_str().unwrap().starts_with("deployed-")),
        "{report}"
    );

    // CloudFront switched off: the distribution goes, and the load balancer is the front door,
    // answering `/` itself instead of the 403 that guards it with CloudFront on.
    let _env =
        env_file("    LogRetentionDays: 14\n    Memory: 1024\n    CloudFrontEnabled: \"false\"\n");
    let (out, text) = run(&["deploy"]);
    assert!(
        out.status.success(),
        "switching CloudFront off failed: {text}"
    );
    let front_door = value_after(&text, "service url: ").expect("no `service url:` line");
    assert!(
        front_door.starts_with("http://") && !front_door.contains("cloudfront"),
        "the load balancer is not the front door: {front_door}"
    );
    let addr = value_after(&text, "url: http://").expect("no local `url:` line");
    let (status, page) = http_get(addr, "/").unwrap();
    assert_eq!(
        status, 200,
        "the load balancer does not forward `/`: {page}"
    );
    let resources = rt
        .block_on(
            aws.cfn
                .describe_stack_resources()
                .stack_name(format!("{prefix}-ecs"))
                .send(),
        )
        .expect("describing the ecs stack");
    let left: Vec<&str> = resources
        .stack_resources()
        .iter()
        .filter_map(|r| r.logical_resource_id())
        .filter(|id| ["Distribution", "OriginSecret", "FromCloudFrontRule"].contains(id))
        .collect();
    assert!(left.is_empty(), "CloudFront resources survived: {left:?}");

    // Ctrl-C at destroy's question, on a terminal: exit 130 and nothing deleted.
    let (code, text) = xtask_in_terminal(&["destroy", "--env", ENV, "--local"], &[], "\x03");
    assert_eq!(code, Some(130), "Ctrl-C at the question: {text}");
    assert!(text.contains("interrupted: stopped"), "{text}");
    let states = rt.block_on(stack_states(&aws, &prefix));
    assert!(
        states
            .iter()
            .all(|(_, status, _)| !status.starts_with("DELETE")),
        "an interrupted destroy deleted something: {states:?}"
    );

    // destroy: stacks gone, the repository and its images kept.
    let (out, text) = run(&["destroy", "--yes"]);
    assert!(out.status.success(), "destroy failed");
    assert!(
        text.contains(&format!("kept ECR repository {prefix}")),
        "{text}"
    );
    assert!(
        text.contains(&format!("CloudWatch log group(s) under /ecs/{prefix}/"))
            && text.contains("kept"),
        "the logs were not kept: {text}"
    );
    assert_stacks_gone(&rt, &aws, all(), "after destroy");
    let images = rt
        .block_on(aws.ecr.describe_images().repository_name(&prefix).send())
        .expect("the repository was kept");
    assert!(
        !images.image_details().is_empty(),
        "the images were not kept"
    );

    // ...and no task of the environment is left running in Docker.
    let running = std::process::Command::new("docker")
        .args(["ps", "--format", "{{.Image}}"])
        .output()
        .expect("docker ps");
    let running = String::from_utf8_lossy(&running.stdout);
    assert!(
        !running.contains(&format!("/{prefix}")),
        "destroy left containers running: {running}"
    );

    // Deploying again meets the kept repository: AWS would import it; fakecloud cannot, so the
    // deploy stops before changing anything and says how to go on.
    let (out, text) = run(&["deploy"]);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("cannot import it") && text.contains("--delete-images"),
        "{text}"
    );

    // Clean up for the next run, logs included.
    let (out, text) = run(&["destroy", "--yes", "--delete-images", "--delete-logs"]);
    assert!(out.status.success());
    assert!(
        text.contains("deleted") && text.contains(&format!("log group(s) under /ecs/{prefix}/")),
        "{text}"
    );
    // None is left: neither the stack's group (kept through the first destroy) nor the one
    // fakecloud named by that group's ARN for the tasks' output.
    let left: Vec<String> = rt
        .block_on(aws.logs.describe_log_groups().send())
        .expect("listing log groups")
        .log_groups()
        .iter()
        .filter_map(|g| g.log_group_name())
        .filter(|name| name.contains(&format!("/ecs/{prefix}/")))
        .map(str::to_owned)
        .collect();
    assert!(
        left.is_empty(),
        "destroy --delete-logs left {left:?}: {text}"
    );
}
