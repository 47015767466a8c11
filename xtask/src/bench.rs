//! `cargo xtask bench`: the speed story, measured against its baseline in the same run.
//! Medians of several runs after a warm-up, both sides alternating; nothing typed in by hand
//! except nginx:alpine's published compressed size, which is quoted, not measured.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use xshell::{cmd, Shell};

use crate::flags;
use crate::image;
use crate::preflight;
use crate::project::Environment;
use crate::ui::Ui;

const NGINX_ALPINE_PUBLISHED_MB: f64 = 20.0;

pub async fn run(root: &Path, cmd: flags::Bench) -> Result<()> {
    let runs = cmd.runs.max(1);
    // The servers under test listen here; anything else there would be measured instead.
    for port in [18080, 18081] {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            bail!("port {port} is already in use by another program (`ss -ltnp | grep {port}` names it): stop it and run the bench again");
        }
    }
    let ui = Ui::new();
    let docker = crate::docker::connect().await?;
    let env = Environment::load(root, "dev")?;
    let sh = Shell::new()?;
    sh.change_dir(root);
    let mut rows: Vec<[String; 4]> = Vec::new();

    // Image size: the image over the binary it wraps.
    let img = image::ensure(root, &docker, &ui, &env.prefix()).await?;
    let binary = std::fs::metadata(&img.binary)
        .with_context(|| format!("cannot read {}", img.binary.display()))?
        .len();
    let local_ref = img.local_ref.clone();
    let saved = cmd!(sh, "docker save {local_ref}")
        .quiet()
        .output()
        .context("docker save failed")?
        .stdout;
    let gz = gzip_len(&saved)?;
    rows.push([
        "image size".into(),
        format!("{:.2} MB raw, {:.2} MB gzip", mb(img.size_bytes), mb(gz)),
        format!("binary {:.2} MB: image = {:.3}x binary; nginx:alpine ~{NGINX_ALPINE_PUBLISHED_MB} MB gzip (published)", mb(binary), img.size_bytes as f64 / binary as f64),
        goal(mb(gz) <= 2.0, "<= 2 MB gzip"),
    ]);

    // Warm rebuild after a one-line change: push-image's build vs bare cargo build.
    let edit = SourceEdit::new(root.join("app/src/lib.rs"))?;
    let package = crate::workspace::get(root)?.app.package;
    let (mut ours, mut bare) = (Vec::new(), Vec::new());
    let mut built = std::collections::HashSet::new();
    let progress = ui.spinner("bench: warm rebuild");
    let result = async {
        for i in 0..=runs {
            progress.set(run_label(i, runs));
            edit.apply(2 * i)?;
            let t = Instant::now();
            cmd!(sh, "cargo build --release --quiet -p {package}")
                .quiet()
                .run()?;
            let b = t.elapsed();
            edit.apply(2 * i + 1)?;
            let t = Instant::now();
            let edited = image::ensure(root, &docker, &ui, &env.prefix()).await?;
            let o = t.elapsed();
            if !built.insert(edited.local_ref.clone()) {
                bail!("the bench's edit to app/src/lib.rs did not change the image ({}): the warm rebuild row would measure nothing", edited.local_ref);
            }
            if i > 0 {
                bare.push(b);
                ours.push(o);
            }
        }
        anyhow::Ok(())
    }
    .await;
    drop(edit);
    result?;
    let (o, b) = (median(&mut ours), median(&mut bare));
    progress.done(format!(
        "{:.2} s vs {:.2} s",
        o.as_secs_f64(),
        b.as_secs_f64()
    ));
    rows.push([
        "warm rebuild".into(),
        format!("{:.2} s (static build + image)", o.as_secs_f64()),
        format!(
            "cargo build --release -p {package} {:.2} s: {:.2}x",
            b.as_secs_f64(),
            o.as_secs_f64() / b.as_secs_f64()
        ),
        goal(o.as_secs_f64() <= 1.2 * b.as_secs_f64(), "<= 1.2x"),
    ]);
    // Put the original image back in place for the rows below.
    let img = image::ensure(root, &docker, &ui, &env.prefix()).await?;

    // Startup: container start to the first 200 on /health.
    let expect = preflight::Expectations::of(&env)?;
    let mut startups = Vec::new();
    let progress = ui.spinner("bench: startup");
    for i in 0..=runs {
        progress.set(run_label(i, runs));
        let took = preflight::check(&docker, &ui, &img, &expect).await?;
        if i > 0 {
            startups.push(took);
        }
    }
    let s = median(&mut startups);
    progress.done(format!("{:.1} ms", s.as_secs_f64() * 1000.0));
    rows.push([
        "startup".into(),
        format!("{:.1} ms", s.as_secs_f64() * 1000.0),
        "-".into(),
        goal(s <= Duration::from_millis(100), "<= 100 ms"),
    ]);

    // Throughput, latency and memory: the app vs nginx serving the same body.
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let place = Placement::for_cores(cores);
    let background = if crate::fakecloud::healthy() {
        "fakecloud was running during the server rows: its background work preempts them (stop it for the quietest numbers)"
    } else {
        "fakecloud not running during the server rows"
    };
    let body = {
        let mut app = Server::app(&img.binary, 18080, &place)?;
        let (_, page) = crate::fakecloud::http_get_at(([127, 0, 0, 1], 18080).into(), "/")?;
        app.stop();
        page
    };
    for path in ["/", "/health"] {
        let (mut app, mut ngx) = (Samples::default(), Samples::default());
        let (mut app_rss, mut ngx_rss) = (0, 0);
        let progress = ui.spinner(format!("bench: throughput {path}"));
        for i in 0..=runs {
            progress.set(format!("{}: app, then nginx", run_label(i, runs)));
            let mut server = Server::app(&img.binary, 18080, &place)?;
            let a = server.load(path, &place)?;
            app_rss = server.rss_kb();
            server.stop();
            let mut nginx = Server::nginx(&body, 18081, &place)?;
            let n = nginx.load(path, &place)?;
            ngx_rss = nginx.rss_kb();
            nginx.stop();
            if i > 0 {
                app.push(a);
                ngx.push(n);
            }
        }
        let (ar, nr) = (median_f(&mut app.rps), median_f(&mut ngx.rps));
        let (ap, np) = (median_f(&mut app.p99), median_f(&mut ngx.p99));
        progress.done(format!("{ar:.0} vs {nr:.0} req/s"));
        rows.push([
            format!("throughput {path}"),
            format!("{ar:.0} req/s, p99 {ap:.2} ms ({})", app.spread()),
            format!(
                "nginx {nr:.0} req/s, p99 {np:.2} ms ({}): {:.2}x",
                ngx.spread(),
                ar / nr
            ),
            goal(ar >= nr && ap <= np, ">= 1.0x, p99 <= nginx"),
        ]);
        if path == "/" {
            rows.push([
                "memory after load".into(),
                format!("{app_rss} KiB RSS"),
                format!("nginx {ngx_rss} KiB (master + workers)"),
                goal(app_rss <= ngx_rss, "<= nginx"),
            ]);
        }
    }

    // No-op deploy against fakecloud, after the server rows: the emulator's own background work
    // preempts the servers (see BENCHMARKS.md). The warm-up run deploys what is not there yet.
    if cmd.deploy {
        let exe = std::env::current_exe()?;
        let mut times = Vec::new();
        let mut last = String::new();
        let progress = ui.spinner("bench: no-op deploy");
        for i in 0..=runs {
            progress.set(match i {
                0 => "warm-up: deploys the dev environment if it is not there yet".into(),
                _ => run_label(i, runs),
            });
            let t = Instant::now();
            let out = Command::new(&exe)
                .args(["deploy", "--local"])
                .env("CI", "1")
                .current_dir(root)
                .output()?;
            if !out.status.success() {
                bail!(
                    "deploy --local failed during the benchmark:\n{}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            if i > 0 {
                times.push(t.elapsed());
            }
            last = String::from_utf8_lossy(&out.stdout).into_owned();
        }
        let field = |k: &str| {
            last.lines()
                .find_map(|l| l.strip_prefix(k))
                .unwrap_or("?")
                .trim()
                .to_owned()
        };
        let d = median(&mut times);
        progress.done(format!("{:.2} s", d.as_secs_f64()));
        rows.push([
            "no-op deploy".into(),
            format!("{:.2} s", d.as_secs_f64()),
            format!(
                "pushed {}, stacks changed {}",
                field("pushed: "),
                field("stacks changed: ")
            ),
            goal(
                d <= Duration::from_secs(2)
                    && field("pushed: ") == "0 bytes"
                    && field("stacks changed: ") == "0",
                "<= 2 s, 0 bytes, 0 stacks",
            ),
        ]);
    }

    println!(
        "\ncores: {cores} ({}), runs per row: {runs} (after 1 warm-up), medians\n{background}\n",
        place.describe()
    );
    println!("| row | ours | baseline (same run) | goal |\n|---|---|---|---|");
    for r in rows {
        println!("| {} | {} | {} | {} |", r[0], r[1], r[2], r[3]);
    }
    Ok(())
}

