//! The test harness: a real CNCF distribution registry (Debian's `docker-registry`), started
//! on 127.0.0.1 on a free port for one test and stopped when the test ends, plus the images,
//! indexes and referrers the tests push into it, a token server for bearer auth, and a proxy
//! that makes the registry flaky on purpose.
//!
//! Every end-to-end test in this crate uses this one module, so a fix here helps them all.
#![allow(dead_code)]

pub mod acr;
pub mod ecr;
pub mod ecs;
pub mod images;
pub mod janitor;
pub mod lambda_watch;
pub mod moto;
pub mod proxy;
pub mod recorded_ecr;
pub mod registry;
pub mod server;
pub mod sqs_driver;
pub mod token;

#[allow(unused_imports)]
pub use images::{Image, Pushed};
#[allow(unused_imports)]
pub use registry::{RegistryAuth, TestRegistry};

/// reqwest is built without a default TLS crypto provider; the harness installs ring as the
/// library does.
pub fn init() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Run a command and return its stdout, failing the test with its stderr if it fails.
pub fn run(cmd: &str, args: &[&str]) -> Vec<u8> {
    let out = std::process::Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd}: {e}; .ci/run installs it"));
    assert!(
        out.status.success(),
        "{cmd} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A whole number from the environment (a bench's knob), or `default` when unset.
pub fn env_usize(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a whole number")),
        Err(_) => default,
    }
}
