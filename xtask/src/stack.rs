//! The stack logic: a `Stack` is plain data; `deploy` brings it up to date through a change set
//! (create → describe → execute), follows its events, and returns a typed outcome.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use aws_sdk_cloudformation::error::ProvideErrorMetadata;
use aws_sdk_cloudformation::types::{ChangeSetType, StackEvent};
use aws_sdk_cloudformation::Client;

use crate::aws::aws_error;
use crate::events::{self, Cursor};
use crate::ui::Spinner;

/// CloudFormation refuses inline template bodies larger than this.
pub const MAX_INLINE_TEMPLATE: usize = 51_200;

/// What to deploy.
#[derive(Debug, Clone)]
pub struct Stack {
    pub name: String,
    /// Short label for progress lines (`vpc`, `ecr`, `ecs`).
    pub label: String,
    pub template: String,
    pub parameters: BTreeMap<String, String>,
    pub tags: Vec<(String, String)>,
}

/// Decides whether a change set may run (a question on a terminal, always yes with `--yes`).
pub type Approve<'a> =
    dyn Fn(&Stack, &[ChangeRow]) -> futures_util::future::BoxFuture<'a, bool> + Send + Sync + 'a;

/// How `deploy` behaves, as opposed to what it deploys.
pub struct Settings<'a> {
    /// Delay between status checks.
    pub poll: Duration,
    /// When another operation is running on the stack: wait for it (`true`) or refuse (`--no-wait`).
    pub wait_if_busy: bool,
    /// Sees the change set before it runs and may refuse it (nothing is changed then).
    pub approve: &'a Approve<'a>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    NoChanges,
    Created,
    Updated,
}

#[derive(Debug)]
pub struct Deployed {
    pub outcome: Outcome,
    pub outputs: BTreeMap<String, String>,
}

/// One line of a change set: resource, action, replacement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeRow {
    pub logical_id: String,
    pub resource_type: String,
    pub action: String,
    pub replacement: Replacement,
}

impl ChangeRow {
    /// `"removes"` or `"replaces"` when the change ends the physical resource the stack has now
    /// (what the deploy question calls out, and what breaks an export that refers to it).
    pub fn ends_resource(&self) -> Option<&'static str> {
        if self.action == "Remove" {
            Some("removes")
        } else if self.replacement == Replacement::Yes {
            Some("replaces")
        } else {
            None
        }
    }
}

/// Whether a change replaces the resource (a new physical resource, the old one deleted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replacement {
    No,
    /// CloudFormation's `Conditional`: it depends on a value known only when the change runs.
    Maybe,
    Yes,
}

impl Replacement {
    pub fn word(self) -> &'static str {
        match self {
            Replacement::No => "no",
            Replacement::Maybe => "maybe",
            Replacement::Yes => "yes",
        }
    }
}

/// An existing resource to bring under a new stack (a CloudFormation IMPORT).
#[derive(Debug, Clone)]
pub struct Import {
    pub logical_id: String,
    pub resource_type: String,
    /// The resource's identifier property and value, e.g. `RepositoryName` = `demo-dev`.
    pub identifier: (String, String),
}

/// What to do with a stack, given its current status (`None`: it does not exist).
#[derive(Debug, PartialEq, Eq)]
pub enum Plan {
    Create,
    Update,
    /// `ROLLBACK_COMPLETE`: a failed first create; AWS only allows deleting it.
    Recreate,
    /// Another operation is running; wait for it to settle.
    Wait,
    Refuse(String),
}

