//! The connection to the Docker engine (bollard), found the way the `docker` CLI finds it, with
//! the API version negotiated (Debian's `docker.io` daemon speaks 1.41).

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use bollard::Docker;

pub async fn connect() -> Result<Docker> {
    let (host, via) = engine()?;
    let fix = "start the Docker engine (`sudo systemctl start docker`, or `sudo dockerd &`) or point DOCKER_HOST at a running one";
    let docker = Docker::connect_with_host(&host)
        .with_context(|| format!("cannot use the Docker engine at {host}{via}: {fix}"))?;
    docker
        .negotiate_version()
        .await
        .with_context(|| format!("the Docker engine at {host}{via} is not reachable: {fix}"))
}

/// Where containers' published ports answer: on the engine's own host for an engine reached
/// over TCP (`DOCKER_HOST=tcp://docker:2375`, as in CI's docker-in-docker), else on this machine.
pub fn published_ip() -> Result<std::net::IpAddr> {
    let (host, via) = engine()?;
    published_ip_of(&host).with_context(|| {
        format!("cannot resolve the host of the Docker engine at {host}{via}, where its containers' ports are published")
    })
}

fn published_ip_of(host: &str) -> Result<std::net::IpAddr> {
    use std::net::ToSocketAddrs;
    let Some(authority) = ["tcp://", "http://", "https://"]
        .iter()
        .find_map(|scheme| host.strip_prefix(scheme))
    else {
        return Ok([127, 0, 0, 1].into());
    };
    let authority = authority.split('/').next().unwrap_or_default();
    let name = match authority.rsplit_once(':') {
        Some((name, port)) if port.parse::<u16>().is_ok() => name,
        _ => authority,
    };
    let name = name.trim_start_matches('[').trim_end_matches(']');
    Ok((name, 0)
        .to_socket_addrs()?
        .next()
        .context("the name has no address")?
        .ip())
}

/// `engine_host` from this process's environment, worked out once per run (the connection and
/// every pre-flight need it).
fn engine() -> Result<(String, String)> {
    static ENGINE: std::sync::OnceLock<(String, String)> = std::sync::OnceLock::new();
    if let Some(engine) = ENGINE.get() {
        return Ok(engine.clone());
    }
    let engine = engine_host(|var| std::env::var(var).ok())?;
    Ok(ENGINE.get_or_init(|| engine).clone())
}

/// Where the engine listens, and how that was chosen (for messages), as the `docker` CLI decides:
/// `DOCKER_HOST`; else the endpoint of the current context (`DOCKER_CONTEXT`, or `currentContext`
/// in `$DOCKER_CONFIG/config.json`, by default `~/.docker/`), which is how Docker Desktop and
/// rootless Docker are usually selected; else the default socket.
fn engine_host(var: impl Fn(&str) -> Option<String>) -> Result<(String, String)> {
    if let Some(host) = var("DOCKER_HOST").filter(|h| !h.is_empty()) {
        return Ok((host, " (DOCKER_HOST)".into()));
    }
    let config_dir = match (var("DOCKER_CONFIG"), var("HOME")) {
        (Some(dir), _) => PathBuf::from(dir),
        (None, Some(home)) => PathBuf::from(home).join(".docker"),
        (None, None) => PathBuf::from(".docker"),
    };
    let (context, from) = match var("DOCKER_CONTEXT").filter(|c| !c.is_empty()) {
        Some(name) => (Some(name), "DOCKER_CONTEXT".to_owned()),
        None => (
            current_context(&config_dir),
            config_dir.join("config.json").display().to_string(),
        ),
    };
    let default = || ("unix:///var/run/docker.sock".to_owned(), String::new());
    let Some(name) = context.filter(|name| name != "default") else {
        return Ok(default());
    };
    use sha2::{Digest, Sha256};
    let id = crate::image::hex(&Sha256::digest(&name));
    let meta = config_dir.join("contexts/meta").join(id).join("meta.json");
    let host = std::fs::read(&meta)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
        .and_then(|meta| {
            meta["Endpoints"]["docker"]["Host"]
                .as_str()
                .map(str::to_owned)
        });
    match host {
        Some(host) => Ok((host, format!(" (docker context {name:?})"))),
        None => bail!(
            "the Docker context {name:?} (chosen by {from}) has no engine endpoint in {}: \
             pick another with `docker context use`, or set DOCKER_HOST",
            meta.display()
        ),
    }
}

