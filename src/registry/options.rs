//! How to reach a registry: the options every backend is built from, and which kind of
//! registry it is. Backend-neutral, so that no backend imports another's types.

use std::time::Duration;

use url::Url;

use super::auth::Credentials;
use super::docker_config::Lookup;
use super::retry::RetryPolicy;

/// Which API a registry speaks beyond the OCI distribution API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The OCI distribution API only.
    Oci,
    /// Azure Container Registry: also `/acr/v1/` (timestamps, locks, tag and repository
    /// delete) and Azure AD token exchange.
    Acr,
    /// Amazon ECR, through its own API (`ecr.rs`), with AWS credentials.
    Ecr,
}

impl Kind {
    /// The kind a host's name implies: ACR's public and sovereign clouds, else OCI.
    pub fn of_host(host: &str) -> Kind {
        let name = host.split(':').next().unwrap_or(host).to_ascii_lowercase();
        if [".azurecr.io", ".azurecr.cn", ".azurecr.us"]
            .iter()
            .any(|s| name.ends_with(s))
        {
            Kind::Acr
        } else if EcrHost::parse(host).is_some() {
            Kind::Ecr
        } else {
            Kind::Oci
        }
    }
}

/// An ECR registry's host, `<account>.dkr.ecr.<region>.amazonaws.com` (`.com.cn` in China,
/// `dkr.ecr-fips` for FIPS endpoints): the registry id and the region it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EcrHost {
    pub registry_id: String,
    pub region: String,
}

impl EcrHost {
    pub fn parse(host: &str) -> Option<EcrHost> {
        let name = host.split(':').next().unwrap_or(host).to_ascii_lowercase();
        let rest = name
            .strip_suffix(".amazonaws.com")
            .or_else(|| name.strip_suffix(".amazonaws.com.cn"))?;
        let parts: Vec<&str> = rest.split('.').collect();
        match parts[..] {
            [account, "dkr", "ecr" | "ecr-fips", region]
                if account.len() == 12
                    && account.bytes().all(|b| b.is_ascii_digit())
                    && !region.is_empty()
                    && region
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-') =>
            {
                Some(EcrHost {
                    registry_id: account.to_owned(),
                    region: region.to_owned(),
                })
            }
            _ => None,
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Kind::Oci => "oci",
            Kind::Acr => "acr",
            Kind::Ecr => "ecr",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ecr_hosts_name_their_account_and_region() {
        assert_eq!(
            EcrHost::parse("123456789012.dkr.ecr.eu-west-1.amazonaws.com"),
            Some(EcrHost {
                registry_id: "123456789012".into(),
                region: "eu-west-1".into()
            })
        );
        assert_eq!(
            EcrHost::parse("123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn")
                .unwrap()
                .region,
            "cn-north-1"
        );
        assert!(EcrHost::parse("123456789012.dkr.ecr-fips.us-east-1.amazonaws.com").is_some());
        for not in [
            "12345.dkr.ecr.us-east-1.amazonaws.com",
            "123456789012.dkr.ecr.us-east-1.amazonaws.com.evil.example",
            "public.ecr.aws",
            "registry.example",
            "123456789012.ecr.us-east-1.amazonaws.com",
        ] {
            assert_eq!(EcrHost::parse(not), None, "{not}");
        }
        assert_eq!(
            Kind::of_host("123456789012.dkr.ecr.us-east-1.amazonaws.com"),
            Kind::Ecr
        );
        assert_eq!(Kind::of_host("myregistry.azurecr.io"), Kind::Acr);
        assert_eq!(Kind::of_host("ghcr.io"), Kind::Oci);
    }
}

/// How to reach a registry.
#[derive(Clone)]
pub struct ClientOptions {
    pub credentials: Option<Credentials>,
    /// Where in docker's config the credentials came from, to ask again when the registry
    /// refuses them partway through a run; `None` for credentials given outright.
    pub credential_source: Option<Lookup>,
    /// The registry's kind; `None` works it out from the host name.
    pub kind: Option<Kind>,
    /// ACR: an Azure AD access token to exchange for registry tokens.
    pub aad_token: Option<String>,
    pub retry: RetryPolicy,
    /// Page size asked for with `n` on listings (distribution refuses more than 1000).
    pub page_size: usize,
    /// Timeout of one HTTP request.
    pub timeout: Duration,
    /// Changes (deletes, untags) in flight at once, whatever asks for them; reads go up to
    /// `READS_PER_WRITE` times as many.
    pub in_flight: usize,
    /// Write operations (deletes, pushes, lock changes) a minute at most; `None`: not paced.
    pub max_writes_per_minute: Option<u32>,
    /// How many workers share the registry's write budget (the function's queue workers), for
    /// a backend's default budget where none is given; 1 for the CLI.
    pub write_shares: u32,
    /// No request starts after this, and none runs past it (the Lambda's hard deadline).
    pub cutoff: Option<std::time::Instant>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            credentials: None,
            credential_source: None,
            kind: None,
            aad_token: None,
            retry: RetryPolicy::default(),
            page_size: 1000,
            timeout: Duration::from_secs(30),
            in_flight: 8,
            max_writes_per_minute: None,
            write_shares: 1,
            cutoff: None,
        }
    }
}

/// A registry URL fit for a message: any `user:password@` replaced, at most 200 characters.
pub fn redact_userinfo(url: &str) -> String {
    let shown = match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            format!("{}://<redacted>@{}", &url[..scheme_end], &url[at + 1..])
        }
        _ => url.to_owned(),
    };
    shown.chars().take(200).collect()
}

/// `host` or `host:port` of a registry URL.
pub fn registry_host(url: &Url) -> Option<String> {
    let host = url.host_str()?;
    Some(match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    })
}
