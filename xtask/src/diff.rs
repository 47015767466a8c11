//! `cargo xtask diff`: what `deploy` would change, stack by stack, as a table. Changes nothing.

use std::path::Path;

use anyhow::Result;

use crate::flags;
use crate::project::StackKind;
use crate::session::Session;
use crate::stack::{self, Preview};
use crate::ui::Ui;

/// Returns whether any stack would change (the exit code is 1 then).
pub async fn run(root: &Path, cmd: flags::Diff) -> Result<bool> {
    let s = Session::open(root, &cmd.target, Ui::new()).await?;
    let mut all = Vec::new();
    for kind in StackKind::ALL {
        let extra = match kind {
            StackKind::Ecs => {
                s.ecs_parameters(image_as_deployed(&s).await?, "X86_64")
                    .await?
            }
            _ => vec![],
        };
        let mut stack = s.stack(kind, &extra)?;
        if kind == StackKind::Ecs {
            // The architecture as deployed too: diff compares infrastructure, not the image.
            if let Some(arch) = s
                .deployed_parameter(StackKind::Ecs, "CpuArchitecture")
                .await?
            {
                stack.parameters.insert("CpuArchitecture".into(), arch);
            }
        }
        let spinner = s.ui.spinner(format!("diff {}", stack.name));
        let preview = stack::preview(&s.clients.cfn, &stack, s.poll).await?;
        let summary = match &preview {
            Preview::Changes(rows) if rows.is_empty() => "no changes".to_owned(),
            Preview::Changes(rows) => format!("{} change(s)", rows.len()),
            // Before a first deploy: the stacks before it would export what it imports.
            Preview::AwaitsExports(_) if any_changes(&all) => {
                "after the stacks before it".to_owned()
            }
            Preview::AwaitsExports(reason) => {
                spinner.failed("failed");
                return Err(stack::missing_export(&stack, reason));
            }
            Preview::Recreate => "delete and create again".to_owned(),
        };
        spinner.done(summary);
        all.push((stack.name, preview));
    }
    print!("{}", render(&all));
    Ok(any_changes(&all))
}

fn any_changes(stacks: &[(String, Preview)]) -> bool {
    stacks
        .iter()
        .any(|(_, p)| !matches!(p, Preview::Changes(rows) if rows.is_empty()))
}

/// The image the ecs stack runs now, or a placeholder digest before the first deploy.
async fn image_as_deployed(s: &Session) -> Result<String> {
    Ok(
        match s.deployed_parameter(StackKind::Ecs, "ImageUri").await? {
            Some(uri) => uri,
            None => format!("{}@sha256:{}", s.env.prefix(), "0".repeat(64)),
        },
    )
}

/// `stack  resource  type  action  replacement`, one line per change.
pub fn render(stacks: &[(String, Preview)]) -> String {
    let mut out = String::new();
    for (stack, preview) in stacks {
        let rows = match preview {
            Preview::Changes(rows) => rows,
            Preview::AwaitsExports(reason) => {
                out.push_str(&format!(
                    "{stack}: changes known once the stacks before it are deployed (it imports their \
                     new exports: {reason})\n"
                ));
                continue;
            }
            Preview::Recreate => {
                out.push_str(&format!(
                    "{stack}: ROLLBACK_COMPLETE (its first create failed): deploy deletes it and \
                     creates it again\n"
                ));
                continue;
            }
        };
        if rows.is_empty() {
            out.push_str(&format!("{stack}: no changes\n"));
            continue;
        }
        out.push_str(&format!("{stack}:\n"));
        out.push_str(&format!(
            "  {:<28} {:<44} {:<8} {}\n",
            "resource", "type", "action", "replacement"
        ));
        for r in rows {
            out.push_str(&format!(
                "  {:<28} {:<44} {:<8} {}\n",
                r.logical_id,
                r.resource_type,
                r.action,
                r.replacement.word()
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::{ChangeRow, Replacement};

    #[test]
    fn the_table_names_resource_action_and_replacement() {
        let row = ChangeRow {
            logical_id: "TaskDefinition".into(),
            resource_type: "AWS::ECS::TaskDefinition".into(),
            action: "Modify".into(),
            replacement: Replacement::Yes,
        };
        let text = render(&[
            ("p-dev-vpc".into(), Preview::Changes(vec![])),
            ("p-dev-ecs".into(), Preview::Changes(vec![row])),
        ]);
        assert_eq!(
            text,
            "p-dev-vpc: no changes\np-dev-ecs:\n  resource                     type                                         action   replacement\n  TaskDefinition               AWS::ECS::TaskDefinition                     Modify   yes\n"
        );
        assert!(!any_changes(&[(
            "p-dev-vpc".into(),
            Preview::Changes(vec![])
        )]));
    }

    #[test]
    fn a_stack_awaiting_exports_counts_as_a_change_and_says_why() {
        let first_deploy = [
            ("p-dev-vpc".into(), Preview::Changes(vec![])),
            (
                "p-dev-ecs".into(),
                Preview::AwaitsExports("No export named p-dev-VpcId found".into()),
            ),
        ];
        assert!(any_changes(&first_deploy));
        assert!(any_changes(&[("p-dev-ecs".into(), Preview::Recreate)]));
        assert!(render(&first_deploy).ends_with(
            "p-dev-ecs: changes known once the stacks before it are deployed (it imports their new \
             exports: No export named p-dev-VpcId found)\n"
        ));
    }
}
