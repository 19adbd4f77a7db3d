//! What a rule says about the items it owns: tags for `tagged` rules, untagged manifests for
//! `untagged` rules. Age first, then `keep`, with a reason for every verdict.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::policy::{human_duration, Rule};

/// One thing a rule judges, with the moment its age counts from.
#[derive(Debug, Clone)]
pub struct Item<K> {
    pub key: K,
    pub since: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub selected: bool,
    pub reason: String,
}

impl Verdict {
    pub fn keep(reason: impl Into<String>) -> Verdict {
        Verdict {
            selected: false,
            reason: reason.into(),
        }
    }
}

fn age(since: DateTime<Utc>, now: DateTime<Utc>) -> Duration {
    (now - since).to_std().unwrap_or(Duration::ZERO)
}

/// Judge the items one rule owns in one repository. `what` names them in reasons ("tag",
/// "untagged manifest"). Items come back in the order given.
pub fn judge<K: Clone + Ord>(
    rule: &Rule,
    items: &[Item<K>],
    now: DateTime<Utc>,
    what: &str,
) -> Vec<(K, Verdict)> {
    let name = &rule.name;
    let needs_age = rule.older_than > Duration::ZERO || rule.keep > 0;
    let mut verdicts: Vec<Option<Verdict>> = vec![None; items.len()];
    // Items old enough, newest first, so the first `keep` of them stay.
    let mut eligible: Vec<(usize, DateTime<Utc>)> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        match item.since {
            None if needs_age => {
                verdicts[i] = Some(Verdict::keep(format!(
                    "{what} of unknown age; rule {name:?} needs an age, and unknown is never old"
                )))
            }
            None => {
                verdicts[i] = Some(Verdict {
                    selected: true,
                    reason: format!("rule {name:?} selects every matching {what}"),
                })
            }
            Some(t) if age(t, now) < rule.older_than => {
                verdicts[i] = Some(Verdict::keep(format!(
                    "{what} is {} old; rule {name:?} waits {}",
                    human_duration(age(t, now)),
                    human_duration(rule.older_than)
                )))
            }
            Some(t) => eligible.push((i, t)),
        }
    }
    eligible.sort_by(|(a, ta), (b, tb)| tb.cmp(ta).then_with(|| items[*a].key.cmp(&items[*b].key)));
    for (rank, (i, t)) in eligible.into_iter().enumerate() {
        verdicts[i] = Some(if rank < rule.keep {
            Verdict::keep(format!("one of the {} newest of rule {name:?}", rule.keep))
        } else if rule.older_than.is_zero() {
            Verdict {
                selected: true,
                reason: format!("rule {name:?} selects this {what}"),
            }
        } else {
            Verdict {
                selected: true,
                reason: format!(
                    "rule {name:?}: {what} is {} old, older than {}",
                    human_duration(age(t, now)),
                    human_duration(rule.older_than)
                ),
            }
        });
    }
    items
        .iter()
        .zip(verdicts)
        .map(|(item, v)| {
            (
                item.key.clone(),
                v.unwrap_or_else(|| Verdict::keep("not judged")),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Policy;

    fn rule(json: &str) -> Rule {
        Policy::from_json(&format!(r#"{{"rules":[{json}]}}"#))
            .unwrap()
            .rules
            .remove(0)
    }

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn now() -> DateTime<Utc> {
        t("2026-06-30T00:00:00Z")
    }

    #[test]
    fn keep_n_keeps_the_newest_of_the_old_enough() {
        let r = rule(r#"{"name":"r","select":"tagged","older_than":"1d","keep":1}"#);
        let items = vec![
            Item {
                key: "old",
                since: Some(t("2026-01-01T00:00:00Z")),
            },
            Item {
                key: "newer",
                since: Some(t("2026-03-01T00:00:00Z")),
            },
            Item {
                key: "fresh",
                since: Some(t("2026-06-29T12:00:00Z")),
            },
        ];
        let v = judge(&r, &items, now(), "tag");
        assert!(v[0].1.selected, "{:?}", v[0]);
        assert!(!v[1].1.selected && v[1].1.reason.contains("newest"));
        assert!(!v[2].1.selected && v[2].1.reason.contains("waits 1d"));
    }

    #[test]
    fn unknown_age_is_never_old_when_age_matters() {
        let r = rule(r#"{"name":"r","select":"tagged","older_than":"1d"}"#);
        let v = judge(
            &r,
            &[Item {
                key: 1,
                since: None,
            }],
            now(),
            "tag",
        );
        assert!(!v[0].1.selected);
        let keep = rule(r#"{"name":"r","select":"tagged","keep":1}"#);
        let v = judge(
            &keep,
            &[Item {
                key: 1,
                since: None,
            }],
            now(),
            "tag",
        );
        assert!(!v[0].1.selected);
        let any = rule(r#"{"name":"r","select":"tagged"}"#);
        let v = judge(
            &any,
            &[Item {
                key: 1,
                since: None,
            }],
            now(),
            "tag",
        );
        assert!(v[0].1.selected);
    }

    #[test]
    fn a_future_timestamp_counts_as_zero_age() {
        let r = rule(r#"{"name":"r","select":"tagged","older_than":"1m"}"#);
        let v = judge(
            &r,
            &[Item {
                key: 1,
                since: Some(t("2099-01-01T00:00:00Z")),
            }],
            now(),
            "tag",
        );
        assert!(!v[0].1.selected);
    }
}