pub fn plan(stack: &str, status: Option<&str>) -> Plan {
    match status {
        None | Some("REVIEW_IN_PROGRESS") | Some("DELETE_COMPLETE") => Plan::Create,
        Some("ROLLBACK_COMPLETE") => Plan::Recreate,
        Some("UPDATE_ROLLBACK_FAILED") => Plan::Refuse(format!(
            "stack {stack} is UPDATE_ROLLBACK_FAILED: fix the resource named in its events, then run \
             `aws cloudformation continue-update-rollback --stack-name {stack}` and deploy again"
        )),
        Some("DELETE_FAILED") | Some("ROLLBACK_FAILED") => Plan::Refuse(format!(
            "stack {stack} is {}: delete it with `aws cloudformation delete-stack --stack-name {stack}` \
             (retaining the resource that failed) and deploy again",
            status.unwrap()
        )),
        Some(s) if s.ends_with("_IN_PROGRESS") => Plan::Wait,
        Some(_) => Plan::Update,
    }
}

/// Where a stack operation stands.
#[derive(Debug, PartialEq, Eq)]
pub enum Progress {
    Running,
    Succeeded,
    Failed,
}

pub fn progress(status: &str) -> Progress {
    match status {
        "CREATE_COMPLETE" | "UPDATE_COMPLETE" | "IMPORT_COMPLETE" | "DELETE_COMPLETE" => {
            Progress::Succeeded
        }
        s if s.ends_with("_IN_PROGRESS") => Progress::Running,
        _ => Progress::Failed,
    }
}

/// Whether a CloudFormation error says the stack asked about does not exist.
pub fn no_such_stack(error: &impl ProvideErrorMetadata) -> bool {
    error
        .message()
        .is_some_and(|m| m.contains("does not exist"))
}

/// The stack's status and outputs, or `None` if it does not exist.
pub async fn describe(
    cfn: &Client,
    name: &str,
) -> Result<Option<aws_sdk_cloudformation::types::Stack>> {
    match cfn.describe_stacks().stack_name(name).send().await {
        Ok(out) => Ok(out.stacks().first().cloned()),
        Err(e) if no_such_stack(&e) => Ok(None),
        Err(e) => Err(aws_error(e)).with_context(|| format!("cannot describe stack {name}")),
    }
}

/// The stack's status (`CREATE_COMPLETE`, ...), `None` when there is no stack.
pub fn status_of(stack: Option<&aws_sdk_cloudformation::types::Stack>) -> Option<&str> {
    stack.and_then(|s| s.stack_status()).map(|s| s.as_str())
}

pub fn outputs(stack: &aws_sdk_cloudformation::types::Stack) -> BTreeMap<String, String> {
    stack
        .outputs()
        .iter()
        .filter_map(|o| Some((o.output_key()?.to_owned(), o.output_value()?.to_owned())))
        .collect()
}

