//! The entity tags of the credentials served to workers, and `If-None-Match`.

use http::header;
use lambda_http::Request;

/// The entity tag of credential record `version` as served to workers: the version, plus a
/// short fingerprint of the deployment values served with it (so that a changed API hash or
/// backend URL also changes the tag).
pub fn etag(version: u64, fingerprint: &str) -> String {
    format!("\"{version}-{fingerprint}\"")
}

/// The record version an entity tag from [`etag`] names.
pub fn etag_version(tag: &str) -> Option<u64> {
    let tag = tag.trim();
    let tag = tag.strip_prefix("W/").unwrap_or(tag);
    let inner = tag.strip_prefix('"')?.strip_suffix('"')?;
    inner.split('-').next()?.parse().ok()
}

/// Whether the request's `If-None-Match` matches `etag` (weak comparison, `*` matches).
pub fn if_none_match(req: &Request, etag: &str) -> bool {
    let strip = |t: &str| {
        let t = t.trim();
        t.strip_prefix("W/").unwrap_or(t).to_owned()
    };
    let current = strip(etag);
    req.headers()
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|candidate| candidate.trim() == "*" || strip(candidate) == current)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags_and_if_none_match() {
        let tag = etag(7, "abcd1234");
        assert_eq!(tag, "\"7-abcd1234\"");
        assert_eq!(etag_version(&tag), Some(7));
        assert_eq!(etag_version("W/\"12-x\""), Some(12));
        assert_eq!(etag_version("12"), None);
        let req = |v: &str| {
            http::Request::builder()
                .header(header::IF_NONE_MATCH, v)
                .body(lambda_http::Body::Empty)
                .unwrap()
        };
        assert!(if_none_match(&req(&tag), &tag));
        assert!(if_none_match(&req(&format!("\"1-x\", W/{tag}")), &tag));
        assert!(if_none_match(&req("*"), &tag));
        assert!(!if_none_match(&req("\"6-abcd1234\""), &tag));
        let none = http::Request::builder()
            .body(lambda_http::Body::Empty)
            .unwrap();
        assert!(!if_none_match(&none, &tag));
    }
}