/// The warm rebuild's one-line change to the app's source. The file is put back as it was when
/// this is dropped: on success, on error and on Ctrl-C (which drops the command's future).
struct SourceEdit {
    path: std::path::PathBuf,
    original: String,
}

impl SourceEdit {
    fn new(path: std::path::PathBuf) -> Result<SourceEdit> {
        let original = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        Ok(SourceEdit { path, original })
    }

    /// Change the source so that the binary changes too: after a comment-only edit the binary
    /// is byte-identical and the image step (rightly) has nothing to do, which would flatter the row.
    fn apply(&self, i: usize) -> std::io::Result<()> {
        let mark = format!("bench edit {i:04}");
        std::fs::write(
            &self.path,
            format!(
                "{}const _: () = {{ #[used] #[link_section = \".note.bench\"] static EDIT: [u8; {}] = *b\"{mark}\"; }};\n",
                self.original,
                mark.len()
            ),
        )
    }
}

impl Drop for SourceEdit {
    fn drop(&mut self) {
        if let Err(e) = std::fs::write(&self.path, &self.original) {
            eprintln!(
                "warning: could not put {} back as it was ({e}): remove the `bench edit` line at its end",
                self.path.display()
            );
        }
    }
}

/// `warm-up` for run 0, `run i/n` after it.
fn run_label(i: usize, runs: usize) -> String {
    match i {
        0 => "warm-up".into(),
        _ => format!("run {i}/{runs}"),
    }
}

