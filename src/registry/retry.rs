//! When to try a request again, and how long to wait first.
//!
//! 429 and 503 are the registry asking us to slow down: we wait what `Retry-After` says (up
//! to a limit). Other 5xx answers, timeouts and broken connections are retried with capped
//! exponential backoff and full jitter, so many janitors do not retry in lockstep. A 4xx
//! other than 429 is our mistake or a refusal, and trying again cannot change it.

use std::time::Duration;

use chrono::{DateTime, Utc};

#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Total tries of one request, the first included.
    pub max_attempts: u32,
    /// Backoff before the first retry; doubles each time.
    pub base_delay: Duration,
    /// No single backoff is longer than this.
    pub max_delay: Duration,
    /// A `Retry-After` longer than this is not waited for: the request fails instead.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(10),
            max_retry_after: Duration::from_secs(60),
        }
    }
}

/// What to do after one try.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Use this answer (success or a final error).
    Done,
    /// Wait this long, then try again.
    RetryAfter(Duration),
}

impl RetryPolicy {
    /// No retries at all: the first answer is final.
    pub fn none() -> Self {
        RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        }
    }

    /// Decide after an HTTP answer with `status`, on try number `attempt` (1-based).
    pub fn after_status(
        &self,
        attempt: u32,
        status: u16,
        retry_after: Option<&str>,
        now: DateTime<Utc>,
    ) -> Verdict {
        if attempt >= self.max_attempts {
            return Verdict::Done;
        }
        match status {
            429 | 503 => match retry_after.and_then(|v| parse_retry_after(v, now)) {
                Some(wait) if wait > self.max_retry_after => Verdict::Done,
                Some(wait) => Verdict::RetryAfter(wait),
                None => Verdict::RetryAfter(self.backoff(attempt)),
            },
            500..=599 => Verdict::RetryAfter(self.backoff(attempt)),
            _ => Verdict::Done,
        }
    }

    /// Decide after a transport failure (timeout, reset, refused connection).
    pub fn after_transport_error(&self, attempt: u32) -> Verdict {
        if attempt >= self.max_attempts {
            Verdict::Done
        } else {
            Verdict::RetryAfter(self.backoff(attempt))
        }
    }

    /// Full jitter: a random wait between zero and the capped exponential bound.
    fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .base_delay
            .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)));
        let bound = exp.min(self.max_delay);
        bound.mul_f64(fastrand::f64())
    }
}

/// `Retry-After` is either delay-seconds or an HTTP date.
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = DateTime::parse_from_rfc2822(value)
        .ok()?
        .with_timezone(&Utc);
    Some((at - now).to_std().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        "2025-10-21T07:28:00Z".parse().unwrap()
    }

    #[test]
    fn retry_after_seconds_and_dates_are_honoured() {
        let p = RetryPolicy::default();
        assert_eq!(
            p.after_status(1, 429, Some("3"), now()),
            Verdict::RetryAfter(Duration::from_secs(3))
        );
        assert_eq!(
            p.after_status(1, 503, Some("Tue, 21 Oct 2025 07:28:05 GMT"), now()),
            Verdict::RetryAfter(Duration::from_secs(5))
        );
    }

    #[test]
    fn a_retry_after_beyond_the_limit_is_not_waited_for() {
        let p = RetryPolicy::default();
        assert_eq!(p.after_status(1, 429, Some("3600"), now()), Verdict::Done);
    }

    #[test]
    fn client_errors_other_than_429_are_final() {
        let p = RetryPolicy::default();
        for status in [400, 401, 403, 404, 405, 409] {
            assert_eq!(
                p.after_status(1, status, None, now()),
                Verdict::Done,
                "{status}"
            );
        }
        assert!(matches!(
            p.after_status(1, 502, None, now()),
            Verdict::RetryAfter(_)
        ));
    }

    #[test]
    fn attempts_are_bounded() {
        let p = RetryPolicy::default();
        assert_eq!(
            p.after_status(p.max_attempts, 503, None, now()),
            Verdict::Done
        );
        assert_eq!(p.after_transport_error(p.max_attempts), Verdict::Done);
        assert!(matches!(p.after_transport_error(1), Verdict::RetryAfter(_)));
    }

    #[test]
    fn backoff_never_exceeds_the_cap() {
        let p = RetryPolicy {
            max_attempts: 100,
            ..RetryPolicy::default()
        };
        for attempt in 1..60 {
            assert!(p.backoff(attempt) <= p.max_delay);
        }
    }
}
