//! Routing: from a request to one of a function's operations, through the one dispatcher.
//!
//! A function names what it does as a private `enum` of operations, one variant per route,
//! and implements [`Operation`] for it: a table of [`Endpoint`]s, each a [`Route`] (`POST
//! /api/admin/telegram/links/{telegram_user_id}/revoke`) and how a request on it becomes its
//! variant, path parameters typed through [`FromParam`] (like axum's `Path<T>`, without axum).
//! [`dispatch`] does the rest, the same for every function: `404 not_found` for a path no
//! endpoint has, `405 method_not_allowed` for a path that exists under another method, the
//! operation to the function's `match`, and a failure to [`respond`] (the one place a problem
//! becomes a response, logged once).
//!
//! ```rust,ignore
//! enum LinkOp { Get, Revoke(PathParam<TelegramUserId>) }
//!
//! impl Operation for LinkOp {
//!     const ENDPOINTS: &'static [Endpoint<Self>] = &[
//!         Endpoint::new(LINK_GET, |_| Self::Get),
//!         Endpoint::new(REVOKE, |p| Self::Revoke(p.get("telegram_user_id"))),
//!     ];
//! }
//!
//! /// What template.yaml, openapi.yaml and the local API are held to.
//! pub const ROUTES: &[Route] = &routes::<LinkOp, { LinkOp::ENDPOINTS.len() }>();
//!
//! pub async fn handle(deps: &LinkFunction, req: Request) -> Response<Body> {
//!     dispatch(&req, async |op| match op {
//!         LinkOp::Get => get(deps, &req).await,
//!         LinkOp::Revoke(id) => revoke(deps, &req, id).await,
//!     })
//!     .await
//! }
//! ```
//!
//! Why a route and its handler cannot drift apart:
//!
//! - the endpoint table is the function's only list of routes: its public `ROUTES` is derived
//!   from it by [`routes`], so a route cannot be listed without the operation it becomes;
//! - the handler's `match` over the operations has no `_` arm, so an operation without a
//!   handler does not compile;
//! - the enum is private to its crate, so a variant no endpoint builds is dead code (an error
//!   under `clippy -D warnings`);
//! - [`check`], called from a unit test of each function, sends a request on every route and
//!   checks that it reaches its own endpoint (not one listed before it) and that the endpoint
//!   reads exactly the route's `{name}` parameters.
//!
//! A function switched off by configuration answers [`switched_off`] instead of dispatching.

use std::cell::Cell;

use http::Method;
use lambda_http::{Body, Request, Response};

use crate::{
    http::{Problem, request_id, respond, respond_to, route_path},
    ids::TelegramUserId,
    store::registrations::RegistrationId,
};

/// A method and a path pattern whose `{name}` segments match any one non-empty segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub method: &'static str,
    pub pattern: &'static str,
}

impl Route {
    pub const fn new(method: &'static str, pattern: &'static str) -> Self {
        Self { method, pattern }
    }

    /// Whether `path` has this route's shape.
    pub fn matches_path(&self, path: &str) -> bool {
        self.params(path).is_some()
    }

    pub fn matches(&self, method: &Method, path: &str) -> bool {
        method.as_str() == self.method && self.matches_path(path)
    }

    /// The `{name}` segments of `path`, in order, if it matches.
    pub fn params<'p>(&self, path: &'p str) -> Option<Vec<(&'static str, &'p str)>> {
        let mut pattern = self.pattern.trim_matches('/').split('/');
        let mut actual = path.trim_matches('/').split('/');
        let mut params = Vec::new();
        loop {
            match (pattern.next(), actual.next()) {
                (None, None) => return Some(params),
                (Some(p), Some(a)) => {
                    if let Some(name) = param_name(p) {
                        if a.is_empty() {
                            return None;
                        }
                        params.push((name, a));
                    } else if p != a {
                        return None;
                    }
                }
                _ => return None,
            }
        }
    }
}

fn param_name(segment: &str) -> Option<&str> {
    segment.strip_prefix('{').and_then(|p| p.strip_suffix('}'))
}

