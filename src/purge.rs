//! `acr purge`'s flags, translated into a policy: the same engine then runs it, with every
//! safety rule of a policy sweep. Pure: flags in, a policy document out.
//!
//! - `--filter <repo-regex>:<tag-regex>` (repeatable) becomes one `tagged` rule per filter.
//!   It splits at its one `:` outside bracket expressions and group syntax (`(?:`, `(?i:`), as
//!   acr splits it. Both regexes match whole names, where `acr purge` matches anywhere in the
//!   name: `app:v1` does not select `v10`. They take acr's syntax: look-around and POSIX
//!   classes too (`pattern.rs`).
//! - `--ago <duration>`, in acr's form (`1d`, `2d3h6m`, `30m`, `0d`), becomes `older_than`.
//! - `--keep N` keeps the N newest images each filter selects in a repository, each with
//!   every tag the filter selects on it (acr counts tags; this is the safer side), and the N
//!   newest untagged manifests of a repository, as acr does.
//! - Without `--untagged`, only the selected tags go, and their manifests stay untagged
//!   (`untag_only`). With it, a manifest whose tags all go is deleted in the same run, and an
//!   `untagged` rule over the filters' repositories deletes manifests already untagged once
//!   older than `--ago`.
//! - `--untagged-only` (acr-cli #489) is that `untagged` rule alone: no tag goes. Only the
//!   repository part of a filter counts; without one, every repository. `--ago` is then
//!   optional (any age).
//! - `--include-locked` lets the rules select what the registry locked (and the run unlocks
//!   it before deleting).

use std::time::Duration;

use serde_json::{json, Value};

use crate::pattern::Pattern;
use crate::policy::{Policy, PolicyError, MAX_OLDER_THAN};

/// One `--filter`: a repository regex and a tag regex.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    pub repositories: String,
    pub tags: String,
}

/// What `acr purge`'s flags ask for.
#[derive(Debug, Clone)]
pub struct Purge {
    pub filters: Vec<Filter>,
    pub ago: Duration,
    pub untagged: bool,
    /// Only untagged manifests go; the filters only name repositories.
    pub untagged_only: bool,
    pub keep: usize,
    pub include_locked: bool,
}

/// A flag that cannot be translated. The messages follow the flag and its value (clap says
/// "invalid value 'x' for '--ago <DURATION>': ...").
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PurgeError {
    #[error("write it as <repository regex>:<tag regex>, such as 'app:pr-.*'")]
    FilterShape(String),
    #[error(
        "it has {0} ':' outside brackets; write it as <repository regex>:<tag regex>, with one"
    )]
    Separators(usize),
    #[error("the {part} {pattern:?} is not a valid regex: {reason}")]
    FilterRegex {
        filter: String,
        part: &'static str,
        pattern: String,
        reason: String,
    },
    #[error("write it as acr does, such as 1d, 2d3h6m, 30m or 0d")]
    Ago(String),
    #[error("longer than 100 years; that is a typo, not a retention period")]
    AgoTooLong(String),
}

/// `<repo-regex>:<tag-regex>`, split at its one separator (`separators`).
pub fn parse_filter(text: &str) -> Result<Filter, PurgeError> {
    let at = match separators(text)[..] {
        [] => return Err(PurgeError::FilterShape(text.to_owned())),
        [at] => at,
        ref more => return Err(PurgeError::Separators(more.len())),
    };
    let (repositories, tags) = (&text[..at], &text[at + 1..]);
    if repositories.is_empty() || tags.is_empty() {
        return Err(PurgeError::FilterShape(text.to_owned()));
    }
    for (part, pattern) in [("repository regex", repositories), ("tag regex", tags)] {
        Pattern::whole(pattern).map_err(|reason| PurgeError::FilterRegex {
            filter: text.to_owned(),
            part,
            pattern: pattern.to_owned(),
            reason,
        })?;
    }
    Ok(Filter {
        repositories: repositories.to_owned(),
        tags: tags.to_owned(),
    })
}

