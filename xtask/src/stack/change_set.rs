//! Change sets: create one, wait until CloudFormation has computed it, then execute or delete it.
//! Every change set made but not yet executed or deleted is recorded, so Ctrl-C can clean up.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use aws_sdk_cloudformation::types::{
    Capability, Change, ChangeSetStatus, ChangeSetType, Parameter, ResourceToImport, Tag,
};
use aws_sdk_cloudformation::Client;

use super::{ChangeRow, Import, Replacement, Stack};
use crate::aws::aws_error;

/// True when a FAILED change set only means "nothing to do".
pub fn is_empty_change_set(reason: &str) -> bool {
    reason.contains("didn't contain changes") || reason.contains("No updates are to be performed")
}

/// True when a FAILED change set failed because the template imports an export that no stack
/// has (yet): a stack deployed before it would make it.
pub fn is_missing_export(reason: &str) -> bool {
    reason.contains("No export named")
}

pub(super) fn change_row(change: &Change) -> Option<ChangeRow> {
    let rc = change.resource_change()?;
    Some(ChangeRow {
        logical_id: rc.logical_resource_id().unwrap_or("?").to_owned(),
        resource_type: rc.resource_type().unwrap_or("?").to_owned(),
        action: rc
            .action()
            .map(|a| a.as_str().to_owned())
            .unwrap_or_default(),
        replacement: match rc.replacement() {
            Some(aws_sdk_cloudformation::types::Replacement::True) => Replacement::Yes,
            Some(aws_sdk_cloudformation::types::Replacement::Conditional) => Replacement::Maybe,
            _ => Replacement::No,
        },
    })
}

pub(super) enum Ready {
    Empty,
    Changes(Vec<ChangeRow>),
    /// CloudFormation's reason: the template imports an export no stack has.
    MissingExport(String),
}

/// A change set we created; deleted again when it is empty or fails. The interrupt ledger keeps
/// a copy of each until it is executed or deleted.
#[derive(Clone)]
pub struct ChangeSet {
    cfn: Client,
    stack: String,
    name: String,
    /// Made for a stack that did not exist: CloudFormation made an empty stack for it too.
    new_stack: bool,
}

impl ChangeSet {
    pub(super) async fn create(
        cfn: &Client,
        stack: &Stack,
        kind: ChangeSetType,
        imports: &[Import],
    ) -> Result<ChangeSet> {
        let name = format!("xtask-{}", crate::aws::now_ms());
        // Any change set but an update's makes the stack too (empty, REVIEW_IN_PROGRESS).
        let new_stack = kind != ChangeSetType::Update;
        let parameters = stack
            .parameters
            .iter()
            .map(|(k, v)| {
                Parameter::builder()
                    .parameter_key(k)
                    .parameter_value(v)
                    .build()
            })
            .collect();
        let tags = stack
            .tags
            .iter()
            .map(|(k, v)| Tag::builder().key(k).value(v).build())
            .collect();
        let imports = imports
            .iter()
            .map(|i| {
                ResourceToImport::builder()
                    .logical_resource_id(&i.logical_id)
                    .resource_type(&i.resource_type)
                    .resource_identifier(&i.identifier.0, &i.identifier.1)
                    .build()
            })
            .collect::<Vec<_>>();
        cfn.create_change_set()
            .stack_name(&stack.name)
            .change_set_name(&name)
            .change_set_type(kind)
            .template_body(&stack.template)
            .set_parameters(Some(parameters))
            .capabilities(Capability::CapabilityIam)
            .capabilities(Capability::CapabilityNamedIam)
            .set_tags(Some(tags))
            .set_resources_to_import((!imports.is_empty()).then_some(imports))
            .send()
            .await
            .map_err(aws_error)
            .with_context(|| {
                format!(
                    "CloudFormation rejected the change set for stack {}",
                    stack.name
                )
            })?;
        let change_set = ChangeSet {
            cfn: cfn.clone(),
            stack: stack.name.clone(),
            name,
            new_stack,
        };
        crate::interrupt::change_set_created(&change_set);
        Ok(change_set)
    }

    /// A change set known by name (the interrupt ledger's tests).
    #[cfg(test)]
    pub fn named(cfn: &Client, stack: &str, name: &str, new_stack: bool) -> ChangeSet {
        ChangeSet {
            cfn: cfn.clone(),
            stack: stack.into(),
            name: name.into(),
            new_stack,
        }
    }

    /// The same change set of the same stack.
    pub fn is(&self, other: &ChangeSet) -> bool {
        self.stack == other.stack && self.name == other.name
    }

    pub(super) async fn wait_ready(&self, poll: Duration) -> Result<Ready> {
        // Change sets are usually ready within a second: start fast, then settle at `poll`.
        let mut delay = Duration::from_millis(100).min(poll);
        loop {
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(poll);
            let mut changes = Vec::new();
            let mut token = None;
            let (status, reason) = loop {
                let out = self
                    .cfn
                    .describe_change_set()
                    .stack_name(&self.stack)
                    .change_set_name(&self.name)
                    .set_next_token(token)
                    .send()
                    .await
                    .map_err(aws_error)
                    .with_context(|| {
                        format!("cannot describe the change set for stack {}", self.stack)
                    })?;
                changes.extend(out.changes().iter().filter_map(change_row));
                token = out.next_token().map(str::to_owned);
                if token.is_none() {
                    break (
                        out.status().cloned(),
                        out.status_reason().unwrap_or_default().to_owned(),
                    );
                }
            };
            match status {
                Some(ChangeSetStatus::CreateComplete) => return Ok(Ready::Changes(changes)),
                Some(ChangeSetStatus::Failed) if is_empty_change_set(&reason) => {
                    return Ok(Ready::Empty)
                }
                Some(ChangeSetStatus::Failed) if is_missing_export(&reason) => {
                    return Ok(Ready::MissingExport(reason))
                }
                Some(ChangeSetStatus::Failed) => {
                    bail!("the change set for stack {} failed: {reason}", self.stack)
                }
                _ => {}
            }
        }
    }

    pub(super) async fn execute(&self) -> Result<()> {
        crate::interrupt::change_set_settled(self);
        self.cfn
            .execute_change_set()
            .stack_name(&self.stack)
            .change_set_name(&self.name)
            .send()
            .await
            .map_err(|e| {
                // A resource can fail right here (fakecloud fails them synchronously).
                let e = aws_error(e);
                match crate::fixes::for_stack_failure(&format!("{e:#}")) {
                    Some(fix) => anyhow::anyhow!("{e:#}. {}", crate::fixes::then_deploy_again(fix)),
                    None => e,
                }
            })
            .with_context(|| format!("deploying stack {} failed", self.stack))?;
        Ok(())
    }

    /// Delete the change set, and the empty stack it made for a new stack. Best effort: an
    /// undeleted change set (or empty `REVIEW_IN_PROGRESS` stack) is harmless clutter.
    pub async fn delete(&self) {
        crate::interrupt::change_set_settled(self);
        let _ = self
            .cfn
            .delete_change_set()
            .stack_name(&self.stack)
            .change_set_name(&self.name)
            .send()
            .await;
        if self.new_stack {
            let _ = self.cfn.delete_stack().stack_name(&self.stack).send().await;
        }
    }
}