/// Bring `stack` up to date.
pub async fn deploy(
    cfn: &Client,
    stack: &Stack,
    settings: &Settings<'_>,
    spinner: &Spinner,
) -> Result<Deployed> {
    let Settings {
        poll, wait_if_busy, ..
    } = *settings;
    if stack.template.len() > MAX_INLINE_TEMPLATE {
        bail!(
            "template for stack {} is {} bytes, over CloudFormation's {MAX_INLINE_TEMPLATE}-byte inline limit: \
             split it or move resources to another stack",
            stack.name,
            stack.template.len()
        );
    }
    let (kind, deployed) = loop {
        let current = describe(cfn, &stack.name).await?;
        let status = status_of(current.as_ref());
        match plan(&stack.name, status) {
            Plan::Create => break (ChangeSetType::Create, None),
            Plan::Update => {
                let deployed = current.expect("an update is planned only for an existing stack");
                if same_as_deployed(cfn, stack, &deployed).await? {
                    return Ok(Deployed {
                        outcome: Outcome::NoChanges,
                        outputs: outputs(&deployed),
                    });
                }
                break (ChangeSetType::Update, Some(deployed));
            }
            Plan::Refuse(why) => bail!(why),
            Plan::Wait if !wait_if_busy => bail!(
                "stack {} is {} (another operation is running): wait for it to finish \
                 (`cargo xtask status` shows it), or deploy without --no-wait to wait here",
                stack.name,
                status.unwrap_or_default()
            ),
            Plan::Wait => {
                let status = status.unwrap_or_default();
                wait_for_other_operation(&stack.name, status, "deploy", poll, spinner).await;
            }
            Plan::Recreate => {
                spinner.note(format!(
                    "  {} stack {} is ROLLBACK_COMPLETE (its first create failed): deleting it to create it again",
                    stack.label, stack.name
                ));
                let id = current.as_ref().and_then(|s| s.stack_id());
                delete_and_wait(cfn, &stack.name, id, &stack.label, poll, spinner).await?;
            }
        }
    };

    spinner.set("creating change set");
    let change_set = ChangeSet::create(cfn, stack, kind.clone(), &[]).await?;
    let Some(rows) = changes_or_delete(&change_set, stack, poll).await? else {
        change_set.delete().await;
        return Ok(Deployed {
            outcome: Outcome::NoChanges,
            outputs: current_outputs(cfn, &stack.name).await?,
        });
    };
    if let Err(e) = exports::check(cfn, stack, deployed.as_ref(), &rows).await {
        change_set.delete().await;
        return Err(e);
    }
    let settled = run_change_set(cfn, stack, &change_set, &rows, settings, spinner).await?;
    Ok(Deployed {
        outcome: if kind == ChangeSetType::Create {
            Outcome::Created
        } else {
            Outcome::Updated
        },
        outputs: outputs(&settled),
    })
}

/// Bring existing resources under `stack`, which must not exist yet: an IMPORT change set with the
/// template cut down to those resources (CloudFormation allows nothing else in an import, outputs
/// included). A normal `deploy` afterwards adds the rest.
pub async fn import(
    cfn: &Client,
    stack: &Stack,
    resources: &[Import],
    settings: &Settings<'_>,
    spinner: &Spinner,
) -> Result<()> {
    let shell = Stack {
        template: import_template(&stack.template, resources)
            .with_context(|| format!("cannot prepare the import into stack {}", stack.name))?,
        ..stack.clone()
    };
    spinner.set("creating import change set");
    let change_set = ChangeSet::create(cfn, &shell, ChangeSetType::Import, resources).await?;
    let rows = changes_or_delete(&change_set, stack, settings.poll)
        .await?
        .unwrap_or_default();
    run_change_set(cfn, &shell, &change_set, &rows, settings, spinner).await?;
    Ok(())
}

/// Wait until CloudFormation has computed `change_set` for `stack`: its changes, `None` when it
/// has none. One that failed, or imports an export nothing has, is deleted and its error returned.
async fn changes_or_delete(
    change_set: &ChangeSet,
    stack: &Stack,
    poll: Duration,
) -> Result<Option<Vec<ChangeRow>>> {
    let error = match change_set.wait_ready(poll).await {
        Ok(Ready::Changes(rows)) => return Ok(Some(rows)),
        Ok(Ready::Empty) => return Ok(None),
        Ok(Ready::MissingExport(reason)) => missing_export(stack, &reason),
        Err(e) => e,
    };
    change_set.delete().await;
    Err(error)
}

/// `template` with only the `resources` to import and without outputs.
pub fn import_template(template: &str, resources: &[Import]) -> Result<String> {
    let mut doc: serde_yaml::Mapping = serde_yaml::from_str(template).context("not YAML")?;
    doc.remove("Outputs");
    let all = doc
        .get_mut("Resources")
        .and_then(|r| r.as_mapping_mut())
        .context("the template has no Resources")?;
    all.retain(|id, _| {
        resources
            .iter()
            .any(|r| id.as_str() == Some(r.logical_id.as_str()))
    });
    for r in resources {
        let retained = all
            .get(r.logical_id.as_str())
            .with_context(|| format!("the template has no resource {}", r.logical_id))?
            .get("DeletionPolicy")
            .and_then(|p| p.as_str())
            .is_some_and(|p| p == "Retain" || p == "RetainExceptOnCreate");
        if !retained {
            bail!(
                "resource {} needs `DeletionPolicy: Retain` to be imported",
                r.logical_id
            );
        }
    }
    serde_yaml::to_string(&doc).context("cannot write the import template")
}

