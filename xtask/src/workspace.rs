//! What cargo knows of the workspace (`cargo metadata`): where it builds, and the service in
//! `app/`, whatever its package is called.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// The `cargo` that runs xtask (the same toolchain builds the app).
pub fn cargo() -> std::ffi::OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}

/// Run a cargo command (a build, an install) to its end without blocking the runtime, so that
/// Ctrl-C, which reaches cargo too and stops it, ends in the interrupt handler's report rather
/// than in a build error. Killed if the run is dropped.
pub async fn run_cargo(mut cargo: tokio::process::Command) -> Result<std::process::ExitStatus> {
    let status = cargo
        .kill_on_drop(true)
        .status()
        .await
        .context("cannot run cargo: is it on PATH?")?;
    #[cfg(unix)]
    if let Some(signal) = std::os::unix::process::ExitStatusExt::signal(&status) {
        // Ctrl-C stops cargo and xtask at once: let the interrupt handler have the last word.
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        bail!("cargo was stopped by signal {signal}");
    }
    Ok(status)
}

#[derive(Debug, Clone, PartialEq)]
pub struct Workspace {
    /// `target/`, unless `CARGO_TARGET_DIR` or a cargo config's `build.target-dir` says otherwise.
    pub target_dir: PathBuf,
    /// The package in `app/`.
    pub app: App,
}

#[derive(Debug, Clone, PartialEq)]
pub struct App {
    pub package: String,
    pub version: String,
    /// The binary the image runs.
    pub bin: String,
    /// What the binary is built from inside the workspace, relative to its root: `app/` and the
    /// directories of the path dependencies it builds with (a `crates/domain` say), transitively.
    pub sources: Vec<PathBuf>,
}

/// The workspace at `root`, asked of cargo once per run.
pub fn get(root: &Path) -> Result<Workspace> {
    static WORKSPACE: std::sync::OnceLock<Workspace> = std::sync::OnceLock::new();
    if let Some(ws) = WORKSPACE.get() {
        return Ok(ws.clone());
    }
    let mut cargo = std::process::Command::new(cargo());
    cargo.current_dir(root);
    let ws = read(cargo, &root.join("app"))?;
    Ok(WORKSPACE.get_or_init(|| ws).clone())
}

