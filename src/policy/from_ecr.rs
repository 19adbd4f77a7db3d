//! An ECR lifecycle policy as our policy (`registry-janitor policy from-ecr`).
//!
//! ECR evaluates its rules in `rulePriority` order, and an image that one rule's tag filter
//! matches is not expired by a later rule. Our rules are tried in order and the first one whose
//! pattern matches a tag owns it, so the rules come out in `rulePriority` order:
//!
//! | ECR | ours |
//! |---|---|
//! | `tagStatus: tagged` + one `tagPrefixList` entry `p` | `select: tagged`, `tags: "p.*"` |
//! | `tagStatus: tagged` + one `tagPatternList` entry (`*` wildcards) | `select: tagged`, `tags` (`*` → `.*`) |
//! | `tagStatus: untagged` | `select: untagged` |
//! | `tagStatus: any` | a `tagged` rule (`tags: ".*"`) and an `untagged` rule |
//! | `imageCountMoreThan: n` | `keep: n` |
//! | `sinceImagePushed: n days` | `older_than: "nd"` |
//! | `sinceImagePulled: n days` | `unpulled_for: "nd"` |
//!
//! What has no counterpart is an error that names the rule, never a rule that means something
//! else: a list of several prefixes or patterns (ECR selects only images that have *all* of
//! them; our rules select tags one by one), `transition` actions and the `archive` storage
//! class (we only delete), and `sinceImageTransitioned`.
//!
//! Where the translation keeps more than ECR would, that is on purpose: an index's children,
//! the referrers of kept images and tags no rule selects all stay (see the README). A `tagStatus:
//! any` rule with `imageCountMoreThan` keeps `n` tagged and `n` untagged images, not `n` of both
//! together.

use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::Policy;

