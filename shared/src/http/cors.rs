//! CORS for browser callers on other origins (a settings page, a Mini App on its own host).
//!
//! `TGLINK_CORS_ORIGINS` lists the origins allowed, exactly (`https://app.example.com`,
//! comma-separated; none by default, so no response carries CORS headers). `*` is refused: every
//! route either carries a bearer credential or hands out one. tglink authenticates with
//! `Authorization` headers, never cookies, so `Access-Control-Allow-Credentials` is never sent.
//!
//! - A **preflight** (`OPTIONS` with `Origin` and `Access-Control-Request-Method`) on a known
//!   path from an allowed origin is answered `204` with `Access-Control-Allow-Origin` (that
//!   origin), `-Allow-Methods` (the path's methods), `-Allow-Headers` ([`ALLOW_HEADERS`]),
//!   `-Max-Age` ([`MAX_AGE_SECS`]); from any other origin `403 cors_origin_not_allowed`. An
//!   `OPTIONS` that is not a preflight is an ordinary request (`405` with `Allow`).
//! - Every **other response** to a request from an allowed origin carries
//!   `Access-Control-Allow-Origin: <origin>` and `-Expose-Headers` ([`EXPOSE_HEADERS`]); with CORS
//!   configured, every response carries `Vary: Origin`, so a cache never serves one origin's
//!   answer to another.
//!
//! In the cloud, API Gateway's `CorsConfiguration` (`template.yaml`, the same origins) answers
//! preflights before any function runs; the functions apply the same policy, which is what the
//! local API and `cargo lambda watch` serve.

use http::{HeaderValue, Method, StatusCode, header};
use lambda_http::{Body, Request, Response};

use crate::{
    config::{ConfigError, Env, optional},
    http::{Problem, respond},
};

/// The request headers a browser may send cross-origin.
pub const ALLOW_HEADERS: &str = "authorization, content-type, idempotency-key, if-none-match";

/// The response headers a cross-origin script may read (beyond the CORS-safelisted ones).
pub const EXPOSE_HEADERS: &str = "etag, retry-after, www-authenticate, location";

/// How long a browser may cache a preflight answer.
pub const MAX_AGE_SECS: u32 = 600;

/// The configured origins. Empty: CORS off.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cors {
    origins: Vec<String>,
}

impl Cors {
    /// `TGLINK_CORS_ORIGINS`: comma-separated origins, each `http(s)://host[:port]` exactly
    /// (no path, query, fragment, user info or trailing slash); unset or empty = none.
    pub fn from_env(env: &dyn Env) -> Result<Self, ConfigError> {
        let Some(raw) = optional(env, "TGLINK_CORS_ORIGINS") else {
            return Ok(Self::default());
        };
        let mut origins = Vec::new();
        for item in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            origins.push(parse_origin(item).map_err(|why| {
                ConfigError::new("TGLINK_CORS_ORIGINS", format_args!("{item:?}: {why}"))
            })?);
        }
        Ok(Self { origins })
    }

    pub fn is_enabled(&self) -> bool {
        !self.origins.is_empty()
    }

    fn allowed<'o>(&self, origin: Option<&'o HeaderValue>) -> Option<&'o HeaderValue> {
        let origin = origin?;
        let text = origin.to_str().ok()?;
        self.origins
            .iter()
            .any(|o| o.eq_ignore_ascii_case(text))
            .then_some(origin)
    }

    /// The answer to `req` when it is a preflight on a path whose methods are `methods` (empty:
    /// an unknown path, left to the router's `404`); `None` for any other request.
    pub fn preflight(&self, req: &Request, methods: &[&str]) -> Option<Response<Body>> {
        let headers = req.headers();
        if req.method() != Method::OPTIONS
            || methods.is_empty()
            || !headers.contains_key(header::ORIGIN)
            || !headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
        {
            return None;
        }
        let Some(origin) = self.allowed(headers.get(header::ORIGIN)) else {
            let mut resp = respond(Err(Problem::new(
                StatusCode::FORBIDDEN,
                "cors_origin_not_allowed",
                "Origin not allowed",
            )
            .detail("this origin is not in TGLINK_CORS_ORIGINS")));
            self.vary(&mut resp);
            return Some(resp);
        };
        let mut resp = Response::builder()
            .status(StatusCode::NO_CONTENT)
            .header(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone())
            .header(header::ACCESS_CONTROL_ALLOW_METHODS, methods.join(", "))
            .header(header::ACCESS_CONTROL_ALLOW_HEADERS, ALLOW_HEADERS)
            .header(header::ACCESS_CONTROL_MAX_AGE, MAX_AGE_SECS)
            .header(header::CACHE_CONTROL, "no-store")
            .body(Body::Empty)
            .expect("static response parts are valid");
        self.vary(&mut resp);
        Some(resp)
    }

    /// Adds the CORS headers a request from `origin` (its `Origin` header) earns to `resp`
    /// (none when CORS is off).
    pub fn decorate(&self, origin: Option<&HeaderValue>, resp: &mut Response<Body>) {
        if !self.is_enabled() {
            return;
        }
        self.vary(resp);
        if let Some(origin) = self.allowed(origin) {
            let headers = resp.headers_mut();
            headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
            headers.insert(
                header::ACCESS_CONTROL_EXPOSE_HEADERS,
                HeaderValue::from_static(EXPOSE_HEADERS),
            );
        }
    }

    fn vary(&self, resp: &mut Response<Body>) {
        resp.headers_mut()
            .append(header::VARY, HeaderValue::from_static("origin"));
    }
}