fn goal(met: bool, text: &str) -> String {
    format!("{} {text}", if met { "met:" } else { "MISSED:" })
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1_000_000.0
}

fn gzip_len(data: &[u8]) -> Result<u64> {
    use std::io::Write;
    let mut child = Command::new("gzip")
        .arg("-c")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("gzip")?;
    let mut stdin = child.stdin.take().unwrap();
    let data = data.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&data));
    let out = child.wait_with_output()?;
    writer
        .join()
        .map_err(|_| anyhow::anyhow!("gzip writer panicked"))??;
    Ok(out.stdout.len() as u64)
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// The median; leaves `v` sorted.
fn median_f(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// One wrk run: requests per second, p99 latency in ms, how busy the load generator's core
/// was (when it has one of its own: near 100 %, wrk's own queueing shows up in the latencies),
/// and how often the server lost its core to other work.
struct Load {
    rps: f64,
    p99: f64,
    load_core_busy: Option<f64>,
    preempted_per_s: f64,
}

#[derive(Default)]
struct Samples {
    rps: Vec<f64>,
    p99: Vec<f64>,
    busy: Vec<f64>,
    preempted: Vec<f64>,
}

impl Samples {
    fn push(&mut self, load: Load) {
        self.rps.push(load.rps);
        self.p99.push(load.p99);
        self.busy.extend(load.load_core_busy);
        self.preempted.push(load.preempted_per_s);
    }

    /// p99 is the noisiest number here: its range over the runs, how often the server was
    /// preempted, and the load core's median load.
    fn spread(&mut self) -> String {
        self.p99.sort_by(|a, b| a.total_cmp(b));
        let mut text = format!(
            "runs {:.2}-{:.2}; preempted {:.0}/s",
            self.p99[0],
            self.p99[self.p99.len() - 1],
            median_f(&mut self.preempted)
        );
        if !self.busy.is_empty() {
            text.push_str(&format!(
                "; wrk's core {:.0} % busy",
                median_f(&mut self.busy) * 100.0
            ));
        }
        text
    }
}

/// `wrk --latency` with one thread, on the load core; `preemptions` counts the server's.
fn wrk(port: u16, path: &str, place: &Placement, preemptions: impl Fn() -> u64) -> Result<Load> {
    let (preempted_before, started) = (preemptions(), Instant::now());
    let before = place.load.and_then(cpu_times);
    let out = place
        .load_generator("wrk")
        .args([
            "--latency",
            "-t",
            "1",
            "-c",
            "64",
            "-d",
            "3s",
            &format!("http://127.0.0.1:{port}{path}"),
        ])
        .output()
        .context("cannot run wrk: install it (`apt-get install wrk`)")?;
    let after = place.load.and_then(cpu_times);
    let preempted_per_s =
        preemptions().saturating_sub(preempted_before) as f64 / started.elapsed().as_secs_f64();
    let (rps, p99) = parse_wrk(&String::from_utf8_lossy(&out.stdout))?;
    let load_core_busy = match (before, after) {
        (Some((busy0, total0)), Some((busy1, total1))) if total1 > total0 => {
            Some((busy1 - busy0) as f64 / (total1 - total0) as f64)
        }
        _ => None,
    };
    Ok(Load {
        rps,
        p99,
        load_core_busy,
        preempted_per_s,
    })
}

/// (busy, total) jiffies of one core, from /proc/stat.
fn cpu_times(core: usize) -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    parse_cpu_line(&stat, core)
}

