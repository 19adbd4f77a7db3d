//! How old a tag is, and how we know.
//!
//! An image's own date is evidence, not truth. Reproducible builds (kaniko `--reproducible`,
//! bazel, ko, `SOURCE_DATE_EPOCH=0`) stamp 1970-01-01, buildpacks 1980-01-01, and a builder
//! with a wrong clock can stamp next year. No image was built before Docker's first release,
//! and none after the moment we judge it, so such a date is not an age (gcr-cleaner #79 drew
//! the same line). A tag's age then comes from the next thing we know, in this order:
//!
//! 1. the registry's own time for the tag (ACR's `lastUpdateTime`);
//! 2. the image's date (the `org.opencontainers.image.created` annotation, else the config's
//!    `created`; an index's is its newest child's), if it is a build time; where the registry
//!    also has a time for the manifest (ECR's push), the later of the two, since an image
//!    copied into the registry today is not as old as its build;
//! 3. the registry's own time for the manifest;
//! 4. when this janitor first saw that tag on that digest (the inventory). The tag named
//!    that digest then, so the age it gives is never more than the time since the tag was
//!    first pushed onto it;
//! 5. else unknown, which is never old.
//!
//! An image that carries no date at all, where the registry has no time for it either, is of
//! unknown age, as before: step 4 is for dates set aside, not for dates missing.

use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};

use super::snapshot::{ManifestFacts, TagRef};
use crate::policy::human_duration;

/// How far ahead of the judging moment an image's date may be and still count: the clocks
/// of a builder and of this janitor never agree to the second.
pub const CLOCK_SKEW: Duration = Duration::from_secs(3600);

/// Docker's first public release (2013-03-20): no container image is older.
pub fn first_build() -> DateTime<Utc> {
    NaiveDate::from_ymd_opt(2013, 3, 20)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// Whether an image's own date can be its build time, judged at `now`.
pub fn is_build_time(date: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    let skew = chrono::Duration::from_std(CLOCK_SKEW).unwrap_or_default();
    date >= first_build() && date <= now + skew
}

/// The moment a tag's age counts from, and how it is known when that is not the usual way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Age {
    pub since: Option<DateTime<Utc>>,
    /// Said in a reason when the image's date was set aside (`None` otherwise).
    pub note: Option<String>,
}

impl Age {
    /// The age of an item whose time is what it is (an untagged manifest's clock).
    pub fn plain(since: Option<DateTime<Utc>>) -> Age {
        Age { since, note: None }
    }

