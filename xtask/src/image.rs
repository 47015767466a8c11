//! The image logic: build the app as a static binary on the host, then a `FROM scratch` image
//! through the Docker Engine API from an in-memory context. The tag is derived from the inputs.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use bollard::query_parameters::BuildImageOptionsBuilder;
use bollard::Docker;
use sha2::{Digest, Sha256};
use xshell::{cmd, Shell};

use crate::ui::Ui;
use crate::workspace::App;

/// A local image ready to push.
#[derive(Debug, Clone)]
pub struct Image {
    /// `<name>:<tag>` in the local engine.
    pub local_ref: String,
    pub tag: String,
    /// Fargate's name for the architecture (`X86_64`, `ARM64`).
    pub cpu_architecture: String,
    pub size_bytes: u64,
    /// The static binary the image wraps.
    pub binary: PathBuf,
    /// False when the engine already had this tag.
    pub built: bool,
}

/// Build the binary and, if the engine does not have it yet, the image.
pub async fn ensure(root: &Path, docker: &Docker, ui: &Ui, name: &str) -> Result<Image> {
    let sh = Shell::new().context("cannot start a shell")?;
    sh.change_dir(root);
    let ws = crate::workspace::get(root)?;
    let revision = git_revision(&sh, &ws.app.sources);
    let triple = host_triple()?;

    let spinner = ui.spinner("app binary");
    spinner.set(format!(
        "cargo build --release -p {} --target {triple} (static)",
        ws.app.package
    ));
    build_static_binary(root, &ws.app, triple, &revision).await?;
    let binary = ws.target_dir.join(triple).join("release").join(&ws.app.bin);
    let bytes =
        std::fs::read(&binary).with_context(|| format!("cannot read {}", binary.display()))?;
    if !is_static_elf(&bytes) {
        spinner.failed("dynamically linked");
        bail!(
            "{} is dynamically linked, so it cannot run in a FROM scratch image: \
             make sure no `-C target-feature=-crt-static` reaches the build (RUSTFLAGS, .cargo/config.toml)",
            binary.display()
        );
    }
    spinner.done(format!(
        "{} ({:.1} MiB)",
        binary.display(),
        bytes.len() as f64 / 1048576.0
    ));

    let dockerfile_path = root.join("app").join("Dockerfile");
    let dockerfile = std::fs::read(&dockerfile_path)
        .with_context(|| format!("cannot read {}", dockerfile_path.display()))?;
    let tag = content_tag(&revision, &dockerfile, &bytes);
    let local_ref = format!("{name}:{tag}");

    let spinner = ui.spinner("image");
    let built = match docker.inspect_image(&local_ref).await {
        Ok(_) => false,
        Err(_) => {
            spinner.set("docker build (FROM scratch)");
            let context = build_context(&dockerfile, &bytes)?;
            let args = HashMap::from([
                ("VERSION", ws.app.version.clone()),
                ("REVISION", revision.clone()),
                ("SOURCE", "cargo xtask".to_owned()),
            ]);
            let options = BuildImageOptionsBuilder::default()
                .dockerfile("Dockerfile")
                .t(&local_ref)
                .rm(true)
                .forcerm(true)
                .buildargs(&args)
                .build();
            let stream =
                docker.build_image(options, None, Some(bollard::body_full(context.into())));
            crate::docker::drain(stream, |info: &bollard::models::BuildInfo| {
                if let Some(err) = &info.error_detail {
                    bail!(
                        "docker build failed: {}",
                        err.message.clone().unwrap_or_default()
                    );
                }
                if let Some(line) = info
                    .stream
                    .as_deref()
                    .map(str::trim)
                    .filter(|l| l.starts_with("Step"))
                {
                    spinner.set(line.to_owned());
                }
                Ok(())
            })
            .await
            .context(
                "building the image failed; check app/Dockerfile, whose build context holds only \
                 the Dockerfile and the binary (as `app`)",
            )?;
            true
        }
    };
    let inspect = docker
        .inspect_image(&local_ref)
        .await
        .with_context(|| format!("the engine has no image {local_ref} after building it"))?;
    let arch = inspect.architecture.unwrap_or_default();
    let image = Image {
        local_ref,
        tag,
        cpu_architecture: fargate_architecture(&arch)?.to_owned(),
        size_bytes: inspect.size.unwrap_or(0).max(0) as u64,
        binary,
        built,
    };
    spinner.done(format!(
        "{} ({}, {:.1} MiB{})",
        image.local_ref,
        arch,
        image.size_bytes as f64 / 1048576.0,
        if built { "" } else { ", already built" }
    ));
    Ok(image)
}

