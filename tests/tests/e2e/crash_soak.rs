//! The crash soak on the embedded default: two real `local-api` processes share one SQLite file
//! (and key, and dev secrets) under a bounded mixed load from concurrent clients, while one of
//! them is killed with SIGKILL at random moments and started again. Clients retry as theirs
//! would (on a connection error or a `503`, the same request again, on either process;
//! Telegram redelivers the same update, after `Retry-After` when it is told to wait). Then the
//! database's invariants: every connect token linked at most one Telegram user, links one-to-one
//! both ways, every sealed record opens (through the API), every registration in exactly one
//! state and each one whose callback was answered `200` completed, no claim `IN_PROGRESS`
//! beyond its deadline.
//!
//! `TGLINK_CRASH_SOAK_SECS` (default 30) and `TGLINK_CRASH_SOAK_SEED` (default: from the
//! clock) are the knobs; the seed is printed, and on failure.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex, RwLock},
    time::{Duration, Instant},
};

use serde_json::{Value, json};
use tglink_shared::{
    config::{Env, MapEnv},
    telegram::initdata::signing::sign_hmac,
    time::UnixTime,
};
use tglink_tests::{
    fake_telegram::FakeTelegram, faults::splitmix, fixtures::Backend, process::LocalApiProcess,
};

struct Answer {
    status: u16,
    json: Value,
    retry_after: Option<u64>,
}

/// The two processes and what the clients need to reach them.
struct Cluster {
    env: MapEnv,
    secrets: Arc<dyn Env>,
    urls: RwLock<[String; 2]>,
    processes: Mutex<[Option<LocalApiProcess>; 2]>,
    http: reqwest::Client,
    telegram: FakeTelegram,
}

