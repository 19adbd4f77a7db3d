//! `registry-janitor`: the command line. (The Lambda face joins here with its issue.)

mod cli;

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let filter = EnvFilter::try_from_env("JANITOR_LOG")
        .unwrap_or_else(|_| EnvFilter::new("warn,registry_janitor=info"));
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter)
        .with_target(false)
        .compact()
        .init();
    match cli::run(cli).await {
        Ok(code) => code,
        Err(failure) => failure.exit(),
    }
}
