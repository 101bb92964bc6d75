//! Route patterns (`/api/worker/tokens/{id}`), shared by the handlers, the local API's
//! dispatcher and the template/OpenAPI consistency tests.

use http::Method;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub method: &'static str,
    pub pattern: &'static str,
}

impl Route {
    pub const fn new(method: &'static str, pattern: &'static str) -> Self {
        Self { method, pattern }
    }

    /// Whether `path` has this route's shape; `{name}` segments match any one non-empty
    /// segment.
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
                    if let Some(name) = p.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
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

/// The outcome of matching a request against a function's routes.
#[derive(Debug, PartialEq, Eq)]
pub enum Resolved<'p> {
    /// A route matched; `params` are its `{name}` segments in order.
    Found {
        route: Route,
        params: Vec<(&'static str, &'p str)>,
    },
    /// The path exists under another method (405).
    MethodNotAllowed,
    /// No route has this path (404).
    NotFound,
}

impl Resolved<'_> {
    /// The value of the `{name}` segment, when a route matched.
    pub fn param(&self, name: &str) -> Option<&str> {
        match self {
            Self::Found { params, .. } => params.iter().find(|(n, _)| *n == name).map(|(_, v)| *v),
            _ => None,
        }
    }
}

/// The first route of `routes` matching `method` and `path`.
pub fn resolve<'p>(routes: &[Route], method: &Method, path: &'p str) -> Resolved<'p> {
    let mut path_known = false;
    for route in routes {
        if let Some(params) = route.params(path) {
            if route.method == method.as_str() {
                return Resolved::Found {
                    route: *route,
                    params,
                };
            }
            path_known = true;
        }
    }
    if path_known {
        Resolved::MethodNotAllowed
    } else {
        Resolved::NotFound
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

    #[test]
    fn resolve_distinguishes_404_and_405() {
        let routes = [Route::new("POST", "/a"), Route::new("GET", "/b/{x}")];
        assert!(matches!(
            resolve(&routes, &Method::POST, "/a"),
            Resolved::Found { .. }
        ));
        assert_eq!(resolve(&routes, &Method::GET, "/b/7").param("x"), Some("7"));
        assert_eq!(
            resolve(&routes, &Method::GET, "/a"),
            Resolved::MethodNotAllowed
        );
        assert_eq!(resolve(&routes, &Method::GET, "/c"), Resolved::NotFound);
    }
}
