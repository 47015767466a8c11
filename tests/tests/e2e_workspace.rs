//! End to end: a user's own service in `app/`, under its own package and binary name, in a
//! workspace outside git whose builds go to a `CARGO_TARGET_DIR` elsewhere. The real `cargo
//! xtask deploy --local` and `destroy --local` run in a copy of this workspace.

mod common;

use std::path::{Path, PathBuf};

use common::*;

/// A copy of the workspace's files as git sees them (no `.git`, no `target/`), removed when dropped.
struct Copy(PathBuf);

impl Copy {
    fn of_this_workspace(into: PathBuf) -> Copy {
        let _ = std::fs::remove_dir_all(&into);
        let files = std::process::Command::new("git")
            .args([
                "ls-files",
                "-z",
                "--cached",
                "--others",
                "--exclude-standard",
            ])
            .current_dir(root())
            .output()
            .expect("cannot run git ls-files");
        assert!(files.status.success(), "git ls-files failed");
        for file in files.stdout.split(|b| *b == 0).filter(|f| !f.is_empty()) {
            let file = Path::new(std::str::from_utf8(file).unwrap());
            let to = into.join(file);
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            std::fs::copy(root().join(file), &to).unwrap();
        }
        Copy(into)
    }

    fn edit(&self, file: &str, from: &str, to: &str) {
        let path = self.0.join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(from), "{file} has no {from:?}");
        std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
    }
}

impl Drop for Copy {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn a_renamed_service_outside_git_builds_where_cargo_builds() {
    if !prerequisites() {
        return;
    }
    // This test's own target directory: the copy shares its compiled dependencies.
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let target = tmp.parent().unwrap().to_str().unwrap().to_owned();
    let copy = Copy::of_this_workspace(tmp.join("e2e-workspace"));
    copy.edit("app/Cargo.toml", "name = \"app\"", "name = \"orders-api\"");
    copy.edit(
        "app/Cargo.toml",
        "[dependencies]",
        "[lib]\nname = \"app\"\n\n[[bin]]\nname = \"server\"\npath = \"src/main.rs\"\n\n[dependencies]",
    );
    // Its own project and address range, beside whatever the other tests deployed; CloudFront
    // off, so the load balancer serves `/`.
    copy.edit(
        "infra/env/dev.yaml",
        "project: fargate-app",
        "project: orders",
    );
    copy.edit("infra/env/dev.yaml", "10.0.0.0/16", "10.7.0.0/16");
    copy.edit(
        "infra/env/dev.yaml",
        "  ecs:\n",
        "  ecs:\n    CloudFrontEnabled: \"false\"\n",
    );
    let env = [("CARGO_TARGET_DIR", target.as_str())];

    let (out, text) = xtask_in(&copy.0, &["deploy", "--local"], &env);
    assert!(out.status.success(), "deploy of the renamed service failed");
    let built = text
        .lines()
        .find(|l| l.contains("✔ app binary"))
        .expect("no `app binary` line");
    assert!(
        built.contains(&format!("{target}/")) && built.contains("/release/server ("),
        "the binary `server` was not built in CARGO_TARGET_DIR: {built}"
    );
    assert!(
        !copy.0.join("target").exists(),
        "xtask wrote a target/ of its own beside CARGO_TARGET_DIR"
    );
    let url = value_after(&text, "url: ").expect("no `url:` line");
    let addr = url.strip_prefix("http://").expect("an http URL");
    let (status, page) = http_get(addr, "/").unwrap();
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("<h1>orders-api</h1>") && page.contains("revision <code>nogit</code>"),
        "the page does not name the renamed package and the missing git: {page}"
    );

    let (out, _) = xtask_in(
        &copy.0,
        &[
            "destroy",
            "--local",
            "--yes",
            "--delete-images",
            "--delete-logs",
        ],
        &env,
    );
    assert!(
        out.status.success(),
        "destroy of the renamed service failed"
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let aws = rt.block_on(fakecloud());
    assert_stacks_gone(
        &rt,
        &aws,
        ["vpc", "ecr", "ecs"].map(|s| format!("orders-dev-{s}")),
        "after destroy",
    );

    // A container health check the binary does not answer would have ECS replace every task:
    // the pre-flight runs it as ECS would, before any AWS call.
    copy.edit(
        "infra/ecs.yaml",
        r#"["CMD", "/app", "--health-check"]"#,
        r#"["CMD", "/app", "--no-such-flag"]"#,
    );
    let (out, text) = xtask_in(&copy.0, &["push-image", "--local"], &env);
    assert_eq!(out.status.code(), Some(1));
    let line = error_line(&text);
    assert!(
        line.contains("the container health check `/app --no-such-flag` exited with code 2")
            && line.contains("unknown argument"),
        "{line}"
    );

    // Ctrl-C while the app builds: the build stops, and so does xtask, as at any other wait.
    copy.edit(
        "app/src/main.rs",
        "fn main() -> ExitCode {",
        "fn main() -> ExitCode {\n    let _edited = 1;",
    );
    let (code, text) = xtask_interrupted_in(
        &copy.0,
        &["push-image", "--local"],
        &env,
        "app binary: cargo build",
    );
    assert_eq!(code, Some(130), "not stopped by Ctrl-C during the build");
    assert!(
        text.contains("interrupted: stopped; nothing it started is still running in AWS")
            && !text.contains("error:"),
        "{text}"
    );
}
