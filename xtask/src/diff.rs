//! `cargo xtask diff`: what `deploy` would change, stack by stack, as a table. Changes nothing.

use std::path::Path;

use anyhow::Result;

use crate::flags;
use crate::project::StackKind;
use crate::session::Session;
use crate::stack::{self, ChangeRow};
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
        let rows = stack::preview(&s.clients.cfn, &stack, s.poll).await?;
        spinner.done(if rows.is_empty() {
            "no changes".to_owned()
        } else {
            format!("{} change(s)", rows.len())
        });
        all.push((stack.name, rows));
    }
    print!("{}", render(&all));
    Ok(all.iter().any(|(_, rows)| !rows.is_empty()))
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
pub fn render(stacks: &[(String, Vec<ChangeRow>)]) -> String {
    let mut out = String::new();
    for (stack, rows) in stacks {
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
    use crate::stack::Replacement;

    #[test]
    fn the_table_names_resource_action_and_replacement() {
        let row = ChangeRow {
            logical_id: "TaskDefinition".into(),
            resource_type: "AWS::ECS::TaskDefinition".into(),
            action: "Modify".into(),
            replacement: Replacement::Yes,
        };
        let text = render(&[
            ("p-dev-vpc".into(), vec![]),
            ("p-dev-ecs".into(), vec![row]),
        ]);
        assert_eq!(
            text,
            "p-dev-vpc: no changes\np-dev-ecs:\n  resource                     type                                         action   replacement\n  TaskDefinition               AWS::ECS::TaskDefinition                     Modify   yes\n"
        );
    }
}
