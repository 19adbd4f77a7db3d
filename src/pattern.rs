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

/// A pattern that could not be evaluated on a name: its backtracking ran past the limit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the regex {pattern:?} {reason} on {name:?}: it cannot tell whether it matches; simplify it (nested repeats such as (a+)+ backtrack without end)")]
pub struct PatternError {
    pub pattern: String,
    pub name: String,
    pub reason: String,
}

impl Pattern {
    /// `pattern`, matching whole names only. The error is the engine's reason, for people.
    ///
    /// The pattern must be a regex on its own: wrapped as `^(?:…)$`, an unbalanced `v1)|(x`
    /// would otherwise pass, meaning "starts with v1, or ends with x". Only what the linear
    /// engine lacks (look-around, backreferences) sends a pattern to the backtracking one;
    /// anything else it refuses is an error, not another engine's reading of it.
    pub fn whole(pattern: &str) -> Result<Pattern, String> {
        use regex_syntax::ast::ErrorKind;
        let anchored = format!("^(?:{pattern})$");
        let engine = match regex_syntax::ast::parse::Parser::new().parse(pattern) {
            Ok(_) => {
                let re = regex::Regex::new(pattern)
                    .and_then(|_| regex::Regex::new(&anchored))
                    .map_err(|e| last_line(&e.to_string()))?;
                Engine::Linear(re)
            }
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::UnsupportedLookAround | ErrorKind::UnsupportedBackreference
                ) =>
            {
                let build = |p: &str| {
                    fancy_regex::RegexBuilder::new(p)
                        .backtrack_limit(BACKTRACK_LIMIT)
                        .build()
                        .map_err(|e| e.to_string())
                };
                build(pattern)?;
                Engine::Backtracking(build(&anchored)?)
            }
            Err(e) => {
                return Err(match regex::Regex::new(pattern) {
                    Err(e) => last_line(&e.to_string()),
                    Ok(_) => e.kind().to_string(),
                })
            }
        };
        Ok(Pattern {
            source: pattern.to_owned(),
            engine,
        })
    }

    /// Exactly `name`, nothing else.
    pub fn literal(name: &str) -> Pattern {
        Pattern::whole(&regex::escape(name)).unwrap_or_else(|_| Pattern::none())
    }

    /// No name at all (an empty class).
    fn none() -> Pattern {
        Pattern {
            source: "[^\\s\\S]".to_owned(),
            engine: Engine::Linear(regex::Regex::new(r"^(?:[^\s\S])$").expect("a constant regex")),
        }
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
            Engine::Backtracking(re) => re.is_match(name).map_err(|e| PatternError {
                pattern: self.source.clone(),
                name: name.to_owned(),
                reason: match e {
                    fancy_regex::Error::RuntimeError(
                        fancy_regex::RuntimeError::BacktrackLimitExceeded,
                    ) => format!("ran past its backtracking limit ({BACKTRACK_LIMIT} steps)"),
                    other => format!("failed ({other})"),
                },
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
        // Refused for what it gets wrong, not for the look-around it also has.
        let e = Pattern::whole("v1(?!-a").unwrap_err();
        assert!(!e.contains("look-around"), "{e}");
        assert!(
            e.to_lowercase().contains("paren") || e.contains("group"),
            "{e}"
        );
    }

    #[test]
    fn an_unbalanced_pattern_is_refused_not_read_as_prefix_or_suffix() {
        for bad in ["v1)|(x", "app)|(.*", "v1)|(?!x)(x"] {
            assert!(Pattern::whole(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn only_look_around_and_backreferences_reach_the_backtracking_engine() {
        // Syntax fancy-regex reads its own way, which acr's engine reads otherwise: refused.
        for other in ["a{,3}", r"\h", "(?>a)", "(?#note)a"] {
            assert!(Pattern::whole(other).is_err(), "{other:?} was accepted");
        }
        assert!(Pattern::whole(r"(a)\1").unwrap().backtracks());
        assert!(matches("(a)-\\1", "a-a"));
    }
}
