//! HTTP edge helpers shared by every handler: JSON bodies with a size limit, bearer tokens,
//! JSON responses and RFC 9457 `application/problem+json` errors with a stable `code`.
//!
//! A failure becomes a response in one place, [`respond`] (which [`crate::routes::dispatch`]
//! calls for every request): it logs the problem once, by status class, with its internal
//! [`cause`](Problem::cause), and renders it. The mapping of the shared domain's errors (store,
//! sealing, app JWT, Mini App) to problems is [`problems`]; a function's own errors map beside
//! their enum in the function. The ports themselves know nothing of HTTP.

pub mod cors;
pub mod problems;

use http::{HeaderValue, StatusCode, header};
use lambda_http::{Body, Request, Response};
use serde::{Serialize, de::DeserializeOwned};

/// Largest accepted request body.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Seconds a client should wait before retrying after a 503.
pub const RETRY_AFTER_SECS: u32 = 2;

pub const PROBLEM_JSON: &str = "application/problem+json";

/// An RFC 9457 problem. `code` is the stable, machine-readable identifier clients switch on;
/// `detail` is for humans and never contains secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub status: StatusCode,
    pub code: &'static str,
    pub title: &'static str,
    pub detail: Option<String>,
    pub retry_after: Option<u32>,
    pub headers: Vec<(header::HeaderName, HeaderValue)>,
    /// What went wrong inside, for the one log line of [`respond`]; never part of the
    /// response. Secret-free like every log line (e.g. a store error's text).
    pub cause: Option<String>,
}

impl Problem {
    pub fn new(status: StatusCode, code: &'static str, title: &'static str) -> Self {
        Self {
            status,
            code,
            title,
            detail: None,
            retry_after: None,
            headers: Vec::new(),
            cause: None,
        }
    }

    /// Sets the internal [`cause`](Self::cause) logged with this problem.
    pub fn cause(mut self, cause: impl Into<String>) -> Self {
        self.cause = Some(cause.into());
        self
    }

    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    pub fn header(mut self, name: header::HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, "Bad request").detail(detail)
    }

    pub fn unauthorized(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, code, "Unauthorized")
            .detail(detail)
            .header(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"))
    }

    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", "Not found")
            .detail("no such route or resource")
    }

    /// `405` with `Allow` naming the methods the path has (RFC 9110 §15.5.6).
    pub fn method_not_allowed(allowed: &[&str]) -> Self {
        let problem = Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "Method not allowed",
        )
        .detail(format!("this route answers {}", allowed.join(", ")));
        match HeaderValue::from_str(&allowed.join(", ")) {
            Ok(allow) => problem.header(header::ALLOW, allow),
            Err(_) => problem,
        }
    }

    /// A dependency (store, KMS) is unavailable: retryable, nothing was written.
    pub fn unavailable(what: &str) -> Self {
        let mut p = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "service_unavailable",
            "Service unavailable",
        )
        .detail(format!(
            "{what} is unavailable; nothing was changed, retry later"
        ));
        p.retry_after = Some(RETRY_AFTER_SECS);
        p
    }

    /// Something is wrong on our side that a retry will not fix.
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "Internal error",
        )
    }

    /// Logs this problem, by status class (see [`respond`]). A 4xx is the client's: a handler
    /// logs the refusals that matter, with their context, at `info`.
    fn log(&self, request_id: Option<&str>) {
        let status = self.status.as_u16();
        let (code, cause) = (self.code, self.cause.as_deref());
        match status {
            502..=504 => tracing::warn!(status, code, cause, request_id, "dependency failed"),
            500..=599 => tracing::error!(status, code, cause, request_id, "internal error"),
            _ => tracing::debug!(status, code, cause, "request refused"),
        }
    }

    /// The problem+json response. Private: every problem leaves through [`respond`].
    fn into_response(self, request_id: Option<&str>) -> Response<Body> {
        let mut body = serde_json::json!({
            "type": format!("urn:tglink:problem:{}", self.code),
            "title": self.title,
            "status": self.status.as_u16(),
            "code": self.code,
        });
        if let Some(detail) = &self.detail {
            body["detail"] = detail.clone().into();
        }
        if let Some(id) = request_id {
            body["request_id"] = id.into();
        }
        let mut resp = Response::builder()
            .status(self.status)
            .header(header::CONTENT_TYPE, PROBLEM_JSON)
            .header(header::CACHE_CONTROL, "no-store")
            .body(Body::Text(body.to_string()))
            .expect("static response parts are valid");
        if let Some(secs) = self.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        for (name, value) in self.headers {
            resp.headers_mut().insert(name, value);
        }
        resp
    }
}

