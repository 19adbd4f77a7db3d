//! `policy from-ecr`: an ECR lifecycle policy as our policy, printed as JSON to plan with.
//! The translation is the library's (`policy::from_ecr`); this reads the file and prints.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::anyhow;
use clap::Subcommand;

use registry_janitor::policy::from_ecr;

use super::{usage, Failure};

#[derive(Subcommand)]
pub enum PolicyCommand {
    /// Translate an ECR lifecycle policy (the JSON of `aws ecr get-lifecycle-policy`'s
    /// lifecyclePolicyText) into a registry-janitor policy and print it. A rule with no
    /// counterpart is an error that names it.
    FromEcr {
        /// The lifecycle policy file.
        #[arg(value_name = "LIFECYCLE_JSON")]
        path: PathBuf,
    },
}

pub fn run(command: PolicyCommand) -> Result<ExitCode, Failure> {
    let PolicyCommand::FromEcr { path } = command;
    let text = std::fs::read_to_string(&path)
        .map_err(|e| usage(anyhow!("cannot read {}: {e}", path.display())))?;
    let policy =
        from_ecr::translate(&text).map_err(|e| usage(anyhow!("{}: {e}", path.display())))?;
    let json = serde_json::to_string_pretty(&policy)
        .map_err(|e| usage(anyhow!("cannot print the policy: {e}")))?;
    println!("{json}");
    Ok(ExitCode::SUCCESS)
}
