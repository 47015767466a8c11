//! End to end, on a terminal and the way a deploy to AWS runs (no `--local`: fakecloud stands in
//! through the standard AWS_ENDPOINT_URL, region and credentials variables), where `deploy` asks
//! before executing each change set. Answering no changes nothing; Ctrl-C at the question stops
//! the command and deletes the change sets it had made (vpc's and ecr's: they run concurrently)
//! and the empty stacks they came with.

mod common;

use common::*;

const ENV: &str = "e2eask";
const AS_IF_AWS: &[(&str, &str)] = &[
    ("AWS_ENDPOINT_URL", "http://127.0.0.1:4566"),
    ("AWS_REGION", "us-east-1"),
    ("AWS_ACCESS_KEY_ID", "test"),
    ("AWS_SECRET_ACCESS_KEY", "test"),
];

#[test]
fn no_and_ctrl_c_at_the_question_change_nothing() {
    if !prerequisites() {
        return;
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let _env = EnvFile::write(
        ENV,
        "project: askdemo\nstacks:\n  vpc:\n    VpcCidr: 10.44.0.0/16\n",
    );
    // From nothing (this also starts fakecloud when it is not running).
    let (out, _) = xtask(&[
        "destroy",
        "--yes",
        "--delete-images",
        "--env",
        ENV,
        "--local",
    ]);
    assert!(out.status.success(), "cleanup before the test failed");
    let aws = rt.block_on(fakecloud());
    let nothing_left = |when: &str| {
        let names = ["vpc", "ecr"].map(|stack| format!("askdemo-{ENV}-{stack}"));
        assert_stacks_gone(&rt, &aws, names, when);
    };

    let (code, text) = xtask_in_terminal(&["deploy", "--env", ENV], AS_IF_AWS, "n\n");
    assert_eq!(code, Some(1), "answering no: {text}");
    assert!(text.contains("cancelled: nothing was changed"), "{text}");
    nothing_left("after answering no");

    let (code, text) = xtask_in_terminal(&["deploy", "--env", ENV], AS_IF_AWS, "\x03");
    assert_eq!(code, Some(130), "Ctrl-C at the question: {text}");
    assert!(
        text.contains("deleted the 2 change sets it had not executed yet"),
        "{text}"
    );
    nothing_left("after Ctrl-C");
}