/// Why an ECR lifecycle policy cannot be translated.
#[derive(Debug, thiserror::Error)]
pub enum FromEcrError {
    #[error("not an ECR lifecycle policy: {0}")]
    Syntax(String),
    #[error("the lifecycle policy has no rules")]
    NoRules,
    #[error("two rules have rulePriority {0}; ECR needs each to be unique")]
    DuplicatePriority(i64),
    #[error("rule with rulePriority {priority}{description}: {reason}")]
    Rule {
        priority: i64,
        description: String,
        reason: String,
    },
    #[error("the translated policy does not load: {0}")]
    Translated(#[from] super::PolicyError),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Lifecycle {
    rules: Vec<EcrRule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct EcrRule {
    rule_priority: i64,
    #[serde(default)]
    description: Option<String>,
    selection: Selection,
    action: Action,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Selection {
    tag_status: String,
    #[serde(default)]
    tag_prefix_list: Option<Vec<String>>,
    #[serde(default)]
    tag_pattern_list: Option<Vec<String>>,
    #[serde(default)]
    storage_class: Option<String>,
    count_type: String,
    #[serde(default)]
    count_unit: Option<String>,
    count_number: i64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Action {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    target_storage_class: Option<String>,
}

/// Translate the lifecycle policy `text` (the JSON `aws ecr get-lifecycle-policy` returns as
/// `lifecyclePolicyText`) into our policy document, checked by loading it.
pub fn translate(text: &str) -> Result<Value, FromEcrError> {
    let lifecycle: Lifecycle =
        serde_json::from_str(text).map_err(|e| FromEcrError::Syntax(e.to_string()))?;
    if lifecycle.rules.is_empty() {
        return Err(FromEcrError::NoRules);
    }
    let mut ecr_rules = lifecycle.rules;
    ecr_rules.sort_by_key(|r| r.rule_priority);
    if let Some(w) = ecr_rules
        .windows(2)
        .find(|w| w[0].rule_priority == w[1].rule_priority)
    {
        return Err(FromEcrError::DuplicatePriority(w[0].rule_priority));
    }
    // ECR refuses a policy whose `any` rule is not evaluated last; ours would let its `.*`
    // take the tags of the rules after it.
    if let Some(r) = ecr_rules
        .iter()
        .rev()
        .skip(1)
        .find(|r| r.selection.tag_status == "any")
    {
        return Err(FromEcrError::Rule {
            priority: r.rule_priority,
            description: described(r),
            reason: "a tagStatus \"any\" rule must have the highest rulePriority, as ECR \
                     requires: it is evaluated last"
                .into(),
        });
    }
    let mut rules = Vec::new();
    for r in &ecr_rules {
        rules.extend(rule(r).map_err(|reason| FromEcrError::Rule {
            priority: r.rule_priority,
            description: described(r),
            reason,
        })?);
    }
    let document = json!({ "rules": rules });
    Policy::from_json(&document.to_string())?;
    Ok(document)
}

/// ` ("description")`, to follow a rule's priority in an error, or nothing.
fn described(r: &EcrRule) -> String {
    r.description
        .as_ref()
        .map(|d| format!(" ({d:?})"))
        .unwrap_or_default()
}

/// Our rules for one ECR rule (two for `tagStatus: any`), or why there are none.
fn rule(r: &EcrRule) -> Result<Vec<Value>, String> {
    match (r.action.kind.as_str(), &r.action.target_storage_class) {
        ("expire", None) => {}
        ("transition", _) => {
            return Err(
                "a `transition` action archives images; registry-janitor only deletes".into(),
            )
        }
        (kind, None) => return Err(format!("action type {kind:?} is not one ECR knows")),
        (_, Some(class)) => {
            return Err(format!(
                "targetStorageClass {class:?} belongs to a transition, not an expire action"
            ))
        }
    }
    let s = &r.selection;
    match s.storage_class.as_deref() {
        None | Some("standard") => {}
        Some(other) => {
            return Err(format!(
                "storageClass {other:?}: only images in standard storage can be translated"
            ))
        }
    }
    let mut limit = Map::new();
    match s.count_type.as_str() {
        "imageCountMoreThan" => {
            if let Some(unit) = &s.count_unit {
                return Err(format!(
                    "imageCountMoreThan takes no countUnit (got {unit:?})"
                ));
            }
            let n = usize::try_from(s.count_number)
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(|| format!("countNumber {} must be 1 or more", s.count_number))?;
            limit.insert("keep".into(), json!(n));
        }
        kind @ ("sinceImagePushed" | "sinceImagePulled") => {
            let days = days(s)?;
            let key = if kind == "sinceImagePushed" {
                "older_than"
            } else {
                "unpulled_for"
            };
            limit.insert(key.into(), json!(days));
        }
        "sinceImageTransitioned" => {
            return Err(
                "sinceImageTransitioned counts from an archive; registry-janitor only deletes"
                    .into(),
            )
        }
        other => return Err(format!("countType {other:?} is not one ECR knows")),
    }
    let name = format!("ecr-{}", r.rule_priority);
    let tagged = |name: String, tags: String| {
        let mut rule = Map::new();
        rule.insert("name".into(), json!(name));
        rule.insert("select".into(), json!("tagged"));
        rule.insert("tags".into(), json!(tags));
        rule.extend(limit.clone());
        Value::Object(rule)
    };
    let untagged = |name: String| {
        let mut rule = Map::new();
        rule.insert("name".into(), json!(name));
        rule.insert("select".into(), json!("untagged"));
        rule.extend(limit.clone());
        Value::Object(rule)
    };
    let filters = (&s.tag_prefix_list, &s.tag_pattern_list);
    match s.tag_status.as_str() {
        "tagged" => Ok(vec![tagged(name, tag_regex(filters)?)]),
        "untagged" | "any" if filters.0.is_some() || filters.1.is_some() => Err(format!(
            "tagStatus {:?} takes no tagPrefixList or tagPatternList",
            s.tag_status
        )),
        "untagged" => Ok(vec![untagged(name)]),
        "any" => Ok(vec![
            tagged(format!("{name}-tagged"), ".*".into()),
            untagged(format!("{name}-untagged")),
        ]),
        other => Err(format!(
            "tagStatus {other:?}: ECR knows tagged, untagged and any"
        )),
    }
}

/// `countUnit: days` and `countNumber` as our duration.
fn days(s: &Selection) -> Result<String, String> {
    match s.count_unit.as_deref() {
        Some("days") => {}
        Some(other) => return Err(format!("countUnit {other:?}: ECR counts in days")),
        None => return Err(format!("{} needs countUnit \"days\"", s.count_type)),
    }
    if s.count_number < 1 {
        return Err(format!("countNumber {} must be 1 or more", s.count_number));
    }
    Ok(format!("{}d", s.count_number))
}

/// The one prefix or wildcard pattern of a `tagged` rule, as a whole-name regex.
fn tag_regex(filters: (&Option<Vec<String>>, &Option<Vec<String>>)) -> Result<String, String> {
    let (list, field, prefix) = match filters {
        (Some(_), Some(_)) => {
            return Err("tagPrefixList and tagPatternList cannot both be given".into())
        }
        (Some(p), None) => (p, "tagPrefixList", true),
        (None, Some(p)) => (p, "tagPatternList", false),
        (None, None) => {
            return Err("tagStatus \"tagged\" needs a tagPrefixList or a tagPatternList".into())
        }
    };
    match list.as_slice() {
        [] => Err(format!("{field} is empty")),
        [one] if one.is_empty() => Err(format!("{field} has an empty entry")),
        [one] if prefix => Ok(format!("{}.*", regex::escape(one))),
        [one] => Ok(one
            .split('*')
            .map(regex::escape)
            .collect::<Vec<_>>()
            .join(".*")),
        several => Err(format!(
            "{field} has {} entries, and ECR then selects only images that carry all of them; \
             our rules select tags one by one, so this has no translation (split it into rules \
             of one entry each if you meant any of them)",
            several.len()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules_of(text: &str) -> Vec<Value> {
        translate(text).unwrap()["rules"]
            .as_array()
            .unwrap()
            .clone()
    }

    fn error_of(text: &str) -> String {
        translate(text).unwrap_err().to_string()
    }

    fn one(selection: &str) -> String {
        format!(
            r#"{{"rules":[{{"rulePriority":1,"description":"d","selection":{selection},"action":{{"type":"expire"}}}}]}}"#
        )
    }

    #[test]
    fn rules_come_out_in_rule_priority_order() {
        let rules = rules_of(
            r#"{"rules":[
            {"rulePriority":20,"selection":{"tagStatus":"untagged","countType":"sinceImagePushed","countUnit":"days","countNumber":1},"action":{"type":"expire"}},
            {"rulePriority":3,"selection":{"tagStatus":"tagged","tagPrefixList":["v"],"countType":"imageCountMoreThan","countNumber":5},"action":{"type":"expire"}}]}"#,
        );
        assert_eq!(
            rules,
            vec![
                json!({"name":"ecr-3","select":"tagged","tags":"v.*","keep":5}),
                json!({"name":"ecr-20","select":"untagged","older_than":"1d"}),
            ]
        );
    }

    #[test]
    fn prefixes_and_wildcards_become_whole_name_regexes_with_dots_escaped() {
        let prefix = rules_of(&one(
            r#"{"tagStatus":"tagged","tagPrefixList":["v1.2"],"countType":"sinceImagePushed","countUnit":"days","countNumber":14}"#,
        ));
        assert_eq!(prefix[0]["tags"], "v1\\.2.*");
        assert_eq!(prefix[0]["older_than"], "14d");
        let pattern = rules_of(&one(
            r#"{"tagStatus":"tagged","tagPatternList":["*rc.*+1"],"countType":"sinceImagePulled","countUnit":"days","countNumber":90}"#,
        ));
        assert_eq!(pattern[0]["tags"], ".*rc\\..*\\+1");
        assert_eq!(pattern[0]["unpulled_for"], "90d");
        let policy = Policy::from_json(&translate(&one(
            r#"{"tagStatus":"tagged","tagPatternList":["prod*"],"countType":"imageCountMoreThan","countNumber":2}"#,
        ))
        .unwrap()
        .to_string())
        .unwrap();
        let rule = &policy.rules[0];
        assert!(rule.tags.matches("prod").unwrap());
        assert!(rule.tags.matches("prod-7").unwrap());
        assert!(!rule.tags.matches("preprod").unwrap());
    }

    #[test]
    fn any_becomes_a_tagged_and_an_untagged_rule_with_the_same_limit() {
        let rules = rules_of(&one(
            r#"{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":10}"#,
        ));
        assert_eq!(
            rules,
            vec![
                json!({"name":"ecr-1-tagged","select":"tagged","tags":".*","keep":10}),
                json!({"name":"ecr-1-untagged","select":"untagged","keep":10}),
            ]
        );
    }

    #[test]
    fn what_has_no_counterpart_is_an_error_naming_the_rule() {
        let cases = [
            (
                r#"{"tagStatus":"tagged","tagPrefixList":["a","b"],"countType":"imageCountMoreThan","countNumber":1}"#,
                "carry all of them",
            ),
            (
                r#"{"tagStatus":"tagged","countType":"imageCountMoreThan","countNumber":1}"#,
                "needs a tagPrefixList",
            ),
            (
                r#"{"tagStatus":"untagged","tagPatternList":["x*"],"countType":"imageCountMoreThan","countNumber":1}"#,
                "takes no tagPrefixList",
            ),
            (
                r#"{"tagStatus":"tagged","tagPatternList":["x*"],"storageClass":"archive","countType":"sinceImageTransitioned","countUnit":"days","countNumber":1}"#,
                "storageClass \"archive\"",
            ),
            (
                r#"{"tagStatus":"untagged","countType":"sinceImagePushed","countUnit":"hours","countNumber":1}"#,
                "countUnit \"hours\"",
            ),
            (
                r#"{"tagStatus":"untagged","countType":"sinceImagePushed","countNumber":1}"#,
                "needs countUnit",
            ),
            (
                r#"{"tagStatus":"untagged","countType":"imageCountMoreThan","countNumber":0}"#,
                "must be 1 or more",
            ),
            (
                r#"{"tagStatus":"Tagged","tagPrefixList":["v"],"countType":"imageCountMoreThan","countNumber":1}"#,
                "ECR knows tagged, untagged and any",
            ),
        ];
        for (selection, wanted) in cases {
            let e = error_of(&one(selection));
            assert!(e.starts_with("rule with rulePriority 1 (\"d\"): "), "{e}");
            assert!(e.contains(wanted), "{selection}: {e}");
        }
        let transition = error_of(
            r#"{"rules":[{"rulePriority":4,"selection":{"tagStatus":"any","countType":"sinceImagePulled","countUnit":"days","countNumber":30},"action":{"type":"transition","targetStorageClass":"archive"}}]}"#,
        );
        assert!(
            transition.starts_with("rule with rulePriority 4: a `transition` action"),
            "{transition}"
        );
    }

    #[test]
    fn a_malformed_lifecycle_policy_is_refused_whole() {
        assert!(error_of("{").starts_with("not an ECR lifecycle policy"));
        assert!(error_of(r#"{"rules":[]}"#).contains("no rules"));
        let unknown = error_of(&one(
            r#"{"tagStatus":"untagged","countType":"imageCountMoreThan","countNumber":1,"tagFilter":"x"}"#,
        ));
        assert!(unknown.contains("unknown field `tagFilter`"), "{unknown}");
        let twice = error_of(
            r#"{"rules":[
            {"rulePriority":1,"selection":{"tagStatus":"untagged","countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}},
            {"rulePriority":1,"selection":{"tagStatus":"tagged","tagPrefixList":["v"],"countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}}]}"#,
        );
        assert!(twice.contains("two rules have rulePriority 1"), "{twice}");
        let any_first = error_of(
            r#"{"rules":[
            {"rulePriority":1,"description":"all","selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":5},"action":{"type":"expire"}},
            {"rulePriority":2,"selection":{"tagStatus":"tagged","tagPrefixList":["v"],"countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}}]}"#,
        );
        assert!(
            any_first.starts_with("rule with rulePriority 1 (\"all\"): a tagStatus \"any\" rule"),
            "{any_first}"
        );
    }
}
