//! End-to-end: JSON bodies are held to one policy on every route: an unknown field is refused
//! by name (`400 body_invalid`), a wrong-typed field is named by its path without echoing the
//! value, and the Mini App's `initDataUnsafe` object sent for the initData string gets a hint.
//! A worker token on a route that takes only the app JWT is told what worker tokens are for.

use http::Method;
use serde_json::{Value, json};
use tglink_tests::{app::spawn_app, fixtures::Backend, openapi};

/// JSON bodies outside the strict policy's e2e check, with why: the webhook's `Update` is open
/// (Telegram adds fields), and the registration callback is signed (its body is parsed by the
/// same `parse_json` once the signature checks; `e2e::registration` covers it).
const NOT_LISTED: &[(&str, &str)] = &[
    ("POST", "/api/telegram/webhook"),
    ("POST", "/api/auth/registration/callback"),
];

/// Every route with a JSON body, with a body that is valid but for the unknown field added.
fn routes_with_bodies() -> Vec<(Method, &'static str, Value)> {
    vec![
        (
            Method::POST,
            "/api/auth/setup-2fa",
            json!({"service_name": "Example"}),
        ),
        (
            Method::PUT,
            "/api/settings/bot-token",
            json!({"bot_token": "123456:AAHxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}),
        ),
        (
            Method::PUT,
            "/api/telegram/session",
            json!({"session": "s", "telegram_user_id": 1, "channel_id": -100}),
        ),
        (
            Method::POST,
            "/api/telegram/session/report",
            json!({"error": "AUTH_KEY_UNREGISTERED"}),
        ),
        (Method::POST, "/api/worker/tokens", json!({"name": "w"})),
        (
            Method::POST,
            "/api/auth/2fa/verify",
            json!({"code": "123456"}),
        ),
        (
            Method::POST,
            "/api/telegram/miniapp/verify",
            json!({"init_data": "auth_date=1&hash=00"}),
        ),
        (
            Method::POST,
            "/api/telegram/link",
            json!({"init_data": "auth_date=1&hash=00"}),
        ),
        (
            Method::POST,
            "/api/telegram/notify",
            json!({"user_id": "u", "text": "hello"}),
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_and_wrong_typed_fields_are_refused_by_name_on_every_route() {
    let app = spawn_app(Backend::Sqlite).await;
    let jwt = app.jwt("body-user");
    for (method, path, body) in routes_with_bodies() {
        let mut with_extra = body.clone();
        with_extra["unexpected_field"] = json!("secret-looking-value");
        let resp = app
            .api
            .call(method.clone(), path, Some(&jwt), Some(&with_extra))
            .await;
        resp.assert_problem(400, "body_invalid");
        assert!(
            resp.json["detail"]
                .as_str()
                .unwrap()
                .contains("unknown field `unexpected_field`"),
            "{method} {path}: {}",
            resp.text
        );
        assert!(!resp.text.contains("secret-looking-value"), "{}", resp.text);

        // The first field with a wrong type: named, its value not echoed.
        let mut wrong = body.clone();
        let (field, _) = body.as_object().unwrap().iter().next().unwrap();
        wrong[field] = json!([987654321]);
        let resp = app
            .api
            .call(method.clone(), path, Some(&jwt), Some(&wrong))
            .await;
        resp.assert_problem(400, "body_invalid");
        let detail = resp.json["detail"].as_str().unwrap();
        assert!(
            detail.contains(&format!("field `{field}`: ")),
            "{method} {path}: {detail}"
        );
        assert!(!resp.text.contains("987654321"), "{}", resp.text);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_data_unsafe_gets_a_hint_and_worker_tokens_are_explained() {
    let app = spawn_app(Backend::Sqlite).await;
    let unsafe_object = json!({"init_data": {"user": {"id": 42}, "auth_date": 1, "hash": "x"}});
    for path in ["/api/telegram/miniapp/verify", "/api/telegram/link"] {
        let resp = app
            .api
            .post(path, Some(&app.jwt("u")), Some(&unsafe_object))
            .await;
        resp.assert_problem(400, "body_invalid");
        assert!(
            resp.text.contains("not Telegram.WebApp.initDataUnsafe"),
            "{path}: {}",
            resp.text
        );
    }
    let worker_token = "tgw_dQ.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let resp = app
        .api
        .post("/api/telegram/connect-link", Some(worker_token), None)
        .await;
    resp.assert_problem(401, "token_invalid");
    assert!(
        resp.text
            .contains("worker token, which only fetches credentials"),
        "{}",
        resp.text
    );
    assert!(!resp.text.contains(worker_token));
}

/// Every operation of `openapi.yaml` with a JSON body is checked above (or listed in
/// [`NOT_LISTED`]), and its request schema says what the code does: `additionalProperties:
/// false`, except the webhook's open `Update`.
#[test]
fn every_json_body_is_checked_and_the_spec_says_unknown_fields_are_refused() {
    let spec = openapi::load();
    let listed: Vec<(String, String)> = routes_with_bodies()
        .into_iter()
        .map(|(m, p, _)| (m.to_string(), p.to_owned()))
        .collect();
    for ((method, path), operation) in openapi::operations(&spec) {
        let Some(schema) = operation["requestBody"]["content"]
            .get("application/json")
            .map(|c| &c["schema"])
        else {
            continue;
        };
        let schema = match schema["$ref"].as_str() {
            Some(r) => &spec["components"]["schemas"][r.rsplit('/').next().unwrap()],
            None => schema,
        };
        let exempt = NOT_LISTED.contains(&(method.as_str(), path.as_str()));
        assert!(
            exempt || listed.contains(&(method.clone(), path.clone())),
            "{method} {path}: add it to routes_with_bodies"
        );
        if path != "/api/telegram/webhook" {
            assert_eq!(
                schema["additionalProperties"], false,
                "{method} {path}: the spec must say unknown fields are refused"
            );
        }
    }
}
