//! A CloudFormation template as a normalised YAML value.

use serde_yaml::{Mapping, Value};

#[derive(Debug, Clone)]
pub struct Template {
    pub name: String,
    pub root: Value,
}

impl Template {
    pub fn parse(name: &str, text: &str) -> Result<Template, String> {
        let raw: Value =
            serde_yaml::from_str(text).map_err(|e| format!("{name}: not valid YAML: {e}"))?;
        let root = normalise(raw);
        if !root.get("Resources").is_some_and(Value::is_mapping) {
            return Err(format!("{name}: has no Resources section"));
        }
        Ok(Template {
            name: name.to_owned(),
            root,
        })
    }

    pub fn load(stack: &str) -> Template {
        let path = crate::root().join("infra").join(format!("{stack}.yaml"));
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        Template::parse(stack, &text).unwrap_or_else(|e| panic!("{e}"))
    }

    /// (logical id, resource) pairs.
    pub fn resources(&self) -> impl Iterator<Item = (&str, &Value)> {
        entries(self.root.get("Resources"))
    }

    /// The resource with logical id `id`.
    pub fn resource(&self, id: &str) -> Option<&Value> {
        self.root.get("Resources")?.get(id)
    }

    /// Resources of one type.
    pub fn of_type<'a>(&'a self, ty: &'a str) -> impl Iterator<Item = (&'a str, &'a Value)> + 'a {
        self.resources()
            .filter(move |(_, r)| r.get("Type").and_then(Value::as_str) == Some(ty))
    }

    pub fn parameters(&self) -> impl Iterator<Item = (&str, &Value)> {
        entries(self.root.get("Parameters"))
    }

    pub fn outputs(&self) -> impl Iterator<Item = (&str, &Value)> {
        entries(self.root.get("Outputs"))
    }
}

fn entries(section: Option<&Value>) -> impl Iterator<Item = (&str, &Value)> {
    section
        .and_then(Value::as_mapping)
        .into_iter()
        .flat_map(|m| m.iter())
        .filter_map(|(k, v)| Some((k.as_str()?, v)))
}

/// A resource property, following a path of keys.
pub fn prop<'a>(resource: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter()
        .try_fold(resource.get("Properties")?, |v, key| v.get(*key))
}

/// `!Ref X` → `{Ref: X}`, `!GetAtt A.B` → `{Fn::GetAtt: [A, B]}`, `!Sub s` → `{Fn::Sub: s}`, ...
pub fn normalise(value: Value) -> Value {
    match value {
        Value::Tagged(tagged) => {
            let tag = tagged.tag.to_string();
            let tag = tag.trim_start_matches('!');
            let inner = normalise(tagged.value);
            let key = if tag == "Ref" || tag == "Condition" {
                tag.to_owned()
            } else {
                format!("Fn::{tag}")
            };
            let inner = match (key.as_str(), inner) {
                ("Fn::GetAtt", Value::String(s)) => match s.split_once('.') {
                    Some((a, b)) => Value::Sequence(vec![a.into(), b.into()]),
                    None => Value::String(s),
                },
                (_, other) => other,
            };
            let mut m = Mapping::new();
            m.insert(Value::String(key), inner);
            Value::Mapping(m)
        }
        Value::Mapping(m) => {
            Value::Mapping(m.into_iter().map(|(k, v)| (k, normalise(v))).collect())
        }
        Value::Sequence(s) => Value::Sequence(s.into_iter().map(normalise).collect()),
        other => other,
    }
}

/// The intrinsic function a value is (`Ref`, `Fn::Sub`, ...) and its argument.
pub fn intrinsic(value: &Value) -> Option<(&str, &Value)> {
    let m = value.as_mapping()?;
    if m.len() != 1 {
        return None;
    }
    let (k, v) = m.iter().next()?;
    let k = k.as_str()?;
    (k == "Ref" || k.starts_with("Fn::")).then_some((k, v))
}

/// Every value in the tree, depth first (for checks that search the whole template).
pub fn walk<'a>(value: &'a Value, visit: &mut dyn FnMut(&'a Value)) {
    visit(value);
    match value {
        Value::Mapping(m) => m.values().for_each(|v| walk(v, visit)),
        Value::Sequence(s) => s.iter().for_each(|v| walk(v, visit)),
        _ => {}
    }
}

/// The name of an export or import written as `!Sub "..."` or a plain string.
pub fn name_pattern(value: &Value) -> Option<String> {
    match intrinsic(value) {
        Some(("Fn::Sub", Value::String(s))) => Some(s.clone()),
        None => value.as_str().map(str::to_owned),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_tags_become_long_form() {
        let t = Template::parse(
            "t",
            "Resources:\n  A:\n    Type: X\n    Properties:\n      R: !Ref B\n      G: !GetAtt B.Arn\n      S: !Sub \"${P}-x\"\n      L: !Select [0, !GetAZs \"\"]\n",
        )
        .unwrap();
        let (_, a) = t.resources().next().unwrap();
        assert_eq!(intrinsic(prop(a, &["R"]).unwrap()).unwrap().0, "Ref");
        let (f, args) = intrinsic(prop(a, &["G"]).unwrap()).unwrap();
        assert_eq!((f, args.as_sequence().unwrap().len()), ("Fn::GetAtt", 2));
        assert_eq!(name_pattern(prop(a, &["S"]).unwrap()).unwrap(), "${P}-x");
        let (f, args) = intrinsic(prop(a, &["L"]).unwrap()).unwrap();
        assert_eq!(f, "Fn::Select");
        assert_eq!(intrinsic(&args[1]).unwrap().0, "Fn::GetAZs");
    }

    #[test]
    fn a_template_without_resources_is_rejected() {
        assert!(Template::parse("t", "Parameters: {}\n")
            .unwrap_err()
            .contains("no Resources"));
        assert!(Template::parse("t", "Resources: [\n")
            .unwrap_err()
            .contains("not valid YAML"));
    }
}
