//! Faults: what the emulator must do like DynamoDB for the fault tests to mean anything, the
//! fault injector itself, and the hang test (every function answers before its Lambda
//! timeout). The fault matrix over the write endpoints is `fault_matrix`.

use aws_sdk_dynamodb::{
    error::ProvideErrorMetadata,
    types::{AttributeValue, TransactWriteItem, Update},
};
use tglink_tests::moto::moto;

/// One `TransactWriteItems` adding `by` to the counter of item `(pk, sk)`, with `token`.
async fn add(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    token: &str,
    by: i64,
) -> Result<(), String> {
    let update = Update::builder()
        .table_name(table)
        .key("pk", AttributeValue::S("idem".into()))
        .key("sk", AttributeValue::S("counter".into()))
        .update_expression("ADD n :by")
        .expression_attribute_values(":by", AttributeValue::N(by.to_string()))
        .build()
        .expect("update");
    client
        .transact_write_items()
        .transact_items(TransactWriteItem::builder().update(update).build())
        .client_request_token(token)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| e.code().unwrap_or("no code").to_owned())
}

async fn counter(client: &aws_sdk_dynamodb::Client, table: &str) -> i64 {
    let item = client
        .get_item()
        .table_name(table)
        .key("pk", AttributeValue::S("idem".into()))
        .key("sk", AttributeValue::S("counter".into()))
        .consistent_read(true)
        .send()
        .await
        .expect("get item")
        .item
        .expect("the counter exists");
    item["n"].as_n().unwrap().parse().unwrap()
}

/// The emulator keeps DynamoDB's `ClientRequestToken` rule (`infra/moto_server_serialized.py`):
/// a repeated `TransactWriteItems` with the same token answers the first success without
/// applying again; the same token with another request is refused; another token applies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moto_keeps_dynamodb_client_request_token_idempotency() {
    let store = moto().new_table().await;
    let (client, table) = (store.client(), store.table());
    add(client, table, "token-a", 1).await.expect("first call");
    add(client, table, "token-a", 1)
        .await
        .expect("the same call again answers its success");
    assert_eq!(counter(client, table).await, 1, "applied once");
    assert_eq!(
        add(client, table, "token-a", 2).await,
        Err("IdempotentParameterMismatchException".to_owned())
    );
    assert_eq!(counter(client, table).await, 1);
    add(client, table, "token-b", 2).await.expect("a new token");
    assert_eq!(counter(client, table).await, 3);
}

/// Every function, with every AWS call hanging, answers 503 with `Retry-After` within the
/// operation timeout (the production SDK configuration, untouched) — so well before its
/// Lambda timeout (`deploy template::every_function_answers_before_its_lambda_timeout`); and
/// a hanging Bot API within its own timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hung_dependency_is_answered_within_the_operation_timeout() {
    use std::time::{Duration, Instant};

    use http::Method;
    use serde_json::json;
    use tglink_shared::{aws::OPERATION_TIMEOUT, config::Env, telegram::bot_api::REQUEST_TIMEOUT};
    use tglink_tests::{
        app::spawn_app_faulty,
        fake_telegram::{BotApiFault, FakeTelegram},
        faults::{AwsFault, Match, Rule},
        fixtures::Backend,
    };

    // One request per function that reaches AWS.
    let cases: Vec<(&str, Method, &str, serde_json::Value)> = vec![
        (
            "connect-link",
            Method::POST,
            "/api/telegram/connect-link",
            json!(null),
        ),
        (
            "webhook",
            Method::POST,
            "/api/telegram/webhook",
            json!(null),
        ),
        (
            "registration",
            Method::POST,
            "/api/auth/setup-2fa",
            json!({"service_name": "Hang"}),
        ),
        ("settings", Method::GET, "/api/telegram/status", json!(null)),
        (
            "worker-credentials",
            Method::GET,
            "/api/worker/credentials",
            json!(null),
        ),
        (
            "initdata-verify",
            Method::POST,
            "/api/telegram/miniapp/verify",
            json!(null),
        ),
        ("link", Method::GET, "/api/telegram/link", json!(null)),
    ];
    let fake = FakeTelegram::start().await;
    let extra = tglink_shared::config::MapEnv::new().with("TELEGRAM_API_BASE", fake.base_url());
    let (app, faults) = spawn_app_faulty(Backend::DynamoDb, extra, |sdk| sdk).await;
    let jwt = app.jwt("user-hang");
    let bot_token = app.env.var("TELEGRAM_BOT_TOKEN").unwrap();
    let secret = app.env.var("TELEGRAM_WEBHOOK_SECRET").unwrap();
    faults.set(vec![Rule::new(Match::Any, AwsFault::Hang)]);
    let slack = Duration::from_millis(1500);
    let mut handles = Vec::new();
    for (function, method, path, body) in cases {
        let api = app.api.clone();
        let (jwt, bot_token, secret) = (jwt.clone(), bot_token.clone(), secret.clone());
        handles.push(tokio::spawn(async move {
            let mut request = api.request(method, path).bearer_auth(&jwt);
            request = match function {
                "webhook" => api
                    .request(Method::POST, path)
                    .header("X-Telegram-Bot-Api-Secret-Token", &secret)
                    .json(
                        &json!({"update_id": 1, "message": {"message_id": 1, "date": 1,
                        "from": {"id": 777, "is_bot": false, "first_name": "H"},
                        "chat": {"id": 777, "type": "private"}, "text": "/status"}}),
                    ),
                "initdata-verify" => {
                    let user = json!({"id": 777, "first_name": "H"}).to_string();
                    let init_data = tglink_shared::telegram::initdata::signing::sign_hmac(
                        &[
                            ("user", &user),
                            (
                                "auth_date",
                                &tglink_shared::time::UnixTime::now().secs().to_string(),
                            ),
                        ],
                        &bot_token,
                    );
                    request.json(&json!({"init_data": init_data}))
                }
                _ if !body.is_null() => request.json(&body),
                _ => request,
            };
            let started = Instant::now();
            let resp = api.send(request).await;
            (function, resp, started.elapsed())
        }));
    }
    for handle in handles {
        let (function, resp, elapsed) = handle.await.unwrap();
        eprintln!("{function}: {} in {elapsed:?}", resp.status);
        resp.assert_problem(503, "service_unavailable");
        assert!(
            resp.header("retry-after").is_some(),
            "{function}: no Retry-After"
        );
        assert!(
            elapsed <= OPERATION_TIMEOUT + slack,
            "{function}: answered after {elapsed:?}"
        );
    }
    faults.clear();

    // The Bot API hanging: `PUT /api/settings/bot-token` answers within the Bot API timeout.
    let token = format!("{}:AAE{:_<40}", 7_200_000_001u64, "hang");
    fake.add_bot(&token, "hang_bot");
    fake.fault(BotApiFault::Hang);
    let started = Instant::now();
    let resp = app
        .api
        .call(
            Method::PUT,
            "/api/settings/bot-token",
            Some(&jwt),
            Some(&json!({"bot_token": token})),
        )
        .await;
    let elapsed = started.elapsed();
    resp.assert_problem(502, "telegram_unreachable");
    assert!(
        elapsed <= REQUEST_TIMEOUT + slack,
        "answered after {elapsed:?}"
    );
    fake.up();
}
