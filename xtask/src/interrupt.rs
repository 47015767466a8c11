//! Ctrl-C: stop waiting, take back what only this run would leave behind (change sets not yet
//! executed, and the empty stack a change set for a new stack makes), and say what keeps running
//! in AWS and how to watch it. A command that ends on an error cleans up the same way.
//!
//! The modules that start AWS operations record them here, in a ledger scoped to the command's
//! task: `change_set_created`/`change_set_settled` around a change set's life, and an `Underway`
//! guard for as long as we wait for a stack operation or a rollout.

use std::future::Future;
use std::sync::{Arc, Mutex};

use crate::stack::ChangeSet;

#[derive(Default)]
struct Ledger {
    /// Change sets neither executed nor deleted yet.
    change_sets: Vec<ChangeSet>,
    underway: Vec<(u64, String)>,
    next_id: u64,
}

tokio::task_local! {
    static LEDGER: Arc<Mutex<Ledger>>;
}

/// Outside `run` (unit tests of other modules) there is no ledger and nothing is recorded.
fn with_ledger<T>(f: impl FnOnce(&mut Ledger) -> T) -> Option<T> {
    LEDGER.try_with(|l| f(&mut l.lock().unwrap())).ok()
}

/// A change set now exists and is neither executed nor deleted.
pub fn change_set_created(change_set: &ChangeSet) {
    with_ledger(|l| l.change_sets.push(change_set.clone()));
}

/// The change set was executed or deleted: an interrupt leaves it alone.
pub fn change_set_settled(change_set: &ChangeSet) {
    with_ledger(|l| l.change_sets.retain(|c| !c.is(change_set)));
}

/// An operation that runs in AWS whether or not we keep waiting, described for the user
/// (`stack demo-dev-ecs is UPDATE_IN_PROGRESS`); forgotten when the guard is dropped.
pub struct Underway(Option<u64>);

pub fn underway(what: impl Into<String>) -> Underway {
    let what = what.into();
    Underway(with_ledger(|l| {
        l.next_id += 1;
        l.underway.push((l.next_id, what));
        l.next_id
    }))
}

impl Underway {
    /// Describe the operation's latest state.
    pub fn update(&self, what: impl Into<String>) {
        let Some(id) = self.0 else { return };
        let what = what.into();
        with_ledger(|l| {
            if let Some(entry) = l.underway.iter_mut().find(|(i, _)| *i == id) {
                entry.1 = what;
            }
        });
    }
}

impl Drop for Underway {
    fn drop(&mut self) {
        if let Some(id) = self.0 {
            with_ledger(|l| l.underway.retain(|(i, _)| *i != id));
        }
    }
}

/// What an interrupt stopped.
#[derive(Debug, PartialEq, Eq)]
pub struct Interrupted {
    /// Change sets deleted because they had not been executed.
    pub deleted_change_sets: usize,
    /// Operations still running in AWS, as described by their `Underway` guards.
    pub still_running: Vec<String>,
}

/// Run `work` until it ends or `signal` fires (Ctrl-C in `main`); on the signal, stop `work`,
/// delete its pending change sets (and the empty stacks of new ones) and report what runs on.
pub async fn run<T>(
    work: impl Future<Output = T>,
    signal: impl Future<Output = ()>,
) -> Result<T, Interrupted> {
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    // The ledger is read as soon as the signal fires, while `work` (and its guards) still exists.
    let interrupted = async {
        signal.await;
        let mut l = ledger.lock().unwrap();
        let still_running = l.underway.iter().map(|(_, what)| what.clone()).collect();
        (std::mem::take(&mut l.change_sets), still_running)
    };
    // Biased, signal first: its handler is in place before `work` runs at all (a first poll of
    // `work` can block for a while, e.g. building the app).
    let (change_sets, still_running) = tokio::select! {
        biased;
        stopped = interrupted => stopped,
        done = LEDGER.scope(ledger.clone(), work) => {
            // Work that ended on an error may have dropped a change set it never executed (the
            // other stack of a concurrent pair, say): that is cleaned up too.
            let left = std::mem::take(&mut ledger.lock().unwrap().change_sets);
            delete_change_sets(&left).await;
            return Ok(done);
        }
    };
    delete_change_sets(&change_sets).await;
    Err(Interrupted {
        deleted_change_sets: change_sets.len(),
        still_running,
    })
}

/// Delete change sets never executed, and the empty stacks the ones for new stacks made.
async fn delete_change_sets(change_sets: &[ChangeSet]) {
    for c in change_sets {
        c.delete().await;
    }
}

