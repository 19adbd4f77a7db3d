//! The policy: which tags and untagged manifests a user wants gone, and what must stay.
//!
//! One document, JSON or TOML (chosen by the file's extension), with the same keys. Unknown
//! keys are errors, regexes match whole names (`pattern.rs`: look-around too, bounded), and
//! durations that make no sense (negative, overflowing, longer than a century) are refused
//! rather than read as "delete everything".

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use crate::pattern::{Pattern, PatternError};

pub mod from_ecr;
use crate::registry::Digest;

/// The longest `older_than` we accept. Anything longer is a typo, not a retention period.
pub const MAX_OLDER_THAN: Duration = Duration::from_secs(100 * 366 * 24 * 3600);

/// What a rule selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Select {
    /// Tags whose name matches `tags`.
    Tagged,
    /// Manifests that no tag reaches.
    Untagged,
}

/// One rule, ready to evaluate.
#[derive(Debug, Clone)]
pub struct Rule {
    pub name: String,
    pub repositories: Pattern,
    pub select: Select,
    /// Only for `tagged` rules.
    pub tags: Pattern,
    pub older_than: Duration,
    /// Selected only when not pulled for this long (never pulled: since its push). Needs a
    /// backend that records pulls (`Capabilities::pull_times`).
    pub unpulled_for: Option<Duration>,
    pub keep: usize,
    /// Only for `tagged` rules: remove the tags it selects, and never delete a manifest for
    /// them, even when every tag on it goes (`acr purge` without `--untagged`).
    pub untag_only: bool,
}

/// What is never deleted, whatever the rules say.
#[derive(Debug, Clone, Default)]
pub struct Protect {
    pub tags: Vec<Pattern>,
    pub digests: BTreeSet<Digest>,
    pub include_locked: bool,
    /// Where the images in use are listed (`protect.in_use`, and the CLI's `--in-use`).
    pub in_use: Vec<crate::in_use::Provider>,
    /// What those providers named, read at the edge before planning (`in_use::read`); the
    /// planner keeps it, and everything it reaches.
    pub running: crate::in_use::InUse,
}

/// The cap on one run (`limits`): how much of a repository one run may delete. A
/// repository whose plan passes it deletes nothing (`plan::limits`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// The most manifests one run may delete in a repository.
    pub max_delete: Option<usize>,
    /// The largest share of a repository's manifests one run may delete, in (0, 1].
    pub max_delete_fraction: Option<f64>,
    /// The fraction holds a repository only when its plan deletes more than this many.
    pub min_held: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_delete: None,
            max_delete_fraction: None,
            min_held: 10,
        }
    }
}

/// `--max-delete`'s value: a count (`100`) or a percentage of the repository (`25%`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MaxDelete {
    Count(usize),
    Fraction(f64),
}

impl std::str::FromStr for MaxDelete {
    type Err = String;

    fn from_str(text: &str) -> Result<MaxDelete, String> {
        let text = text.trim();
        if let Some(p) = text.strip_suffix('%') {
            let p: f64 = p
                .trim()
                .parse()
                .map_err(|_| format!("{text:?} is no percentage: write 25%"))?;
            if !(p > 0.0 && p <= 100.0) {
                return Err(format!(
                    "{text:?}: a percentage is more than 0% and at most 100%"
                ));
            }
            return Ok(MaxDelete::Fraction(p / 100.0));
        }
        match text.parse::<usize>() {
            Ok(n) if n >= 1 => Ok(MaxDelete::Count(n)),
            _ => Err(format!(
                "{text:?} is no count of at least 1 or percentage (100, 25%)"
            )),
        }
    }
}

impl Limits {
    /// The share of a repository an unattended run (the function: a schedule, the queue, a
    /// webhook, an invocation) may delete when the policy sets no limit of its own.
    pub const UNATTENDED_FRACTION: f64 = 0.5;