/// A function's operations: one variant per route, built by its endpoint.
pub trait Operation: Sized + 'static {
    /// Every route of the function, in the order requests are matched against them.
    const ENDPOINTS: &'static [Endpoint<Self>];
}

/// A route and how a request on it becomes an operation.
pub struct Endpoint<Op> {
    pub route: Route,
    pub parse: fn(&Params<'_>) -> Op,
}

impl<Op> Endpoint<Op> {
    pub const fn new(route: Route, parse: fn(&Params<'_>) -> Op) -> Self {
        Self { route, parse }
    }
}

/// The routes of `Op`'s endpoints, in order: a function's public `ROUTES`,
/// `&routes::<Op, { Op::ENDPOINTS.len() }>()`.
pub const fn routes<Op: Operation, const N: usize>() -> [Route; N] {
    assert!(
        Op::ENDPOINTS.len() == N,
        "N must be the number of endpoints"
    );
    let mut out = [Route::new("", ""); N];
    let mut i = 0;
    while i < N {
        out[i] = Op::ENDPOINTS[i].route;
        i += 1;
    }
    out
}

/// The `{name}` segments of a matched request path.
pub struct Params<'p> {
    values: Vec<(&'static str, &'p str)>,
    /// How many names were read, and how many of those the route does not have ([`check`]).
    read: Cell<usize>,
    unknown: Cell<usize>,
}

impl<'p> Params<'p> {
    fn new(values: Vec<(&'static str, &'p str)>) -> Self {
        Self {
            values,
            read: Cell::new(0),
            unknown: Cell::new(0),
        }
    }

    /// The segment `{name}`, parsed as a `T`.
    pub fn get<T: FromParam>(&self, name: &str) -> PathParam<T> {
        self.read.set(self.read.get() + 1);
        let raw = self
            .values
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| *v);
        if raw.is_none() {
            self.unknown.set(self.unknown.get() + 1);
        }
        PathParam(raw.and_then(T::from_param))
    }
}

/// A type a path segment parses into (the one parse of that segment).
pub trait FromParam: Sized {
    /// `None` when `raw` is not a value of this type.
    fn from_param(raw: &str) -> Option<Self>;
}

impl FromParam for TelegramUserId {
    /// A positive integer.
    fn from_param(raw: &str) -> Option<Self> {
        TelegramUserId::parse(raw).ok()
    }
}

impl FromParam for RegistrationId {
    fn from_param(raw: &str) -> Option<Self> {
        RegistrationId::parse(raw)
    }
}

/// A typed path parameter, parsed when the request was matched. Unlike axum's `Path<T>`, a
/// value that does not parse is not answered at once: the handler answers it with its own
/// problem, where its checks put it (after authentication, so an anonymous caller is told to
/// authenticate whatever the path holds). `link` answers `400 telegram_user_id_invalid`;
/// `registration` a `404`, as for an id that is not the caller's.
#[derive(Debug)]
pub struct PathParam<T>(Option<T>);

impl<T> PathParam<T> {
    /// The value, or `refusal` when the segment did not parse.
    pub fn or<E>(self, refusal: E) -> Result<T, E> {
        self.0.ok_or(refusal)
    }

    /// The value, or `refusal()` when the segment did not parse.
    pub fn or_else<E>(self, refusal: impl FnOnce() -> E) -> Result<T, E> {
        self.0.ok_or_else(refusal)
    }
}

/// The operation `method path` names, or the `404`/`405` problem.
pub fn parse<Op: Operation>(method: &Method, path: &str) -> Result<Op, Problem> {
    let mut allowed: Vec<&str> = Vec::new();
    for endpoint in Op::ENDPOINTS {
        if let Some(values) = endpoint.route.params(path) {
            if endpoint.route.method == method.as_str() {
                return Ok((endpoint.parse)(&Params::new(values)));
            }
            allowed.push(endpoint.route.method);
        }
    }
    Err(if allowed.is_empty() {
        Problem::not_found()
    } else {
        Problem::method_not_allowed(&allowed)
    })
}

