//! Content digests: the names of manifests and blobs.
//!
//! A digest is `algorithm:encoded` as the OCI image spec defines it. We accept the two
//! registered algorithms, `sha256` and `sha512`, with lowercase hex of the right length, and
//! refuse anything else instead of guessing: a digest we cannot verify is a digest we must
//! not delete by.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest as _, Sha256, Sha512};

/// A validated content digest such as `sha256:<64 hex>`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Digest(String);

/// Why a string is not a digest we accept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid digest {value:?}: {reason}")]
pub struct DigestError {
    /// The rejected text, cut short so a huge input cannot flood a log line.
    pub value: String,
    pub reason: &'static str,
}

impl Digest {
    /// The sha256 digest of `bytes`.
    pub fn sha256_of(bytes: &[u8]) -> Digest {
        Digest(format!("sha256:{}", hex::encode(Sha256::digest(bytes))))
    }

    /// The digest of `bytes` computed with this digest's own algorithm.
    pub fn same_algorithm_of(&self, bytes: &[u8]) -> Digest {
        match self.algorithm() {
            "sha512" => Digest(format!("sha512:{}", hex::encode(Sha512::digest(bytes)))),
            _ => Digest::sha256_of(bytes),
        }
    }

    /// Whether `bytes` hash to this digest.
    pub fn verifies(&self, bytes: &[u8]) -> bool {
        self.same_algorithm_of(bytes) == *self
    }

    pub fn algorithm(&self) -> &str {
        self.0.split_once(':').map(|(a, _)| a).unwrap_or("")
    }

    pub fn hex(&self) -> &str {
        self.0.split_once(':').map(|(_, h)| h).unwrap_or("")
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first 12 hex characters, as people are used to seeing them.
    pub fn short(&self) -> &str {
        let hex = self.hex();
        &hex[..hex.len().min(12)]
    }

    /// The tag the OCI referrers fallback uses for this digest: `sha256-<hex>`.
    pub fn fallback_tag(&self) -> String {
        format!("{}-{}", self.algorithm(), self.hex())
    }

    /// If `tag` is a link tag such as `sha256-<hex>` or `sha256-<hex>.sig` (cosign, the OCI
    /// referrers fallback), the digest it names.
    pub fn from_link_tag(tag: &str) -> Option<Digest> {
        let (algorithm, rest) = tag.split_once('-')?;
        let hex = rest.split_once('.').map(|(h, _)| h).unwrap_or(rest);
        Digest::from_str(&format!("{algorithm}:{hex}")).ok()
    }
}

impl FromStr for Digest {
    type Err = DigestError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let fail = |reason| DigestError {
            value: s.chars().take(100).collect(),
            reason,
        };
        let (algorithm, hex) = s
            .split_once(':')
            .ok_or_else(|| fail("expected algorithm:hex"))?;
        let expected_len = match algorithm {
            "sha256" => 64,
            "sha512" => 128,
            _ => return Err(fail("algorithm must be sha256 or sha512")),
        };
        if hex.len() != expected_len {
            return Err(fail("hex part has the wrong length"));
        }
        if !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(fail("hex part must be lowercase hexadecimal"));
        }
        Ok(Digest(s.to_owned()))
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", self.0)
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn sha256_of_empty_input_is_the_well_known_digest() {
        assert_eq!(Digest::sha256_of(b"").as_str(), format!("sha256:{HEX}"));
    }

    #[test]
    fn rejects_uppercase_short_and_unknown_algorithms() {
        assert!(format!("sha256:{}", HEX.to_uppercase())
            .parse::<Digest>()
            .is_err());
        assert!("sha256:abc".parse::<Digest>().is_err());
        assert!(format!("md5:{HEX}").parse::<Digest>().is_err());
        assert!(HEX.parse::<Digest>().is_err());
        assert!(format!("sha256:{HEX}").parse::<Digest>().is_ok());
    }

    #[test]
    fn verifies_only_matching_bytes() {
        let d = Digest::sha256_of(b"hello");
        assert!(d.verifies(b"hello"));
        assert!(!d.verifies(b"hello!"));
    }

    #[test]
    fn sha512_digests_verify_with_sha512() {
        let d = Digest(format!("sha512:{}", hex::encode(Sha512::digest(b"x"))));
        assert!(d.verifies(b"x"));
        assert!(!d.verifies(b"y"));
    }

    #[test]
    fn link_tags_name_their_digest() {
        let d: Digest = format!("sha256:{HEX}").parse().unwrap();
        assert_eq!(d.fallback_tag(), format!("sha256-{HEX}"));
        assert_eq!(
            Digest::from_link_tag(&format!("sha256-{HEX}")),
            Some(d.clone())
        );
        assert_eq!(Digest::from_link_tag(&format!("sha256-{HEX}.sig")), Some(d));
        assert_eq!(Digest::from_link_tag("sha256-abc.sig"), None);
        assert_eq!(Digest::from_link_tag("latest"), None);
    }
}
