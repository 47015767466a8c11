//! The terminal UI: spinners with elapsed time on a terminal, plain timestamped lines otherwise
//! (CI logs stay readable), and the one-line error rendering every command ends with.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Progress output goes to stderr; results (URLs, digests, summaries) go to stdout.
#[derive(Clone)]
pub struct Ui {
    multi: MultiProgress,
    live: bool,
    started: Instant,
    /// One question at a time (vpc and ecr deploy concurrently, and each may ask).
    asking: std::sync::Arc<tokio::sync::Mutex<()>>,
    /// While a question waits for its answer, lines wait here instead of breaking into it.
    held: std::sync::Arc<Mutex<Option<Vec<String>>>>,
}

impl Ui {
    pub fn new() -> Ui {
        let live = std::io::stderr().is_terminal() && std::env::var_os("CI").is_none();
        Ui {
            multi: MultiProgress::with_draw_target(spinners_target(live)),
            live,
            started: Instant::now(),
            asking: Default::default(),
            held: Default::default(),
        }
    }

    /// A line above the spinners (or a plain line when not on a terminal).
    pub fn line(&self, text: impl AsRef<str>) {
        let text = if self.live {
            text.as_ref().to_owned()
        } else {
            format!(
                "[{:>6}] {}",
                format_duration(self.started.elapsed()),
                text.as_ref()
            )
        };
        match self.held.lock().unwrap().as_mut() {
            Some(held) => held.push(text),
            None => self.print(&text),
        }
    }

    fn print(&self, line: &str) {
        if self.live {
            let _ = self.multi.println(line);
        } else {
            eprintln!("{line}");
        }
    }

    /// Start a long wait: a spinner labelled `label`, whose message can change as it goes.
    pub fn spinner(&self, label: impl Into<String>) -> Spinner {
        let label = label.into();
        let bar = self.live.then(|| {
            let pb = self.multi.add(ProgressBar::new_spinner());
            pb.set_style(
                ProgressStyle::with_template("{spinner:.cyan} {prefix:<28} {wide_msg} [{elapsed}]")
                    .expect("valid template"),
            );
            pb.set_prefix(label.clone());
            pb.enable_steady_tick(Duration::from_millis(120));
            pb
        });
        if !self.live {
            self.line(format!("{label} ..."));
        }
        Spinner {
            ui: self.clone(),
            bar,
            label,
            started: Instant::now(),
            last: Mutex::new(String::new()),
        }
    }
}

pub struct Spinner {
    ui: Ui,
    bar: Option<ProgressBar>,
    label: String,
    started: Instant,
    last: Mutex<String>,
}

impl Spinner {
    /// Update the status; on plain output a line is printed only when the status changes.
    pub fn set(&self, msg: impl Into<String>) {
        let msg = msg.into();
        match &self.bar {
            Some(pb) => pb.set_message(msg),
            None => {
                let mut last = self.last.lock().unwrap();
                if *last != msg {
                    self.ui.line(format!("{}: {msg}", self.label));
                    *last = msg;
                }
            }
        }
    }

    /// Print a line above the spinner (stack events, log lines).
    pub fn note(&self, text: impl AsRef<str>) {
        self.ui.line(text);
    }

    /// Finish with a ✔ and the time taken; returns that time.
    pub fn done(self, msg: impl AsRef<str>) -> Duration {
        self.end('✔', msg.as_ref())
    }

    /// Finish with a ✘ (the error itself is reported by the caller).
    pub fn failed(self, msg: impl AsRef<str>) -> Duration {
        self.end('✘', msg.as_ref())
    }

    /// Finish as `result` says: ✔ with `done(value)`, or ✘ with `failed` (the error goes on).
    pub fn finish<T>(
        self,
        result: anyhow::Result<T>,
        done: impl FnOnce(&T) -> String,
        failed: &str,
    ) -> anyhow::Result<T> {
        match &result {
            Ok(value) => self.done(done(value)),
            Err(_) => self.failed(failed),
        };
        result
    }

    fn end(self, mark: char, msg: &str) -> Duration {
        let took = self.started.elapsed();
        if let Some(pb) = &self.bar {
            pb.finish_and_clear();
            self.ui.multi.remove(pb);
        }
        self.ui.line(format!(
            "{mark} {:<28} {msg} [{}]",
            self.label,
            format_duration(took)
        ));
        took
    }
}

