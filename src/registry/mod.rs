//! Everything about registries: the model (digests, names, manifests) and the backends that
//! read and delete through a registry's API.

pub mod acr;
pub mod auth;
pub mod digest;
pub mod error;
mod link;
pub mod manifest;
pub mod media_type;
pub mod name;
pub mod oci;
pub mod retry;
mod transport;

pub use auth::Credentials;
pub use digest::Digest;
pub use error::RegistryError;
pub use manifest::{Body, Descriptor, Manifest};
pub use media_type::MediaType;
pub use name::Reference;
pub use oci::{Capabilities, ClientOptions, Deleted, Kind, OciClient, Support, TagDeleted};
pub use retry::RetryPolicy;
pub use transport::READS_PER_WRITE;
