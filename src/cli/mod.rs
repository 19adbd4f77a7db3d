//! The command line. `plan` and `apply` sweep with a policy (`sweep`), and `purge` with the
//! policy that `acr purge`'s flags stand for (`purge`); the manual operations of the ACR guide
//! (`repository`, `image`, `tag`, `manifest`) name what goes instead (`manual`). All reach
//! the registry the same way (`connect`).

mod connect;
mod manual;
mod purge;
mod sweep;

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use anyhow::anyhow;
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
    /// acr purge, with its flags: delete tags (and with --untagged, manifests) by filter and
    /// age. Prints the policy it runs; asks first on a terminal unless --yes or --dry-run.
    Purge(purge::PurgeArgs),
    /// Repositories: delete one with everything in it.
    #[command(subcommand)]
    Repository(manual::RepositoryCommand),
    /// Images: delete one manifest with its tags (and what only it uses).
    #[command(subcommand)]
    Image(manual::ImageCommand),
    /// Tags: remove a tag and nothing else.
    #[command(subcommand)]
    Tag(manual::TagCommand),
    /// Manifests: list them, or delete those older than a date.
    #[command(subcommand)]
    Manifest(manual::ManifestCommand),
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
        Command::Repository(c) => manual::repository(c).await,
        Command::Image(c) => manual::image(c).await,
        Command::Tag(c) => manual::tag(c).await,
        Command::Manifest(c) => manual::manifest(c).await,
    }
}

/// Whether we may ask a question: both stdin and stderr are a terminal.
fn can_ask() -> bool {
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

/// A change that was neither confirmed with `--yes` nor can be asked about.
fn needs_yes() -> Failure {
    usage(anyhow!(
        "this changes the registry; pass --yes to confirm, or run it on a terminal to be asked"
    ))
}

fn confirm(question: &str) -> bool {
    eprint!("{question}");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    if std::io::stdin().lock().read_line(&mut line).is_err() {
        return false;
    }
    matches!(line.trim(), "y" | "Y" | "yes" | "YES" | "Yes")
}

/// One line of progress on stderr, only when stderr is a terminal.
struct Progress {
    total: usize,
    enabled: bool,
}

impl Progress {
    fn new(total: usize) -> Progress {
        Progress {
            total,
            enabled: std::io::stderr().is_terminal()
                && std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_none(),
        }
    }

    fn show(&self, i: usize, repo: &str, phase: &str) {
        if self.enabled {
            eprint!("\r\x1b[2K[{}/{}] {repo}: {phase}…", i + 1, self.total);
            let _ = std::io::stderr().flush();
        }
    }

    fn clear(&self) {
        if self.enabled {
            eprint!("\r\x1b[2K");
        }
    }
}