    /// These limits for an unattended run: the policy's, or half a repository when it sets
    /// neither `max_delete` nor `max_delete_fraction`; none at all for a run that may go
    /// past them (`allow_over_limit`, a direct invocation's own word).
    pub fn unattended(self, allow_over_limit: bool) -> Limits {
        if allow_over_limit {
            return self.lifted();
        }
        if self.max_delete.is_none() && self.max_delete_fraction.is_none() {
            return Limits {
                max_delete_fraction: Some(Limits::UNATTENDED_FRACTION),
                ..self
            };
        }
        self
    }

    /// No limit at all, for one run that may go past them (`--allow-over-limit`, a direct
    /// invocation's `allow_over_limit`).
    pub fn lifted(self) -> Limits {
        Limits {
            max_delete: None,
            max_delete_fraction: None,
            ..self
        }
    }

    /// These limits with `--max-delete`'s value in place of the policy's.
    pub fn with(mut self, max: MaxDelete) -> Limits {
        match max {
            MaxDelete::Count(n) => self.max_delete = Some(n),
            MaxDelete::Fraction(f) => self.max_delete_fraction = Some(f),
        }
        self
    }
}

#[derive(Debug, Clone)]
pub struct Policy {
    pub rules: Vec<Rule>,
    pub protect: Protect,
    pub limits: Limits,
    /// `trash`: apply moves what the plan deletes into a trash index instead (`src/trash.rs`).
    pub trash: Option<Trash>,
}