fn read(mut cargo: std::process::Command, app_dir: &Path) -> Result<Workspace> {
    let out = cargo
        .args(["metadata", "--no-deps", "--format-version", "1"])
        .stdin(std::process::Stdio::null())
        .output()
        .context("cannot run `cargo metadata`: is cargo on PATH?")?;
    if !out.status.success() {
        bail!(
            "`cargo metadata` failed, so the workspace cannot be read: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    parse(&out.stdout, app_dir)
}

fn parse(json: &[u8], app_dir: &Path) -> Result<Workspace> {
    #[derive(serde::Deserialize)]
    struct Metadata {
        target_directory: PathBuf,
        workspace_root: PathBuf,
        packages: Vec<Package>,
    }
    #[derive(serde::Deserialize)]
    struct Package {
        name: String,
        version: String,
        manifest_path: PathBuf,
        targets: Vec<Target>,
        dependencies: Vec<Dependency>,
    }
    #[derive(serde::Deserialize)]
    struct Dependency {
        /// `null` (normal), `"build"` or `"dev"`.
        kind: Option<String>,
        /// Set for path dependencies only.
        path: Option<PathBuf>,
    }
    #[derive(serde::Deserialize)]
    struct Target {
        name: String,
        kind: Vec<String>,
    }
    let metadata: Metadata =
        serde_json::from_slice(json).context("cannot read the output of `cargo metadata`")?;
    let same = |a: &Path, b: &Path| {
        a == b || matches!((a.canonicalize(), b.canonicalize()), (Ok(a), Ok(b)) if a == b)
    };
    let manifest = app_dir.join("Cargo.toml");
    let Some(package) = metadata
        .packages
        .iter()
        .find(|p| same(&p.manifest_path, &manifest))
    else {
        bail!(
            "{} is not a package of the workspace: keep the service in app/ and `app` in the \
             workspace's members",
            manifest.display()
        );
    };
    // The app's directory and, through path dependencies that are not dev-only, every
    // directory inside the workspace it builds from.
    let mut sources: Vec<PathBuf> = Vec::new();
    let mut todo: Vec<PathBuf> = package
        .manifest_path
        .parent()
        .map(Path::to_owned)
        .into_iter()
        .collect();
    while let Some(dir) = todo.pop() {
        let Ok(relative) = dir.strip_prefix(&metadata.workspace_root) else {
            continue; // outside the workspace (and its git history)
        };
        if sources.iter().any(|s| s == relative) {
            continue;
        }
        sources.push(relative.to_owned());
        let member = metadata
            .packages
            .iter()
            .find(|p| p.manifest_path.parent().is_some_and(|d| same(d, &dir)));
        todo.extend(
            member
                .iter()
                .flat_map(|p| &p.dependencies)
                .filter(|d| d.kind.as_deref() != Some("dev"))
                .filter_map(|d| d.path.clone()),
        );
    }
    sources.sort();
    let bins: Vec<String> = package
        .targets
        .iter()
        .filter(|t| t.kind.iter().any(|k| k == "bin"))
        .map(|t| t.name.clone())
        .collect();
    let bin = match bins.as_slice() {
        [one] => one.clone(),
        _ if bins.contains(&package.name) => package.name.clone(),
        [] => bail!(
            "package {:?} in app/ builds no binary: the image needs one (src/main.rs)",
            package.name
        ),
        many => bail!(
            "package {:?} in app/ builds several binaries ({}) and none is named like the package: \
             the image runs one, so rename it to {:?}",
            package.name,
            many.join(", "),
            package.name
        ),
    };
    Ok(Workspace {
        app: App {
            package: package.name.clone(),
            version: package.version.clone(),
            bin,
            sources,
        },
        target_dir: metadata.target_directory,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> PathBuf {
        crate::project::root()
    }

    #[tokio::test]
    async fn a_cargo_stopped_by_a_signal_is_told_apart_from_one_that_failed() {
        let sh = |script: &str| {
            let mut cmd = tokio::process::Command::new("sh");
            cmd.args(["-c", script]);
            cmd
        };
        let err = run_cargo(sh("kill -INT $$")).await.unwrap_err().to_string();
        assert_eq!(err, "cargo was stopped by signal 2");
        assert_eq!(run_cargo(sh("exit 101")).await.unwrap().code(), Some(101));
    }

    #[test]
    fn cargo_says_where_it_builds_and_what_app_builds() {
        let cargo = |dir: Option<&Path>| {
            let mut cmd = std::process::Command::new(cargo());
            cmd.current_dir(root())
                .env_remove("CARGO_TARGET_DIR")
                .env_remove("CARGO_BUILD_TARGET_DIR");
            if let Some(dir) = dir {
                cmd.env("CARGO_TARGET_DIR", dir);
            }
            cmd
        };
        let app_dir = root().join("app");
        let ws = read(cargo(None), &app_dir).unwrap();
        assert_eq!(ws.target_dir, root().join("target"));
        assert_eq!(
            (ws.app.package.as_str(), ws.app.bin.as_str()),
            ("app", "app")
        );
        assert_eq!(ws.app.version, "0.1.0");
        assert_eq!(ws.app.sources, [PathBuf::from("app")]);
        let elsewhere = std::env::temp_dir().join("xtask-target-dir-test");
        assert_eq!(
            read(cargo(Some(&elsewhere)), &app_dir).unwrap().target_dir,
            elsewhere
        );
        let mut outside = cargo(None);
        outside.current_dir("/");
        let err = read(outside, &app_dir).unwrap_err().to_string();
        assert!(err.contains("`cargo metadata` failed"), "{err}");
    }

    #[test]
    fn the_app_is_found_by_its_directory_with_its_binary_and_sources() {
        let json = |name: &str, bins: &[&str]| {
            let targets: Vec<_> = bins
                .iter()
                .map(|b| serde_json::json!({"name": b, "kind": ["bin"]}))
                .chain([serde_json::json!({"name": name.replace('-', "_"), "kind": ["lib"]})])
                .collect();
            let lib = |name: &str, deps: serde_json::Value| {
                serde_json::json!({"name": name, "version": "0.1.0",
                    "manifest_path": format!("/w/crates/{name}/Cargo.toml"),
                    "targets": [{"name": name, "kind": ["lib"]}], "dependencies": deps})
            };
            serde_json::json!({
                "target_directory": "/t",
                "workspace_root": "/w",
                "packages": [
                    {"name": "xtask", "version": "0.1.0", "manifest_path": "/w/xtask/Cargo.toml",
                     "targets": [{"name": "xtask", "kind": ["bin"]}],
                     "dependencies": [{"kind": null, "path": "/w/crates/admin"}]},
                    {"name": name, "version": "2.3.4", "manifest_path": "/w/app/Cargo.toml",
                     "targets": targets,
                     "dependencies": [
                        {"kind": null},
                        {"kind": null, "path": "/w/crates/domain"},
                        {"kind": "dev", "path": "/w/crates/testkit"},
                        {"kind": "build", "path": "/w/vendor/codegen"},
                        {"kind": null, "path": "/elsewhere/shared"},
                     ]},
                    lib("domain", serde_json::json!([{"kind": null, "path": "/w/crates/core"}])),
                    lib("core", serde_json::json!([{"kind": null, "path": "/w/crates/domain"}])),
                    lib("testkit", serde_json::json!([])),
                    lib("admin", serde_json::json!([])),
                ]
            })
            .to_string()
        };
        let app = |name: &str, bins: &[&str]| {
            parse(json(name, bins).as_bytes(), Path::new("/w/app")).map(|ws| ws.app)
        };
        assert_eq!(
            app("orders-api", &["server"]).unwrap(),
            App {
                package: "orders-api".into(),
                version: "2.3.4".into(),
                bin: "server".into(),
                // Not the dev-dependency, not what only xtask uses, nothing outside; a build
                // dependency outside the members too; the cycle ends.
                sources: ["app", "crates/core", "crates/domain", "vendor/codegen"]
                    .map(PathBuf::from)
                    .to_vec(),
            }
        );
        assert_eq!(app("orders", &["migrate", "orders"]).unwrap().bin, "orders");
        let err = app("orders", &["migrate", "server"])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("builds several binaries (migrate, server)"),
            "{err}"
        );
        let err = app("orders", &[]).unwrap_err().to_string();
        assert!(err.contains("builds no binary"), "{err}");
        let err = parse(
            json("orders", &["orders"]).as_bytes(),
            Path::new("/w/service"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("/w/service/Cargo.toml is not a package of the workspace"),
            "{err}"
        );
    }
}
