//! The `registry-janitor` command. The cleanup engine's `plan` and `apply` arrive with the
//! engine; for now the binary checks that it can reach a registry.

use anyhow::Context as _;
use clap::Parser;
use registry_janitor::registry::{ClientOptions, Credentials, OciClient};

#[derive(Parser)]
#[command(
    version,
    about = "Keeps container registries small without breaking images in use"
)]
struct Cli {
    /// Registry URL, such as http://127.0.0.1:5000 or https://registry.example
    #[arg(long)]
    registry: String,
    /// Username (else REGISTRY_USERNAME, else the docker config.json)
    #[arg(long, requires = "password")]
    username: Option<String>,
    /// Password or token (else REGISTRY_PASSWORD)
    #[arg(long, requires = "username")]
    password: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let host = url::Url::parse(&cli.registry)
        .ok()
        .and_then(|u| registry_janitor::registry::oci::registry_host(&u))
        .unwrap_or_default();
    let explicit = cli
        .username
        .zip(cli.password)
        .map(|(username, password)| Credentials { username, password });
    let credentials = Credentials::resolve(&host, explicit, |k| std::env::var(k).ok())?;
    let client = OciClient::new(
        &cli.registry,
        ClientOptions {
            credentials,
            ..ClientOptions::default()
        },
    )?;
    let repositories = client.repositories().await.context("listing the catalog")?;
    for name in repositories.items {
        println!("{name}");
    }
    Ok(())
}
