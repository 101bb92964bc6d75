//! End-to-end: CORS through the local API (`TGLINK_CORS_ORIGINS`, [`tglink_shared::http::cors`]):
//! preflights from an allowed and a refused origin, the actual request's headers, nothing
//! without the setting, and never a wildcard.

use http::Method;
use tglink_shared::config::MapEnv;
use tglink_tests::{app::spawn_app_with, fixtures::Backend, http_client::Api};

const APP: &str = "https://app.example.com";
const CONNECT: &str = "/api/telegram/connect-link";

async fn preflight(api: &Api, path: &str, origin: &str) -> reqwest::Response {
    api.request(Method::OPTIONS, path)
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization, content-type",
        )
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preflights_and_responses_carry_cors_headers_for_allowed_origins_only() {
    let app = spawn_app_with(
        Backend::Sqlite,
        MapEnv::new().with(
            "TGLINK_CORS_ORIGINS",
            format!("{APP}, http://localhost:5173"),
        ),
    )
    .await;
    let jwt = app.jwt("cors-user");

    // Allowed origin: 204 with the path's methods and the headers a browser may send.
    let resp = preflight(&app.api, CONNECT, APP).await;
    assert_eq!(resp.status(), 204);
    let h = resp.headers();
    assert_eq!(h["access-control-allow-origin"], APP);
    assert_eq!(h["access-control-allow-methods"], "POST");
    let allow_headers = h["access-control-allow-headers"].to_str().unwrap();
    assert!(allow_headers.contains("authorization") && allow_headers.contains("content-type"));
    assert!(!h.contains_key("access-control-allow-credentials"));
    let resp = preflight(&app.api, "/api/telegram/session", "http://localhost:5173").await;
    assert_eq!(
        resp.headers()["access-control-allow-methods"],
        "PUT, DELETE"
    );

    // Refused origin: 403 problem, no CORS headers.
    let resp = preflight(&app.api, CONNECT, "https://evil.example").await;
    assert_eq!(resp.status(), 403);
    assert!(!resp.headers().contains_key("access-control-allow-origin"));
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["code"], "cors_origin_not_allowed");

    // The actual request from the allowed origin: its origin (never *), exposed headers, Vary.
    let resp = app
        .api
        .request(Method::POST, CONNECT)
        .bearer_auth(&jwt)
        .header("origin", APP)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    assert_eq!(resp.headers()["access-control-allow-origin"], APP);
    assert!(resp.headers().contains_key("access-control-expose-headers"));
    assert_eq!(resp.headers()["vary"], "origin");
    // An error answer carries them too (the browser must be able to read the problem).
    let resp = app
        .api
        .request(Method::POST, CONNECT)
        .header("origin", APP)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.headers()["access-control-allow-origin"], APP);
    // From another origin: processed (a server has no Origin to check), but no CORS headers,
    // so the browser does not hand the answer to that page.
    let resp = app
        .api
        .request(Method::POST, CONNECT)
        .bearer_auth(&jwt)
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert!(!resp.headers().contains_key("access-control-allow-origin"));
    // An OPTIONS that is not a preflight is an ordinary request: 405 with Allow.
    let resp = app
        .api
        .request(Method::OPTIONS, CONNECT)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
    assert_eq!(resp.headers()["allow"], "POST");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_setting_no_response_carries_cors_headers() {
    let app = spawn_app_with(Backend::Sqlite, MapEnv::new()).await;
    let resp = preflight(&app.api, CONNECT, APP).await;
    assert_eq!(resp.status(), 403);
    assert!(!resp.headers().contains_key("access-control-allow-origin"));
    let resp = app
        .api
        .request(Method::POST, CONNECT)
        .bearer_auth(app.jwt("u"))
        .header("origin", APP)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    assert!(
        resp.headers()
            .keys()
            .all(|k| !k.as_str().starts_with("access-control-")),
        "{:?}",
        resp.headers()
    );
}