fn parse_cpu_line(stat: &str, core: usize) -> Option<(u64, u64)> {
    let label = format!("cpu{core}");
    let line = stat
        .lines()
        .find(|l| l.split_whitespace().next() == Some(label.as_str()))?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal ...: idle and iowait are not busy.
    let total: u64 = fields.iter().take(8).sum();
    let idle = fields.get(3)? + fields.get(4).copied().unwrap_or(0);
    Some((total - idle, total))
}

/// Where the servers and the load generator run. With two cores or more, wrk gets the last core
/// and the server under test the others, with as many workers as it has cores (the same for the
/// app and nginx): neither competes with the load it is measured under. One core: no pinning.
#[derive(Debug, PartialEq, Eq)]
struct Placement {
    /// `taskset -c` list for the servers, or `None` to leave them unpinned.
    servers: Option<String>,
    /// The core wrk runs on, or `None` to leave it unpinned.
    load: Option<usize>,
    /// Workers per server: tokio worker threads, nginx worker processes.
    workers: usize,
}

impl Placement {
    fn for_cores(cores: usize) -> Placement {
        match cores {
            0 | 1 => Placement {
                servers: None,
                load: None,
                workers: 1,
            },
            2 => Placement {
                servers: Some("0".into()),
                load: Some(1),
                workers: 1,
            },
            n => Placement {
                servers: Some(format!("0-{}", n - 2)),
                load: Some(n - 1),
                workers: n - 1,
            },
        }
    }

    fn describe(&self) -> String {
        match (&self.servers, &self.load) {
            (Some(servers), Some(load)) => format!(
                "app and nginx on core(s) {servers} with {} worker(s) each, wrk on core {load}",
                self.workers
            ),
            _ => format!("{} worker(s) each, nothing pinned", self.workers),
        }
    }

    /// A server under test, pinned to the server cores.
    fn server(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        pinned(self.servers.as_deref(), program)
    }

    /// The load generator, pinned to its core.
    fn load_generator(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        pinned(self.load.map(|c| c.to_string()).as_deref(), program)
    }
}

