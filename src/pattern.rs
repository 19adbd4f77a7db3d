//! A name pattern: a regex that must match a whole repository or tag name.
//!
//! Most patterns run on the `regex` crate, whose matching time is linear in the name. A
//! pattern that needs what only a backtracking engine has (look-around such as `v1(?!-a)` or
//! `(?<!-a)`, backreferences), as `acr purge`'s filters may (acr uses Go's `regexp2`), runs on
//! `fancy-regex` instead. Backtracking can take exponential time on a bad pattern, so it is
//! bounded: past `BACKTRACK_LIMIT` steps on one name, matching is an error that names the
//! pattern and the name, never a hang. POSIX classes (`[[:alpha:]]`, `[[:^digit:]]`) and
//! inline flags (`(?i)`, `(?ims-U:…)`) work on both engines.

/// Backtracking steps one match may take before it is an error. Legitimate patterns over a
/// tag (at most 128 characters) or a repository name take a few hundred.
pub const BACKTRACK_LIMIT: usize = 100_000;

/// A compiled whole-name pattern, and the text it was written as.
#[derive(Clone)]
pub struct Pattern {
    source: String,
    engine: Engine,
}

#[derive(Clone)]
enum Engine {
    /// The `regex` crate: linear time.
    Linear(regex::Regex),
    /// `fancy-regex`: look-around and backreferences, with a backtracking limit.
    Backtracking(fancy_regex::Regex),
}

/// A pattern that could not be evaluated on a name within the backtracking limit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the regex {pattern:?} ran past its backtracking limit ({BACKTRACK_LIMIT} steps) on {name:?}: it cannot tell whether it matches; simplify it (nested repeats such as (a+)+ backtrack without end)")]
pub struct PatternError {
    pub pattern: String,
    pub name: String,
}

impl Pattern {
    /// `pattern`, matching whole names only. The error is the engine's reason, for people.
    pub fn whole(pattern: &str) -> Result<Pattern, String> {
        let anchored = format!("^(?:{pattern})$");
        let linear = match regex::Regex::new(&anchored) {
            Ok(re) => {
                return Ok(Pattern {
                    source: pattern.to_owned(),
                    engine: Engine::Linear(re),
                })
            }
            Err(e) => e,
        };
        match fancy_regex::RegexBuilder::new(&anchored)
            .backtrack_limit(BACKTRACK_LIMIT)
            .build()
        {
            Ok(re) => Ok(Pattern {
                source: pattern.to_owned(),
                engine: Engine::Backtracking(re),
            }),
            // Neither engine takes it: the linear engine's reason is the more precise one,
            // unless what it refused is what only the backtracking engine has.
            Err(fancy) => {
                let reason = last_line(&linear.to_string());
                if reason.contains("look-around") || reason.contains("backreference") {
                    Err(fancy.to_string())
                } else {
                    Err(reason)
                }
            }
        }
    }

    /// Exactly `name`, nothing else.
    pub fn literal(name: &str) -> Pattern {
        Pattern::whole(&regex::escape(name)).unwrap_or_else(|_| Pattern::any())
    }

    /// Any name.
    pub fn any() -> Pattern {
        Pattern {
            source: ".*".to_owned(),
            engine: Engine::Linear(regex::Regex::new("^(?:.*)$").expect("a constant regex")),
        }
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether it needs the backtracking engine.
    pub fn backtracks(&self) -> bool {
        matches!(self.engine, Engine::Backtracking(_))
    }

    /// Whether it matches the whole of `name`.
    pub fn matches(&self, name: &str) -> Result<bool, PatternError> {
        match &self.engine {
            Engine::Linear(re) => Ok(re.is_match(name)),
            Engine::Backtracking(re) => re.is_match(name).map_err(|_| PatternError {
                pattern: self.source.clone(),
                name: name.to_owned(),
            }),
        }
    }
}

impl std::fmt::Debug for Pattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Pattern({:?})", self.source)
    }
}

fn last_line(text: &str) -> String {
    text.lines().last().unwrap_or("").trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(pattern: &str, name: &str) -> bool {
        Pattern::whole(pattern).unwrap().matches(name).unwrap()
    }

    #[test]
    fn plain_patterns_stay_on_the_linear_engine_and_match_whole_names() {
        let p = Pattern::whole("v1").unwrap();
        assert!(!p.backtracks());
        assert!(p.matches("v1").unwrap());
        assert!(!p.matches("v10").unwrap());
        assert!(!p.matches("xv1").unwrap());
    }

    #[test]
    fn acr_purge_look_around_selects_what_acr_selects() {
        // acr-cli cmd/acr/purge_test.go, "Delete 2 with negative lookahead" / "lookbehind",
        // over its tags v1-a, v1-b, v1-c and v2 (acr matches anywhere; we match whole names,
        // so the patterns end in `.*` here).
        let tags = ["v1-a", "v1-b", "v1-c", "v2"];
        let ahead = Pattern::whole("v1(?!-a).*").unwrap();
        assert!(ahead.backtracks());
        let hits: Vec<&str> = tags
            .iter()
            .copied()
            .filter(|t| ahead.matches(t).unwrap())
            .collect();
        assert_eq!(hits, ["v1-b", "v1-c"]);
        let behind = Pattern::whole("v1-*[abc]+(?<!-[a])").unwrap();
        let hits: Vec<&str> = tags
            .iter()
            .copied()
            .filter(|t| behind.matches(t).unwrap())
            .collect();
        assert_eq!(hits, ["v1-b", "v1-c"]);
    }

    #[test]
    fn posix_classes_and_inline_flags_work() {
        assert!(matches("b[[:alpha:]]r", "bar"));
        assert!(!matches("b[[:alpha:]]r", "b1r"));
        assert!(matches("test123[[:digit:]](?:.*)", "test1234-x"));
        assert!(matches("[^[:alpha:]](?ims-U:abc)(?:.*)?", "1ABC"));
        assert!(matches("x[[:^digit:]]", "xa"));
        assert!(matches("(?i)LATEST", "latest"));
    }

    #[test]
    fn a_runaway_pattern_is_an_error_that_names_it_never_a_hang() {
        let p = Pattern::whole("(?=x?)(a|aa)+b").unwrap();
        assert!(p.backtracks());
        let name = "a".repeat(60);
        let started = std::time::Instant::now();
        let e = p.matches(&name).unwrap_err();
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        assert_eq!(e.pattern, "(?=x?)(a|aa)+b");
        assert!(e.to_string().contains("backtracking limit"), "{e}");
    }

    #[test]
    fn a_bad_pattern_says_why() {
        let e = Pattern::whole("pr-(").unwrap_err();
        assert!(e.contains("unclosed group"), "{e}");
        let e = Pattern::whole("v1(?!-a").unwrap_err();
        assert!(!e.contains("look-around is not supported"), "{e}");
    }
}