/// `currentContext` in the CLI's `config.json`, if any.
fn current_context(config_dir: &std::path::Path) -> Option<String> {
    let bytes = std::fs::read(config_dir.join("config.json")).ok()?;
    let config: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    config["currentContext"].as_str().map(str::to_owned)
}

/// Read a bollard stream to its end: push and build errors arrive *inside* the stream.
/// `each` sees every item and may turn it into an error.
pub async fn drain<T, S>(stream: S, mut each: impl FnMut(&T) -> Result<()>) -> Result<()>
where
    S: futures_util::Stream<Item = Result<T, bollard::errors::Error>>,
{
    use futures_util::StreamExt;
    let mut stream = std::pin::pin!(stream);
    let mut first_error = None;
    while let Some(item) = stream.next().await {
        let item = item.context("the Docker engine reported an error")?;
        if let Err(e) = each(&item) {
            first_error.get_or_insert(e);
        }
    }
    first_error.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn the_engine_is_found_the_way_the_docker_cli_finds_it() {
        let dir = std::env::temp_dir().join(format!("xtask-docker-test-{}", std::process::id()));
        let config = dir.join("config");
        // A context as `docker context create` stores it: under the SHA-256 of its name.
        let meta = config
            .join("contexts/meta/fe9c6bd7a66301f49ca9b6a70b217107cd1284598bfc254700c989b916da791e");
        std::fs::create_dir_all(&meta).unwrap();
        std::fs::write(
            meta.join("meta.json"),
            r#"{"Name":"desktop-linux","Metadata":{},"Endpoints":{"docker":{"Host":"unix:///home/u/.docker/desktop/docker.sock","SkipTLSVerify":false}}}"#,
        )
        .unwrap();
        let config_dir = config.to_str().unwrap().to_owned();
        let host = |set: &[(&str, &str)]| {
            let mut vars: HashMap<String, String> = set
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            vars.insert("DOCKER_CONFIG".into(), config_dir.clone());
            engine_host(|k| vars.get(k).cloned())
        };
        let desktop = "unix:///home/u/.docker/desktop/docker.sock";
        let default = "unix:///var/run/docker.sock";

        // No config.json: the default socket.
        assert_eq!(host(&[]).unwrap().0, default);
        std::fs::write(
            config.join("config.json"),
            r#"{"currentContext":"desktop-linux"}"#,
        )
        .unwrap();
        assert_eq!(host(&[]).unwrap().0, desktop);
        assert!(host(&[]).unwrap().1.contains("desktop-linux"));
        assert_eq!(host(&[("DOCKER_CONTEXT", "default")]).unwrap().0, default);
        assert_eq!(
            host(&[("DOCKER_HOST", "tcp://10.0.0.2:2375")]).unwrap().0,
            "tcp://10.0.0.2:2375"
        );
        let err = host(&[("DOCKER_CONTEXT", "gone")]).unwrap_err().to_string();
        assert!(
            err.contains(
                "the Docker context \"gone\" (chosen by DOCKER_CONTEXT) has no engine endpoint"
            ),
            "{err}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn published_ports_answer_on_the_engines_host() {
        let ip = |host: &str| published_ip_of(host).unwrap().to_string();
        assert_eq!(ip("unix:///var/run/docker.sock"), "127.0.0.1");
        assert_eq!(ip("tcp://10.1.2.3:2375"), "10.1.2.3");
        assert_eq!(ip("http://10.1.2.3"), "10.1.2.3");
        assert_eq!(ip("tcp://[::1]:2375"), "::1");
        assert!(["127.0.0.1", "::1"].contains(&ip("tcp://localhost:2376").as_str()));
        assert!(published_ip_of("tcp://no-such-host.invalid:2375").is_err());
    }
}