/// One configured origin, lower-cased (scheme and host are case-insensitive).
fn parse_origin(item: &str) -> Result<String, &'static str> {
    if item == "*" || item == "null" {
        return Err("only exact origins are allowed (not * or null)");
    }
    let (scheme, rest) = item
        .split_once("://")
        .ok_or("an origin is scheme://host[:port]")?;
    if !matches!(scheme, "http" | "https") {
        return Err("the scheme must be https (or http)");
    }
    let authority = http::uri::Authority::try_from(rest).map_err(|_| "not a host[:port]")?;
    if rest.is_empty() || rest.contains(['/', '?', '#', '@']) || authority.as_str() != rest {
        return Err("an origin has no path, query, fragment, user info or trailing slash");
    }
    Ok(item.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::MapEnv;

    fn cors(origins: &str) -> Cors {
        Cors::from_env(&MapEnv::new().with("TGLINK_CORS_ORIGINS", origins)).unwrap()
    }

    fn request(method: Method, origin: Option<&str>, preflight: bool) -> Request {
        let mut builder = http::Request::builder().method(method).uri("/api/x");
        if let Some(origin) = origin {
            builder = builder.header(header::ORIGIN, origin);
        }
        if preflight {
            builder = builder.header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST");
        }
        builder.body(Body::Empty).unwrap()
    }

    #[test]
    fn configuration_takes_exact_origins_only() {
        assert!(!Cors::from_env(&MapEnv::new()).unwrap().is_enabled());
        assert!(!cors(" ").is_enabled());
        assert_eq!(
            cors("https://App.Example.com, http://localhost:5173").origins,
            ["https://app.example.com", "http://localhost:5173"]
        );
        for bad in [
            "*",
            "null",
            "app.example.com",
            "ftp://app.example.com",
            "https://app.example.com/",
            "https://app.example.com/path",
            "https://user@app.example.com",
            "https://app.example.com?x",
            "https://",
        ] {
            let err = Cors::from_env(&MapEnv::new().with("TGLINK_CORS_ORIGINS", bad));
            assert_eq!(err.unwrap_err().var, "TGLINK_CORS_ORIGINS", "{bad}");
        }
    }

    #[test]
    fn preflight_from_an_allowed_origin_names_the_methods_and_headers() {
        let cors = cors("https://app.example.com");
        let req = request(Method::OPTIONS, Some("https://app.example.com"), true);
        let resp = cors.preflight(&req, &["GET", "POST"]).unwrap();
        assert_eq!(resp.status(), 204);
        let h = resp.headers();
        assert_eq!(h["access-control-allow-origin"], "https://app.example.com");
        assert_eq!(h["access-control-allow-methods"], "GET, POST");
        assert_eq!(h["access-control-allow-headers"], ALLOW_HEADERS);
        assert_eq!(h["access-control-max-age"], "600");
        assert_eq!(h["vary"], "origin");
        assert!(!h.contains_key("access-control-allow-credentials"));
    }

    #[test]
    fn preflight_from_another_origin_is_refused_without_cors_headers() {
        let cors = cors("https://app.example.com");
        let req = request(Method::OPTIONS, Some("https://evil.example"), true);
        let resp = cors.preflight(&req, &["POST"]).unwrap();
        assert_eq!(resp.status(), 403);
        assert!(!resp.headers().contains_key("access-control-allow-origin"));
        // CORS off: every preflight is refused the same way.
        let req = request(Method::OPTIONS, Some("https://app.example.com"), true);
        assert_eq!(
            Cors::default().preflight(&req, &["POST"]).unwrap().status(),
            403
        );
    }

    #[test]
    fn only_real_preflights_on_known_paths_are_answered() {
        let cors = cors("https://app.example.com");
        let origin = Some("https://app.example.com");
        assert!(
            cors.preflight(&request(Method::OPTIONS, origin, false), &["POST"])
                .is_none()
        );
        assert!(
            cors.preflight(&request(Method::OPTIONS, None, true), &["POST"])
                .is_none()
        );
        assert!(
            cors.preflight(&request(Method::POST, origin, true), &["POST"])
                .is_none()
        );
        assert!(
            cors.preflight(&request(Method::OPTIONS, origin, true), &[])
                .is_none()
        );
    }

    #[test]
    fn responses_carry_the_origin_only_when_allowed_and_never_a_wildcard() {
        let cors = cors("https://app.example.com");
        let mut resp = Response::new(Body::Empty);
        cors.decorate(
            Some(&HeaderValue::from_static("https://app.example.com")),
            &mut resp,
        );
        assert_eq!(
            resp.headers()["access-control-allow-origin"],
            "https://app.example.com"
        );
        assert_eq!(
            resp.headers()["access-control-expose-headers"],
            EXPOSE_HEADERS
        );
        assert_eq!(resp.headers()["vary"], "origin");
        let mut resp = Response::new(Body::Empty);
        cors.decorate(
            Some(&HeaderValue::from_static("https://evil.example")),
            &mut resp,
        );
        assert!(!resp.headers().contains_key("access-control-allow-origin"));
        assert_eq!(resp.headers()["vary"], "origin");
        let mut resp = Response::new(Body::Empty);
        Cors::default().decorate(
            Some(&HeaderValue::from_static("https://app.example.com")),
            &mut resp,
        );
        assert!(resp.headers().is_empty(), "CORS off: nothing added");
    }
}
