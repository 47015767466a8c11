//! The project on disk: where the workspace is, the environment's parameter file, the three stacks.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// The workspace root (the parent of `xtask/`).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_owned()
}

/// The three stacks, in deployment order (`vpc` and `ecr` are independent).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum StackKind {
    Vpc,
    Ecr,
    Ecs,
}

impl StackKind {
    pub const ALL: [StackKind; 3] = [StackKind::Vpc, StackKind::Ecr, StackKind::Ecs];

    pub fn name(self) -> &'static str {
        match self {
            StackKind::Vpc => "vpc",
            StackKind::Ecr => "ecr",
            StackKind::Ecs => "ecs",
        }
    }
}

/// `infra/env/<env>.yaml`, parsed.
#[derive(Debug, Clone)]
pub struct Environment {
    pub name: String,
    pub project: String,
    /// Per-stack parameters from the file (ProjectName/EnvName are added for every stack).
    pub stacks: BTreeMap<String, BTreeMap<String, String>>,
    pub infra_dir: PathBuf,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct EnvFile {
    project: String,
    #[serde(default)]
    stacks: BTreeMap<String, BTreeMap<String, serde_yaml::Value>>,
}

impl Environment {
    pub fn load(root: &Path, name: &str) -> Result<Environment> {
        let infra_dir = root.join("infra");
        let path = infra_dir.join("env").join(format!("{name}.yaml"));
        if !path.exists() {
            let known = known_environments(&infra_dir).join(", ");
            bail!(
                "unknown environment {name:?}: there is no infra/env/{name}.yaml (known: {known}); \
                 pass --env with one of those or create the file"
            );
        }
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        Self::parse(name, &text, infra_dir).with_context(|| format!("in {}", path.display()))
    }

    pub fn parse(name: &str, text: &str, infra_dir: PathBuf) -> Result<Environment> {
        let file: EnvFile =
            serde_yaml::from_str(text).context("the file is not a valid environment file")?;
        let mut stacks = BTreeMap::new();
        for (stack, params) in file.stacks {
            if !StackKind::ALL.iter().any(|k| k.name() == stack) {
                bail!("unknown stack {stack:?} under `stacks:` (expected vpc, ecr or ecs)");
            }
            let params = params
                .into_iter()
                .map(|(k, v)| {
                    Ok((
                        k.clone(),
                        scalar(&v).with_context(|| format!("parameter {stack}.{k}"))?,
                    ))
                })
                .collect::<Result<_>>()?;
            stacks.insert(stack, params);
        }
        Ok(Environment {
            name: name.to_owned(),
            project: file.project,
            stacks,
            infra_dir,
        })
    }

    /// `<project>-<env>-<stack>`.
    pub fn stack_name(&self, kind: StackKind) -> String {
        format!("{}-{}-{}", self.project, self.name, kind.name())
    }

    /// Resource prefix used inside the templates (`${ProjectName}-${EnvName}`).
    pub fn prefix(&self) -> String {
        format!("{}-{}", self.project, self.name)
    }

    pub fn template_path(&self, kind: StackKind) -> PathBuf {
        self.infra_dir.join(format!("{}.yaml", kind.name()))
    }

    /// Parameters for `kind`: ProjectName, EnvName, the file's values, then `extra` (computed by xtask).
    pub fn parameters(
        &self,
        kind: StackKind,
        extra: &[(&str, String)],
    ) -> BTreeMap<String, String> {
        let mut params = BTreeMap::from([
            ("ProjectName".to_owned(), self.project.clone()),
            ("EnvName".to_owned(), self.name.clone()),
        ]);
        if let Some(file) = self.stacks.get(kind.name()) {
            params.extend(file.clone());
        }
        params.extend(extra.iter().map(|(k, v)| (k.to_string(), v.clone())));
        params
    }
}

fn scalar(v: &serde_yaml::Value) -> Result<String> {
    Ok(match v {
        serde_yaml::Value::String(s) => s.clone(),
        serde_yaml::Value::Number(n) => n.to_string(),
        serde_yaml::Value::Bool(b) => b.to_string(),
        serde_yaml::Value::Sequence(items) => items
            .iter()
            .map(scalar)
            .collect::<Result<Vec<_>>>()?
            .join(","),
        _ => bail!("must be a string, number, boolean or list"),
    })
}

fn known_environments(infra_dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(infra_dir.join("env"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_str()?
                .strip_suffix(".yaml")
                .map(str::to_owned)
        })
        .collect();
    names.sort();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str =
        "project: demo\nstacks:\n  vpc:\n    VpcCidr: 10.1.0.0/16\n  ecs:\n    DesiredCount: 2\n";

    #[test]
    fn names_include_project_and_environment() {
        let env = Environment::parse("prod", FILE, PathBuf::from("infra")).unwrap();
        assert_eq!(env.stack_name(StackKind::Ecs), "demo-prod-ecs");
        assert_eq!(env.prefix(), "demo-prod");
    }

    #[test]
    fn parameters_merge_common_file_and_computed_values() {
        let env = Environment::parse("dev", FILE, PathBuf::from("infra")).unwrap();
        let p = env.parameters(StackKind::Ecs, &[("ImageUri", "r@sha256:1".into())]);
        assert_eq!(p["ProjectName"], "demo");
        assert_eq!(p["EnvName"], "dev");
        assert_eq!(p["DesiredCount"], "2");
        assert_eq!(p["ImageUri"], "r@sha256:1");
        assert!(!env.parameters(StackKind::Ecr, &[]).contains_key("VpcCidr"));
    }

    #[test]
    fn unknown_stack_and_fields_are_rejected() {
        let err = Environment::parse("dev", "project: x\nstacks:\n  db: {}\n", PathBuf::new())
            .unwrap_err();
        assert!(
            format!("{err:#}").contains("unknown stack \"db\""),
            "{err:#}"
        );
        assert!(Environment::parse("dev", "project: x\nregion: eu\n", PathBuf::new()).is_err());
    }

    #[test]
    fn unknown_environment_names_the_known_ones() {
        let err = Environment::load(&root(), "nope").unwrap_err().to_string();
        assert!(
            err.contains("unknown environment \"nope\"") && err.contains("dev"),
            "{err}"
        );
    }
}
