//! The command line: one file per command.
//! - `plan` and `apply` sweep with a policy (`sweep.rs`); `purge` with the policy that
//!   `acr purge`'s flags stand for (`purge.rs`).
//! - The manual operations of the ACR guide name what goes instead: `repository.rs`,
//!   `image.rs`, `tag.rs`, `manifest.rs`, with what they share in `operation.rs`.
//! - `restore` puts back what a trash holds, or lists it (`restore.rs`).
//! - `policy from-ecr` prints an ECR lifecycle policy as ours (`policy.rs`); it reaches no
//!   registry.
//! - All reach the registry the same way (`connect.rs`); `terminal.rs` asks and shows
//!   progress. What a command prints is made in the library's `report` module.

mod connect;
mod image;
mod manifest;
mod operation;
mod policy;
mod purge;
mod repository;
mod restore;
mod sweep;
mod tag;
mod terminal;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub use connect::ConnectArgs;

#[derive(Parser)]
#[command(
    name = "registry-janitor",
    version,
    about = "Keeps container registries small without breaking images that are still in use",
    long_about = "Keeps container registries small without breaking images that are still in use.\n\n\
`plan` shows what a policy would delete and why; it never changes the registry. \
`apply` does it. The manual operations (`repository`, `image`, `tag`, `manifest`) do what the \
Azure guide's `az acr` commands do, on any registry, with the same safety checks.\n\n\
Exit codes: 0 ok, 1 runtime error, failed actions or a refused operation, 2 usage or input error."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Show what the policy would delete, untag and keep, with reasons. Changes nothing.
    Plan(sweep::SweepArgs),
    /// Plan, then carry the plan out (asks first on a terminal unless --yes).
    Apply {
        #[command(flatten)]
        sweep: sweep::SweepArgs,
        /// Do not ask for confirmation (needed when not on a terminal).
        #[arg(long)]
        yes: bool,
        /// ACR: lift the lock of a locked manifest the plan deletes (only a policy with
        /// protect.include_locked plans that), and log it. Without it the registry refuses.
        #[arg(long)]
        unlock: bool,
    },
    /// acr purge, with its flags: delete tags (and with --untagged, manifests; with
    /// --untagged-only, only untagged manifests) by filter and age. Prints the policy it runs;
    /// asks first on a terminal unless --yes or --dry-run.
    Purge(purge::PurgeArgs),
    /// Repositories: delete one with everything in it.
    #[command(subcommand)]
    Repository(repository::RepositoryCommand),
    /// Images: delete one manifest with its tags (and what only it uses).
    #[command(subcommand)]
    Image(image::ImageCommand),
    /// Tags: remove a tag and nothing else.
    #[command(subcommand)]
    Tag(tag::TagCommand),
    /// Manifests: list them, or delete those older than a date.
    #[command(subcommand)]
    Manifest(manifest::ManifestCommand),
    /// Policies: translate an ECR lifecycle policy into ours.
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
    /// Put back what a trash holds (the policy's `trash`), or show it with --list. Asks
    /// first on a terminal unless --yes or --list.
    Restore(restore::RestoreArgs),
}

/// An error that is the user's to fix (exit 2), or a failure while running (exit 1).
pub enum Failure {
    Usage(anyhow::Error),
    Runtime(anyhow::Error),
}

impl Failure {
    pub fn exit(self) -> ExitCode {
        let (code, e) = match self {
            Failure::Usage(e) => (2, e),
            Failure::Runtime(e) => (1, e),
        };
        eprintln!("error: {e:#}");
        ExitCode::from(code)
    }
}

fn usage(e: impl Into<anyhow::Error>) -> Failure {
    Failure::Usage(e.into())
}

fn runtime(e: impl Into<anyhow::Error>) -> Failure {
    Failure::Runtime(e.into())
}

pub async fn run(cli: Cli) -> Result<ExitCode, Failure> {
    match cli.command {
        Command::Plan(args) => sweep::sweep(args, sweep::Mode::Plan, false).await,
        Command::Apply {
            sweep: args,
            yes,
            unlock,
        } => {
            let mode = if yes {
                sweep::Mode::ApplyNow
            } else {
                sweep::Mode::ApplyAfterAsking
            };
            sweep::sweep(args, mode, unlock).await
        }
        Command::Purge(args) => purge::purge(args).await,
        Command::Repository(c) => repository::run(c).await,
        Command::Image(c) => image::run(c).await,
        Command::Tag(c) => tag::run(c).await,
        Command::Manifest(c) => manifest::run(c).await,
        Command::Policy(c) => policy::run(c),
        Command::Restore(args) => restore::run(args).await,
    }
}