/// The methods `routes` serve on `path`, in table order (a `405`'s `Allow`, a CORS preflight's
/// `Access-Control-Allow-Methods`).
pub fn methods_of(routes: &[Route], path: &str) -> Vec<&'static str> {
    routes
        .iter()
        .filter(|r| r.matches_path(path))
        .map(|r| r.method)
        .collect()
}

/// Answers `req`: its operation (see [`parse`]) goes to `run`, and `run`'s answer or any
/// problem on the way goes to [`respond`].
pub async fn dispatch<Op: Operation>(
    req: &Request,
    run: impl AsyncFnOnce(Op) -> Result<Response<Body>, Problem>,
) -> Response<Body> {
    let result = match parse::<Op>(req.method(), route_path(req)) {
        Ok(op) => run(op).await,
        Err(problem) => Err(problem),
    };
    // A failure on our side names the request, in the body and in the one log line.
    respond_to(result, || request_id(req))
}

/// The answer of a function switched off by configuration to every request: `404`, as if it
/// had no routes.
pub fn switched_off() -> Response<Body> {
    respond(Err(Problem::not_found()))
}

/// Where routes live: the API under `/api/`, and the paths standards fix — RFC 8615
/// well-known documents (`/.well-known/jwks.json`, `/.well-known/openid-configuration`) and the
/// OAuth endpoints (`/oauth/token`, `/oauth/revoke`) that the discovery document names.
pub const ROUTE_ROOTS: &[&str] = &["/api/", "/.well-known/", "/oauth/"];

