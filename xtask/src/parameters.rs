//! A template's parameter declarations, and the check every parameter file passes before any
//! build or AWS call: names the template declares, values its constraints allow (CloudFormation
//! would refuse them only when it reaches that stack, after the stacks before it were deployed
//! and the image pushed; fakecloud does not check them at all).

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use serde_yaml::Value;

/// One `Parameters:` entry, as far as its constraints go.
#[derive(Debug, Default)]
pub struct Declaration {
    pub ty: String,
    pub default: Option<String>,
    pub allowed_pattern: Option<String>,
    pub allowed_values: Option<Vec<String>>,
    pub min_value: Option<f64>,
    pub max_value: Option<f64>,
    pub min_length: Option<usize>,
    pub max_length: Option<usize>,
    pub description: Option<String>,
}

/// The template as YAML, for `declarations` and `broken_rule` to share one parse.
pub fn parse(template: &str) -> Result<Value> {
    serde_yaml::from_str(template).context("not YAML")
}

/// Every parameter a template declares, by name.
pub fn declared(template: &str) -> Result<BTreeMap<String, Declaration>> {
    Ok(declarations(&parse(template)?))
}

/// Every parameter the parsed template `doc` declares, by name.
pub fn declarations(doc: &Value) -> BTreeMap<String, Declaration> {
    let mut out = BTreeMap::new();
    for (name, decl) in doc
        .get("Parameters")
        .and_then(Value::as_mapping)
        .into_iter()
        .flatten()
    {
        let Some(name) = name.as_str() else { continue };
        let text = |key: &str| decl.get(key).and_then(scalar);
        let number = |key: &str| text(key).and_then(|v| v.parse().ok());
        out.insert(
            name.to_owned(),
            Declaration {
                ty: text("Type").unwrap_or_default(),
                default: text("Default"),
                allowed_pattern: text("AllowedPattern"),
                allowed_values: decl
                    .get("AllowedValues")
                    .and_then(Value::as_sequence)
                    .map(|values| values.iter().filter_map(scalar).collect()),
                min_value: number("MinValue"),
                max_value: number("MaxValue"),
                min_length: number("MinLength").map(|n: f64| n as usize),
                max_length: number("MaxLength").map(|n: f64| n as usize),
                description: text("Description"),
            },
        );
    }
    out
}

/// The value each declared parameter gets: the one `given`, else the template's default (a
/// parameter with neither is left out).
pub fn known_values(
    declared: &BTreeMap<String, Declaration>,
    given: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    declared
        .iter()
        .filter_map(|(name, declaration)| {
            let value = given.get(name).or(declaration.default.as_ref())?;
            Some((name.clone(), value.clone()))
        })
        .collect()
}

/// A literal string, number or boolean as text (a tagged `!Ref` and the like is not literal).
pub(crate) fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

impl Declaration {
    /// `Err(rule)` when CloudFormation would refuse `value` for this parameter.
    pub fn check(&self, value: &str) -> Result<(), String> {
        if let Some(allowed) = &self.allowed_values {
            if !allowed.iter().any(|a| a == value) {
                return Err(format!("allowed: {}", allowed.join(", ")));
            }
        }
        if self.ty == "Number" {
            let n: f64 = value.parse().map_err(|_| "must be a number".to_owned())?;
            if let Some(min) = self.min_value.filter(|min| n < *min) {
                return Err(format!("must be at least {min}"));
            }
            if let Some(max) = self.max_value.filter(|max| n > *max) {
                return Err(format!("must be at most {max}"));
            }
        }
        if self.ty == "String" {
            let len = value.chars().count();
            if let Some(min) = self.min_length.filter(|min| len < *min) {
                return Err(format!("must have at least {min} characters"));
            }
            if let Some(max) = self.max_length.filter(|max| len > *max) {
                return Err(format!("must have at most {max} characters"));
            }
            if let Some(pattern) = &self.allowed_pattern {
                // CloudFormation matches the whole value.
                let re = regex_lite::Regex::new(&format!("^(?:{pattern})$"))
                    .map_err(|e| format!("the template's AllowedPattern {pattern} is not a valid regular expression ({e})"))?;
                if !re.is_match(value) {
                    return Err(format!("must match {pattern}"));
                }
            }
        }
        Ok(())
    }