/// What to tell the user; `watch` is the command that shows the environment (`cargo xtask status`).
pub fn message(i: &Interrupted, watch: &str) -> String {
    let cleaned = match i.deleted_change_sets {
        0 => String::new(),
        1 => " and deleted the change set it had not executed yet".to_owned(),
        n => format!(" and deleted the {n} change sets it had not executed yet"),
    };
    if i.still_running.is_empty() {
        format!("interrupted: stopped{cleaned}; nothing it started is still running in AWS")
    } else {
        format!(
            "interrupted: stopped waiting{cleaned}. Still running in AWS: {}. \
             Watch it with `{watch}` and run the command again when it settles",
            i.still_running.join("; ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mock::mock_sdk;
    use aws_sdk_cloudformation::operation::delete_change_set::DeleteChangeSetOutput;
    use aws_sdk_cloudformation::operation::delete_stack::DeleteStackOutput;
    use aws_sdk_cloudformation::Client;
    use aws_smithy_mocks::mock;
    use std::time::Duration;

    fn created(cfn: &Client, stack: &str, name: &str, new_stack: bool) -> ChangeSet {
        let change_set = ChangeSet::named(cfn, stack, name, new_stack);
        change_set_created(&change_set);
        change_set
    }

    fn soon() -> impl Future<Output = ()> {
        tokio::time::sleep(Duration::from_millis(50))
    }

    #[tokio::test]
    async fn work_that_ends_first_is_not_interrupted() {
        let out = run(async { 7 }, std::future::pending()).await;
        assert_eq!(out, Ok(7));
    }

    #[tokio::test]
    async fn an_interrupt_deletes_unexecuted_change_sets_and_names_what_runs_on() {
        let delete_cs = mock!(Client::delete_change_set)
            .match_requests(|r| r.change_set_name() == Some("pending"))
            .then_output(|| DeleteChangeSetOutput::builder().build());
        let delete_stack = mock!(Client::delete_stack)
            .match_requests(|r| r.stack_name() == Some("new"))
            .then_output(|| DeleteStackOutput::builder().build());
        let cfn = mock_sdk!(aws_sdk_cloudformation, [&delete_cs, &delete_stack]);

        let work = async {
            created(&cfn, "new", "pending", true);
            let executed = created(&cfn, "old", "executed", false);
            change_set_settled(&executed);
            let finished = underway("an operation that ended");
            drop(finished);
            let rollout = underway("ECS service demo starting");
            rollout.update("ECS service demo: 1/2 tasks running");
            std::future::pending::<()>().await;
        };
        let Err(stopped) = run(work, soon()).await else {
            panic!("the work cannot end by itself")
        };
        assert_eq!(
            stopped,
            Interrupted {
                deleted_change_sets: 1,
                still_running: vec!["ECS service demo: 1/2 tasks running".into()],
            }
        );
        assert_eq!(
            delete_cs.num_calls(),
            1,
            "the pending change set was not deleted"
        );
        assert_eq!(
            delete_stack.num_calls(),
            1,
            "the new stack's shell was not deleted"
        );
    }

    #[tokio::test]
    async fn work_that_ends_with_a_change_set_unexecuted_deletes_it() {
        let delete_cs = mock!(Client::delete_change_set)
            .then_output(|| DeleteChangeSetOutput::builder().build());
        let cfn = mock_sdk!(aws_sdk_cloudformation, [&delete_cs]);
        let work = async {
            created(&cfn, "live", "abandoned", false);
            "failed elsewhere"
        };
        assert_eq!(
            run(work, std::future::pending()).await,
            Ok("failed elsewhere")
        );
        assert_eq!(
            delete_cs.num_calls(),
            1,
            "the abandoned change set was kept"
        );
    }

    #[tokio::test]
    async fn a_change_set_for_an_existing_stack_leaves_the_stack_alone() {
        let delete_cs = mock!(Client::delete_change_set)
            .then_output(|| DeleteChangeSetOutput::builder().build());
        let delete_stack =
            mock!(Client::delete_stack).then_output(|| DeleteStackOutput::builder().build());
        let cfn = mock_sdk!(aws_sdk_cloudformation, [&delete_cs, &delete_stack]);
        let work = async {
            created(&cfn, "live", "pending", false);
            std::future::pending::<()>().await;
        };
        assert!(run(work, soon()).await.is_err());
        assert_eq!(delete_cs.num_calls(), 1);
        assert_eq!(delete_stack.num_calls(), 0, "an existing stack was deleted");
    }

    #[test]
    fn guards_outside_a_run_record_nothing() {
        let u = underway("nothing");
        u.update("still nothing");
        assert!(u.0.is_none());
    }

    #[test]
    fn the_message_names_what_runs_on_and_how_to_watch_it() {
        let running = Interrupted {
            deleted_change_sets: 1,
            still_running: vec!["stack a-dev-ecs is UPDATE_IN_PROGRESS".into()],
        };
        let text = message(&running, "cargo xtask status --env prod");
        assert!(text.contains("deleted the change set"), "{text}");
        assert!(
            text.contains("Still running in AWS: stack a-dev-ecs is UPDATE_IN_PROGRESS"),
            "{text}"
        );
        assert!(text.contains("`cargo xtask status --env prod`"), "{text}");
        let idle = Interrupted {
            deleted_change_sets: 0,
            still_running: vec![],
        };
        let text = message(&idle, "cargo xtask status");
        assert!(
            text.contains("nothing it started is still running"),
            "{text}"
        );
        assert!(!text.contains("change set"), "{text}");
    }
}