impl Cluster {
    /// One request to process `which`; `None` when the connection fails (a killed process).
    async fn send(
        &self,
        which: usize,
        method: reqwest::Method,
        path: &str,
        bearer: Option<&str>,
        headers: &[(&str, String)],
        body: Option<Vec<u8>>,
    ) -> Option<Answer> {
        let url = format!("{}{path}", self.urls.read().unwrap()[which]);
        let mut request = self
            .http
            .request(method, url)
            .timeout(Duration::from_secs(15));
        if let Some(bearer) = bearer {
            request = request.bearer_auth(bearer);
        }
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        if let Some(body) = body {
            if !headers
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case("content-type"))
            {
                request = request.header("content-type", "application/json");
            }
            request = request.body(body);
        }
        let resp = request.send().await.ok()?;
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        let text = resp.text().await.ok()?;
        Some(Answer {
            status,
            json: serde_json::from_str(&text).unwrap_or(Value::Null),
            retry_after,
        })
    }

    /// The request again, on either process, while it meets a connection error or a `503`;
    /// `body` is rebuilt for each attempt (a signature's time).
    async fn until_answered(
        &self,
        rng: &mut u64,
        method: reqwest::Method,
        path: &str,
        bearer: Option<&str>,
        headers: &[(&str, String)],
        body: impl Fn() -> Option<Vec<u8>>,
    ) -> Answer {
        for _ in 0..200 {
            let which = (splitmix(rng) % 2) as usize;
            match self
                .send(which, method.clone(), path, bearer, headers, body())
                .await
            {
                Some(answer) if answer.status != 503 => return answer,
                _ => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
        panic!("{method} {path}: no answer from either process in 200 attempts");
    }

    fn jwt(&self, user: &str) -> String {
        local_api::dev_jwt(self.secrets.as_ref(), user).expect("HS256 dev secret")
    }

    fn secret(&self, var: &str) -> String {
        self.secrets.var(var).unwrap_or_else(|| panic!("{var}"))
    }
}

/// What the clients did, for the invariants.
#[derive(Default)]
struct Record {
    /// `(user, telegram a, telegram b)`: one connect token, `/start` by both.
    connects: Vec<(String, i64, i64)>,
    /// Users whose session was saved (`200`), and every session value sent for them.
    sessions: HashMap<String, HashSet<String>>,
    /// Registrations whose completing callback was answered `200`.
    completed: Vec<String>,
    /// Updates told to wait: `(update, from, text, not before)`.
    later: Vec<(Value, Instant)>,
    requests: usize,
}

fn update(update_id: i64, from: i64, text: &str) -> Value {
    json!({
        "update_id": update_id,
        "message": {
            "message_id": update_id,
            "date": 1_700_000_000,
            "from": {"id": from, "is_bot": false, "first_name": "C"},
            "chat": {"id": from, "type": "private"},
            "text": text,
        }
    })
}

/// Delivers `update` as Telegram does: again while it fails; told to wait, noted for later.
async fn deliver(cluster: &Cluster, rng: &mut u64, update: Value, record: &Mutex<Record>) {
    let secret = cluster.secret("TELEGRAM_WEBHOOK_SECRET");
    let headers = [("X-Telegram-Bot-Api-Secret-Token", secret)];
    let body = serde_json::to_vec(&update).unwrap();
    let answer = cluster
        .until_answered(
            rng,
            reqwest::Method::POST,
            "/api/telegram/webhook",
            None,
            &headers,
            || Some(body.clone()),
        )
        .await;
    match (answer.status, answer.json["code"].as_str()) {
        (200, _) => {}
        (409, Some("update_in_progress")) => {
            let wait = Duration::from_secs(answer.retry_after.unwrap_or(60) + 2);
            record
                .lock()
                .unwrap()
                .later
                .push((update, Instant::now() + wait));
        }
        (status, _) => panic!("webhook answered {status}: {}", answer.json),
    }
}

async fn client(
    cluster: Arc<Cluster>,
    id: u64,
    seed: u64,
    deadline: Instant,
    record: Arc<Mutex<Record>>,
) {
    use reqwest::Method;
    let mut rng = seed ^ (id + 1).wrapping_mul(0xA076_1D64_78BD_642F);
    let mut n = 0i64;
    let telegram_base = 800_000_000 + (id as i64) * 10_000_000;
    while Instant::now() < deadline {
        n += 1;
        let user = format!("crash-{id}-{n}");
        let jwt = cluster.jwt(&user);
        let bearer = Some(jwt.as_str());
        let json_body = |v: Value| move || Some(serde_json::to_vec(&v).unwrap());
        record.lock().unwrap().requests += 1;
        match splitmix(&mut rng) % 5 {
            // Mint a connect link; two Telegram users race to use it; one unlinks sometimes.
            0 => {
                let minted = cluster
                    .until_answered(
                        &mut rng,
                        Method::POST,
                        "/api/telegram/connect-link",
                        bearer,
                        &[],
                        || None,
                    )
                    .await;
                assert_eq!(minted.status, 201, "{}", minted.json);
                let token = minted.json["token"].as_str().unwrap().to_owned();
                let (a, b) = (telegram_base + 2 * n, telegram_base + 2 * n + 1);
                let mut rng_b = splitmix(&mut rng);
                let text = format!("/start {token}");
                tokio::join!(
                    deliver(&cluster, &mut rng, update(a, a, &text), &record),
                    deliver(&cluster, &mut rng_b, update(b, b, &text), &record),
                );
                record.lock().unwrap().connects.push((user.clone(), a, b));
                if splitmix(&mut rng).is_multiple_of(3) {
                    let gone = cluster
                        .until_answered(
                            &mut rng,
                            Method::DELETE,
                            "/api/telegram/link",
                            bearer,
                            &[],
                            || None,
                        )
                        .await;
                    assert!(
                        [204, 404].contains(&gone.status),
                        "unlink: {} {}",
                        gone.status,
                        gone.json
                    );
                }
            }
            // Save a bot token and a session (both sealed), the session twice sometimes.
            1 => {
                let token = format!("{}:AAE{:_<40}", 7_400_000_000 + telegram_base + n, "crash");
                cluster
                    .telegram
                    .add_bot(&token, &format!("crash{id}x{n}_bot"));
                let saved = cluster
                    .until_answered(
                        &mut rng,
                        Method::PUT,
                        "/api/settings/bot-token",
                        bearer,
                        &[],
                        json_body(json!({"bot_token": token})),
                    )
                    .await;
                assert_eq!(saved.status, 200, "{}", saved.json);
                for round in 0..1 + splitmix(&mut rng) % 2 {
                    let session = format!("1BVts-crash-{id}-{n}-{round}");
                    record
                        .lock()
                        .unwrap()
                        .sessions
                        .entry(user.clone())
                        .or_default()
                        .insert(session.clone());
                    let saved = cluster
                        .until_answered(
                            &mut rng,
                            Method::PUT,
                            "/api/telegram/session",
                            bearer,
                            &[],
                            json_body(json!({"session": session, "telegram_user_id": telegram_base + n, "channel_id": -1001234567890i64})),
                        )
                        .await;
                    assert_eq!(saved.status, 200, "{}", saved.json);
                }
            }
            // A registration, completed by its provider (re-sending until answered).
            2 => {
                let created = cluster
                    .until_answered(
                        &mut rng,
                        Method::POST,
                        "/api/auth/setup-2fa",
                        bearer,
                        &[],
                        json_body(json!({"service_name": "Crash"})),
                    )
                    .await;
                assert_eq!(created.status, 201, "{}", created.json);
                let token = created.json["token"].as_str().unwrap().to_owned();
                let secret = cluster.secret("REGISTRATION_CALLBACK_SECRET");
                let body = serde_json::to_vec(&json!({"token": token, "status": "completed", "seed_id": "s-1", "totp_seed": "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"})).unwrap();
                // The signature covers the time: each attempt signs afresh, so it goes in a
                // header per attempt; the simplest is one request loop here.
                let mut answer = None;
                for _ in 0..200 {
                    let signature =
                        registration::signature::sign(secret.as_bytes(), UnixTime::now(), &body);
                    let headers = [("X-Tglink-Signature", signature)];
                    let which = (splitmix(&mut rng) % 2) as usize;
                    match cluster
                        .send(
                            which,
                            Method::POST,
                            "/api/auth/registration/callback",
                            None,
                            &headers,
                            Some(body.clone()),
                        )
                        .await
                    {
                        Some(a) if a.status != 503 => {
                            answer = Some(a);
                            break;
                        }
                        _ => tokio::time::sleep(Duration::from_millis(50)).await,
                    }
                }
                let answer = answer.expect("the callback is answered");
                assert_eq!(answer.status, 200, "callback: {}", answer.json);
                record
                    .lock()
                    .unwrap()
                    .completed
                    .push(created.json["registration_id"].as_str().unwrap().to_owned());
            }
            // A worker token.
            3 => {
                let made = cluster
                    .until_answered(
                        &mut rng,
                        Method::POST,
                        "/api/worker/tokens",
                        bearer,
                        &[],
                        json_body(json!({"name": "crash"})),
                    )
                    .await;
                assert_eq!(made.status, 201, "{}", made.json);
            }
            // A Mini App sign-in (the token exchange), then a link with its access token.
            _ => {
                let telegram = telegram_base + 5_000_000 + n;
                let user_json = json!({"id": telegram, "first_name": "C"}).to_string();
                let init_data = sign_hmac(
                    &[
                        ("query_id", &format!("AAC{id}x{n}")),
                        ("user", &user_json),
                        ("auth_date", &UnixTime::now().secs().to_string()),
                    ],
                    &cluster.secret("TELEGRAM_BOT_TOKEN"),
                );
                let form = form_urlencoded::Serializer::new(String::new())
                    .append_pair(
                        "grant_type",
                        "urn:ietf:params:oauth:grant-type:token-exchange",
                    )
                    .append_pair(
                        "subject_token_type",
                        "urn:tglink:params:oauth:token-type:telegram-init-data",
                    )
                    .append_pair("subject_token", &init_data)
                    .finish();
                let session = cluster
                    .until_answered(
                        &mut rng,
                        Method::POST,
                        "/oauth/token",
                        None,
                        &[(
                            "content-type",
                            "application/x-www-form-urlencoded".to_owned(),
                        )],
                        || Some(form.clone().into_bytes()),
                    )
                    .await;
                let replayed = session.json["error_description"]
                    .as_str()
                    .is_some_and(|d| d.starts_with("initdata_replayed:"));
                match (session.status, replayed) {
                    (200, _) => {
                        let token = session.json["access_token"].as_str().unwrap().to_owned();
                        let linked = cluster
                            .until_answered(
                                &mut rng,
                                Method::POST,
                                "/api/telegram/link",
                                bearer,
                                &[],
                                json_body(json!({"access_token": token})),
                            )
                            .await;
                        assert!(
                            [200, 201].contains(&linked.status)
                                || linked.json["code"] == "session_invalid",
                            "link: {} {}",
                            linked.status,
                            linked.json
                        );
                    }
                    // The first attempt's answer was lost with its process (documented).
                    (400, true) => {}
                    (status, _) => panic!("token exchange: {status} {}", session.json),
                }
            }
        }
    }
}

#[test]
fn two_processes_on_one_sqlite_file_survive_sigkill() {
    let tglink_tests::faults::SoakKnobs { secs, seed } =
        tglink_tests::faults::SoakKnobs::from_env("crash soak", "TGLINK_CRASH_SOAK");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::TempDir::new().unwrap();
    let telegram = rt.block_on(FakeTelegram::start());
    let env = rt
        .block_on(Backend::Sqlite.app_env(dir.path()))
        .with("TELEGRAM_API_BASE", telegram.base_url());
    // The dev secrets both processes will read, generated once, here.
    let secrets = local_api::local_env(Arc::new(env.clone())).expect("local env");
    let a = LocalApiProcess::start(&env);
    let b = LocalApiProcess::start(&env);
    let cluster = Arc::new(Cluster {
        env: env.clone(),
        secrets,
        urls: RwLock::new([a.base_url.clone(), b.base_url.clone()]),
        processes: Mutex::new([Some(a), Some(b)]),
        http: reqwest::Client::builder().no_proxy().build().unwrap(),
        telegram,
    });
    let record = Arc::new(Mutex::new(Record::default()));
    let deadline = Instant::now() + Duration::from_secs(secs);
    let kills = rt.block_on(async {
        let clients: Vec<_> = (0..4)
            .map(|id| tokio::spawn(client(cluster.clone(), id, seed, deadline, record.clone())))
            .collect();
        // The killer: one process at a time, SIGKILL at a random moment, then started again.
        let killer = {
            let cluster = cluster.clone();
            tokio::spawn(async move {
                let mut rng = seed;
                let mut kills = 0;
                while Instant::now() < deadline {
                    let pause = 200 + splitmix(&mut rng) % 1800;
                    tokio::time::sleep(Duration::from_millis(pause)).await;
                    let which = (splitmix(&mut rng) % 2) as usize;
                    let victim = cluster.processes.lock().unwrap()[which].take();
                    drop(victim); // Drop = SIGKILL (Child::kill) and wait.
                    kills += 1;
                    let env = cluster.env.clone();
                    let fresh = tokio::task::spawn_blocking(move || LocalApiProcess::start(&env))
                        .await
                        .expect("restart");
                    cluster.urls.write().unwrap()[which] = fresh.base_url.clone();
                    cluster.processes.lock().unwrap()[which] = Some(fresh);
                }
                kills
            })
        };
        for client in clients {
            client.await.expect("a soak client");
        }
        killer.await.expect("the killer")
    });

    // Telegram's later redeliveries, once their Retry-After has passed.
    let later = std::mem::take(&mut record.lock().unwrap().later);
    rt.block_on(async {
        let mut rng = seed;
        for (update, at) in later {
            tokio::time::sleep_until(at.into()).await;
            deliver(&cluster, &mut rng, update, &record).await;
        }
    });
    let record = record.lock().unwrap();
    assert!(
        record.later.is_empty(),
        "an update still in progress after its Retry-After"
    );

    // The invariants, in the database and through the API.
    let mut violations = Vec::new();
    let db = rusqlite::Connection::open(env.var("TGLINK_SQLITE_PATH").unwrap()).unwrap();
    let linked: HashMap<i64, String> = db
        .prepare("SELECT telegram_user_id, user_id FROM telegram_links")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let mut users = HashSet::new();
    for user in linked.values() {
        if !users.insert(user.clone()) {
            violations.push(format!("user {user} linked twice"));
        }
    }
    for (user, a, b) in &record.connects {
        let by_token = [a, b].iter().filter(|t| linked.contains_key(t)).count();
        if by_token > 1 {
            violations.push(format!("one connect token of {user} linked {a} and {b}"));
        }
        for t in [a, b] {
            if let Some(owner) = linked.get(t)
                && owner != user
            {
                violations.push(format!("{t} linked to {owner}, not {user}"));
            }
        }
    }
    let now = UnixTime::now().secs() as i64;
    let stuck: Vec<String> = db
        .prepare(
            "SELECT claim_key FROM claims WHERE status = 'IN_PROGRESS' AND in_progress_until <= ?1",
        )
        .unwrap()
        .query_map([now], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    violations.extend(stuck.iter().map(|k| format!("claim {k} stuck IN_PROGRESS")));
    let states: HashMap<String, String> = db
        .prepare("SELECT registration_id, status FROM registrations")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    for (id, status) in &states {
        if !["pending", "completed", "rejected", "expired"].contains(&status.as_str()) {
            violations.push(format!("registration {id} in state {status:?}"));
        }
    }
    for id in &record.completed {
        if states.get(id).map(String::as_str) != Some("completed") {
            violations.push(format!(
                "registration {id} answered completed is {:?}",
                states.get(id)
            ));
        }
    }
    // Every sealed session opens, and holds a value its user sent.
    rt.block_on(async {
        let mut rng = seed;
        for (user, sent) in &record.sessions {
            let jwt = cluster.jwt(user);
            let creds = cluster
                .until_answered(
                    &mut rng,
                    reqwest::Method::GET,
                    "/api/worker/credentials",
                    Some(&jwt),
                    &[],
                    || None,
                )
                .await;
            let session = creds.json["telegram_session"].as_str().unwrap_or("");
            if creds.status != 200 || !sent.contains(session) {
                violations.push(format!(
                    "{user}: credentials {} {}",
                    creds.status, creds.json
                ));
            }
        }
    });
    eprintln!(
        "crash soak: {} operations by 4 clients over 2 processes in {secs} s, {kills} SIGKILLs, {} violations (seed {seed})",
        record.requests,
        violations.len()
    );
    for v in &violations {
        eprintln!("  {v}");
    }
    assert!(
        violations.is_empty(),
        "{} violations; replay with TGLINK_CRASH_SOAK_SEED={seed}",
        violations.len()
    );
}