/// The response to a request: the handler's, or its problem's. The one place a failure
/// becomes a response, and is logged: once, by status class (a dependency's failure, 502, 503
/// or 504, at `warn`; any other 5xx at `error`; a 4xx at `debug`), with its internal
/// [`cause`](Problem::cause), which never reaches the body.
pub fn respond(result: Result<Response<Body>, Problem>) -> Response<Body> {
    result.unwrap_or_else(|problem| {
        problem.log(None);
        problem.into_response(None)
    })
}

/// [`respond`] for a request: a `5xx` names it, by `request_id` (called only then), in its
/// body (`request_id`) and in its one log line, so that a report leads to the cause.
pub fn respond_to(
    result: Result<Response<Body>, Problem>,
    request_id: impl FnOnce() -> String,
) -> Response<Body> {
    result.unwrap_or_else(|problem| {
        let id = problem.status.is_server_error().then(request_id);
        problem.log(id.as_deref());
        problem.into_response(id.as_deref())
    })
}

/// The id of a request, for a `5xx`'s body and log line: the Lambda request id (as in the
/// function's own log lines), else API Gateway's, else a fresh random one (the local API).
pub fn request_id(req: &Request) -> String {
    use lambda_http::{RequestExt, request::RequestContext};
    if let Some(context) = req.lambda_context_ref()
        && !context.request_id.is_empty()
    {
        return context.request_id.clone();
    }
    if let Some(RequestContext::ApiGatewayV2(context)) = req.request_context_ref()
        && let Some(id) = context.request_id.as_deref().filter(|id| !id.is_empty())
    {
        return id.to_owned();
    }
    let mut id = crate::token::OneTimeToken::mint()
        .hash()
        .as_str()
        .to_owned();
    id.truncate(22);
    id
}

/// A JSON response with `Cache-Control: no-store` (every tglink response is per-user).
pub fn json<T: Serialize>(status: StatusCode, value: &T) -> Response<Body> {
    match serde_json::to_string(value) {
        Ok(text) => Response::builder()
            .status(status)
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::CACHE_CONTROL, "no-store")
            .body(Body::Text(text))
            .expect("static response parts are valid"),
        Err(_) => respond(Err(
            Problem::internal().cause("the response could not be serialized")
        )),
    }
}

/// An empty response (204, 304).
pub fn empty(status: StatusCode) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(header::CACHE_CONTROL, "no-store")
        .body(Body::Empty)
        .expect("static response parts are valid")
}

/// The raw body bytes, refusing more than [`MAX_BODY_BYTES`].
pub fn body_bytes(req: &Request) -> Result<&[u8], Problem> {
    let bytes: &[u8] = match req.body() {
        Body::Empty => &[],
        Body::Text(text) => text.as_bytes(),
        Body::Binary(bytes) => bytes,
        _ => &[],
    };
    if bytes.len() > MAX_BODY_BYTES {
        return Err(Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "Payload too large",
        )
        .detail(format!(
            "request bodies are limited to {MAX_BODY_BYTES} bytes"
        )));
    }
    Ok(bytes)
}

/// Parses a JSON body into `T`. A missing body, a missing or non-JSON content type, malformed
/// JSON or a wrong shape each get a 4xx problem whose detail names the field (its path, e.g.
/// `buttons[0].url`) and what was expected, never a value. **Unknown fields are refused** on
/// every route (`body_invalid`, naming the field): a misspelt optional field must not be
/// silently ignored. Only bodies whose schema another party extends use [`parse_json_open`].
pub fn parse_json<T: DeserializeOwned>(req: &Request) -> Result<T, Problem> {
    decode(json_body(req)?, Unknown::Refuse)
}

/// Like [`parse_json`], with unknown fields ignored: for bodies whose schema someone else
/// extends over time (Telegram's `Update`s, which gain fields with every Bot API release).
pub fn parse_json_open<T: DeserializeOwned>(req: &Request) -> Result<T, Problem> {
    decode(json_body(req)?, Unknown::Ignore)
}

/// What to do with a field the target type does not know.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Unknown {
    Refuse,
    Ignore,
}

/// Hints for a field sent with the wrong type in a way people commonly do: (field, the JSON
/// type sent, the hint).
const TYPE_HINTS: &[(&str, &str, &str)] = &[(
    "init_data",
    "map",
    "send Telegram.WebApp.initData (the raw query string), not Telegram.WebApp.initDataUnsafe (an object)",
)];

