//! Checks over the CloudFormation templates in `infra/`, run by `cargo test`.
//!
//! Templates are read with serde_yaml; the short intrinsic tags (`!Ref`, `!Sub`, `!GetAtt`, ...)
//! arrive as tagged values and are normalised to their long form (`Ref`, `Fn::Sub`, ...), so a
//! check sees one shape whichever way the template was written.

pub mod checks;
pub mod template;

use std::path::{Path, PathBuf};

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// The stacks in deployment order.
pub const STACKS: [&str; 3] = ["vpc", "ecr", "ecs"];

/// Parameters `cargo xtask` supplies itself (not from the environment files).
pub const SUPPLIED_BY_XTASK: [&str; 5] = [
    "ProjectName",
    "EnvName",
    "ImageUri",
    "CpuArchitecture",
    "CloudFrontPrefixListId",
];