/// The policy's `trash`: how long a trash index holds what one run put in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trash {
    pub keep_for: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("cannot read policy {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("policy {path}: the file name must end in .json or .toml")]
    Format { path: String },
    #[error("policy is not valid {format}: {message}")]
    Syntax {
        format: &'static str,
        message: String,
    },
    #[error("policy has no rules: add at least one under `rules`")]
    NoRules,
    #[error("rule {rule:?}: {field} {pattern:?} is not a valid regex: {reason}")]
    Regex {
        rule: String,
        field: &'static str,
        pattern: String,
        reason: String,
    },
    #[error("rule {rule:?}: {field} {value:?}: {reason}")]
    Duration {
        rule: String,
        field: &'static str,
        value: String,
        reason: String,
    },
    #[error("rule {rule:?}: `unpulled_for` needs the registry's pull times, and the {backend} backend ({host}) records none; only ECR does")]
    PullTimes {
        rule: String,
        backend: &'static str,
        host: String,
    },
    #[error("rule {rule:?}: `tags` applies only to select = \"tagged\"")]
    TagsOnUntagged { rule: String },
    #[error("rule {rule:?}: `untag_only` applies only to select = \"tagged\"")]
    UntagOnlyOnUntagged { rule: String },
    #[error("two rules are named {0:?}; names must be unique")]
    DuplicateName(String),
    #[error("rule names must not be empty")]
    EmptyName,
    #[error("limits.{field}: {value}: {reason}")]
    Limit {
        field: &'static str,
        value: String,
        reason: &'static str,
    },
    #[error("trash.keep_for {value:?}: {reason}")]
    TrashKeepFor { value: String, reason: String },
    #[error("protect.digests: {0}")]
    Digest(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Document {
    rules: Vec<RuleDocument>,
    #[serde(default)]
    protect: ProtectDocument,
    #[serde(default)]
    limits: LimitsDocument,
    trash: Option<TrashDocument>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TrashDocument {
    keep_for: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleDocument {
    name: String,
    repositories: Option<String>,
    select: Select,
    tags: Option<String>,
    older_than: Option<String>,
    unpulled_for: Option<String>,
    #[serde(default)]
    keep: usize,
    #[serde(default)]
    untag_only: bool,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct LimitsDocument {
    max_delete: Option<usize>,
    max_delete_fraction: Option<f64>,
    min_held: Option<usize>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ProtectDocument {
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    digests: Vec<String>,
    #[serde(default)]
    include_locked: bool,
    #[serde(default)]
    in_use: Vec<crate::in_use::Provider>,
}

impl Policy {
    /// Read a policy file; `.json` or `.toml` decides the syntax.
    pub fn from_file(path: &Path) -> Result<Policy, PolicyError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| PolicyError::Read {
            path: shown.clone(),
            reason: e.to_string(),
        })?;
        let mut policy = match path.extension().and_then(|e| e.to_str()) {
            Some("json") => Policy::from_json(&text),
            Some("toml") => Policy::from_toml(&text),
            _ => Err(PolicyError::Format { path: shown }),
        }?;
        // A relative `file` provider counts from the policy file's folder.
        let folder = path.parent().unwrap_or(Path::new("."));
        policy.protect.in_use = std::mem::take(&mut policy.protect.in_use)
            .into_iter()
            .map(|p| p.relative_to(folder))
            .collect();
        Ok(policy)
    }

    /// A policy with no rules: it selects nothing and protects nothing (the manual
    /// operations name what goes themselves).
    pub fn nothing() -> Policy {
        Policy {
            rules: Vec::new(),
            protect: Protect::default(),
            limits: Limits::default(),
            trash: None,
        }
    }

    /// Everything in `repository` older than `older_than`, tagged or not (`manifest delete
    /// --older-than`, the ACR guide's script). Nothing protected; registry locks still hold.
    /// With no age (`None`), it only makes collect work out every tag's age (`manifest list`).
    pub fn whole_repository(repository: &str, older_than: Duration) -> Policy {
        let only = Pattern::literal(repository);
        let any = Pattern::any();
        let rule = |name: &str, select| Rule {
            name: name.to_owned(),
            repositories: only.clone(),
            select,
            tags: any.clone(),
            older_than,
            unpulled_for: None,
            keep: 0,
            untag_only: false,
        };
        Policy {
            rules: vec![
                rule("older than (tagged)", Select::Tagged),
                rule("older than (untagged)", Select::Untagged),
            ],
            protect: Protect::default(),
            limits: Limits::default(),
            trash: None,
        }
    }

    pub fn from_json(text: &str) -> Result<Policy, PolicyError> {
        let doc: Document = serde_json::from_str(text).map_err(|e| PolicyError::Syntax {
            format: "JSON",
            message: e.to_string(),
        })?;
        Policy::build(doc)
    }

    pub fn from_toml(text: &str) -> Result<Policy, PolicyError> {
        let doc: Document = toml::from_str(text).map_err(|e| PolicyError::Syntax {
            format: "TOML",
            message: e.message().to_owned(),
        })?;
        Policy::build(doc)
    }

    fn build(doc: Document) -> Result<Policy, PolicyError> {
        if doc.rules.is_empty() {
            return Err(PolicyError::NoRules);
        }
        let mut names = BTreeSet::new();
        let mut rules = Vec::with_capacity(doc.rules.len());
        for r in doc.rules {
            if r.name.trim().is_empty() {
                return Err(PolicyError::EmptyName);
            }
            if !names.insert(r.name.clone()) {
                return Err(PolicyError::DuplicateName(r.name));
            }
            if r.select == Select::Untagged && r.tags.is_some() {
                return Err(PolicyError::TagsOnUntagged { rule: r.name });
            }
            if r.select == Select::Untagged && r.untag_only {
                return Err(PolicyError::UntagOnlyOnUntagged { rule: r.name });
            }
            let repositories = anchored(&r.name, "repositories", r.repositories.as_deref())?;
            let tags = anchored(&r.name, "tags", r.tags.as_deref())?;
            let duration = |field: &'static str, value: &Option<String>| {
                value
                    .as_ref()
                    .map(|v| {
                        parse_older_than(v).map_err(|reason| PolicyError::Duration {
                            rule: r.name.clone(),
                            field,
                            value: v.clone(),
                            reason,
                        })
                    })
                    .transpose()
            };
            let older_than = duration("older_than", &r.older_than)?.unwrap_or(Duration::ZERO);
            let unpulled_for = duration("unpulled_for", &r.unpulled_for)?;
            rules.push(Rule {
                name: r.name,
                repositories,
                select: r.select,
                tags,
                older_than,
                unpulled_for,
                keep: r.keep,
                untag_only: r.untag_only,
            });
        }
        let tags = doc
            .protect
            .tags
            .iter()
            .map(|p| anchored("protect", "tags", Some(p)))
            .collect::<Result<_, _>>()?;
        let digests = doc
            .protect
            .digests
            .iter()
            .map(|d| {
                d.parse::<Digest>()
                    .map_err(|e| PolicyError::Digest(e.to_string()))
            })
            .collect::<Result<_, _>>()?;
        for p in &doc.protect.in_use {
            if let Some((field, pattern)) = p.pattern() {
                anchored("protect.in_use", field, Some(pattern))?;
            }
        }
        let limits = limits(&doc.limits)?;
        let trash = doc
            .trash
            .map(|t| {
                parse_older_than(&t.keep_for)
                    .and_then(|keep_for| match keep_for.is_zero() {
                        true => Err("the trash must keep things a while: at least 1s".into()),
                        false => Ok(Trash { keep_for }),
                    })
                    .map_err(|reason| PolicyError::TrashKeepFor {
                        value: t.keep_for.clone(),
                        reason,
                    })
            })
            .transpose()?;
        Ok(Policy {
            rules,
            limits,
            trash,
            protect: Protect {
                tags,
                digests,
                include_locked: doc.protect.include_locked,
                in_use: doc.protect.in_use,
                running: Default::default(),
            },
        })
    }

    /// Whether the registry can do what the rules ask: `unpulled_for` needs pull times. An
    /// error names the rule and the backend, so that no rule silently selects nothing.
    pub fn fits(&self, backend: &dyn crate::registry::Backend) -> Result<(), PolicyError> {
        if backend.capabilities().pull_times {
            return Ok(());
        }
        match self.rules.iter().find(|r| r.unpulled_for.is_some()) {
            Some(r) => Err(PolicyError::PullTimes {
                rule: r.name.clone(),
                backend: backend.name(),
                host: backend.host().to_owned(),
            }),
            None => Ok(()),
        }
    }

    /// Whether any rule covers `repository`: the default sweep scope. A name a pattern cannot
    /// be evaluated on counts as covered, so that its sweep reports the error (`check`).
    pub fn covers(&self, repository: &str) -> bool {
        self.rules
            .iter()
            .any(|r| r.repositories.matches(repository).unwrap_or(true))
    }

    /// Every pattern the planner would try on `repository` and its `tags`, tried once: the
    /// first one that cannot be evaluated (its backtracking ran past the limit). After this
    /// succeeds for a repository, the lookups below give exact answers for its names.
    pub fn check<'t>(
        &self,
        repository: &str,
        tags: impl IntoIterator<Item = &'t String>,
    ) -> Result<(), PatternError> {
        let mut tagged = Vec::new();
        for r in &self.rules {
            if r.repositories.matches(repository)? && r.select == Select::Tagged {
                tagged.push(&r.tags);
            }
        }
        for tag in tags {
            for p in self.protect.tags.iter().chain(tagged.iter().copied()) {
                p.matches(tag)?;
            }
        }
        Ok(())
    }

    /// The first `tagged` rule that owns `tag` in `repository` (see `check`). A pattern that
    /// cannot be evaluated ends the search: no later rule may take what it might own.
    pub fn tag_owner(&self, repository: &str, tag: &str) -> Option<&Rule> {
        for r in self.rules.iter().filter(|r| r.select == Select::Tagged) {
            if r.repositories.matches(repository).ok()? && r.tags.matches(tag).ok()? {
                return Some(r);
            }
        }
        None
    }

    /// The first `untagged` rule that owns untagged manifests of `repository` (see `check`),
    /// the search ending at a pattern that cannot be evaluated.
    pub fn untagged_owner(&self, repository: &str) -> Option<&Rule> {
        for r in self.rules.iter().filter(|r| r.select == Select::Untagged) {
            if r.repositories.matches(repository).ok()? {
                return Some(r);
            }
        }
        None
    }

    /// The first `protect.tags` pattern matching `tag`. One that cannot be evaluated on it
    /// counts as matching: protection is the side to err on (see `check`).
    pub fn protecting_pattern(&self, tag: &str) -> Option<&str> {
        self.protect
            .tags
            .iter()
            .find(|p| p.matches(tag).unwrap_or(true))
            .map(Pattern::as_str)
    }
}

/// Compile `pattern` (default `.*`) to match whole names only.
/// The policy's `limits`, checked: a count of at least 1, a fraction in (0, 1].
fn limits(doc: &LimitsDocument) -> Result<Limits, PolicyError> {
    if let Some(0) = doc.max_delete {
        return Err(PolicyError::Limit {
            field: "max_delete",
            value: "0".into(),
            reason: "a count of at least 1 (leave it out for no count)",
        });
    }
    if let Some(f) = doc.max_delete_fraction {
        if !(f > 0.0 && f <= 1.0) {
            return Err(PolicyError::Limit {
                field: "max_delete_fraction",
                value: f.to_string(),
                reason: "a fraction more than 0 and at most 1 (0.5 is half)",
            });
        }
    }
    Ok(Limits {
        max_delete: doc.max_delete,
        max_delete_fraction: doc.max_delete_fraction,
        min_held: doc.min_held.unwrap_or(Limits::default().min_held),
    })
}

fn anchored(
    rule: &str,
    field: &'static str,
    pattern: Option<&str>,
) -> Result<Pattern, PolicyError> {
    let pattern = pattern.unwrap_or(".*");
    Pattern::whole(pattern).map_err(|reason| PolicyError::Regex {
        rule: rule.to_owned(),
        field,
        pattern: pattern.to_owned(),
        reason,
    })
}

/// `90m`, `36h`, `30d`, `2d3h`, `1w`: a humantime duration, at most a century.
pub fn parse_older_than(value: &str) -> Result<Duration, String> {
    let trimmed = value.trim();
    if trimmed.starts_with('-') {
        return Err("a duration cannot be negative".into());
    }
    let d = humantime::parse_duration(trimmed).map_err(|e| match e {
        humantime::DurationError::NumberOverflow => "the number is too large".to_owned(),
        other => format!("{other}; write it like 90m, 36h, 30d or 2d3h"),
    })?;
    if d > MAX_OLDER_THAN {
        return Err("longer than 100 years; that is a typo, not a retention period".into());
    }
    Ok(d)
}

/// A duration as people say it: `3d 4h`, `45m`, `12s`.
pub fn human_duration(d: Duration) -> String {
    let secs = d.as_secs();
    let (days, hours, minutes) = (secs / 86_400, secs % 86_400 / 3_600, secs % 3_600 / 60);
    match (days, hours, minutes) {
        (0, 0, 0) => format!("{secs}s"),
        (0, 0, m) => format!("{m}m"),
        (0, h, 0) => format!("{h}h"),
        (0, h, m) => format!("{h}h{m}m"),
        (d, 0, _) => format!("{d}d"),
        (d, h, _) => format!("{d}d{h}h"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"{
      "rules": [
        { "name": "dangling", "repositories": ".*", "select": "untagged", "older_than": "1d" },
        { "name": "old-pr-builds", "repositories": "ci/.*", "select": "tagged",
          "tags": "pr-.*", "older_than": "30d", "keep": 5 }
      ],
      "protect": { "tags": ["latest", "v\\d+\\.\\d+\\.\\d+"],
                   "digests": ["sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"],
                   "include_locked": false }
    }"#;

    #[test]
    fn untag_only_is_for_tagged_rules() {
        let ok = Policy::from_json(
            r#"{"rules":[{"name":"t","select":"tagged","tags":"pr-.*","untag_only":true}]}"#,
        )
        .unwrap();
        assert!(ok.rules[0].untag_only);
        let err =
            Policy::from_json(r#"{"rules":[{"name":"u","select":"untagged","untag_only":true}]}"#)
                .err()
                .unwrap();
        assert!(err.to_string().contains("untag_only"), "{err}");
    }

    #[test]
    fn the_issue_example_parses() {
        let p = Policy::from_json(EXAMPLE).unwrap();
        assert_eq!(p.rules.len(), 2);
        assert_eq!(p.rules[1].keep, 5);
        assert_eq!(p.rules[1].older_than, Duration::from_secs(30 * 86_400));
        assert_eq!(p.protecting_pattern("v1.2.3"), Some("v\\d+\\.\\d+\\.\\d+"));
        assert_eq!(p.protecting_pattern("v1.2"), None);
        assert_eq!(p.protect.digests.len(), 1);
    }

    #[test]
    fn the_infra_example_policy_parses() {
        let p = Policy::from_json(include_str!("../../infra/policy.example.json")).unwrap();
        assert!(p.untagged_owner("any/repo").is_some());
        assert_eq!(
            p.tag_owner("ci/app", "pr-12").unwrap().name,
            "old-pr-builds"
        );
        assert!(p.protecting_pattern("v1.2.3").is_some());
    }

    #[test]
    fn toml_uses_the_same_keys() {
        let p = Policy::from_toml(
            r#"
            [[rules]]
            name = "old-pr-builds"
            repositories = "ci/.*"
            select = "tagged"
            tags = "pr-.*"
            older_than = "2d3h"
            keep = 2
            [protect]
            tags = ["latest"]
            "#,
        )
        .unwrap();
        assert_eq!(
            p.rules[0].older_than,
            Duration::from_secs(2 * 86_400 + 3 * 3_600)
        );
    }

    #[test]
    fn regexes_match_whole_names() {
        let p = Policy::from_json(
            r#"{"rules":[{"name":"r","repositories":"ci/.*","select":"tagged","tags":"pr-\\d+"}]}"#,
        )
        .unwrap();
        assert!(p.tag_owner("ci/app", "pr-12").is_some());
        assert!(p.tag_owner("ci/app", "pr-12-final").is_none());
        assert!(p.tag_owner("myci/app", "pr-12").is_none());
        assert!(p.tag_owner("ci/app", "xpr-12").is_none());
    }

    #[test]
    fn an_alternation_is_anchored_as_a_whole() {
        let p = Policy::from_json(r#"{"rules":[{"name":"r","select":"tagged","tags":"a|b"}]}"#)
            .unwrap();
        assert!(p.tag_owner("x", "a").is_some());
        assert!(p.tag_owner("x", "ab").is_none());
        assert!(p.tag_owner("x", "xb").is_none());
    }

    #[test]
    fn first_matching_rule_owns_a_tag() {
        let p = Policy::from_json(
            r#"{"rules":[
              {"name":"narrow","repositories":"ci/app","select":"tagged","tags":"pr-.*","keep":50},
              {"name":"broad","select":"tagged","tags":"pr-.*"}]}"#,
        )
        .unwrap();
        assert_eq!(p.tag_owner("ci/app", "pr-1").unwrap().name, "narrow");
        assert_eq!(p.tag_owner("ci/other", "pr-1").unwrap().name, "broad");
    }

    #[test]
    fn in_use_files_count_from_the_policy_files_folder() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("policy.json");
        std::fs::write(
            &path,
            r#"{"rules":[{"name":"r","select":"untagged"}],
                "protect":{"in_use":[{"file":"running.txt"},{"file":"/abs/list.txt"}]}}"#,
        )
        .unwrap();
        let p = Policy::from_file(&path).unwrap();
        assert_eq!(
            p.protect.in_use,
            vec![
                crate::in_use::Provider::File(dir.path().join("running.txt")),
                crate::in_use::Provider::File("/abs/list.txt".into()),
            ]
        );
        let unknown = Policy::from_json(
            r#"{"rules":[{"name":"r","select":"untagged"}],"protect":{"in_use":[{"ftp":"x"}]}}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(unknown.contains("unknown variant `ftp`"), "{unknown}");
    }

    #[test]
    fn ecs_and_lambda_providers_take_a_cluster_regex_and_a_region_and_nothing_else() {
        use crate::in_use::{Ecs, Lambda, Provider};
        let doc = |in_use: &str| {
            Policy::from_json(&format!(
                r#"{{"rules":[{{"name":"r","select":"untagged"}}],"protect":{{"in_use":[{in_use}]}}}}"#
            ))
        };
        let p =
            doc(r#"{"ecs":{"clusters":"prod-.*","region":"eu-west-1"}},{"ecs":{}},{"lambda":{}}"#)
                .unwrap();
        assert_eq!(
            p.protect.in_use,
            vec![
                Provider::Ecs(Ecs {
                    clusters: "prod-.*".into(),
                    region: Some("eu-west-1".into())
                }),
                Provider::Ecs(Ecs {
                    clusters: ".*".into(),
                    region: None
                }),
                Provider::Lambda(Lambda { region: None }),
            ]
        );
        let bad = doc(r#"{"ecs":{"clusters":"prod-("}}"#)
            .unwrap_err()
            .to_string();
        assert!(
            bad.contains("ecs.clusters \"prod-(\" is not a valid regex"),
            "{bad}"
        );
        let unknown = doc(r#"{"lambda":{"functions":"api"}}"#)
            .unwrap_err()
            .to_string();
        assert!(unknown.contains("unknown field `functions`"), "{unknown}");
    }

    #[test]
    fn trash_takes_a_keep_for_and_refuses_a_bad_or_zero_one_or_an_unknown_key() {
        let doc = |trash: &str| {
            Policy::from_json(&format!(
                r#"{{"rules":[{{"name":"r","select":"untagged"}}],"trash":{trash}}}"#
            ))
        };
        assert_eq!(
            doc(r#"{"keep_for":"7d"}"#).unwrap().trash,
            Some(Trash {
                keep_for: Duration::from_secs(7 * 86_400)
            })
        );
        assert!(
            Policy::from_json(r#"{"rules":[{"name":"r","select":"untagged"}]}"#)
                .unwrap()
                .trash
                .is_none()
        );
        for (bad, says) in [
            (
                r#"{"keep_for":"0s"}"#,
                "trash.keep_for \"0s\": the trash must keep",
            ),
            (r#"{"keep_for":"a week"}"#, "trash.keep_for \"a week\""),
            (r#"{"keep_for":"7d","purge":true}"#, "unknown field `purge`"),
            (r#"{}"#, "missing field `keep_for`"),
        ] {
            let e = doc(bad).unwrap_err().to_string();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn limits_take_a_count_a_fraction_and_min_held_and_refuse_what_is_out_of_range() {
        let doc = |limits: &str| {
            Policy::from_json(&format!(
                r#"{{"rules":[{{"name":"r","select":"untagged"}}],"limits":{limits}}}"#
            ))
        };
        let l = doc(r#"{"max_delete":100,"max_delete_fraction":0.25,"min_held":3}"#)
            .unwrap()
            .limits;
        assert_eq!(
            l,
            Limits {
                max_delete: Some(100),
                max_delete_fraction: Some(0.25),
                min_held: 3
            }
        );
        assert_eq!(doc("{}").unwrap().limits, Limits::default());
        assert_eq!(Limits::default().min_held, 10);
        for (bad, says) in [
            (r#"{"max_delete":0}"#, "limits.max_delete: 0"),
            (
                r#"{"max_delete_fraction":0}"#,
                "limits.max_delete_fraction: 0",
            ),
            (
                r#"{"max_delete_fraction":1.01}"#,
                "limits.max_delete_fraction: 1.01",
            ),
            (r#"{"max_delete":-1}"#, "invalid value"),
            (r#"{"max_deletes":5}"#, "unknown field `max_deletes`"),
        ] {
            let e = doc(bad).unwrap_err().to_string();
            assert!(e.contains(says), "{bad}: {e}");
        }
        assert_eq!("25%".parse::<MaxDelete>(), Ok(MaxDelete::Fraction(0.25)));
        assert_eq!("100".parse::<MaxDelete>(), Ok(MaxDelete::Count(100)));
        for bad in ["0", "0%", "101%", "x%", "1.5", ""] {
            assert!(bad.parse::<MaxDelete>().is_err(), "{bad:?}");
        }
        let with = Limits::default().with(MaxDelete::Count(7));
        assert_eq!(with.max_delete, Some(7));
        // Unattended: half a repository unless the policy says otherwise, or the run may go
        // past the limits.
        assert_eq!(
            Limits::default().unattended(false).max_delete_fraction,
            Some(0.5)
        );
        let own = Limits {
            max_delete: Some(50),
            ..Limits::default()
        };
        assert_eq!(own.unattended(false), own, "the policy's own limit stands");
        let free = own.unattended(true);
        assert_eq!((free.max_delete, free.max_delete_fraction), (None, None));
    }

    #[test]
    fn bad_documents_are_refused_with_a_reason() {
        let cases = [
            (
                r#"{"rules":[{"name":"r","select":"tagged","colour":"red"}]}"#,
                "colour",
            ),
            (
                r#"{"rules":[{"name":"r","select":"sometimes"}]}"#,
                "sometimes",
            ),
            (
                r#"{"rules":[{"name":"r","select":"tagged","tags":"(unclosed"}]}"#,
                "not a valid regex",
            ),
            (
                r#"{"rules":[{"name":"r","select":"tagged","older_than":"-1d"}]}"#,
                "negative",
            ),
            (
                r#"{"rules":[{"name":"r","select":"tagged","older_than":"99999999999999999999d"}]}"#,
                "too large",
            ),
            (
                r#"{"rules":[{"name":"r","select":"tagged","older_than":"4000000d"}]}"#,
                "100 years",
            ),
            (
                r#"{"rules":[{"name":"r","select":"tagged","older_than":"soon"}]}"#,
                "older_than",
            ),
            (
                r#"{"rules":[{"name":"r","select":"untagged","tags":"x"}]}"#,
                "applies only",
            ),
            (
                r#"{"rules":[{"name":"r","select":"tagged"},{"name":"r","select":"untagged"}]}"#,
                "unique",
            ),
            (r#"{"rules":[]}"#, "no rules"),
            (
                r#"{"rules":[{"name":"r","select":"tagged"}],"protect":{"digests":["sha256:xyz"]}}"#,
                "digest",
            ),
            (
                r#"{"rules":[{"name":"r","select":"tagged"}],"protect":{"tag":["x"]}}"#,
                "tag",
            ),
            ("not json", "JSON"),
        ];
        for (doc, needle) in cases {
            let err = Policy::from_json(doc).unwrap_err().to_string();
            assert!(err.contains(needle), "{doc}: {err}");
        }
    }

    #[test]
    fn durations_read_like_people_write_them() {
        assert_eq!(parse_older_than("90m").unwrap(), Duration::from_secs(5_400));
        assert_eq!(
            parse_older_than("36h").unwrap(),
            Duration::from_secs(129_600)
        );
        assert_eq!(parse_older_than("0s").unwrap(), Duration::ZERO);
        assert_eq!(
            human_duration(Duration::from_secs(2 * 86_400 + 3 * 3_600)),
            "2d3h"
        );
        assert_eq!(human_duration(Duration::from_secs(5_400)), "1h30m");
    }
}
