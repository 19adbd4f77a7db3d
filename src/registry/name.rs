//! Repository names, tags and references, checked before they go into a URL path.
//!
//! Names come from users and from registry listings. Either can be wrong or hostile, and a
//! name like `../x` must never reach a request path.

use std::fmt;

use super::digest::Digest;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error(
        "invalid repository name {0:?}: use lowercase letters, digits and . _ - separated by /"
    )]
    Repository(String),
    #[error("invalid tag {0:?}: up to 128 of A-Z a-z 0-9 _ . -, not starting with . or -")]
    Tag(String),
}

fn clip(s: &str) -> String {
    s.chars().take(200).collect()
}

/// Check a repository name against the distribution grammar (path components of lowercase
/// alphanumerics joined by `.`, `_` or `-`, separated by `/`).
pub fn check_repository(name: &str) -> Result<(), NameError> {
    let component_ok = |c: &str| {
        let bytes = c.as_bytes();
        !bytes.is_empty()
            && bytes[0].is_ascii_lowercase() | bytes[0].is_ascii_digit()
            && bytes[bytes.len() - 1].is_ascii_lowercase() | bytes[bytes.len() - 1].is_ascii_digit()
            && bytes
                .iter()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(b))
    };
    if name.len() <= 255 && name.split('/').all(component_ok) {
        Ok(())
    } else {
        Err(NameError::Repository(clip(name)))
    }
}

/// Check a tag: `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`.
pub fn check_tag(tag: &str) -> Result<(), NameError> {
    let bytes = tag.as_bytes();
    let ok = (1..=128).contains(&bytes.len())
        && (bytes[0].is_ascii_alphanumeric() || bytes[0] == b'_')
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(b));
    if ok {
        Ok(())
    } else {
        Err(NameError::Tag(clip(tag)))
    }
}

/// What a manifest request names: a tag or a digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Reference {
    Tag(String),
    Digest(Digest),
}

impl Reference {
    /// A tag reference, checked.
    pub fn tag(tag: &str) -> Result<Reference, NameError> {
        check_tag(tag)?;
        Ok(Reference::Tag(tag.to_owned()))
    }
}

impl From<Digest> for Reference {
    fn from(d: Digest) -> Self {
        Reference::Digest(d)
    }
}

impl From<&Digest> for Reference {
    fn from(d: &Digest) -> Self {
        Reference::Digest(d.clone())
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reference::Tag(t) => f.write_str(t),
            Reference::Digest(d) => f.write_str(d.as_str()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_names_follow_the_distribution_grammar() {
        for ok in ["app", "ci/app", "a.b/c_d/e-f", "library/ubuntu2"] {
            assert!(check_repository(ok).is_ok(), "{ok}");
        }
        for bad in [
            "", "App", "../etc", "a//b", "a/", "-a", "a?b", "a b", "a/..",
        ] {
            assert!(check_repository(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tags_follow_the_distribution_grammar() {
        for ok in ["latest", "v1.2.3", "_x", "sha256-abc.sig"] {
            assert!(check_tag(ok).is_ok(), "{ok}");
        }
        let long = "a".repeat(129);
        for bad in ["", ".x", "-x", "a/b", "a:b", long.as_str()] {
            assert!(check_tag(bad).is_err(), "{bad}");
        }
    }
}