    /// The rule, and what the template says the parameter is for.
    pub fn explain(&self, rule: &str) -> String {
        match &self.description {
            Some(d) => format!("{rule}; the template says: {}", d.trim()),
            None => rule.to_owned(),
        }
    }
}

/// The first of the template's `Rules` that `values` break, as its `AssertDescription`.
/// CloudFormation checks them when it makes the change set; fakecloud does not, so xtask does,
/// just before. A rule built from functions other than `Equals`, `Not`, `And`, `Or`, `Contains`
/// and `Ref` is left to CloudFormation.
pub fn broken_rule(doc: &Value, values: &BTreeMap<String, String>) -> Option<String> {
    for (name, rule) in doc
        .get("Rules")
        .and_then(Value::as_mapping)
        .into_iter()
        .flatten()
    {
        let applies = match rule.get("RuleCondition") {
            None => Some(true),
            Some(condition) => truth(condition, values),
        };
        if applies != Some(true) {
            continue;
        }
        for assertion in rule
            .get("Assertions")
            .and_then(Value::as_sequence)
            .into_iter()
            .flatten()
        {
            if assertion.get("Assert").and_then(|a| truth(a, values)) == Some(false) {
                let said = assertion.get("AssertDescription").and_then(scalar);
                return Some(
                    said.unwrap_or_else(|| format!("rule {} fails", name.as_str().unwrap_or("?"))),
                );
            }
        }
    }
    None
}

/// A rule function and its argument, from `!Equals [..]` or `{Fn::Equals: [..]}` (`Ref` as is).
pub(crate) fn function(v: &Value) -> Option<(String, &Value)> {
    match v {
        Value::Tagged(t) => Some((
            t.tag.to_string().trim_start_matches('!').to_owned(),
            &t.value,
        )),
        Value::Mapping(m) if m.len() == 1 => {
            let (k, arg) = m.iter().next()?;
            let k = k.as_str()?;
            Some((k.strip_prefix("Fn::").unwrap_or(k).to_owned(), arg))
        }
        _ => None,
    }
}

/// A plain value, or a parameter's value by `Ref`.
fn text(v: &Value, values: &BTreeMap<String, String>) -> Option<String> {
    match function(v) {
        Some((f, name)) if f == "Ref" => values.get(name.as_str()?).cloned(),
        Some(_) => None,
        None => scalar(v),
    }
}