/// Where a filter may split: every `:` that is not escaped, not inside a bracket expression
/// (`[tes:]`, `[[:alpha:]]`, `[[^:digit:]]`), and not the colon of a group's own syntax
/// (`(?:`, `(?i:`, `(?ims-U:`). A repository or tag name has no colon, so acr's filters have
/// exactly one such colon.
fn separators(text: &str) -> Vec<usize> {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let at = |i: usize| chars.get(i).map(|(_, c)| *c);
    let mut found = Vec::new();
    let mut class = 0usize;
    let mut i = 0;
    while let Some(c) = at(i) {
        match c {
            '\\' => i += 1,
            // Inside brackets, `[:alpha:]` or `[:^digit:]` is a POSIX class: skipped whole.
            '[' if class > 0 && at(i + 1) == Some(':') && posix_class_end(&at, i).is_some() => {
                i = posix_class_end(&at, i).unwrap_or(i);
            }
            // The end of a range (`[!-[]`): a literal.
            '[' if class > 0 && i > 0 && at(i - 1) == Some('-') => {}
            '[' => {
                class += 1;
                // `]` first in a class (after `[` or `[^`) is a literal.
                if at(i + 1) == Some('^') {
                    i += 1;
                }
                if at(i + 1) == Some(']') {
                    i += 1;
                }
            }
            ']' if class > 0 => class -= 1,
            '(' if class == 0 && at(i + 1) == Some('?') => {
                let mut j = i + 2;
                while at(j).is_some_and(|c| c.is_ascii_alphabetic() || c == '-') {
                    j += 1;
                }
                if at(j) == Some(':') {
                    i = j;
                }
            }
            ':' if class == 0 => found.push(chars[i].0),
            _ => {}
        }
        i += 1;
    }
    found
}

/// Where the POSIX class opening at `i` (`[:name:]`, `[:^name:]`) ends: its final `]`.
fn posix_class_end(at: &impl Fn(usize) -> Option<char>, i: usize) -> Option<usize> {
    let mut j = i + 2;
    if at(j) == Some('^') {
        j += 1;
    }
    let name = j;
    while at(j).is_some_and(|c| c.is_ascii_alphabetic()) {
        j += 1;
    }
    (j > name && at(j) == Some(':') && at(j + 1) == Some(']')).then_some(j + 1)
}

/// acr's `--ago`: whole days (`<n>d`), then Go's duration units (`h`, `m`, `s`, `ms`, `us`,
/// `µs`, `ns`), each with a number that may have a fraction (`1.5h`). `0d` is any age.
pub fn parse_ago(text: &str) -> Result<Duration, PurgeError> {
    let bad = || PurgeError::Ago(text.to_owned());
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total = 0f64;
    let mut first = true;
    while !rest.is_empty() {
        let number_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let number: f64 = rest[..number_end].parse().map_err(|_| bad())?;
        rest = &rest[number_end..];
        let (unit, seconds) = [
            ("d", 86_400.0),
            ("h", 3_600.0),
            ("ms", 0.001),
            ("m", 60.0),
            ("s", 1.0),
            ("us", 1e-6),
            ("µs", 1e-6),
            ("μs", 1e-6),
            ("ns", 1e-9),
        ]
        .into_iter()
        .find(|(u, _)| rest.starts_with(u))
        .ok_or_else(bad)?;
        // Days come first and whole, as acr reads them.
        if unit == "d" && (!first || number.fract() != 0.0) {
            return Err(bad());
        }
        total += number * seconds;
        rest = &rest[unit.len()..];
        first = false;
    }
    if !total.is_finite() || total > MAX_OLDER_THAN.as_secs_f64() {
        return Err(PurgeError::AgoTooLong(text.to_owned()));
    }
    Ok(Duration::from_secs_f64(total))
}