/// `cargo build` of the app.
async fn build_static_binary(root: &Path, app: &App, triple: &str, revision: &str) -> Result<()> {
    let (flags_var, flags) = static_rustflags(triple, |var| std::env::var(var).ok());
    let mut cargo = tokio::process::Command::new(crate::workspace::cargo());
    cargo
        .args(["build", "--release", "--locked", "--quiet"])
        .args(["-p", &app.package, "--bin", &app.bin, "--target", triple])
        .current_dir(root)
        .env(flags_var, flags)
        .env("APP_GIT_REVISION", revision);
    if !crate::workspace::run_cargo(cargo).await?.success() {
        bail!("building the app failed: fix the compile errors above and run again");
    }
    Ok(())
}

/// The variable and value that add `-C target-feature=+crt-static` to the app's build. Cargo
/// takes its flags from the first of these that is set, so the flag joins the user's own flags
/// there (say `RUSTFLAGS="--cfg tokio_unstable"`) instead of being ignored behind them.
fn static_rustflags(triple: &str, var: impl Fn(&str) -> Option<String>) -> (String, String) {
    const FLAG: [&str; 2] = ["-C", "target-feature=+crt-static"];
    let target_var = format!(
        "CARGO_TARGET_{}_RUSTFLAGS",
        triple.to_uppercase().replace('-', "_")
    );
    for (name, separator) in [
        ("CARGO_ENCODED_RUSTFLAGS", "\x1f"),
        ("RUSTFLAGS", " "),
        (target_var.as_str(), " "),
    ] {
        if let Some(own) = var(name) {
            let flags: Vec<&str> = [own.as_str()]
                .into_iter()
                .filter(|own| !own.is_empty())
                .chain(FLAG)
                .collect();
            return (name.to_owned(), flags.join(separator));
        }
    }
    (target_var, FLAG.join(" "))
}

pub fn host_triple() -> Result<&'static str> {
    match (std::env::consts::OS, std::env::consts::ARCH) {
        ("linux", "x86_64") => Ok("x86_64-unknown-linux-gnu"),
        ("linux", "aarch64") => Ok("aarch64-unknown-linux-gnu"),
        (os, arch) => bail!(
            "building the image needs a Linux host (x86_64 or aarch64), this is {os}/{arch}: \
             run `cargo xtask` in a Linux VM or CI runner"
        ),
    }
}

/// Docker's architecture name to the task definition's `CpuArchitecture`.
pub fn fargate_architecture(docker_arch: &str) -> Result<&'static str> {
    match docker_arch {
        "amd64" => Ok("X86_64"),
        "arm64" => Ok("ARM64"),
        other => bail!(
            "the image is built for {other:?}, but Fargate runs only amd64 and arm64: build on an \
             x86_64 or aarch64 host"
        ),
    }
}

/// What every build reads besides the app's sources, relative to the workspace root.
const BUILD_INPUTS: &[&str] = &[
    "Cargo.toml",
    "Cargo.lock",
    ".cargo",
    "rust-toolchain",
    "rust-toolchain.toml",
];

/// `abc1234def56`, the last commit that changed what the binary is built from: the app's
/// `sources` (`app/` and the workspace crates it depends on) and `BUILD_INPUTS`, so a commit
/// that changes only `infra/` (or the README) leaves the binary, its image tag and the running
/// tasks alone. `...-dirty` when those have uncommitted changes or new files; `nogit` outside git.
fn git_revision(sh: &Shell, sources: &[PathBuf]) -> String {
    let inputs: Vec<&std::ffi::OsStr> = sources
        .iter()
        .map(|p| p.as_os_str())
        .chain(BUILD_INPUTS.iter().map(std::ffi::OsStr::new))
        .collect();
    let inputs = &inputs;
    let rev = cmd!(sh, "git log -1 --format=%H -- {inputs...}")
        .quiet()
        .ignore_stderr()
        .read()
        .ok()
        .filter(|rev| rev.len() >= 12);
    let Some(rev) = rev else {
        return "nogit".into();
    };
    let dirty = cmd!(sh, "git status --porcelain -- {inputs...}")
        .quiet()
        .ignore_stderr()
        .read()
        .map(|s| !s.trim().is_empty())
        .unwrap_or(false);
    let rev = &rev[..12];
    if dirty {
        format!("{rev}-dirty")
    } else {
        rev.to_owned()
    }
}