/// `program`, pinned to `cpus` (a `taskset -c` list) when given.
fn pinned(cpus: Option<&str>, program: impl AsRef<std::ffi::OsStr>) -> Command {
    match cpus {
        Some(cpus) => {
            let mut c = Command::new("taskset");
            c.arg("-c").arg(cpus).arg(program);
            c
        }
        None => Command::new(program),
    }
}

pub fn parse_wrk(text: &str) -> Result<(f64, f64)> {
    let rps = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .with_context(|| format!("no Requests/sec in wrk's output:\n{text}"))?;
    let p99 = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("99%"))
        .and_then(|v| latency_ms(v.trim()))
        .with_context(|| format!("no 99% latency in wrk's output:\n{text}"))?;
    Ok((rps, p99))
}

fn latency_ms(v: &str) -> Option<f64> {
    let (n, unit) = v.split_at(v.find(|c: char| c.is_ascii_alphabetic())?);
    let n: f64 = n.parse().ok()?;
    Some(match unit {
        "us" => n / 1000.0,
        "ms" => n,
        "s" => n * 1000.0,
        _ => return None,
    })
}

/// A number from a `/proc/.../status` line such as `VmRSS:   3536 kB`.
fn status_field(path: &str, key: &str) -> Option<u64> {
    parse_status_field(&std::fs::read_to_string(path).ok()?, key)
}