/// Checks `Op`'s endpoint table for what the compiler cannot (call it from a unit test of the
/// function): every route is unique, and a request on it (each `{name}` filled in) reaches
/// that route's own endpoint, whose parse reads exactly the route's parameters.
#[track_caller]
pub fn check<Op: Operation>() {
    let endpoints = Op::ENDPOINTS;
    assert!(!endpoints.is_empty(), "no endpoints");
    for (i, endpoint) in endpoints.iter().enumerate() {
        let route = endpoint.route;
        assert!(
            Method::from_bytes(route.method.as_bytes()).is_ok()
                && route.method.bytes().all(|b| b.is_ascii_uppercase()),
            "{route:?}: not an HTTP method"
        );
        assert!(
            ROUTE_ROOTS
                .iter()
                .any(|root| route.pattern.starts_with(root)),
            "{route:?}: not under {ROUTE_ROOTS:?}"
        );
        let path = route
            .pattern
            .split('/')
            .map(|s| if param_name(s).is_some() { "1" } else { s })
            .collect::<Vec<_>>()
            .join("/");
        let method = Method::from_bytes(route.method.as_bytes()).expect("checked above");
        let first = endpoints
            .iter()
            .position(|e| e.route.matches(&method, &path))
            .expect("a route matches its own path");
        assert_eq!(
            first, i,
            "{route:?} is shadowed by {:?} listed before it",
            endpoints[first].route
        );
        let values = route.params(&path).expect("a route matches its own path");
        let names = values.len();
        let params = Params::new(values);
        let _ = (endpoint.parse)(&params);
        assert_eq!(
            params.unknown.get(),
            0,
            "{route:?}: the endpoint reads a parameter the route does not have"
        );
        assert_eq!(
            params.read.get(),
            names,
            "{route:?}: the endpoint does not read each of the route's parameters once"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_literals_and_params() {
        let r = Route::new("DELETE", "/api/worker/tokens/{id}");
        assert_eq!(
            r.params("/api/worker/tokens/abc"),
            Some(vec![("id", "abc")])
        );
        assert!(r.params("/api/worker/tokens").is_none());
        assert!(r.params("/api/worker/tokens/abc/def").is_none());
        assert!(r.params("/api/worker/tokens//").is_none());
        assert!(r.matches(&Method::DELETE, "/api/worker/tokens/x"));
        assert!(!r.matches(&Method::GET, "/api/worker/tokens/x"));
    }

    #[derive(Debug, PartialEq, Eq)]
    enum Op {
        A,
        B(Option<TelegramUserId>),
    }

    impl Operation for Op {
        const ENDPOINTS: &'static [Endpoint<Self>] = &[
            Endpoint::new(Route::new("POST", "/api/a"), |_| Self::A),
            Endpoint::new(Route::new("GET", "/api/b/{x}"), |p| {
                Self::B(p.get("x").or(()).ok())
            }),
        ];
    }

    const ROUTES: &[Route] = &routes::<Op, { Op::ENDPOINTS.len() }>();

    #[test]
    fn parse_distinguishes_404_and_405_and_types_params() {
        assert_eq!(
            ROUTES,
            [
                Route::new("POST", "/api/a"),
                Route::new("GET", "/api/b/{x}")
            ]
        );
        assert_eq!(parse::<Op>(&Method::POST, "/api/a"), Ok(Op::A));
        assert_eq!(
            parse::<Op>(&Method::GET, "/api/b/7"),
            Ok(Op::B(Some(TelegramUserId::new(7).unwrap())))
        );
        assert_eq!(parse::<Op>(&Method::GET, "/api/b/x"), Ok(Op::B(None)));
        assert_eq!(
            parse::<Op>(&Method::GET, "/api/a").unwrap_err().code,
            "method_not_allowed"
        );
        assert_eq!(
            parse::<Op>(&Method::GET, "/api/c").unwrap_err().code,
            "not_found"
        );
        check::<Op>();
    }

    enum Misread {
        A(PathParam<TelegramUserId>),
    }

    impl Operation for Misread {
        const ENDPOINTS: &'static [Endpoint<Self>] =
            &[Endpoint::new(Route::new("GET", "/api/a/{id}"), |p| {
                Self::A(p.get("telegram_user_id"))
            })];
    }

    #[test]
    #[should_panic(expected = "reads a parameter the route does not have")]
    fn check_finds_a_misnamed_parameter() {
        let Misread::A(id) = parse::<Misread>(&Method::GET, "/api/a/1").unwrap();
        assert!(
            id.or(()).is_err(),
            "a misnamed parameter reads as a bad value"
        );
        check::<Misread>();
    }

    enum Shadowed {
        Any,
        Literal,
    }

    impl Operation for Shadowed {
        const ENDPOINTS: &'static [Endpoint<Self>] = &[
            Endpoint::new(Route::new("GET", "/api/a/{id}"), |p| {
                let _ = p.get::<TelegramUserId>("id");
                Self::Any
            }),
            Endpoint::new(Route::new("GET", "/api/a/me"), |_| Self::Literal),
        ];
    }

    #[test]
    #[should_panic(expected = "shadowed")]
    fn check_finds_a_shadowed_route() {
        assert!(matches!(
            parse::<Shadowed>(&Method::GET, "/api/a/me"),
            Ok(Shadowed::Any | Shadowed::Literal)
        ));
        check::<Shadowed>();
    }

    fn body_of(resp: &Response<Body>) -> serde_json::Value {
        match resp.body() {
            Body::Text(t) => serde_json::from_str(t).unwrap(),
            _ => serde_json::Value::Null,
        }
    }

    #[tokio::test]
    async fn a_server_error_names_the_request_a_refusal_does_not() {
        use lambda_http::RequestExt;
        let mut context = lambda_http::Context::default();
        context.request_id = "lambda-request-1".into();
        let req = http::Request::builder()
            .method("POST")
            .uri("/api/a")
            .body(Body::Empty)
            .unwrap()
            .with_lambda_context(context);
        let resp = dispatch::<Op>(&req, async |_| Err(Problem::internal())).await;
        assert_eq!(resp.status(), 500);
        assert_eq!(body_of(&resp)["request_id"], "lambda-request-1");
        // Without a Lambda context (the local API): a fresh id.
        let req = http::Request::builder()
            .method("POST")
            .uri("/api/a")
            .body(Body::Empty)
            .unwrap();
        let resp = dispatch::<Op>(&req, async |_| Err(Problem::unavailable("the store"))).await;
        let id = body_of(&resp)["request_id"].as_str().unwrap().to_owned();
        assert_eq!(id.len(), 22);
        let resp = dispatch::<Op>(&req, async |_| {
            Err(Problem::bad_request("body_invalid", "no"))
        })
        .await;
        assert!(body_of(&resp).get("request_id").is_none());
    }
}
