//! `openapi.yaml` against the code: its operations are exactly the functions' routes (tagged
//! with the function serving them), it is valid OpenAPI 3.1, the local API serves it, and real
//! responses of every route (the events of `tests/events/` replayed in-process on a cloud-like
//! deployment) match its response schemas, problem+json errors included.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;
use tglink_tests::{
    app::spawn_app,
    cloud::CloudLike,
    fixtures::Backend,
    functions::FUNCTIONS,
    lambda_events::{InProcess, Session, run_scenario},
    openapi, workspace_root,
};

/// The response object of `status`, following a `$ref` into `components`.
fn response<'a>(spec: &'a Value, operation: &'a Value, status: &str) -> &'a Value {
    let r = &operation["responses"][status];
    match r["$ref"].as_str() {
        Some(reference) => reference
            .trim_start_matches('#')
            .split('/')
            .skip(1)
            .fold(spec, |node, part| &node[part]),
        None => r,
    }
}

/// Browser endpoints (the OpenID provider's authorization endpoint and Telegram's callback):
/// they answer `302` with `Location` (also OAuth error redirects) instead of a 2xx, and a
/// problem+json page (no 401: the browser carries no credential) where no redirect is trusted.
const REDIRECT_ENDPOINTS: &[&str] = &["GET /oauth/authorize", "GET /oauth/callback/telegram"];

/// Public, unauthenticated documents (no 401), and whether each reads the store (a 503).
const PUBLIC_DOCUMENTS: &[(&str, bool)] = &[
    ("GET /.well-known/jwks.json", true),
    ("GET /.well-known/openid-configuration", false),
];