fn parse_status_field(status: &str, key: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

struct Server {
    child: Child,
    port: u16,
    dir: Option<std::path::PathBuf>,
}

impl Server {
    fn app(bin: &Path, port: u16, place: &Placement) -> Result<Server> {
        // Logs off the terminal: the load would print a line per request.
        let child = place
            .server(bin)
            .env("PORT", port.to_string())
            .env("TOKIO_WORKER_THREADS", place.workers.to_string())
            .stdout(Stdio::null())
            .spawn()?;
        Server::listening(child, port, None)
    }

    fn nginx(body: &str, port: u16, place: &Placement) -> Result<Server> {
        let workers = place.workers;
        let dir = std::env::temp_dir().join(format!("xtask-bench-nginx-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("html"))?;
        std::fs::write(dir.join("html/index.html"), body)?;
        std::fs::write(dir.join("html/health"), "ok\n")?;
        let conf = format!(
            "worker_processes {workers};\ndaemon off;\nerror_log {d}/error.log;\npid {d}/nginx.pid;\nevents {{ worker_connections 1024; }}\n\
             http {{ access_log off; server {{ listen 127.0.0.1:{port}; root {d}/html; location = /health {{ default_type text/plain; }} }} }}\n",
            d = dir.display()
        );
        std::fs::write(dir.join("nginx.conf"), conf)?;
        let child = place
            .server("nginx")
            .args([
                "-c",
                &dir.join("nginx.conf").display().to_string(),
                "-p",
                &dir.display().to_string(),
            ])
            .stderr(Stdio::null())
            .spawn()
            .context("cannot run nginx: install it (`apt-get install nginx-light`)")?;
        Server::listening(child, port, Some(dir))
    }

    /// The server once it listens on `port`: it must be the one answering there, not another program.
    fn listening(mut child: Child, port: u16, dir: Option<std::path::PathBuf>) -> Result<Server> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = child.try_wait()? {
                bail!("the server for port {port} exited ({status}) before listening: is the port taken?");
            }
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(Server { child, port, dir });
            }
            if Instant::now() > deadline {
                bail!("nothing listens on 127.0.0.1:{port} after 10 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// wrk against this server, and how often the scheduler took its core away meanwhile
    /// (involuntary context switches: the stalls that make up the latency tail). Fails when the
    /// server died under the load (its numbers would be someone else's).
    fn load(&mut self, path: &str, place: &Placement) -> Result<Load> {
        let load = wrk(self.port, path, place, || self.preemptions())?;
        match self.child.try_wait()? {
            None => Ok(load),
            Some(status) => bail!("the server under test exited during the load ({status})"),
        }
    }

    /// The process and its children (nginx's workers).
    fn pids(&self) -> Vec<String> {
        let pid = self.child.id().to_string();
        let mut pids = vec![pid.clone()];
        if let Ok(out) = Command::new("pgrep").args(["-P", &pid]).output() {
            pids.extend(
                String::from_utf8_lossy(&out.stdout)
                    .split_whitespace()
                    .map(str::to_owned),
            );
        }
        pids
    }

    /// RSS of the process and its children, in KiB.
    fn rss_kb(&self) -> u64 {
        self.pids()
            .iter()
            .filter_map(|p| status_field(&format!("/proc/{p}/status"), "VmRSS:"))
            .sum()
    }

    /// Involuntary context switches of every thread of the process and its children.
    fn preemptions(&self) -> u64 {
        self.pids()
            .iter()
            .filter_map(|p| std::fs::read_dir(format!("/proc/{p}/task")).ok())
            .flat_map(|tasks| tasks.flatten())
            .filter_map(|t| {
                status_field(
                    &t.path().join("status").display().to_string(),
                    "nonvoluntary_ctxt_switches:",
                )
            })
            .sum()
    }

    fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_load_generator_gets_a_core_of_its_own() {
        let two = Placement::for_cores(2);
        assert_eq!(
            (two.servers.as_deref(), two.load, two.workers),
            (Some("0"), Some(1), 1)
        );
        let eight = Placement::for_cores(8);
        assert_eq!(
            (eight.servers.as_deref(), eight.load, eight.workers),
            (Some("0-6"), Some(7), 7)
        );
        let one = Placement::for_cores(1);
        assert_eq!((one.servers, one.load, one.workers), (None, None, 1));
        assert_eq!(
            Placement::for_cores(2).load_generator("wrk").get_program(),
            "taskset"
        );
    }

    #[test]
    fn a_core_busy_share_comes_from_proc_stat() {
        let stat =
            "cpu  10 0 10 80 0 0 0 0 0 0\ncpu0 5 0 5 40 0 0 0 0 0 0\ncpu1 30 1 9 50 10 0 0 0 0 0\n";
        assert_eq!(parse_cpu_line(stat, 1), Some((40, 100)));
        assert_eq!(parse_cpu_line(stat, 0), Some((10, 50)));
        assert_eq!(parse_cpu_line(stat, 7), None);
    }

    #[tokio::test]
    async fn the_source_edit_is_undone_even_when_the_bench_is_interrupted() {
        let path = std::env::temp_dir().join(format!("xtask-bench-edit-{}.rs", std::process::id()));
        std::fs::write(&path, "pub fn f() {}\n").unwrap();
        let work = async {
            let edit = SourceEdit::new(path.clone()).unwrap();
            edit.apply(3).unwrap();
            let edited = std::fs::read_to_string(&path).unwrap();
            assert!(edited.starts_with("pub fn f() {}\n"), "{edited}");
            assert!(edited.contains("bench edit 0003"), "{edited}");
            std::future::pending::<()>().await;
        };
        // What Ctrl-C does to a command: its future is dropped mid-way.
        let stopped = tokio::time::timeout(std::time::Duration::from_millis(50), work).await;
        assert!(stopped.is_err());
        let after = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(after, "pub fn f() {}\n");
    }

    #[test]
    fn reads_proc_status_fields() {
        let status = "Name:\tapp\nVmRSS:\t    3536 kB\nnonvoluntary_ctxt_switches:\t826\n";
        assert_eq!(parse_status_field(status, "VmRSS:"), Some(3536));
        assert_eq!(
            parse_status_field(status, "nonvoluntary_ctxt_switches:"),
            Some(826)
        );
        assert_eq!(parse_status_field(status, "VmSwap:"), None);
    }

    #[test]
    fn reads_wrk_output() {
        let text = "Running 3s test @ http://127.0.0.1:18080/\n  Latency Distribution\n     50%  200.00us\n     99%    1.50ms\n  123 requests in 3.00s\nRequests/sec:  41000.12\nTransfer/sec: 5MB\n";
        assert_eq!(parse_wrk(text).unwrap(), (41000.12, 1.5));
        assert_eq!(latency_ms("850.00us"), Some(0.85));
        assert!(parse_wrk("nothing").is_err());
    }
}
