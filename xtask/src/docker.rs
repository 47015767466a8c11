//! The connection to the Docker engine (bollard), honouring `DOCKER_HOST`, with the API version
//! negotiated (Debian's `docker.io` daemon speaks 1.41).

use anyhow::{Context, Result};
use bollard::Docker;

pub async fn connect() -> Result<Docker> {
    let host =
        std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into());
    let fix = "start the Docker engine (`sudo systemctl start docker`, or `sudo dockerd &`) or point DOCKER_HOST at a running one";
    let docker = Docker::connect_with_defaults()
        .with_context(|| format!("cannot use the Docker engine at {host}: {fix}"))?;
    docker
        .negotiate_version()
        .await
        .with_context(|| format!("the Docker engine at {host} is not reachable: {fix}"))
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
