//! Exports other stacks import. CloudFormation refuses to change one (the vpc stack's `VpcId`,
//! which the ecs stack imports) only at the very end of an update: after it has built the
//! replacements, minutes in, and then it rolls all of it back. `check` sees that coming in the
//! change set, before anything runs: a deployed export whose value refers to a resource the change
//! replaces or removes, or to a parameter whose value changes, or that the new template drops.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{bail, Context, Result};
use aws_sdk_cloudformation::error::ProvideErrorMetadata;
use aws_sdk_cloudformation::Client;
use serde_yaml::Value;

use super::{ChangeRow, Stack};
use crate::aws::aws_error;
use crate::parameters::{declarations, function, known_values, parse};

/// A deployed export this change would change, and why.
#[derive(Debug, PartialEq, Eq)]
struct Changing {
    export: String,
    cause: String,
}

/// The names (resources, parameters) a template value refers to through `Ref`, `GetAtt` and
/// `Sub`, in the short (`!Ref X`) and the long (`{Ref: X}`) form.
fn references(v: &Value, into: &mut BTreeSet<String>) {
    match function(v) {
        Some((f, arg)) if f == "Ref" => into.extend(arg.as_str().map(str::to_owned)),
        Some((f, arg)) if f == "GetAtt" => {
            let target = match arg {
                Value::Sequence(s) => s.first().and_then(Value::as_str),
                other => other.as_str().and_then(|s| s.split('.').next()),
            };
            into.extend(target.map(str::to_owned));
        }
        Some((f, arg)) if f == "Sub" => {
            let (text, locals) = match arg {
                Value::Sequence(s) => (s.first(), s.get(1).and_then(Value::as_mapping)),
                other => (Some(other), None),
            };
            let local = |name: &str| locals.is_some_and(|m| m.contains_key(name));
            for name in text
                .and_then(Value::as_str)
                .map(sub_names)
                .unwrap_or_default()
            {
                if !name.starts_with("AWS::") && !local(&name) {
                    into.insert(name);
                }
            }
            for value in locals.into_iter().flat_map(|m| m.values()) {
                references(value, into);
            }
        }
        Some((_, arg)) => references(arg, into),
        None => match v {
            Value::Sequence(s) => s.iter().for_each(|x| references(x, into)),
            Value::Mapping(m) => m.values().for_each(|x| references(x, into)),
            _ => {}
        },
    }
}

/// `${Name}` and `${Name.Attribute}` in a `Sub` string, as `Name` (`${!Literal}` is no reference).
fn sub_names(text: &str) -> Vec<String> {
    text.split("${")
        .skip(1)
        .filter_map(|rest| rest.split_once('}'))
        .map(|(name, _)| name.split('.').next().unwrap_or(name).to_owned())
        .filter(|name| !name.starts_with('!'))
        .collect()
}

/// What the parsed template's outputs refer to, by output key.
fn output_references(doc: &Value) -> BTreeMap<String, BTreeSet<String>> {
    let outputs = doc.get("Outputs").and_then(Value::as_mapping);
    outputs
        .into_iter()
        .flatten()
        .filter_map(|(key, output)| {
            let mut names = BTreeSet::new();
            references(output.get("Value")?, &mut names);
            Some((key.as_str()?.to_owned(), names))
        })
        .collect()
}

/// The deployed exports that deploying `stack` with `rows` (its change set) would change.
fn changing(
    stack: &Stack,
    deployed: &aws_sdk_cloudformation::types::Stack,
    rows: &[ChangeRow],
) -> Result<Vec<Changing>> {
    let doc = parse(&stack.template)
        .with_context(|| format!("cannot read the outputs of stack {}'s template", stack.name))?;
    let refers = output_references(&doc);
    let deployed_parameters = super::deployed_parameters(deployed);
    // With the template's defaults: a parameter left out of the environment file takes its default.
    let new_parameters = known_values(&declarations(&doc), &stack.parameters);
    let cause_of = |name: &str| -> Option<String> {
        let row = rows.iter().find(|r| r.logical_id == name);
        if let Some((row, verb)) = row.and_then(|r| Some((r, r.ends_resource()?))) {
            return Some(format!("it {verb} {name} ({})", row.resource_type));
        }
        let (old, new) = (deployed_parameters.get(name)?, new_parameters.get(name)?);
        (old != new).then(|| format!("{name} changes from {old} to {new}"))
    };
    Ok(deployed
        .outputs()
        .iter()
        .filter_map(|o| {
            let export = o.export_name()?.to_owned();
            let cause = match refers.get(o.output_key()?) {
                None => "the template no longer exports it".to_owned(),
                Some(names) => names.iter().find_map(|n| cause_of(n))?,
            };
            Some(Changing { export, cause })
        })
        .collect())
}

