//! Every page of an AWS listing, or an error: a listing that cannot be followed to its end
//! is truncated, and a truncated listing must fail the sweep, never shrink what is in use.

use std::collections::BTreeSet;
use std::future::Future;

/// The items of every page. `page` asks for one page (`None`: the first) and answers its
/// items and the next page's token; an empty token ends the listing as a missing one does.
/// A token that comes back a second time would never end (`aws::next_token`), so it is an
/// error that names `what`.
pub(super) async fn all<T, F, Fut>(what: &str, mut page: F) -> Result<Vec<T>, String>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: Future<Output = Result<(Vec<T>, Option<String>), String>>,
{
    let mut items = Vec::new();
    let mut seen = BTreeSet::new();
    let mut token = None;
    loop {
        let (page_items, next) = page(token.take()).await?;
        items.extend(page_items);
        match crate::aws::next_token(&mut seen, next.as_deref()) {
            Ok(None) => return Ok(items),
            Ok(next) => token = next,
            Err(e) => return Err(format!("{what}: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_page_is_followed_and_a_repeating_token_is_an_error() {
        let pages = all("ListThings", |token| async move {
            Ok(match token.as_deref() {
                None => (vec![1, 2], Some("a".to_owned())),
                Some("a") => (vec![3], Some(String::new())),
                _ => (vec![], None),
            })
        })
        .await;
        assert_eq!(pages.unwrap(), vec![1, 2, 3]);
        let endless = all("ListThings", |_| async {
            Ok((vec![1], Some("a".to_owned())))
        })
        .await;
        let e = endless.unwrap_err();
        assert!(
            e.starts_with("ListThings: the next page token repeats"),
            "{e}"
        );
    }
}