impl Drop for Spinner {
    fn drop(&mut self) {
        if let Some(pb) = &self.bar {
            if !pb.is_finished() {
                pb.finish_and_clear();
            }
        }
    }
}

impl Ui {
    /// Ask a yes/no question on the terminal (spinners pause meanwhile). `None` when stdin is not
    /// a terminal: we never wait for input that cannot come. The answer is read on a thread of its
    /// own, so that Ctrl-C (handled by the runtime) still interrupts the command at the question.
    pub async fn confirm(&self, question: &str) -> Option<bool> {
        if !std::io::stdin().is_terminal() {
            return None;
        }
        let _one_at_a_time = self.asking.lock().await;
        let mut open = OpenQuestion::ask(self, question);
        let (tx, rx) = tokio::sync::oneshot::channel();
        // Not tokio's blocking pool: the runtime would wait for this read before it could exit.
        // (A question dropped unanswered leaves its reader blocked: that only happens when the
        // command ends, on Ctrl-C or on another task's error.)
        std::thread::spawn(move || {
            let mut answer = String::new();
            let _ = std::io::stdin().read_line(&mut answer);
            let _ = tx.send(answer);
        });
        let answer = rx.await.unwrap_or_default();
        open.answered = true;
        drop(open);
        Some(matches!(answer.trim(), "y" | "Y" | "yes" | "YES"))
    }
}

/// Where spinners are drawn: on the terminal when live, nowhere otherwise (plain lines instead).
fn spinners_target(live: bool) -> ProgressDrawTarget {
    if live {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    }
}

/// A question on the terminal: spinners hidden and other lines held back until it closes
/// (answered, or dropped when the command ends), then shown again.
struct OpenQuestion<'a> {
    ui: &'a Ui,
    answered: bool,
}

impl<'a> OpenQuestion<'a> {
    fn ask(ui: &'a Ui, question: &str) -> OpenQuestion<'a> {
        *ui.held.lock().unwrap() = Some(Vec::new());
        let _ = ui.multi.clear();
        ui.multi.set_draw_target(ProgressDrawTarget::hidden());
        eprint!("{question} [y/N] ");
        OpenQuestion {
            ui,
            answered: false,
        }
    }
}

impl Drop for OpenQuestion<'_> {
    fn drop(&mut self) {
        if !self.answered {
            eprintln!();
        }
        self.ui.multi.set_draw_target(spinners_target(self.ui.live));
        for line in self.ui.held.lock().unwrap().take().unwrap_or_default() {
            self.ui.print(&line);
        }
    }
}

/// `0.4s`, `12.3s`, `2m05s`.
pub fn format_duration(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs < 60.0 {
        format!("{secs:.1}s")
    } else {
        format!("{}m{:02}s", d.as_secs() / 60, d.as_secs() % 60)
    }
}

/// Render an error as one line (`error: what failed: why: what to do`) and return exit code 1.
pub fn fail(err: &anyhow::Error) -> ExitCode {
    eprintln!("error: {}", one_line(err));
    ExitCode::FAILURE
}

pub fn one_line(err: &anyhow::Error) -> String {
    format!("{err:#}").replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_wait_while_a_question_is_open() {
        let ui = Ui::new();
        let question = OpenQuestion::ask(&ui, "Apply?");
        ui.line("a stack event");
        let held = ui.held.lock().unwrap().clone().unwrap_or_default();
        assert!(
            held.len() == 1 && held[0].ends_with("a stack event"),
            "the line broke into the question: {held:?}"
        );
        drop(question);
        assert!(
            ui.held.lock().unwrap().is_none(),
            "lines stay held after the question"
        );
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(format_duration(Duration::from_millis(400)), "0.4s");
        assert_eq!(format_duration(Duration::from_millis(12_340)), "12.3s");
        assert_eq!(format_duration(Duration::from_secs(125)), "2m05s");
    }

    #[test]
    fn errors_render_on_one_line_with_their_causes() {
        let err =
            anyhow::anyhow!("connection refused\n(os error 111)").context("Docker is not running");
        assert_eq!(
            one_line(&err),
            "Docker is not running: connection refused (os error 111)"
        );
    }
}
