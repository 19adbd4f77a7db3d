//! `registry-janitor`: one binary, two faces. Under the Lambda runtime
//! (`AWS_LAMBDA_RUNTIME_API` is set) it serves invocations; otherwise it is the command line.
//! Nothing else differs between the two.

mod cli;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() {
        return match runtime.block_on(registry_janitor::lambda::run()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(1)
            }
        };
    }
    let cli = cli::Cli::parse();
    let filter = EnvFilter::try_from_env("JANITOR_LOG")
        .unwrap_or_else(|_| EnvFilter::new("warn,registry_janitor::apply=info"));
    let colour = registry_janitor::report::colour(
        std::io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR").as_deref(),
    );
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(colour)
        .with_env_filter(filter)
        .with_target(false)
        .compact()
        .init();
    match runtime.block_on(cli::run(cli)) {
        Ok(code) => code,
        Err(failure) => failure.exit(),
    }
}
