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

/// The parameters xtask may compute just before the ecs change set (`Session::ecs_parameters`),
/// over whatever the environment file says.
pub const COMPUTED: [&str; 4] = [
    "ImageUri",
    "CpuArchitecture",
    "ContainerHealthCheck",
    "CloudFrontPrefixListId",
];

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
        let env = Self::parse(name, &text, infra_dir)
            .with_context(|| format!("in {}", path.display()))?;
        env.check_against_templates()?;
        Ok(env)
    }

    /// `infra/env/<env>.yaml`, as messages name it.
    pub fn file_name(&self) -> String {
        format!("infra/env/{}.yaml", self.name)
    }

    /// The file's values, and the project and environment names, against the parameters the
    /// templates declare and the rules they decide (each template read and parsed once): an
    /// unknown name or a value CloudFormation would refuse stops the command here, before any
    /// build or AWS call.
    pub fn check_against_templates(&self) -> Result<()> {
        let file = self.file_name();
        // The load balancer is named <project>-<env>; AWS keeps names starting `internal-` for itself.
        if self.project == "internal" || self.project.starts_with("internal-") {
            bail!(
                "project {:?} would name the load balancer {:?}, and AWS refuses load balancer names \
                 starting with \"internal-\": change `project:` in {file}",
                self.project,
                self.prefix()
            );
        }
        for kind in StackKind::ALL {
            let sent = self.stack(kind, &[])?;
            let doc = crate::parameters::parse(&sent.template).with_context(|| {
                format!(
                    "{} is not a valid CloudFormation template",
                    self.template_path(kind).display()
                )
            })?;
            let declared = crate::parameters::declarations(&doc);
            let stack = kind.name();
            if let Some(unknown) = self
                .stacks
                .get(stack)
                .and_then(|values| values.keys().find(|k| !declared.contains_key(*k)))
            {
                bail!(
                    "{file} sets {unknown:?} under stacks.{stack}, but infra/{stack}.yaml declares no such parameter \
                     (it has: {}): fix the name or remove it",
                    declared.keys().cloned().collect::<Vec<_>>().join(", ")
                );
            }
            for (key, value) in &sent.parameters {
                let Some(rule) = declared.get(key) else {
                    continue;
                };
                let Err(broken) = rule.check(value) else {
                    continue;
                };
                let (what, fix) = match key.as_str() {
                    "ProjectName" => (
                        format!("project {value:?}"),
                        format!("change `project:` in {file}"),
                    ),
                    "EnvName" => (
                        format!("environment name {value:?}"),
                        format!("rename {file}"),
                    ),
                    _ => (
                        format!("stacks.{stack}.{key} = {value:?}"),
                        format!("change it in {file}"),
                    ),
                };
                bail!(
                    "{what} is refused by infra/{stack}.yaml ({}): {fix}",
                    rule.explain(&broken)
                );
            }
            self.check_rules_in(&sent, &doc, &declared, &COMPUTED)?;
        }
        Ok(())
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

    /// The template's `Rules` over the stack's parameters (the file's, xtask's computed ones,
    /// the defaults), as CloudFormation checks them when it makes the change set. Values named
    /// in `not_yet` are not known yet (a default says nothing about them): rules that need them
    /// are left for later. `load` checks what the file decides, each change set everything.
    pub fn check_rules(&self, stack: &crate::stack::Stack, not_yet: &[&str]) -> Result<()> {
        let doc = crate::parameters::parse(&stack.template)?;
        let declared = crate::parameters::declarations(&doc);
        self.check_rules_in(stack, &doc, &declared, not_yet)
    }

    /// `check_rules` with the template already parsed.
    fn check_rules_in(
        &self,
        stack: &crate::stack::Stack,
        doc: &serde_yaml::Value,
        declared: &BTreeMap<String, crate::parameters::Declaration>,
        not_yet: &[&str],
    ) -> Result<()> {
        let mut values = crate::parameters::known_values(declared, &stack.parameters);
        values.retain(|name, _| !not_yet.contains(&name.as_str()));
        match crate::parameters::broken_rule(doc, &values) {
            None => Ok(()),
            Some(rule) => bail!(
                "infra/{}.yaml refuses the parameters of {}: {rule} Change them and run again",
                stack.label,
                self.file_name()
            ),
        }
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

    /// The stack of `kind` as a deploy sends it: template, parameters (plus `extra` computed
    /// values) and tags.
    pub fn stack(&self, kind: StackKind, extra: &[(&str, String)]) -> Result<crate::stack::Stack> {
        Ok(crate::stack::Stack {
            name: self.stack_name(kind),
            label: kind.name().to_owned(),
            template: self.template(kind)?,
            parameters: self.parameters(kind, extra),
            tags: vec![
                ("project".into(), self.project.clone()),
                ("environment".into(), self.name.clone()),
                ("managed-by".into(), "cargo-xtask".into()),
            ],
        })
    }

    /// The template of `kind`, as text.
    pub fn template(&self, kind: StackKind) -> Result<String> {
        let path = self.template_path(kind);
        std::fs::read_to_string(&path).with_context(|| {
            format!(
                "cannot read the {} template {}",
                kind.name(),
                path.display()
            )
        })
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

/// A parameter file's value as the string CloudFormation is passed (lists joined with commas).
fn scalar(v: &serde_yaml::Value) -> Result<String> {
    match v {
        serde_yaml::Value::Sequence(items) => Ok(items
            .iter()
            .map(scalar)
            .collect::<Result<Vec<_>>>()?
            .join(",")),
        other => {
            crate::parameters::scalar(other).context("must be a string, number, boolean or list")
        }
    }
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
    fn a_parameter_is_the_files_value_else_the_templates_default() {
        let file = "project: demo\nstacks:\n  ecs:\n    HealthCheckPath: /healthz\n";
        let infra = root().join("infra");
        let env = Environment::parse("dev", file, infra.clone()).unwrap();
        let doc = crate::parameters::parse(&env.template(StackKind::Ecs).unwrap()).unwrap();
        let values = crate::parameters::known_values(
            &crate::parameters::declarations(&doc),
            &env.parameters(StackKind::Ecs, &[]),
        );
        assert_eq!(
            values.get("HealthCheckPath").map(String::as_str),
            Some("/healthz")
        );
        assert_eq!(values.get("Cpu").map(String::as_str), Some("256"));
        assert_eq!(values.get("ImageUri"), None, "declared without a default");
        assert_eq!(values.get("NoSuchParameter"), None);
        let env = Environment::parse("dev", "project: demo\n", infra).unwrap();
        let values = crate::parameters::known_values(
            &crate::parameters::declarations(&doc),
            &env.parameters(StackKind::Ecs, &[]),
        );
        assert_eq!(
            values.get("HealthCheckPath").map(String::as_str),
            Some("/health")
        );
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

    /// A scratch `infra/` with the real templates and one environment file.
    fn infra_with(env: &str, file: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("xtask-infra-{env}-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("infra/env")).unwrap();
        for kind in StackKind::ALL {
            let name = format!("infra/{}.yaml", kind.name());
            std::fs::copy(root().join(&name), dir.join(&name)).unwrap();
        }
        std::fs::write(dir.join(format!("infra/env/{env}.yaml")), file).unwrap();
        dir
    }

    #[test]
    fn values_the_templates_refuse_stop_before_anything_runs() {
        for (env, file, expected) in [
            (
                "dev",
                "project: fargate-app\nstacks:\n  ecs:\n    MaxCount: \"11\"\n",
                "stacks.ecs.MaxCount = \"11\" is refused by infra/ecs.yaml (allowed: 1, 2,",
            ),
            (
                "dev",
                "project: app\nstacks:\n  ecs:\n    HealthCheckPath: health\n",
                "stacks.ecs.HealthCheckPath = \"health\" is refused by infra/ecs.yaml (must match ^/",
            ),
            (
                "dev",
                "project: My_App\n",
                "project \"My_App\" is refused by infra/vpc.yaml (must match",
            ),
            (
                "production-eu1",
                "project: app\n",
                "environment name \"production-eu1\" is refused by infra/vpc.yaml",
            ),
            (
                "dev",
                "project: app\nstacks:\n  vpc:\n    VpcCidrr: 10.0.0.0/16\n",
                "sets \"VpcCidrr\" under stacks.vpc, but infra/vpc.yaml declares no such parameter",
            ),
            (
                "dev",
                "project: internal\n",
                "project \"internal\" would name the load balancer \"internal-dev\", and AWS refuses",
            ),
            (
                "dev",
                "project: app\nstacks:\n  ecs:\n    MinCount: \"3\"\n    MaxCount: \"2\"\n",
                "infra/ecs.yaml refuses the parameters of infra/env/dev.yaml: MinCount must not exceed MaxCount (2). Change them and run again",
            ),
        ] {
            let dir = infra_with(env, file);
            let err = Environment::load(&dir, env).unwrap_err().to_string();
            std::fs::remove_dir_all(&dir).unwrap();
            assert!(err.contains(expected), "{err}");
        }
        let dir = infra_with(
            "ok",
            "project: internals\nstacks:\n  ecs:\n    MinCount: \"4\"\n    MaxCount: \"10\"\n",
        );
        let loaded = Environment::load(&dir, "ok");
        std::fs::remove_dir_all(&dir).unwrap();
        loaded.unwrap();
    }

    /// The stack as a deploy would make it, with xtask's computed values filled in.
    fn stack_of(env: &Environment, kind: StackKind) -> crate::stack::Stack {
        let computed = [
            ("ImageUri", format!("r@sha256:{}", "0".repeat(64))),
            ("CpuArchitecture", "X86_64".to_owned()),
            ("CloudFrontPrefixListId", "pl-12345678".to_owned()),
        ];
        let extra: &[_] = if kind == StackKind::Ecs {
            &computed
        } else {
            &[]
        };
        env.stack(kind, extra).unwrap()
    }

    #[test]
    fn the_shipped_environments_pass() {
        for env in known_environments(&root().join("infra")) {
            let env = Environment::load(&root(), &env).unwrap();
            for kind in StackKind::ALL {
                env.check_rules(&stack_of(&env, kind), &[]).unwrap();
            }
        }
    }

    #[test]
    fn a_fargate_size_aws_does_not_offer_is_refused_before_anything_runs() {
        let dir = infra_with(
            "odd",
            "project: app\nstacks:\n  ecs:\n    Cpu: 256\n    Memory: 4096\n",
        );
        let err = Environment::load(&dir, "odd").unwrap_err().to_string();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(
            err,
            "infra/ecs.yaml refuses the parameters of infra/env/odd.yaml: With Cpu 256, Memory must be 512, 1024 or 2048. Change them and run again"
        );
    }

    #[test]
    fn min_count_above_max_count_is_refused_for_every_pair() {
        let env = Environment::load(&root(), "dev").unwrap();
        let template = env.template(StackKind::Ecs).unwrap();
        let declared = crate::parameters::declared(&template).unwrap();
        let counts = |name: &str| declared[name].allowed_values.clone().unwrap();
        for min in counts("MinCount") {
            for max in counts("MaxCount") {
                let mut env = env.clone();
                env.stacks.insert(
                    "ecs".into(),
                    BTreeMap::from([
                        ("MinCount".into(), min.clone()),
                        ("MaxCount".into(), max.clone()),
                    ]),
                );
                let verdict = env.check_rules(&stack_of(&env, StackKind::Ecs), &[]);
                let refused = min.parse::<u32>().unwrap() > max.parse::<u32>().unwrap();
                match verdict {
                    Ok(()) => assert!(!refused, "MinCount {min} > MaxCount {max} passed"),
                    Err(e) => assert!(
                        refused && e.to_string().contains("MinCount must not exceed MaxCount"),
                        "MinCount {min}, MaxCount {max}: {e}"
                    ),
                }
            }
        }
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