/// The JSON body's bytes, after the content-type checks.
fn json_body(req: &Request) -> Result<&[u8], Problem> {
    let unsupported = || {
        Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "Unsupported media type",
        )
        .detail("send the body as application/json")
    };
    match req.headers().get(header::CONTENT_TYPE) {
        Some(ct) => {
            let ct = ct.to_str().unwrap_or("").to_ascii_lowercase();
            let mime = ct.split(';').next().unwrap_or("").trim();
            if mime != "application/json" && !mime.ends_with("+json") {
                return Err(unsupported());
            }
        }
        // No Content-Type: a body is refused (415); no body is `body_missing` below.
        None if !body_bytes(req)?.is_empty() => return Err(unsupported()),
        None => {}
    }
    let bytes = body_bytes(req)?;
    if bytes.is_empty() {
        return Err(Problem::bad_request(
            "body_missing",
            "a JSON body is required",
        ));
    }
    Ok(bytes)
}

fn decode<T: DeserializeOwned>(bytes: &[u8], unknown: Unknown) -> Result<T, Problem> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let mut ignored: Option<String> = None;
    let mut note = |path: serde_ignored::Path<'_>| {
        ignored.get_or_insert_with(|| field_path(&path));
    };
    let value: T =
        serde_path_to_error::deserialize(serde_ignored::Deserializer::new(&mut de, &mut note))
            .map_err(|e| shape_problem(&e.path().to_string(), e.inner()))?;
    de.end().map_err(|e| shape_problem(".", &e))?;
    if let (Unknown::Refuse, Some(field)) = (unknown, ignored) {
        return Err(Problem::bad_request(
            "body_invalid",
            format!("body does not match the expected shape: unknown field `{field}`"),
        ));
    }
    Ok(value)
}

/// An ignored field's path written as [`serde_path_to_error`] writes paths (`buttons[0].url`),
/// so that every message names fields one way.
fn field_path(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path;
    match path {
        Path::Root => String::new(),
        Path::Seq { parent, index } => format!("{}[{index}]", field_path(parent)),
        Path::Map { parent, key } => match field_path(parent) {
            parent if parent.is_empty() => key.clone(),
            parent => format!("{parent}.{key}"),
        },
        Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => field_path(parent),
    }
}

/// The problem of a body that failed to parse: the field's path and what was expected, never
/// the value sent (serde's "invalid type: string \"…\"" quotes it, so only the part after
/// "expected" is kept).
fn shape_problem(path: &str, inner: &serde_json::Error) -> Problem {
    let (line, column) = (inner.line(), inner.column());
    let detail = match inner.classify() {
        serde_json::error::Category::Data => {
            let message = inner.to_string();
            let message = message.split(" at line").next().unwrap_or("");
            let at = if path == "." {
                String::new()
            } else {
                format!("field `{path}`: ")
            };
            if let Some(rest) = message.strip_prefix("unknown field `") {
                // Named by its whole path, like an unknown field found by `decode`.
                let expected = rest.split_once('`').map_or("", |(_, tail)| tail);
                format!("body does not match the expected shape: unknown field `{path}`{expected}")
            } else if message.starts_with("missing field") {
                format!("body does not match the expected shape: {at}{message}")
            } else if let Some((sent, expected)) = message
                .strip_prefix("invalid type: ")
                .and_then(|m| m.split_once(", expected "))
            {
                let kind = sent.split(' ').next().unwrap_or("");
                let hint = TYPE_HINTS
                    .iter()
                    .find(|(field, k, _)| path == *field && kind == *k)
                    .map(|(_, _, hint)| format!(" ({hint})"))
                    .unwrap_or_default();
                format!(
                    "body does not match the expected shape: {at}wrong type, expected {expected}{hint}"
                )
            } else if let Some((_, expected)) = message
                .strip_prefix("invalid value: ")
                .and_then(|m| m.split_once(", expected "))
            {
                format!(
                    "body does not match the expected shape: {at}invalid value, expected {expected}"
                )
            } else {
                format!(
                    "body does not match the expected shape: {at}invalid value (line {line}, column {column})"
                )
            }
        }
        _ => format!("body is not valid JSON (line {line}, column {column})"),
    };
    Problem::bad_request("body_invalid", detail)
}