    /// The age of `tag`, on the manifest `facts` describes, judged at `now` (see the module).
    pub fn of_tag(tag: &TagRef, facts: Option<&ManifestFacts>, now: DateTime<Utc>) -> Age {
        if let Some(t) = tag.updated {
            return Age::plain(Some(t));
        }
        let created = facts.and_then(|f| f.created);
        let registry = facts.and_then(|f| f.updated);
        // A build date and the registry's own time (ECR's push) can both be known: the image
        // was built, then pushed, so the later of the two is the younger age, and the safe one.
        // A build copied into the registry today is not as old as its build.
        if let Some(c) = created.filter(|c| is_build_time(*c, now)) {
            return Age::plain(Some(registry.map_or(c, |r| r.max(c))));
        }
        if let Some(t) = registry {
            return Age::plain(Some(t));
        }
        // An image that carries no date, where the registry has none either, is of unknown
        // age, as it always was.
        let Some(created) = created else {
            return Age::plain(None);
        };
        let why = format!(
            "the image's date {} is not a build time",
            created.format("%F")
        );
        match tag.first_seen {
            Some(seen) => Age {
                since: Some(seen),
                note: Some(format!(
                    "first seen {} ago; {why}",
                    human_duration((now - seen).to_std().unwrap_or(Duration::ZERO))
                )),
            },
            None => Age {
                since: None,
                note: Some(format!(
                    "{why}, and no inventory says when this tag was first seen"
                )),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Digest;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn tag(first_seen: Option<&str>) -> TagRef {
        let mut tag = TagRef::new(format!("sha256:{:064x}", 1).parse::<Digest>().unwrap());
        tag.first_seen = first_seen.map(t);
        tag
    }

    fn made(created: &str) -> ManifestFacts {
        ManifestFacts {
            created: Some(t(created)),
            ..ManifestFacts::default()
        }
    }

    const NOW: &str = "2026-12-03T00:00:00Z";

    #[test]
    fn dates_before_docker_or_after_now_are_not_build_times() {
        let now = t(NOW);
        assert!(!is_build_time(t("1970-01-01T00:00:00Z"), now));
        assert!(!is_build_time(t("1980-01-01T00:00:00Z"), now));
        assert!(!is_build_time(t("2013-03-19T23:59:59Z"), now));
        assert!(is_build_time(t("2013-03-20T00:00:00Z"), now));
        assert!(
            is_build_time(t("2026-12-03T00:59:00Z"), now),
            "within the skew"
        );
        assert!(!is_build_time(t("2026-12-03T01:01:00Z"), now));
        assert!(!is_build_time(t("2027-06-01T00:00:00Z"), now));
    }

    #[test]
    fn a_reproducible_build_counts_from_when_its_tag_was_first_seen() {
        let now = t(NOW);
        let age = Age::of_tag(
            &tag(Some("2026-11-30T00:00:00Z")),
            Some(&made("1970-01-01T00:00:00Z")),
            now,
        );
        assert_eq!(age.since, Some(t("2026-11-30T00:00:00Z")));
        assert_eq!(
            age.note.as_deref(),
            Some("first seen 3d ago; the image's date 1970-01-01 is not a build time")
        );
        let unseen = Age::of_tag(&tag(None), Some(&made("1980-01-01T00:00:00Z")), now);
        assert_eq!(unseen.since, None);
        assert!(unseen
            .note
            .unwrap()
            .contains("1980-01-01 is not a build time"));
    }

    #[test]
    fn the_registry_time_comes_first_then_a_real_build_date() {
        let now = t(NOW);
        let mut on_acr = tag(Some("2026-12-01T00:00:00Z"));
        on_acr.updated = Some(t("2026-01-01T00:00:00Z"));
        let age = Age::of_tag(&on_acr, Some(&made("1970-01-01T00:00:00Z")), now);
        assert_eq!(age, Age::plain(Some(t("2026-01-01T00:00:00Z"))));
        let built = Age::of_tag(
            &tag(Some("2026-12-01T00:00:00Z")),
            Some(&made("2025-05-05T00:00:00Z")),
            now,
        );
        assert_eq!(built, Age::plain(Some(t("2025-05-05T00:00:00Z"))));
        let mut pushed = made("1970-01-01T00:00:00Z");
        pushed.updated = Some(t("2026-02-02T00:00:00Z"));
        let by_manifest = Age::of_tag(&tag(Some("2026-12-01T00:00:00Z")), Some(&pushed), now);
        assert_eq!(by_manifest, Age::plain(Some(t("2026-02-02T00:00:00Z"))));
    }

    #[test]
    fn a_build_pushed_later_is_as_old_as_its_push() {
        let now = t(NOW);
        let mut copied = made("2026-10-01T00:00:00Z");
        copied.updated = Some(t("2026-12-01T00:00:00Z"));
        let age = Age::of_tag(&tag(None), Some(&copied), now);
        assert_eq!(age, Age::plain(Some(t("2026-12-01T00:00:00Z"))));
        // A registry time before the build date (a clock off) does not make it older either.
        let mut skewed = made("2026-11-20T00:00:00Z");
        skewed.updated = Some(t("2026-11-01T00:00:00Z"));
        let age = Age::of_tag(&tag(None), Some(&skewed), now);
        assert_eq!(age, Age::plain(Some(t("2026-11-20T00:00:00Z"))));
    }

    #[test]
    fn an_image_without_a_date_stays_of_unknown_age() {
        let now = t(NOW);
        let age = Age::of_tag(&tag(Some("2026-12-02T00:00:00Z")), None, now);
        assert_eq!(age, Age::plain(None));
        let undated = ManifestFacts::default();
        let age = Age::of_tag(&tag(Some("2026-12-02T00:00:00Z")), Some(&undated), now);
        assert_eq!(age, Age::plain(None));
    }
}