/// Show the change set's `rows`, ask, execute, and follow the stack's events until it settles; returns the
/// settled stack.
async fn run_change_set(
    cfn: &Client,
    stack: &Stack,
    change_set: &ChangeSet,
    rows: &[ChangeRow],
    settings: &Settings<'_>,
    spinner: &Spinner,
) -> Result<aws_sdk_cloudformation::types::Stack> {
    for row in rows {
        spinner.note(format!(
            "  {:<4} {:<28} {:<42} {}{}",
            stack.label,
            row.logical_id,
            row.resource_type,
            row.action,
            match row.replacement {
                Replacement::No => "",
                Replacement::Maybe => " (may replace)",
                Replacement::Yes => " (replacement)",
            }
        ));
    }

    if !(settings.approve)(stack, rows).await {
        change_set.delete().await;
        bail!(
            "deployment of stack {} cancelled: nothing was changed",
            stack.name
        );
    }

    let mut cursor = Cursor::at_latest(cfn, &stack.name).await?;
    spinner.set("executing change set");
    change_set.execute().await?;
    let underway =
        crate::interrupt::underway(format!("stack {} is executing a change set", stack.name));

    let mut seen: Vec<StackEvent> = Vec::new();
    loop {
        let fresh = cursor.poll(cfn, &stack.name).await?;
        for e in &fresh {
            spinner.note(events::format_event(&stack.label, e));
        }
        seen.extend(fresh);
        let current = describe(cfn, &stack.name)
            .await?
            .with_context(|| format!("stack {} disappeared while deploying", stack.name))?;
        let status = current
            .stack_status()
            .map(|s| s.as_str())
            .unwrap_or("UNKNOWN");
        match progress(status) {
            Progress::Running => {
                spinner.set(events::with_wait(status.to_owned(), &seen));
                underway.update(format!("stack {} is {status}", stack.name));
            }
            Progress::Succeeded => return Ok(current),
            Progress::Failed => {
                let reason = events::first_failure(&seen)
                    .or_else(|| current.stack_status_reason().map(str::to_owned))
                    .unwrap_or_else(|| "no reason given".into());
                let fix = crate::fixes::for_stack_failure(&reason)
                    .unwrap_or("Fix it (template or infra/env parameters)");
                bail!(
                    "stack {} failed and is now {status}. First failure: {reason}. {}",
                    stack.name,
                    crate::fixes::then_deploy_again(fix)
                );
            }
        }
        tokio::time::sleep(settings.poll).await;
    }
}

/// True when the deployed stack already has exactly this template, these parameters and tags:
/// then a change set could only say "no changes", so we skip making one (and the seconds it takes).
async fn same_as_deployed(
    cfn: &Client,
    stack: &Stack,
    deployed: &aws_sdk_cloudformation::types::Stack,
) -> Result<bool> {
    let template = cfn
        .get_template()
        .stack_name(&stack.name)
        .template_stage(aws_sdk_cloudformation::types::TemplateStage::Original)
        .send()
        .await
        .map_err(aws_error)
        .with_context(|| format!("cannot read the deployed template of stack {}", stack.name))?;
    if template.template_body() != Some(stack.template.as_str()) {
        return Ok(false);
    }
    let deployed_tags: BTreeMap<&str, &str> = deployed
        .tags()
        .iter()
        .filter_map(|t| Some((t.key()?, t.value()?)))
        .collect();
    let our_tags: BTreeMap<&str, &str> = stack
        .tags
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    Ok(deployed_tags == our_tags
        && effective_parameters(stack) == Some(deployed_parameters(deployed)))
}