/// The stacks that import `export` (none: CloudFormation answers with an error that says so).
async fn importers(cfn: &Client, export: &str) -> Result<Vec<String>> {
    match cfn.list_imports().export_name(export).send().await {
        Ok(out) => Ok(out.imports().to_vec()),
        Err(e) if e.message().is_some_and(|m| m.contains("is not imported")) => Ok(vec![]),
        Err(e) => Err(aws_error(e)).with_context(|| format!("cannot list the imports of {export}")),
    }
}

/// Refuse a change that would change an export another stack imports: CloudFormation would fail
/// it only after building the replacements, and roll them back. A stack not deployed yet (`None`)
/// exports nothing.
pub async fn check(
    cfn: &Client,
    stack: &Stack,
    deployed: Option<&aws_sdk_cloudformation::types::Stack>,
    rows: &[ChangeRow],
) -> Result<()> {
    let Some(deployed) = deployed else {
        return Ok(());
    };
    let mut blocked = Vec::new();
    for c in changing(stack, deployed, rows)? {
        let by = importers(cfn, &c.export).await?;
        if !by.is_empty() {
            blocked.push(format!(
                "{} ({}; imported by {})",
                c.export,
                c.cause,
                by.join(", ")
            ));
        }
    }
    if blocked.is_empty() {
        return Ok(());
    }
    let env = stack.parameters.get("EnvName").map(String::as_str);
    bail!(
        "stack {} cannot change what other stacks import: export {}. CloudFormation would refuse it \
         only after building the replacements, minutes in, and roll back: put the old value back in \
         the environment file, or run `cargo xtask destroy{}` first (images and logs are kept) and \
         deploy again; nothing was changed",
        stack.name,
        blocked.join("; export "),
        env.map(|e| format!(" --env {e}")).unwrap_or_default()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mock::{mock_sdk, service_error};
    use crate::stack::Replacement;
    use aws_sdk_cloudformation::operation::list_imports::ListImportsOutput;
    use aws_sdk_cloudformation::types::{Output, Parameter};
    use aws_smithy_mocks::mock;

    const TEMPLATE: &str = r#"
Parameters:
  VpcCidr: { Type: String }
Resources:
  Vpc: { Type: AWS::EC2::VPC, Properties: { CidrBlock: !Ref VpcCidr } }
  Subnet1: { Type: AWS::EC2::Subnet }
  Subnet2: { Type: AWS::EC2::Subnet }
Outputs:
  VpcId:
    Value: !Ref Vpc
    Export: { Name: !Sub "${ProjectName}-VpcId" }
  VpcCidr:
    Value: { Ref: VpcCidr }
    Export: { Name: p-VpcCidr }
  Subnets:
    Value: !Join [",", [!Ref Subnet1, !GetAtt Subnet2.SubnetId]]
    Export: { Name: p-Subnets }
  Arn:
    Value: !Sub ["arn:${AWS::Partition}:x:${Place}/${Vpc.Id}/${!Literal}", { Place: !Ref Subnet1 }]
"#;

    fn stack(cidr: &str, template: &str) -> Stack {
        Stack {
            name: "p-dev-vpc".into(),
            label: "vpc".into(),
            template: template.into(),
            parameters: [("VpcCidr", cidr), ("EnvName", "dev")]
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .into(),
            tags: vec![],
        }
    }

    fn deployed() -> aws_sdk_cloudformation::types::Stack {
        let output = |key: &str, export: &str| {
            Output::builder()
                .output_key(key)
                .output_value("x")
                .export_name(export)
                .build()
        };
        aws_sdk_cloudformation::types::Stack::builder()
            .parameters(
                Parameter::builder()
                    .parameter_key("VpcCidr")
                    .parameter_value("10.0.0.0/16")
                    .build(),
            )
            .outputs(output("VpcId", "p-VpcId"))
            .outputs(output("VpcCidr", "p-VpcCidr"))
            .outputs(output("Subnets", "p-Subnets"))
            .outputs(
                Output::builder()
                    .output_key("Arn")
                    .output_value("a")
                    .build(),
            )
            .build()
    }

    fn row(id: &str, action: &str, replacement: Replacement) -> ChangeRow {
        ChangeRow {
            logical_id: id.into(),
            resource_type: "AWS::EC2::Thing".into(),
            action: action.into(),
            replacement,
        }
    }

    #[test]
    fn references_follow_ref_getatt_and_sub_but_not_pseudo_or_local_names() {
        let refs = output_references(&parse(TEMPLATE).unwrap());
        let names = |k: &str| refs[k].iter().map(String::as_str).collect::<Vec<_>>();
        assert_eq!(names("VpcId"), ["Vpc"]);
        assert_eq!(names("VpcCidr"), ["VpcCidr"]);
        assert_eq!(names("Subnets"), ["Subnet1", "Subnet2"]);
        assert_eq!(names("Arn"), ["Subnet1", "Vpc"]);
    }

    #[test]
    fn replacements_removals_and_parameter_changes_change_the_exports_that_refer_to_them() {
        let same = stack("10.0.0.0/16", TEMPLATE);
        let quiet = [
            row("Vpc", "Modify", Replacement::No),
            row("Subnet1", "Modify", Replacement::Maybe),
        ];
        assert_eq!(changing(&same, &deployed(), &quiet).unwrap(), []);

        let moved = stack("10.2.0.0/16", TEMPLATE);
        let rows = [
            row("Vpc", "Modify", Replacement::Yes),
            row("Subnet2", "Remove", Replacement::No),
        ];
        let causes: Vec<(String, String)> = changing(&moved, &deployed(), &rows)
            .unwrap()
            .into_iter()
            .map(|c| (c.export, c.cause))
            .collect();
        assert_eq!(
            causes,
            [
                ("p-VpcId".into(), "it replaces Vpc (AWS::EC2::Thing)".into()),
                (
                    "p-VpcCidr".into(),
                    "VpcCidr changes from 10.0.0.0/16 to 10.2.0.0/16".into()
                ),
                (
                    "p-Subnets".into(),
                    "it removes Subnet2 (AWS::EC2::Thing)".into()
                ),
            ]
        );

        // Left out of the environment file, the parameter takes the template's default.
        let defaulted = Stack {
            parameters: [("EnvName".to_owned(), "dev".to_owned())].into(),
            ..stack(
                "",
                &TEMPLATE.replace("{ Type: String }", "{ Type: String, Default: 10.9.0.0/16 }"),
            )
        };
        let causes = changing(&defaulted, &deployed(), &[]).unwrap();
        assert_eq!(causes.len(), 1, "{causes:?}");
        assert_eq!(
            causes[0].cause,
            "VpcCidr changes from 10.0.0.0/16 to 10.9.0.0/16"
        );

        let dropped = stack("10.0.0.0/16", &TEMPLATE.replace("  Subnets:", "  Other:"));
        let gone = changing(&dropped, &deployed(), &[]).unwrap();
        assert_eq!(
            gone,
            [Changing {
                export: "p-Subnets".into(),
                cause: "the template no longer exports it".into()
            }]
        );
    }

    #[tokio::test]
    async fn a_change_to_an_imported_export_is_refused_and_one_nobody_imports_is_not() {
        let imported = mock!(Client::list_imports)
            .match_requests(|r| r.export_name() == Some("p-VpcId"))
            .then_output(|| ListImportsOutput::builder().imports("p-dev-ecs").build());
        let not_imported = mock!(Client::list_imports)
            .match_requests(|r| r.export_name() != Some("p-VpcId"))
            .then_error(|| {
                aws_sdk_cloudformation::operation::list_imports::ListImportsError::generic(
                    service_error(
                        "ValidationError",
                        "Export 'p-VpcCidr' is not imported by any stack.",
                    ),
                )
            });
        let cfn = mock_sdk!(aws_sdk_cloudformation, [&imported, &not_imported]);

        let moved = stack("10.2.0.0/16", TEMPLATE);
        let replaced = [row("Vpc", "Modify", Replacement::Yes)];
        let err = check(&cfn, &moved, Some(&deployed()), &replaced)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(
                "stack p-dev-vpc cannot change what other stacks import: export p-VpcId (it replaces \
                 Vpc (AWS::EC2::Thing); imported by p-dev-ecs)."
            ) && err.contains("`cargo xtask destroy --env dev` first")
                && !err.contains("p-VpcCidr"),
            "{err}"
        );

        let only_cidr = [row("Vpc", "Modify", Replacement::No)];
        check(&cfn, &moved, Some(&deployed()), &only_cidr)
            .await
            .unwrap();
    }
}