/// A condition's truth, `None` when it cannot be decided here.
fn truth(v: &Value, values: &BTreeMap<String, String>) -> Option<bool> {
    let (f, arg) = function(v)?;
    let args = arg.as_sequence()?;
    let each = || -> Option<Vec<bool>> { args.iter().map(|c| truth(c, values)).collect() };
    match (f.as_str(), args.as_slice()) {
        ("Equals", [a, b]) => Some(text(a, values)? == text(b, values)?),
        ("Not", [c]) => truth(c, values).map(|b| !b),
        ("And", _) => each().map(|all| all.iter().all(|b| *b)),
        ("Or", _) => each().map(|all| all.iter().any(|b| *b)),
        ("Contains", [list, x]) => {
            let x = text(x, values)?;
            let list: Option<Vec<String>> = list
                .as_sequence()?
                .iter()
                .map(|v| text(v, values))
                .collect();
            Some(list?.contains(&x))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEMPLATE: &str = r#"
Parameters:
  ProjectName: { Type: String, AllowedPattern: "^[a-z][a-z0-9-]{0,17}[a-z0-9]$", Description: Lower-case. }
  Count: { Type: String, Default: "", AllowedValues: ["", "1", "2"] }
  Cpu: { Type: Number, AllowedValues: [256, 512] }
  Target: { Type: Number, MinValue: 10, MaxValue: 90 }
  Path: { Type: String, MinLength: 1, MaxLength: 5 }
  Free: { Type: String }
Resources: {}
"#;

    fn check(name: &str, value: &str) -> Result<(), String> {
        declared(TEMPLATE).unwrap()[name].check(value)
    }

    #[test]
    fn values_the_template_allows_pass() {
        for (name, value) in [
            ("ProjectName", "fargate-app"),
            ("Count", ""),
            ("Count", "2"),
            ("Cpu", "512"),
            ("Target", "10"),
            ("Target", "55.5"),
            ("Path", "/h"),
            ("Free", "anything at all"),
        ] {
            assert_eq!(check(name, value), Ok(()), "{name} = {value:?}");
        }
    }

    #[test]
    fn values_cloudformation_would_refuse_say_why() {
        for (name, value, why) in [
            ("ProjectName", "My_App", "must match ^[a-z]"),
            ("ProjectName", "app-", "must match"),
            ("ProjectName", "a-project-name-of-20c", "must match"),
            ("Count", "3", "allowed: , 1, 2"),
            ("Cpu", "300", "allowed: 256, 512"),
            ("Target", "high", "must be a number"),
            ("Target", "95", "must be at most 90"),
            ("Target", "5", "must be at least 10"),
            ("Path", "", "at least 1 characters"),
            ("Path", "/health", "at most 5 characters"),
        ] {
            let err = check(name, value).expect_err(value);
            assert!(err.contains(why), "{name} = {value:?}: {err}");
        }
    }

    const RULES: &str = r#"
Rules:
  Pairs:
    RuleCondition: !Equals [!Ref Cpu, "256"]
    Assertions:
      - Assert: !Contains [["512", "1024"], !Ref Memory]
        AssertDescription: With Cpu 256, Memory must be 512 or 1024.
  Both:
    RuleCondition: { "Fn::And": [{ "Fn::Equals": [{ Ref: Front }, "on"] }, !Not [!Equals [!Ref Mode, "x"]]] }
    Assertions:
      - Assert: !Or [!Equals [!Ref Id, "a"], !Equals [!Ref Id, "b"]]
        AssertDescription: Id must be a or b.
  Unknown:
    Assertions:
      - Assert: !EachMemberIn [!Ref List, ["x"]]
        AssertDescription: left to CloudFormation.
"#;

    fn rule_for(pairs: &[(&str, &str)]) -> Option<String> {
        let values = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        broken_rule(&parse(RULES).unwrap(), &values)
    }

    #[test]
    fn rules_are_decided_from_the_values() {
        let ok = [
            ("Cpu", "256"),
            ("Memory", "1024"),
            ("Front", "on"),
            ("Mode", "y"),
            ("Id", "b"),
        ];
        assert_eq!(rule_for(&ok), None);
        let mut bad_pair = ok;
        bad_pair[1] = ("Memory", "4096");
        assert_eq!(
            rule_for(&bad_pair).as_deref(),
            Some("With Cpu 256, Memory must be 512 or 1024.")
        );
        let mut bad_id = ok;
        bad_id[4] = ("Id", "c");
        assert_eq!(rule_for(&bad_id).as_deref(), Some("Id must be a or b."));
        // A rule whose condition does not hold, or whose values are unknown, is not applied.
        let mut other_mode = bad_id;
        other_mode[3] = ("Mode", "x");
        assert_eq!(rule_for(&other_mode), None);
        assert_eq!(rule_for(&[("Memory", "4096")]), None);
    }

    #[test]
    fn the_explanation_quotes_the_template() {
        let decls = declared(TEMPLATE).unwrap();
        assert_eq!(
            decls["ProjectName"].explain("must match x"),
            "must match x; the template says: Lower-case."
        );
        assert_eq!(decls["Free"].explain("r"), "r");
    }
}
