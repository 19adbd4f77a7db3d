//! The `Link: <url>; rel="next"` header that pages catalog, tag and referrer listings.

use url::Url;

/// The next page named by a `Link` header, resolved against the URL that was requested.
/// `Err` when the header names a page we must not follow (another host, not a URL).
pub fn next_page(link: &str, current: &Url) -> Result<Option<Url>, String> {
    for part in link.split(',') {
        let Some((target, params)) = part.trim().split_once(';') else {
            continue;
        };
        let is_next = params.split(';').any(|p| {
            let p = p.trim().replace(' ', "");
            p.eq_ignore_ascii_case("rel=\"next\"") || p.eq_ignore_ascii_case("rel=next")
        });
        if !is_next {
            continue;
        }
        let target = target
            .trim()
            .strip_prefix('<')
            .and_then(|t| t.strip_suffix('>'))
            .ok_or_else(|| "Link target is not in <...>".to_owned())?;
        let next = current
            .join(target)
            .map_err(|e| format!("Link target is not a URL: {e}"))?;
        if next.origin() != current.origin() {
            return Err("Link points to another host; not following it".to_owned());
        }
        return Ok(Some(next));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Url {
        Url::parse("http://127.0.0.1:5000/v2/_catalog?n=2").unwrap()
    }

    #[test]
    fn relative_next_links_resolve_against_the_request() {
        let next = next_page(r#"</v2/_catalog?last=b&n=2>; rel="next""#, &base()).unwrap();
        assert_eq!(
            next.unwrap().as_str(),
            "http://127.0.0.1:5000/v2/_catalog?last=b&n=2"
        );
    }

    #[test]
    fn other_relations_are_not_the_next_page() {
        assert_eq!(next_page(r#"</v2/x>; rel="prev""#, &base()).unwrap(), None);
    }

    #[test]
    fn links_to_another_host_are_refused() {
        assert!(next_page(r#"<http://evil.example/v2/_catalog>; rel="next""#, &base()).is_err());
    }
}
