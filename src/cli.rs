//! The command line: `plan` and `apply`. It turns flags into a sweep and prints the report.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{anyhow, Context};
use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand, ValueEnum};

use registry_janitor::policy::Policy;
use registry_janitor::registry::oci::{redact_userinfo, registry_host};
use registry_janitor::registry::{ClientOptions, Credentials, OciClient};
use registry_janitor::report::Report;
use registry_janitor::state::{FileState, NoState, StateStore};
use registry_janitor::sweep::{scope, Planned, Sweeper};

#[derive(Parser)]
#[command(
    name = "registry-janitor",
    version,
    about = "Keeps container registries small without breaking images that are still in use",
    long_about = "Keeps container registries small without breaking images that are still in use.\n\n\
`plan` shows what a policy would delete and why; it never changes the registry. \
`apply` does it. Exit codes: 0 ok, 1 runtime error or failed actions, 2 usage or input error."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Show what the policy would delete, untag and keep, with reasons. Changes nothing.
    Plan(SweepArgs),
    /// Plan, then carry the plan out (asks first on a terminal unless --yes).
    Apply {
        #[command(flatten)]
        sweep: SweepArgs,
        /// Do not ask for confirmation (needed when not on a terminal).
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Args)]
pub struct SweepArgs {
    /// Registry URL: http://127.0.0.1:5000 or https://registry.example (the scheme picks TLS).
    #[arg(long, value_name = "URL")]
    registry: String,
    /// Policy file, JSON (.json) or TOML (.toml).
    #[arg(long, value_name = "FILE")]
    policy: PathBuf,
    /// Only these repositories (repeatable). Default: every repository a rule matches.
    #[arg(long = "repository", value_name = "NAME")]
    repositories: Vec<String>,
    /// Evaluate as if at this instant (RFC 3339), to preview a later cleanup.
    #[arg(long, value_name = "RFC3339")]
    now: Option<DateTime<Utc>>,
    /// Inventory file. Default: $XDG_STATE_HOME/registry-janitor/<registry host>.json.
    #[arg(long, value_name = "FILE", conflicts_with = "no_state")]
    state: Option<PathBuf>,
    /// Run without memory: untagged manifests are then only those something still links to.
    #[arg(long)]
    no_state: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=64))]
    concurrency: u16,
    /// Username (else REGISTRY_USERNAME, else the docker config.json).
    #[arg(long, requires = "password")]
    username: Option<String>,
    /// Password or token (else REGISTRY_PASSWORD). Other local users can see command lines:
    /// prefer the environment or a docker login.
    #[arg(long, requires = "username")]
    password: Option<String>,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
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
        Command::Plan(args) => sweep(args, Mode::Plan).await,
        Command::Apply { sweep: args, yes } => {
            sweep(
                args,
                if yes {
                    Mode::ApplyNow
                } else {
                    Mode::ApplyAfterAsking
                },
            )
            .await
        }
    }
}

#[derive(PartialEq, Eq, Clone, Copy)]
enum Mode {
    Plan,
    ApplyNow,
    ApplyAfterAsking,
}

async fn sweep(args: SweepArgs, mode: Mode) -> Result<ExitCode, Failure> {
    let policy = Policy::from_file(&args.policy).map_err(usage)?;
    if mode == Mode::ApplyAfterAsking
        && !(std::io::stdin().is_terminal() && std::io::stderr().is_terminal())
    {
        return Err(usage(anyhow!(
            "apply changes the registry; pass --yes to confirm, or run it on a terminal to be asked"
        )));
    }
    let url = url::Url::parse(&args.registry).map_err(|e| {
        usage(anyhow!(
            "--registry {:?}: {e}",
            redact_userinfo(&args.registry)
        ))
    })?;
    let host = registry_host(&url).ok_or_else(|| {
        usage(anyhow!(
            "--registry {:?} has no host",
            redact_userinfo(&args.registry)
        ))
    })?;
    let explicit = args
        .username
        .clone()
        .zip(args.password.clone())
        .map(|(username, password)| Credentials { username, password });
    let credentials =
        Credentials::resolve(&host, explicit, |k| std::env::var(k).ok()).map_err(usage)?;
    let client = OciClient::new(
        &args.registry,
        ClientOptions {
            credentials,
            ..ClientOptions::default()
        },
    )
    .map_err(usage)?;
    let now = args.now.unwrap_or_else(Utc::now);
    if mode != Mode::Plan && args.now.is_some() {
        tracing::warn!(now = %now, "apply with --now deletes as if it were that moment");
    }
    if args.no_state {
        run_sweep(&client, &policy, &mut NoState, &args, now, mode).await
    } else {
        let path = match &args.state {
            Some(p) => p.clone(),
            None => FileState::default_path(&host, |k| std::env::var(k).ok()).ok_or_else(|| {
                usage(anyhow!(
                    "no --state given and neither XDG_STATE_HOME nor HOME is set"
                ))
            })?,
        };
        let mut store = FileState::open(&path, &host).map_err(runtime)?;
        let result = run_sweep(&client, &policy, &mut store, &args, now, mode).await;
        store.flush().await.map_err(runtime)?;
        result
    }
}

async fn run_sweep<S: StateStore>(
    client: &OciClient,
    policy: &Policy,
    store: &mut S,
    args: &SweepArgs,
    now: DateTime<Utc>,
    mode: Mode,
) -> Result<ExitCode, Failure> {
    let repositories = scope(client, policy, &args.repositories)
        .await
        .context("listing the repositories to sweep")
        .map_err(runtime)?;
    let mut sweeper = Sweeper {
        client,
        policy,
        store,
        now,
        concurrency: usize::from(args.concurrency),
        deadline: None,
    };
    let progress = Progress::new(repositories.len());
    let results = if mode == Mode::ApplyAfterAsking {
        let mut planned: Vec<Planned> = Vec::new();
        for (i, repo) in repositories.iter().enumerate() {
            progress.show(i, repo, "reading");
            planned.push(sweeper.plan(repo).await.map_err(runtime)?);
        }
        progress.clear();
        let preview = Report::new(now, true, planned.iter().map(|p| p.plan.clone()).collect());
        print!("{}", preview.to_table());
        let s = &preview.summary;
        if s.manifests_deleted + s.tags_removed == 0 {
            eprintln!("Nothing to do.");
            return Ok(ExitCode::SUCCESS);
        }
        if !confirm(&format!(
            "Delete {} manifests and remove {} tags in {}? [y/N] ",
            s.manifests_deleted,
            s.tags_removed,
            redact_userinfo(&args.registry)
        )) {
            eprintln!("Nothing was changed.");
            return Ok(ExitCode::SUCCESS);
        }
        let mut results = Vec::new();
        for (i, p) in planned.into_iter().enumerate() {
            progress.show(i, &p.plan.name.clone(), "applying");
            results.push(sweeper.apply(p).await.map_err(runtime)?);
        }
        progress.clear();
        results
    } else {
        let outcome = sweeper
            .run(&repositories, mode == Mode::ApplyNow, |i, repo, phase| {
                progress.show(i, repo, phase)
            })
            .await
            .map_err(runtime)?;
        progress.clear();
        outcome.repositories
    };
    let report = Report::new(now, mode == Mode::Plan, results);
    match args.format {
        Format::Json => println!("{}", report.to_json()),
        Format::Table => print!("{}", report.to_table()),
    }
    Ok(if report.has_failures() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
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