/// The token of an `Authorization: Bearer <token>` header.
pub fn bearer_token(req: &Request) -> Option<&str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = token.trim();
    (!token.is_empty()).then_some(token)
}

/// The request path without a trailing slash (`/api/x/` routes like `/api/x`).
pub fn route_path(req: &Request) -> &str {
    let path = req.uri().path();
    if path.len() > 1 {
        path.trim_end_matches('/')
    } else {
        path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req_with(body: Body, content_type: Option<&str>) -> Request {
        let mut b = http::Request::builder().method("POST").uri("/x");
        if let Some(ct) = content_type {
            b = b.header(header::CONTENT_TYPE, ct);
        }
        b.body(body).unwrap()
    }

    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Shape {
        name: String,
    }

    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Nested {
        init_data: Option<String>,
        buttons: Vec<Button>,
    }

    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Button {
        url: String,
        #[serde(default)]
        row: u8,
    }

    fn detail_of<T: DeserializeOwned + std::fmt::Debug>(body: &str) -> String {
        let err = parse_json::<T>(&req_with(Body::Text(body.into()), Some("application/json")))
            .unwrap_err();
        assert_eq!(
            (err.status, err.code),
            (StatusCode::BAD_REQUEST, "body_invalid"),
            "{body}"
        );
        err.detail.unwrap()
    }

    #[test]
    fn a_wrong_field_is_named_by_its_path_and_never_echoed() {
        let detail = detail_of::<Nested>(r#"{"buttons":[{"url":"https://a"},{"url":12345678}]}"#);
        assert_eq!(
            detail,
            "body does not match the expected shape: field `buttons[1].url`: wrong type, expected a string"
        );
        let detail = detail_of::<Nested>(r#"{"buttons":[{"url":"u","row":"secret-value"}]}"#);
        assert!(
            detail.contains("field `buttons[0].row`") && !detail.contains("secret-value"),
            "{detail}"
        );
        let detail = detail_of::<Nested>(r#"{"buttons":[{"url":"u","row":999}]}"#);
        assert!(
            detail.contains("field `buttons[0].row`: invalid value") && !detail.contains("999"),
            "{detail}"
        );
        let detail = detail_of::<Nested>(r#"{"init_data":null}"#);
        assert!(detail.contains("missing field `buttons`"), "{detail}");
        // initDataUnsafe (an object) where the initData string belongs: a hint.
        let detail = detail_of::<Nested>(r#"{"init_data":{"user":{"id":1}},"buttons":[]}"#);
        assert!(
            detail.contains("field `init_data`: wrong type, expected a string"),
            "{detail}"
        );
        assert!(
            detail.contains("not Telegram.WebApp.initDataUnsafe"),
            "{detail}"
        );
        // Trailing characters after the value: not JSON.
        let detail = detail_of::<Nested>(r#"{"buttons":[]} x"#);
        assert!(detail.starts_with("body is not valid JSON"), "{detail}");
    }

    #[test]
    fn unknown_fields_are_refused_by_name_unless_the_body_is_open() {
        let detail = detail_of::<Nested>(r#"{"buttons":[],"init_dat":"x"}"#);
        assert_eq!(
            detail,
            "body does not match the expected shape: unknown field `init_dat`"
        );
        let detail = detail_of::<Nested>(r#"{"buttons":[{"url":"u","colour":"red"}]}"#);
        assert!(
            detail.ends_with("unknown field `buttons[0].colour`"),
            "{detail}"
        );
        let open: Nested = parse_json_open(&req_with(
            Body::Text(r#"{"buttons":[{"url":"u","colour":"red"}],"extra":1}"#.into()),
            Some("application/json"),
        ))
        .unwrap();
        assert_eq!(open.buttons.len(), 1);
    }

    #[test]
    fn problem_response_has_rfc9457_fields_and_code() {
        let resp = Problem::unavailable("the store").into_response(None);
        assert_eq!(resp.status(), 503);
        assert_eq!(resp.headers()[header::CONTENT_TYPE], PROBLEM_JSON);
        assert_eq!(resp.headers()[header::RETRY_AFTER], "2");
        let Body::Text(text) = resp.body() else {
            panic!("expected text body")
        };
        let v: serde_json::Value = serde_json::from_str(text).unwrap();
        assert_eq!(v["code"], "service_unavailable");
        assert_eq!(v["status"], 503);
        assert_eq!(v["type"], "urn:tglink:problem:service_unavailable");
        assert!(v["title"].is_string() && v["detail"].is_string());
    }

    /// What `f` logs at `debug` and above, as JSON lines.
    fn logged(f: impl FnOnce()) -> String {
        let buffer = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
        let sink = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_max_level(tracing::Level::DEBUG)
            .with_writer(move || Sink(sink.clone()))
            .finish();
        tracing::subscriber::with_default(subscriber, f);
        String::from_utf8(buffer.lock().unwrap().clone()).unwrap()
    }

    struct Sink(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn respond_logs_once_by_status_class_with_the_cause_kept_out_of_the_body() {
        let mut resp = None;
        let log = logged(|| {
            resp = Some(respond(Err(
                Problem::unavailable("the store").cause("store unavailable: throttled")
            )));
        });
        assert_eq!(log.lines().count(), 1, "{log}");
        assert!(log.contains("\"WARN\"") && log.contains("store unavailable: throttled"));
        let Body::Text(text) = resp.unwrap().into_body() else {
            panic!("expected text body")
        };
        assert!(
            !text.contains("throttled"),
            "the cause is never in the body"
        );

        let log = logged(|| {
            respond(Err(Problem::internal().cause("corrupt")));
        });
        assert!(
            log.contains("\"ERROR\"") && log.contains("corrupt"),
            "{log}"
        );
        let log = logged(|| {
            respond(Err(Problem::not_found()));
        });
        assert!(
            log.contains("\"DEBUG\"") && log.contains("not_found"),
            "{log}"
        );
        let log = logged(|| {
            respond(Ok(empty(StatusCode::NO_CONTENT)));
        });
        assert!(log.is_empty(), "a success is the handler's to log");
    }

    #[test]
    fn body_limit_is_enforced() {
        let big = "x".repeat(MAX_BODY_BYTES + 1);
        let err =
            parse_json::<Shape>(&req_with(Body::Text(big), Some("application/json"))).unwrap_err();
        assert_eq!(err.status, StatusCode::PAYLOAD_TOO_LARGE);
    }

    #[test]
    fn json_errors_are_4xx_and_do_not_echo_values() {
        let err = parse_json::<Shape>(&req_with(Body::Text("{".into()), Some("application/json")))
            .unwrap_err();
        assert_eq!(err.code, "body_invalid");
        let err = parse_json::<Shape>(&req_with(
            Body::Text(r#"{"name": 12345678}"#.into()),
            Some("application/json"),
        ))
        .unwrap_err();
        assert_eq!(err.status, StatusCode::BAD_REQUEST);
        let err = parse_json::<Shape>(&req_with(
            Body::Text(r#"{"nom": "secret-value"}"#.into()),
            Some("application/json"),
        ))
        .unwrap_err();
        assert!(!err.detail.unwrap().contains("secret-value"));
        let err = parse_json::<Shape>(&req_with(Body::Empty, None)).unwrap_err();
        assert_eq!(err.code, "body_missing");
        let err = parse_json::<Shape>(&req_with(Body::Text("{}".into()), Some("text/plain")))
            .unwrap_err();
        assert_eq!(err.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    }

    /// A body without `Content-Type` is refused with 415, as documented; an empty body without
    /// one is still `body_missing`.
    #[test]
    fn a_body_without_content_type_is_415() {
        let err =
            parse_json::<Shape>(&req_with(Body::Text(r#"{"name":"a"}"#.into()), None)).unwrap_err();
        assert_eq!(err.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert_eq!(err.code, "unsupported_media_type");
        let err = parse_json::<Shape>(&req_with(Body::Binary(b"{}".to_vec()), None)).unwrap_err();
        assert_eq!(err.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        let err = parse_json::<Shape>(&req_with(Body::Empty, None)).unwrap_err();
        assert_eq!(err.code, "body_missing");
        for ct in [
            "application/json",
            "application/json; charset=utf-8",
            "application/x+json",
        ] {
            assert!(
                parse_json::<Shape>(&req_with(Body::Text(r#"{"name":"a"}"#.into()), Some(ct)))
                    .is_ok()
            );
        }
    }

    #[test]
    fn bearer_parsing() {
        let r = http::Request::builder()
            .header(header::AUTHORIZATION, "bearer abc")
            .body(Body::Empty)
            .unwrap();
        assert_eq!(bearer_token(&r), Some("abc"));
        let r = http::Request::builder()
            .header(header::AUTHORIZATION, "Basic abc")
            .body(Body::Empty)
            .unwrap();
        assert_eq!(bearer_token(&r), None);
    }
}
