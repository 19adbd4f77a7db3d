//! Everything about registries: the model (digests, names, manifests) and the backends that
//! read and delete through a registry's API.

pub mod acr;
pub mod auth;
pub mod backend;
pub mod digest;
pub mod docker_config;
pub mod ecr;
pub mod error;
mod identity;
mod link;
pub mod manifest;
pub mod media_type;
pub mod name;
pub mod oci;
pub mod options;
pub mod pace;
pub mod retry;
mod sources;
mod transport;

pub use acr::AcrClient;
pub use auth::Credentials;
pub use backend::{
    Backend, Capabilities, Deleted, ListedManifest, ListedTag, Support, TagDeleted, TagListing,
};
pub use digest::Digest;
pub use ecr::EcrClient;
pub use error::RegistryError;
pub use manifest::{Body, Descriptor, Manifest};
pub use media_type::MediaType;
pub use name::Reference;
pub use oci::OciClient;
pub use options::{ClientOptions, Kind};
pub use retry::RetryPolicy;
pub use transport::READS_PER_WRITE;

/// The backend for `registry`: what `options.kind` says, else what its host implies (ACR's
/// for `*.azurecr.io`, ECR's for `<account>.dkr.ecr.<region>.amazonaws.com`), else the OCI
/// Distribution API's.
pub fn connect(registry: &str, options: ClientOptions) -> Result<Box<dyn Backend>, RegistryError> {
    let host = url::Url::parse(registry)
        .ok()
        .and_then(|u| options::registry_host(&u));
    let kind = options
        .kind
        .or_else(|| host.as_deref().map(Kind::of_host))
        .unwrap_or(Kind::Oci);
    if kind == Kind::Ecr {
        return Ok(Box::new(EcrClient::new(registry, &options)?));
    }
    let client = OciClient::new(registry, options)?;
    Ok(match client.kind() {
        Kind::Acr => Box::new(AcrClient::new(client)?),
        Kind::Oci | Kind::Ecr => Box::new(client),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_picks_the_backend_by_kind_and_the_engine_sees_only_capabilities() {
        let acr = connect("https://example.azurecr.io", ClientOptions::default()).unwrap();
        let caps = acr.capabilities();
        assert!(caps.tags_with_digests && caps.manifest_listing && caps.repository_delete);
        assert_eq!(caps.tag_delete, Support::Yes);
        let oci = connect("http://127.0.0.1:5000", ClientOptions::default()).unwrap();
        let caps = oci.capabilities();
        assert!(!caps.tags_with_digests && !caps.manifest_listing && !caps.locks);
        assert_eq!(caps.tag_delete, Support::Unknown, "learned, never assumed");
        let forced = ClientOptions {
            kind: Some(Kind::Acr),
            ..ClientOptions::default()
        };
        assert!(
            connect("http://127.0.0.1:5000", forced)
                .unwrap()
                .capabilities()
                .manifest_listing
        );
    }

    #[test]
    fn the_acr_backend_needs_a_client_built_for_acr() {
        let oci = OciClient::new("http://127.0.0.1:5000", ClientOptions::default()).unwrap();
        assert!(AcrClient::new(oci).is_err());
    }
}