impl Purge {
    /// The policy document these flags stand for (printed for the user), and the policy.
    pub fn policy(&self) -> Result<(Value, Policy), PolicyError> {
        // Whole seconds, rounded up: `500ms` must not become "any age".
        let seconds = self.ago.as_secs() + u64::from(self.ago.subsec_nanos() > 0);
        let older_than = format!("{seconds}s");
        let mut rules = Vec::new();
        let mut names = Vec::new();
        for f in self.filters.iter().filter(|_| !self.untagged_only) {
            let name = format!("{}:{}", f.repositories, f.tags);
            if names.contains(&name) {
                continue;
            }
            names.push(name.clone());
            rules.push(json!({
                "name": name,
                "repositories": f.repositories,
                "select": "tagged",
                "tags": f.tags,
                "older_than": older_than,
                "keep": self.keep,
                "untag_only": !self.untagged,
            }));
        }
        if self.untagged || self.untagged_only {
            let mut repositories: Vec<&str> = Vec::new();
            for f in &self.filters {
                if !repositories.contains(&f.repositories.as_str()) {
                    repositories.push(&f.repositories);
                }
            }
            let any: Vec<String> = repositories.iter().map(|r| format!("(?:{r})")).collect();
            let covered = if any.is_empty() {
                ".*".to_owned()
            } else {
                any.join("|")
            };
            let name = if self.untagged_only {
                "--untagged-only"
            } else {
                "--untagged"
            };
            rules.push(json!({
                "name": name,
                "repositories": covered,
                "select": "untagged",
                "older_than": older_than,
                "keep": self.keep,
            }));
        }
        let doc = json!({
            "rules": rules,
            "protect": { "include_locked": self.include_locked },
        });
        let policy = Policy::from_json(&doc.to_string())?;
        Ok((doc, policy))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Select;

    #[test]
    fn ago_reads_acr_and_go_durations() {
        let h = |n: u64| Duration::from_secs(n * 3600);
        assert_eq!(parse_ago("1d").unwrap(), h(24));
        assert_eq!(
            parse_ago("2d3h6m").unwrap(),
            h(51) + Duration::from_secs(360)
        );
        assert_eq!(parse_ago("30m").unwrap(), Duration::from_secs(1800));
        assert_eq!(parse_ago("1.5h").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_ago("0d").unwrap(), Duration::ZERO);
        assert_eq!(parse_ago("5μs").unwrap(), parse_ago("5us").unwrap());
        for bad in ["", "5x", "d", "1", "-1d", "1h2d", "1.5d", "3 d", "1d-2h"] {
            assert!(parse_ago(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(matches!(
            parse_ago("999999999d"),
            Err(PurgeError::AgoTooLong(_))
        ));
    }

    #[test]
    fn a_filter_is_two_regexes_around_the_first_colon() {
        assert_eq!(
            parse_filter("ci/app:pr-(?:\\d+)").unwrap(),
            Filter {
                repositories: "ci/app".into(),
                tags: "pr-(?:\\d+)".into()
            }
        );
        assert_eq!(
            parse_filter("(?:app|web):v.*").unwrap().repositories,
            "(?:app|web)"
        );
        for bad in ["app", ":v1", "app:", "", "(?:app|web)"] {
            assert!(
                matches!(parse_filter(bad), Err(PurgeError::FilterShape(_))),
                "{bad:?}"
            );
        }
        assert!(matches!(
            parse_filter("app:pr-("),
            Err(PurgeError::FilterRegex { .. })
        ));
    }

    /// acr-cli cmd/acr/purge_test.go, TestGetRepositoryAndTagRegex and TestCollectTagFilters.
    #[test]
    fn a_filter_splits_where_acr_splits_it() {
        for (filter, repositories, tags) in [
            ("foo:bar", "foo", "bar"),
            ("hello-(?:abc):zzz", "hello-(?:abc)", "zzz"),
            ("hello-:z-(?:abc)zz", "hello-", "z-(?:abc)zz"),
            (
                "hello-(?:abc)?:z-(?:abc)zz",
                "hello-(?:abc)?",
                "z-(?:abc)zz",
            ),
            (
                "hello-(?:abc)?:z-(?:[:])zz",
                "hello-(?:abc)?",
                "z-(?:[:])zz",
            ),
            (
                "[[:alpha:]](?:abc)(?:.*)?:test123[[:digit:]](?:.*)",
                "[[:alpha:]](?:abc)(?:.*)?",
                "test123[[:digit:]](?:.*)",
            ),
            (
                "[^[:alpha:]](?ims-U:abc)(?:.*)?:test123[[^:digit:]](?-imUs:.*)",
                "[^[:alpha:]](?ims-U:abc)(?:.*)?",
                "test123[[^:digit:]](?-imUs:.*)",
            ),
            (
                "(?imsU:test):[[:digit:]][tes:]",
                "(?imsU:test)",
                "[[:digit:]][tes:]",
            ),
            (
                "foo/b[[:alpha:]]r(?:.*):.(?:.*)",
                "foo/b[[:alpha:]]r(?:.*)",
                ".(?:.*)",
            ),
            ("foo/bar(?:.*):.(?:.*)", "foo/bar(?:.*)", ".(?:.*)"),
            ("app:v1(?!-a)", "app", "v1(?!-a)"),
            ("app:v1-*[abc]+(?<!-[a])", "app", "v1-*[abc]+(?<!-[a])"),
            ("app:a\\:?b", "app", "a\\:?b"),
        ] {
            let f = parse_filter(filter).unwrap_or_else(|e| panic!("{filter}: {e}"));
            assert_eq!(
                (f.repositories.as_str(), f.tags.as_str()),
                (repositories, tags),
                "{filter}"
            );
        }
        for (filter, colons) in [
            ("foo:bar:zzz", 2),
            // A `[` that ends a range opens nothing: two colons, as the regex crate sees it.
            ("app:[!-[]:|v1", 2),
            (
                "[^[:alpha:]](?ims-U:abc)(?:.*)?:test123[[^:digit:]](?-imUs:.*):",
                2,
            ),
        ] {
            assert_eq!(
                parse_filter(filter),
                Err(PurgeError::Separators(colons)),
                "{filter}"
            );
        }
        assert!(parse_filter(":.*").is_err() && parse_filter("app.*:").is_err());
    }

    fn purge(untagged: bool) -> Purge {
        Purge {
            filters: vec![
                parse_filter("app:pr-.*").unwrap(),
                parse_filter("ci/.*:.*").unwrap(),
                parse_filter("app:pr-.*").unwrap(),
            ],
            ago: parse_ago("2d").unwrap(),
            untagged,
            untagged_only: false,
            keep: 3,
            include_locked: true,
        }
    }

    #[test]
    fn a_fraction_of_a_second_rounds_up_never_to_any_age() {
        let p = Purge {
            ago: parse_ago("500ms").unwrap(),
            ..purge(false)
        };
        let (doc, policy) = p.policy().unwrap();
        assert_eq!(doc["rules"][0]["older_than"], "1s");
        assert_eq!(policy.rules[0].older_than, Duration::from_secs(1));
    }

    #[test]
    fn without_untagged_every_filter_only_untags() {
        let (doc, policy) = purge(false).policy().unwrap();
        assert_eq!(policy.rules.len(), 2, "{doc}");
        for r in &policy.rules {
            assert_eq!(r.select, Select::Tagged);
            assert!(r.untag_only);
            assert_eq!(r.keep, 3);
            assert_eq!(r.older_than, Duration::from_secs(2 * 86_400));
        }
        assert!(policy.protect.include_locked);
        assert!(policy.tag_owner("app", "pr-7").is_some());
        assert!(
            policy.tag_owner("app", "xpr-7").is_none(),
            "regexes match whole names"
        );
        assert!(policy.untagged_owner("app").is_none());
    }

    #[test]
    fn with_untagged_manifests_go_and_an_untagged_rule_covers_the_filters_repositories() {
        let (_, policy) = purge(true).policy().unwrap();
        assert!(policy.rules.iter().all(|r| !r.untag_only));
        let rule = policy.untagged_owner("ci/tool").expect("an untagged rule");
        assert_eq!(rule.older_than, Duration::from_secs(2 * 86_400));
        assert_eq!(
            rule.keep, 3,
            "--keep keeps untagged manifests too, as acr's"
        );
        assert!(policy.untagged_owner("app").is_some());
        assert!(policy.untagged_owner("other").is_none());
    }

    #[test]
    fn untagged_only_deletes_no_tag_and_covers_every_repository_without_a_filter() {
        let only = Purge {
            untagged: false,
            untagged_only: true,
            ..purge(false)
        };
        let (doc, policy) = only.policy().unwrap();
        assert_eq!(policy.rules.len(), 1, "{doc}");
        assert!(
            policy.tag_owner("app", "pr-7").is_none(),
            "a tag rule: {doc}"
        );
        let rule = policy.untagged_owner("ci/tool").expect("an untagged rule");
        assert_eq!(
            (rule.keep, rule.older_than),
            (3, Duration::from_secs(2 * 86_400))
        );
        assert!(policy.untagged_owner("other").is_none());
        let everywhere = Purge {
            filters: Vec::new(),
            ago: Duration::ZERO,
            ..only
        };
        let (_, policy) = everywhere.policy().unwrap();
        assert!(policy.untagged_owner("any/repository").is_some());
        assert_eq!(policy.rules[0].older_than, Duration::ZERO);
    }
}