/// Deterministic tag: the revision plus a hash of everything that goes into the image.
/// The same inputs always give the same tag; different inputs never share one.
pub fn content_tag(revision: &str, dockerfile: &[u8], binary: &[u8]) -> String {
    let mut h = Sha256::new();
    for part in [dockerfile, binary] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part);
    }
    format!("{revision}-{}", hex(&h.finalize()[..6]))
}

/// Lower-case hex, as digests and content ids are written.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The build context as an in-memory tar: the Dockerfile and the binary (mode 0555).
pub fn build_context(dockerfile: &[u8], binary: &[u8]) -> Result<Vec<u8>> {
    let mut tar = tar::Builder::new(Vec::new());
    for (name, data, mode) in [("Dockerfile", dockerfile, 0o444), ("app", binary, 0o555)] {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(mode);
        header.set_mtime(0);
        header.set_cksum();
        tar.append_data(&mut header, name, data)
            .context("cannot build the image context")?;
    }
    tar.into_inner().context("cannot build the image context")
}

/// True for a 64-bit little-endian ELF file without a program interpreter (statically linked).
pub fn is_static_elf(bytes: &[u8]) -> bool {
    let u16_at = |o: usize| {
        bytes
            .get(o..o + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]) as usize)
    };
    let u32_at = |o: usize| {
        bytes
            .get(o..o + 4)
            .map(|b| u32::from_le_bytes(b.try_into().unwrap()))
    };
    let u64_at = |o: usize| {
        bytes
            .get(o..o + 8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap()) as usize)
    };
    if bytes.get(..6) != Some(b"\x7fELF\x02\x01") {
        return false;
    }
    let (Some(phoff), Some(phentsize), Some(phnum)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38))
    else {
        return false;
    };
    const PT_INTERP: u32 = 3;
    (0..phnum).all(|i| u32_at(phoff + i * phentsize).is_some_and(|t| t != PT_INTERP))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_static_flag_joins_the_flags_cargo_would_use() {
        let flags = |set: &[(&str, &str)]| {
            let set: HashMap<String, String> = set
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            static_rustflags("x86_64-unknown-linux-gnu", |k| set.get(k).cloned())
        };
        let target = "CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUSTFLAGS";
        let pair = |k: &str, v: &str| (k.to_owned(), v.to_owned());
        assert_eq!(flags(&[]), pair(target, "-C target-feature=+crt-static"));
        assert_eq!(
            flags(&[(target, "-C opt-level=3")]),
            pair(target, "-C opt-level=3 -C target-feature=+crt-static")
        );
        assert_eq!(
            flags(&[(target, "-g"), ("RUSTFLAGS", "--cfg tokio_unstable")]),
            pair(
                "RUSTFLAGS",
                "--cfg tokio_unstable -C target-feature=+crt-static"
            )
        );
        assert_eq!(
            flags(&[("RUSTFLAGS", "")]),
            pair("RUSTFLAGS", "-C target-feature=+crt-static")
        );
        assert_eq!(
            flags(&[
                ("RUSTFLAGS", "-g"),
                ("CARGO_ENCODED_RUSTFLAGS", "--cfg\x1ffoo")
            ]),
            pair(
                "CARGO_ENCODED_RUSTFLAGS",
                "--cfg\x1ffoo\x1f-C\x1ftarget-feature=+crt-static"
            )
        );
    }

    #[test]
    fn tag_is_deterministic_and_follows_the_content() {
        let a = content_tag("abc", b"FROM scratch", b"binary-1");
        assert_eq!(a, content_tag("abc", b"FROM scratch", b"binary-1"));
        assert_ne!(a, content_tag("abc", b"FROM scratch", b"binary-2"));
        assert_ne!(a, content_tag("abc", b"FROM scratch\n", b"binary-1"));
        // Moving bytes between the two inputs changes the tag too.
        assert_ne!(
            content_tag("abc", b"ab", b"c"),
            content_tag("abc", b"a", b"bc")
        );
        assert!(a.starts_with("abc-") && a.len() == "abc-".len() + 12, "{a}");
        assert_ne!(a, "latest");
    }

    #[test]
    fn the_revision_follows_the_apps_inputs_only() {
        let dir = std::env::temp_dir().join(format!("xtask-revision-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("app/src")).unwrap();
        std::fs::create_dir_all(dir.join("infra")).unwrap();
        let sh = Shell::new().unwrap();
        sh.change_dir(&dir);
        let sources = [PathBuf::from("app"), PathBuf::from("crates/domain")];
        let git_revision = |sh: &Shell| git_revision(sh, &sources);
        assert_eq!(git_revision(&sh), "nogit", "a folder without history");
        let commit = |message: &str| {
            cmd!(sh, "git add -A").quiet().run().unwrap();
            cmd!(
                sh,
                "git -c user.name=t -c user.email=t@t -c commit.gpgsign=false commit -q -m {message}"
            )
            .quiet()
            .run()
            .unwrap();
            let head = cmd!(sh, "git rev-parse HEAD").quiet().read().unwrap();
            head[..12].to_owned()
        };
        cmd!(sh, "git init -q").quiet().run().unwrap();
        std::fs::write(dir.join("app/src/main.rs"), "fn main() {}\n").unwrap();
        std::fs::write(dir.join("infra/ecs.yaml"), "Resources: {}\n").unwrap();
        let app_commit = commit("app");
        assert_eq!(git_revision(&sh), app_commit);

        // Infrastructure only: committed or not, the app's revision stays.
        std::fs::write(dir.join("infra/ecs.yaml"), "Resources: {A: 1}\n").unwrap();
        assert_eq!(git_revision(&sh), app_commit);
        commit("infra");
        assert_eq!(git_revision(&sh), app_commit);

        // The app's inputs: a change, a new file, a committed lock file.
        std::fs::write(dir.join("app/src/main.rs"), "fn main() { }\n").unwrap();
        assert_eq!(git_revision(&sh), format!("{app_commit}-dirty"));
        commit("app again");
        std::fs::write(dir.join("app/src/new.rs"), "").unwrap();
        assert!(
            git_revision(&sh).ends_with("-dirty"),
            "an untracked app file"
        );
        std::fs::remove_file(dir.join("app/src/new.rs")).unwrap();
        std::fs::write(dir.join("Cargo.lock"), "# lock\n").unwrap();
        let lock_commit = commit("lock");
        assert_eq!(git_revision(&sh), lock_commit);

        // A workspace crate the app depends on is the app's too; one it does not is not.
        std::fs::create_dir_all(dir.join("crates/domain/src")).unwrap();
        std::fs::write(dir.join("crates/domain/src/lib.rs"), "").unwrap();
        assert_eq!(git_revision(&sh), format!("{lock_commit}-dirty"));
        let domain_commit = commit("domain");
        assert_eq!(git_revision(&sh), domain_commit);
        std::fs::create_dir_all(dir.join("crates/admin/src")).unwrap();
        std::fs::write(dir.join("crates/admin/src/lib.rs"), "").unwrap();
        commit("admin");
        assert_eq!(git_revision(&sh), domain_commit);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn context_holds_dockerfile_and_executable_binary() {
        let tar_bytes = build_context(b"FROM scratch\n", b"\x7fELF...").unwrap();
        let mut archive = tar::Archive::new(tar_bytes.as_slice());
        let entries: Vec<(String, u32, u64)> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.path().unwrap().display().to_string(),
                    e.header().mode().unwrap(),
                    e.size(),
                )
            })
            .collect();
        assert_eq!(
            entries,
            [("Dockerfile".into(), 0o444, 13), ("app".into(), 0o555, 7)]
        );
    }

    #[test]
    fn a_dynamically_linked_binary_is_not_static() {
        // This test binary is a normal (dynamically linked) Rust executable.
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        assert!(!is_static_elf(&me));
        assert!(!is_static_elf(b"#!/bin/sh\n"));
    }

    #[test]
    fn architectures_map_to_fargate_names() {
        assert_eq!(fargate_architecture("amd64").unwrap(), "X86_64");
        assert_eq!(fargate_architecture("arm64").unwrap(), "ARM64");
        assert!(fargate_architecture("s390x").is_err());
    }
}
