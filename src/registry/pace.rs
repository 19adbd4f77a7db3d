//! Pacing writes to a registry's published rate (`--max-writes-per-minute`), so that 429s
//! are the exception rather than the way the registry tells us to slow down.
//!
//! Writes are spaced evenly: never two closer than a minute divided by the budget. In any
//! stretch of time `t` there are then at most `1 + t × rate` writes, bursts included, and a
//! worker's share of a registry's budget holds minute by minute, not just on average.

use std::time::Duration;

use tokio::time::Instant;

pub struct Pace {
    interval: Duration,
    /// When the next write may start.
    next: tokio::sync::Mutex<Option<Instant>>,
}

impl Pace {
    /// At most `per_minute` writes a minute (at least one).
    pub fn per_minute(per_minute: u32) -> Pace {
        Pace {
            interval: Duration::from_secs(60) / per_minute.max(1),
            next: tokio::sync::Mutex::new(None),
        }
    }

    /// The spacing between two writes.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Wait for this write's turn. Each caller takes the next free slot, then sleeps until
    /// it without holding the lock, so writers queue in arrival order.
    pub async fn wait(&self) {
        self.wait_until(None).await;
    }

    /// Wait for this write's turn, but not past `cutoff`: false when the turn comes after it
    /// (the write must not be sent; its turn is left unused).
    pub async fn wait_until(&self, cutoff: Option<std::time::Instant>) -> bool {
        let at = {
            let mut next = self.next.lock().await;
            let now = Instant::now();
            let at = next.map_or(now, |n| n.max(now));
            if cutoff.is_some_and(|c| Instant::from_std(c) <= at) {
                return false;
            }
            *next = Some(at + self.interval);
            at
        };
        tokio::time::sleep_until(at).await;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn writes_are_spaced_by_a_minute_over_the_budget() {
        let pace = std::sync::Arc::new(Pace::per_minute(120));
        assert_eq!(pace.interval(), Duration::from_millis(500));
        let start = Instant::now();
        let mut handles = Vec::new();
        for _ in 0..5 {
            let pace = pace.clone();
            handles.push(tokio::spawn(async move {
                pace.wait().await;
                Instant::now()
            }));
        }
        let mut times = Vec::new();
        for h in handles {
            times.push(h.await.unwrap() - start);
        }
        times.sort();
        assert_eq!(
            times,
            (0..5)
                .map(|i| Duration::from_millis(500 * i))
                .collect::<Vec<_>>()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_turn_after_the_cutoff_is_refused_at_once() {
        let pace = Pace::per_minute(60);
        let cutoff = Some((Instant::now() + Duration::from_millis(1500)).into_std());
        assert!(pace.wait_until(cutoff).await);
        let before = Instant::now();
        assert!(
            pace.wait_until(cutoff).await,
            "the turn at 1 s is before the cutoff"
        );
        assert_eq!(Instant::now() - before, Duration::from_secs(1));
        let before = Instant::now();
        assert!(!pace.wait_until(cutoff).await, "the turn at 2 s is past it");
        assert_eq!(Instant::now(), before, "refused without waiting");
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_pace_lets_the_next_write_go_at_once() {
        let pace = Pace::per_minute(60);
        pace.wait().await;
        tokio::time::sleep(Duration::from_secs(5)).await;
        let before = Instant::now();
        pace.wait().await;
        assert_eq!(Instant::now(), before);
    }
}
