//! What a rule says about the items it owns: tags for `tagged` rules, untagged manifests for
//! `untagged` rules. Age first, then `keep`, with a reason for every verdict.
//!
//! `keep` counts images (manifests), not items: the N newest images among those whose items
//! are old enough keep every item of theirs the rule owns. So no image a rule keeps loses
//! part of its tags to `keep` (ghcr-cleanup-action #101, gcr-cleaner #143). Images that tie
//! with the Nth newest are kept too: which of them is newer cannot be told, and a guess
//! could delete the newest.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::age::Age;
use crate::policy::{human_duration, Rule};
use crate::registry::Digest;

/// One thing a rule judges, the image (manifest) it belongs to, its age, and when it was
/// last used: pulled, else pushed (for `unpulled_for`).
#[derive(Debug, Clone)]
pub struct Item<K> {
    pub key: K,
    pub image: Digest,
    pub age: Age,
    pub used: Option<DateTime<Utc>>,
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

/// How long ago `since` was, at `now` (a future time is no time ago).
fn elapsed(since: DateTime<Utc>, now: DateTime<Utc>) -> Duration {
    (now - since).to_std().unwrap_or(Duration::ZERO)
}

/// How an age is known, for a reason, when that is not the usual way: " (first seen ...)".
fn how_known(age: &Age) -> String {
    age.note
        .as_ref()
        .map(|n| format!(" ({n})"))
        .unwrap_or_default()
}

/// An item (by its place in the list) and the moment its age counts from.
type Timed = (usize, DateTime<Utc>);

/// Judge the items one rule owns in one repository. `what` names them in reasons ("tag",
/// "untagged manifest"). Items come back in the order given.
pub fn judge<K: Clone>(
    rule: &Rule,
    items: &[Item<K>],
    now: DateTime<Utc>,
    what: &str,
) -> Vec<(K, Verdict)> {
    let name = &rule.name;
    let needs_age = rule.older_than > Duration::ZERO || rule.keep > 0;
    let mut verdicts: Vec<Option<Verdict>> = vec![None; items.len()];
    // Items old enough, by image, each with its time.
    let mut eligible: BTreeMap<&Digest, Vec<Timed>> = BTreeMap::new();
    for (i, item) in items.iter().enumerate() {
        let how = how_known(&item.age);
        // Pulled lately: used, whatever its age says.
        if let Some(wait) = rule.unpulled_for {
            let used = match item.used {
                None => Some(format!(
                    "{what} whose last pull is unknown; rule {name:?} needs it, and unknown is never unused"
                )),
                Some(t) if elapsed(t, now) < wait => Some(format!(
                    "{what} pulled or pushed {} ago; rule {name:?} waits {} without a pull",
                    human_duration(elapsed(t, now)),
                    human_duration(wait)
                )),
                Some(_) => None,
            };
            if let Some(why) = used {
                verdicts[i] = Some(Verdict::keep(why));
                continue;
            }
        }
        verdicts[i] = match item.age.since {
            None if needs_age => Some(Verdict::keep(format!(
                "{what} of unknown age{how}; rule {name:?} needs an age, and unknown is never old"
            ))),
            None => Some(Verdict {
                selected: true,
                reason: format!("rule {name:?} selects every matching {what}"),
            }),
            Some(t) if elapsed(t, now) < rule.older_than => Some(Verdict::keep(format!(
                "{what} is {} old{how}; rule {name:?} waits {}",
                human_duration(elapsed(t, now)),
                human_duration(rule.older_than)
            ))),
            Some(t) => {
                eligible.entry(&item.image).or_default().push((i, t));
                None
            }
        };
    }
    // An image ranks by its newest item; newest first, equal times in digest order (only so
    // that the order is fixed: ties at the boundary are all kept).
    let mut ranked: Vec<(DateTime<Utc>, Vec<Timed>)> = eligible
        .into_values()
        .filter_map(|m| Some((m.iter().map(|(_, t)| *t).max()?, m)))
        .collect();
    ranked.sort_by_key(|(newest, _)| std::cmp::Reverse(*newest));
    let last_kept = rule
        .keep
        .checked_sub(1)
        .and_then(|last| ranked.get(last))
        .map(|(t, _)| *t);
    let newest = match rule.keep {
        1 => format!("the newest image of rule {name:?}"),
        n => format!("one of the {n} newest images of rule {name:?}"),
    };
    for (rank, (at, members)) in ranked.into_iter().enumerate() {
        let kept = if rank < rule.keep {
            Some(newest.clone())
        } else if last_kept == Some(at) {
            Some(format!(
                "as new as {newest} (a tie: which is newer cannot be told)"
            ))
        } else {
            None
        };
        for (i, t) in members {
            let how = how_known(&items[i].age);
            verdicts[i] = Some(match &kept {
                Some(why) => Verdict::keep(why.clone()),
                None if rule.older_than.is_zero() => Verdict {
                    selected: true,
                    reason: format!("rule {name:?} selects this {what}{how}"),
                },
                None => Verdict {
                    selected: true,
                    reason: format!(
                        "rule {name:?}: {what} is {} old{how}, older than {}",
                        human_duration(elapsed(t, now)),
                        human_duration(rule.older_than)
                    ),
                },
            });
        }
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

    fn d(n: u32) -> Digest {
        format!("sha256:{n:064x}").parse().unwrap()
    }

    /// Item `key` of image `image`, its age counting from `since`.
    fn item<K>(key: K, image: u32, since: Option<&str>) -> Item<K> {
        Item {
            key,
            image: d(image),
            age: Age::plain(since.map(t)),
            used: None,
        }
    }

    #[test]
    fn unpulled_for_keeps_what_was_pulled_lately_or_whose_pulls_are_unknown() {
        let r = rule(r#"{"name":"cold","select":"tagged","unpulled_for":"90d"}"#);
        let old = Some("2026-01-01T00:00:00Z");
        let mut cold = item("cold", 1, old);
        cold.used = Some(t("2026-03-01T00:00:00Z"));
        let mut warm = item("warm", 2, old);
        warm.used = Some(t("2026-06-20T00:00:00Z"));
        let unknown = item("unknown", 3, old);
        let v = judge(&r, &[cold, warm, unknown], now(), "tag");
        assert!(v[0].1.selected, "{:?}", v[0]);
        assert!(
            !v[1].1.selected && v[1].1.reason.contains("without a pull"),
            "{:?}",
            v[1]
        );
        assert!(
            !v[2].1.selected && v[2].1.reason.contains("last pull is unknown"),
            "{:?}",
            v[2]
        );
    }

    fn selected<K: Clone + PartialEq>(v: &[(K, Verdict)], key: K) -> bool {
        v.iter().find(|(k, _)| *k == key).unwrap().1.selected
    }

    #[test]
    fn keep_n_keeps_the_newest_of_the_old_enough() {
        let r = rule(r#"{"name":"r","select":"tagged","older_than":"1d","keep":1}"#);
        let items = vec![
            item("old", 1, Some("2026-01-01T00:00:00Z")),
            item("newer", 2, Some("2026-03-01T00:00:00Z")),
            item("fresh", 3, Some("2026-06-29T12:00:00Z")),
        ];
        let v = judge(&r, &items, now(), "tag");
        assert!(v[0].1.selected, "{:?}", v[0]);
        assert!(!v[1].1.selected && v[1].1.reason.contains("newest image"));
        assert!(!v[2].1.selected && v[2].1.reason.contains("waits 1d"));
    }

    #[test]
    fn keep_counts_images_so_a_kept_image_keeps_every_tag() {
        // X (two tags) is newer than Y: keep 1 keeps X whole and selects Y.
        let r = rule(r#"{"name":"k","select":"tagged","keep":1}"#);
        let x = "2026-05-21T00:00:00Z";
        let items = vec![
            item("1.2.0", 1, Some(x)),
            item("1.2", 1, Some(x)),
            item("1.1.0", 2, Some("2026-05-01T00:00:00Z")),
        ];
        let v = judge(&r, &items, now(), "tag");
        assert!(!selected(&v, "1.2.0") && !selected(&v, "1.2"), "{v:?}");
        assert!(selected(&v, "1.1.0"), "{v:?}");
        // keep 2 over A (three tags) and B: both images stay whole.
        let r = rule(r#"{"name":"k","select":"tagged","keep":2}"#);
        let a = "2026-06-01T00:00:00Z";
        let items = vec![
            item("v3", 1, Some(a)),
            item("v3.0", 1, Some(a)),
            item("stable", 1, Some(a)),
            item("v2", 2, Some("2026-04-01T00:00:00Z")),
        ];
        let v = judge(&r, &items, now(), "tag");
        assert!(v.iter().all(|(_, v)| !v.selected), "{v:?}");
    }

    #[test]
    fn an_image_ranks_by_its_newest_old_enough_tag() {
        // Per-tag times (ACR): image 1's newest tag is newer than image 2's.
        let r = rule(r#"{"name":"k","select":"tagged","keep":1}"#);
        let items = vec![
            item("a-old", 1, Some("2026-01-01T00:00:00Z")),
            item("a-new", 1, Some("2026-06-01T00:00:00Z")),
            item("b", 2, Some("2026-03-01T00:00:00Z")),
        ];
        let v = judge(&r, &items, now(), "tag");
        assert!(!selected(&v, "a-old") && !selected(&v, "a-new"), "{v:?}");
        assert!(selected(&v, "b"));
    }

    #[test]
    fn images_tied_with_the_last_kept_one_are_kept() {
        let r = rule(r#"{"name":"k","select":"tagged","keep":1}"#);
        let same = "2026-06-01T00:00:00Z";
        let items = vec![
            item("a", 1, Some(same)),
            item("b", 2, Some(same)),
            item("c", 3, Some("2026-05-01T00:00:00Z")),
        ];
        let v = judge(&r, &items, now(), "tag");
        assert!(!selected(&v, "a") && !selected(&v, "b"), "{v:?}");
        assert!(v[1].1.reason.contains("a tie") || v[0].1.reason.contains("a tie"));
        assert!(selected(&v, "c"));
    }

    #[test]
    fn unknown_age_is_never_old_when_age_matters() {
        let r = rule(r#"{"name":"r","select":"tagged","older_than":"1d"}"#);
        let v = judge(&r, &[item(1, 1, None)], now(), "tag");
        assert!(!v[0].1.selected);
        let keep = rule(r#"{"name":"r","select":"tagged","keep":1}"#);
        let v = judge(&keep, &[item(1, 1, None)], now(), "tag");
        assert!(!v[0].1.selected);
        let any = rule(r#"{"name":"r","select":"tagged"}"#);
        let v = judge(&any, &[item(1, 1, None)], now(), "tag");
        assert!(v[0].1.selected);
    }

    #[test]
    fn a_future_timestamp_counts_as_zero_age() {
        let r = rule(r#"{"name":"r","select":"tagged","older_than":"1m"}"#);
        let v = judge(
            &r,
            &[item(1, 1, Some("2099-01-01T00:00:00Z"))],
            now(),
            "tag",
        );
        assert!(!v[0].1.selected);
    }

    #[test]
    fn the_reason_says_how_the_age_is_known() {
        let r = rule(r#"{"name":"pr","select":"tagged","older_than":"30d"}"#);
        let mut young = item("pr-42", 1, Some("2026-06-27T00:00:00Z"));
        young.age.note =
            Some("first seen 3d ago; the image's date 1970-01-01 is not a build time".into());
        let v = judge(&r, &[young], now(), "tag");
        assert_eq!(
            v[0].1.reason,
            "tag is 3d old (first seen 3d ago; the image's date 1970-01-01 is not a build time); rule \"pr\" waits 30d"
        );
    }
}
