//! Comparing the webhook's shared secret without leaking it through timing.

use sha2::{Digest as _, Sha256};

/// Whether `given` equals `expected`, in time independent of where they differ and of their
/// lengths (both are hashed to 32 bytes first).
pub fn matches(given: &str, expected: &str) -> bool {
    let a = Sha256::digest(given.as_bytes());
    let b = Sha256::digest(expected.as_bytes());
    let diff = a
        .iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y));
    diff == 0 && !expected.is_empty()
}

/// The secret an `Authorization` header carries: `Bearer <secret>`, or the bare value (Harbor
/// sends the configured value as is).
pub fn from_authorization(header: &str) -> &str {
    let h = header.trim();
    match h.split_once(' ') {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
        _ => h,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_secret_matches() {
        assert!(matches("s3cret", "s3cret"));
        assert!(!matches("s3cre", "s3cret"));
        assert!(!matches("s3cret ", "s3cret"));
        assert!(!matches("", ""), "an empty secret never opens the door");
    }

    #[test]
    fn bearer_and_bare_headers_carry_the_secret() {
        assert_eq!(from_authorization("Bearer abc"), "abc");
        assert_eq!(from_authorization("bearer  abc "), "abc");
        assert_eq!(from_authorization("abc"), "abc");
        assert_eq!(from_authorization("Basic abc"), "Basic abc");
    }
}