/// The parameters the deployed stack was given, by name.
fn deployed_parameters(
    deployed: &aws_sdk_cloudformation::types::Stack,
) -> BTreeMap<String, String> {
    deployed
        .parameters()
        .iter()
        // An empty value may come back as no value at all.
        .filter_map(|p| {
            Some((
                p.parameter_key()?.to_owned(),
                p.parameter_value().unwrap_or_default().to_owned(),
            ))
        })
        // Pseudo parameters are not parameters (fakecloud lists them; AWS does not).
        .filter(|(k, _)| !k.starts_with("AWS::"))
        .collect()
}

/// Every parameter the template declares, with the value a deploy would give it: ours, else the
/// template's default. `None` when the template cannot be read or a parameter has neither.
pub fn effective_parameters(stack: &Stack) -> Option<BTreeMap<String, String>> {
    let declared = crate::parameters::declared(&stack.template).ok()?;
    let known = crate::parameters::known_values(&declared, &stack.parameters);
    (known.len() == declared.len()).then_some(known)
}

/// The outputs of the stack `name` (empty when it does not exist).
pub async fn current_outputs(cfn: &Client, name: &str) -> Result<BTreeMap<String, String>> {
    Ok(describe(cfn, name)
        .await?
        .map(|s| outputs(&s))
        .unwrap_or_default())
}

/// One poll's pause while another operation runs on stack `name` (in `status`), which this
/// `command` waits for.
async fn wait_for_other_operation(
    name: &str,
    status: &str,
    command: &str,
    poll: Duration,
    spinner: &Spinner,
) {
    spinner.set(format!("waiting: another operation is running ({status})"));
    let _underway = crate::interrupt::underway(format!(
        "stack {name} is {status} (an operation this {command} was waiting for)"
    ));
    tokio::time::sleep(poll.max(Duration::from_millis(100))).await;
}

/// Delete the stack `name` (with stack id `id`, shown as `label`), following its events, and wait
/// until it is gone.
async fn delete_and_wait(
    cfn: &Client,
    name: &str,
    id: Option<&str>,
    label: &str,
    poll: Duration,
    spinner: &Spinner,
) -> Result<()> {
    // Events are read by the stack's id: once it is deleted, its name finds nothing.
    let id = id.unwrap_or(name);
    let mut cursor = Cursor::at_latest(cfn, id).await?;
    cfn.delete_stack()
        .stack_name(name)
        .send()
        .await
        .map_err(aws_error)
        .with_context(|| format!("cannot delete stack {name}"))?;
    let underway = crate::interrupt::underway(format!("stack {name} is being deleted"));
    let mut seen: Vec<StackEvent> = Vec::new();
    loop {
        // Progress only: a stack that just vanished may have no readable events left.
        let fresh = cursor.poll(cfn, id).await.unwrap_or_default();
        for e in &fresh {
            spinner.note(events::format_event(label, e));
        }
        seen.extend(fresh);
        let current = describe(cfn, name).await?;
        match status_of(current.as_ref()) {
            None | Some("DELETE_COMPLETE") => return Ok(()),
            Some("DELETE_FAILED") => {
                let failed = events::first_failed(&seen);
                let reason = failed
                    .map(events::failure)
                    .or_else(|| current.as_ref()?.stack_status_reason().map(str::to_owned))
                    .unwrap_or_else(|| "no reason given".into());
                // A resource in the way can be left behind; the stack failing by itself (an
                // export another stack imports) cannot be helped that way.
                let resource = failed
                    .filter(|e| !events::is_the_stack(e))
                    .and_then(|e| e.logical_resource_id());
                let next = match resource {
                    Some(id) => format!(
                        "Remove what still uses it and run again, or leave it behind with `aws \
                         cloudformation delete-stack --stack-name {name} --retain-resources {id}`"
                    ),
                    None => "Remove what still uses it (named there) and run again".to_owned(),
                };
                bail!(
                    "could not delete stack {name} (DELETE_FAILED). First failure: {reason}. {next}"
                );
            }
            Some(s) => {
                spinner.set(events::with_wait(format!("deleting ({s})"), &seen));
                underway.update(format!("stack {name} is {s}"));
            }
        }
        tokio::time::sleep(poll.max(Duration::from_millis(100))).await;
    }
}

