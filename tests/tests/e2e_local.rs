//! End to end: the real `cargo xtask deploy --local` against fakecloud and the Docker engine.
//!
//! Needs a running Docker engine and fakecloud installed (or running). Without them the test
//! fails under CI (`CI` set) and is skipped with a loud message elsewhere.

mod common;

use common::*;

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
    // It carries a deployed-* tag, which the lifecycle policy never lets expire while it is
    // among the last deployed images, however many images are pushed after it.
    let deployed_tags = |digest: &str| -> Vec<String> {
        let images = rt
            .block_on(aws.ecr.describe_images().repository_name(&prefix).send())
            .expect("the repository exists");
        let image = images
            .image_details()
            .iter()
            .find(|d| d.image_digest() == Some(digest))
            .unwrap_or_else(|| panic!("ECR has no image {digest}"));
        image
            .image_tags()
            .iter()
            .filter(|t| t.starts_with("deployed-"))
            .cloned()
            .collect()
    };
    let marked = deployed_tags(digest);
    assert_eq!(
        marked.len(),
        1,
        "the deployed image is not tagged deployed-*: {marked:?}"
    );
    let service = rt.block_on(service(&aws, &prefix));
    let task_def_arn = service.task_definition().unwrap().to_owned();
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
    assert!(service.running_count() >= 1);

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
    assert_eq!(
        deployed_tags(digest),
        marked,
        "a no-op deploy tagged the image again"
    );
}
