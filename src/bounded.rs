//! Bounded concurrency: one async step over many items, a few at a time. Every fan-out of the
//! engine goes through here, so "how many at once" is always one argument.

use std::future::Future;

use futures_util::stream::{self, StreamExt};

/// Run `step` on every item, at most `limit` at once (at least one), and return what each
/// gave, in the order they finished.
pub async fn each<I, F, Fut>(limit: usize, items: I, step: F) -> Vec<Fut::Output>
where
    I: IntoIterator,
    F: FnMut(I::Item) -> Fut,
    Fut: Future,
{
    stream::iter(items)
        .map(step)
        .buffer_unordered(limit.max(1))
        .collect()
        .await
}