/// Delete the stack and wait until it is gone, after waiting for any operation still running on
/// it (AWS refuses to delete a stack that is being updated). `Ok(false)` when there was no stack.
pub async fn destroy(
    cfn: &Client,
    name: &str,
    label: &str,
    poll: Duration,
    spinner: &Spinner,
) -> Result<bool> {
    let current = loop {
        let current = describe(cfn, name).await?;
        match status_of(current.as_ref()) {
            None | Some("DELETE_COMPLETE") => return Ok(false),
            Some(s)
                if s.ends_with("_IN_PROGRESS")
                    && s != "DELETE_IN_PROGRESS"
                    && s != "REVIEW_IN_PROGRESS" =>
            {
                wait_for_other_operation(name, s, "destroy", poll, spinner).await;
            }
            Some(_) => break current,
        }
    };
    let id = current.as_ref().and_then(|s| s.stack_id());
    delete_and_wait(cfn, name, id, label, poll, spinner).await?;
    Ok(true)
}

/// A stack's change set failed because it imports an export that the stacks deployed before it
/// do not have (deploying creates them in order, so this is a real mismatch).
pub fn missing_export(stack: &Stack, reason: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "the change set for stack {} failed: {reason}: a stack deployed before it must export that \
         name (check the Fn::ImportValue names in infra/{}.yaml against the other templates' Outputs)",
        stack.name,
        stack.label
    )
}

/// What deploying a stack would change.
#[derive(Debug, PartialEq, Eq)]
pub enum Preview {
    Changes(Vec<ChangeRow>),
    /// Not computable yet: the stack imports an export that a stack deployed before it does not
    /// have yet (CloudFormation's reason), as before a first deploy.
    AwaitsExports(String),
    /// `ROLLBACK_COMPLETE` (a failed first create): deploying deletes it and creates it again.
    Recreate,
}

/// What deploying `stack` would change, changing nothing: the change set is deleted again, and
/// so is the empty stack a change set for a new stack leaves behind.
pub async fn preview(cfn: &Client, stack: &Stack, poll: Duration) -> Result<Preview> {
    let current = describe(cfn, &stack.name).await?;
    let status = status_of(current.as_ref());
    let kind = match plan(&stack.name, status) {
        Plan::Update => {
            if same_as_deployed(cfn, stack, current.as_ref().expect("an existing stack")).await? {
                return Ok(Preview::Changes(vec![]));
            }
            ChangeSetType::Update
        }
        Plan::Create => ChangeSetType::Create,
        Plan::Recreate => return Ok(Preview::Recreate),
        Plan::Wait => bail!(
            "stack {} is busy ({}): try again when it settles",
            stack.name,
            status.unwrap_or_default()
        ),
        Plan::Refuse(why) => bail!(why),
    };
    let change_set = ChangeSet::create(cfn, stack, kind, &[]).await?;
    let ready = change_set.wait_ready(poll).await;
    change_set.delete().await;
    Ok(match ready? {
        Ready::Empty => Preview::Changes(vec![]),
        Ready::Changes(rows) => {
            // What deploy would refuse, diff reports as the error it would be.
            exports::check(cfn, stack, current.as_ref(), &rows).await?;
            Preview::Changes(rows)
        }
        Ready::MissingExport(reason) => Preview::AwaitsExports(reason),
    })
}

mod change_set;
mod exports;

pub use change_set::ChangeSet;
use change_set::Ready;

#[cfg(test)]
mod tests;