#[test]
fn operations_are_exactly_the_functions_routes() {
    let spec = openapi::load();
    assert!(
        spec["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1")),
        "OpenAPI 3.1"
    );
    let operations = openapi::operations(&spec);
    let mut owners: BTreeMap<(String, String), &str> = BTreeMap::new();
    for function in FUNCTIONS {
        for route in function.routes {
            owners.insert(
                (route.method.to_owned(), route.pattern.to_owned()),
                function.name,
            );
        }
    }
    let in_spec: BTreeSet<_> = operations.keys().cloned().collect();
    let in_code: BTreeSet<_> = owners.keys().cloned().collect();
    assert_eq!(
        in_spec.difference(&in_code).collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "operations in openapi.yaml that no function serves"
    );
    assert_eq!(
        in_code.difference(&in_spec).collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "routes missing from openapi.yaml"
    );

    let mut operation_ids = BTreeSet::new();
    for ((method, path), operation) in &operations {
        let at = format!("{method} {path}");
        assert_eq!(
            operation["tags"],
            serde_json::json!([owners[&(method.clone(), path.clone())]]),
            "{at}: tagged with the function serving it"
        );
        let id = operation["operationId"].as_str().expect("operationId");
        assert!(
            operation_ids.insert(id.to_owned()),
            "{at}: duplicate operationId {id}"
        );
        assert!(
            operation["security"]
                .as_array()
                .is_some_and(|s| !s.is_empty()),
            "{at}: says how it is authenticated"
        );
        // Path parameters: exactly the route's {names}.
        let in_path: BTreeSet<String> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(str::to_owned)
            .collect();
        let declared: BTreeSet<String> = operation["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["in"] == "path")
            .map(|p| p["name"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(in_path, declared, "{at}: path parameters");
        // A success, and errors as problem+json (401 and 503 at least: every route that
        // authenticates refuses with 401, and every route that uses the store can answer 503;
        // the public discovery documents do neither, or only the second). The OAuth endpoints
        // answer errors as RFC 6749 JSON instead (but for the 404 of a switched-off feature).
        let statuses: Vec<&String> = operation["responses"].as_object().unwrap().keys().collect();
        let redirects = REDIRECT_ENDPOINTS.contains(&at.as_str());
        if redirects {
            let found = response(&spec, operation, "302");
            assert!(
                found["headers"]["Location"].is_object(),
                "{at}: a 302 with Location"
            );
        } else {
            assert!(statuses.iter().any(|s| s.starts_with('2')), "{at}: a 2xx");
        }
        let public_document = PUBLIC_DOCUMENTS.iter().find(|(p, _)| *p == at);
        // OpenID Connect UserInfo is a resource endpoint (RFC 6750): problem+json like the API.
        if path.starts_with("/oauth/") && !redirects && path != "/oauth/userinfo" {
            for status in statuses
                .iter()
                .filter(|s| (s.starts_with('4') || s.starts_with('5')) && **s != "404")
            {
                let r = response(&spec, operation, status);
                assert!(
                    r["content"]["application/json"]["schema"].is_object(),
                    "{at}: {status} must be an RFC 6749 error (application/json)"
                );
            }
            continue;
        }
        let required: &[&str] = match public_document {
            _ if redirects => &["400", "503"],
            Some((_, true)) => &["503"],
            Some((_, false)) => &[],
            None => &["401", "503"],
        };
        for status in required {
            let status = *status;
            let r = response(&spec, operation, status);
            assert!(
                r["content"]["application/problem+json"]["schema"].is_object(),
                "{at}: {status} is documented as application/problem+json"
            );
        }
        for status in statuses
            .iter()
            .filter(|s| s.starts_with('4') || s.starts_with('5'))
        {
            let r = response(&spec, operation, status);
            assert!(
                r["content"]["application/problem+json"].is_object(),
                "{at}: {status} must be application/problem+json"
            );
        }
    }
}

#[test]
fn the_spec_is_valid_openapi() {
    let root = workspace_root();
    let validator = root.join(".venv/bin/openapi-spec-validator");
    assert!(
        validator.exists(),
        "{} missing: run make test",
        validator.display()
    );
    let out = std::process::Command::new(validator)
        .arg(root.join("openapi.yaml"))
        .output()
        .expect("run openapi-spec-validator");
    assert!(
        out.status.success(),
        "openapi-spec-validator: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_api_serves_the_spec() {
    let app = spawn_app(Backend::Sqlite).await;
    let resp = app.api.get("/openapi.yaml", None).await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("content-type"), Some("application/yaml"));
    assert_eq!(resp.text, openapi::text());
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_responses_match_the_spec() {
    let mut cloud = CloudLike::start().await;
    let mut invoker = InProcess::new(cloud.env.clone());
    let mut session = Session::new(&mut invoker, &cloud.recorder);
    run_scenario(&mut session).await;
    let statuses: BTreeSet<u16> = session
        .invocations
        .iter()
        .map(|i| i.outcome.status)
        .collect();
    assert!(
        statuses.contains(&401) && statuses.contains(&404),
        "the scenario includes problem+json errors: {statuses:?}"
    );
    openapi::check_responses(&session.responses_jsonl());
    cloud.recorder.stop().await;
}

/// The response check can fail: a wrong field type, an undocumented status, a wrong content
/// type.
#[test]
fn the_response_check_reports_mismatches() {
    let line = |status: u16, content_type: &str, body: &str| {
        serde_json::json!({
            "method": "POST",
            "route": "/api/telegram/connect-link",
            "status": status,
            "headers": {"content-type": content_type},
            "body": body,
        })
        .to_string()
            + "\n"
    };
    let good = line(
        201,
        "application/json",
        r#"{"token":"Q2x1c3RlcnMtYXJlLWZ1bi1hbmQtc2FmZS0wMTIzNDU","url":"https://t.me/b?start=x","expires_at":1}"#,
    );
    assert_eq!(openapi::try_check_responses(&good), Ok(()));
    let report = openapi::try_check_responses(&line(
        201,
        "application/json",
        r#"{"token":5,"url":"https://t.me/b","expires_at":1}"#,
    ))
    .unwrap_err();
    assert!(report.contains("token"), "{report}");
    let report = openapi::try_check_responses(&line(418, "application/json", "{}")).unwrap_err();
    assert!(report.contains("not documented"), "{report}");
    let report = openapi::try_check_responses(&line(
        401,
        "application/json",
        r#"{"type":"urn:tglink:problem:auth_required","title":"t","status":401,"code":"auth_required"}"#,
    ))
    .unwrap_err();
    assert!(report.contains("content type"), "{report}");
    let report = openapi::try_check_responses(&line(
        401,
        "application/problem+json",
        r#"{"type":"urn:tglink:problem:nope","title":"t","status":401,"code":"nope"}"#,
    ))
    .unwrap_err();
    assert!(report.contains("nope"), "{report}");
}
