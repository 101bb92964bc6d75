//! A fake Telegram OpenID provider (`oauth.telegram.org`) on a free loopback port:
//! `tests/py/fake_telegram_oidc.py`, run with the pinned `.venv` Python, which signs id_tokens
//! with PyJWT (a real JOSE library, independent of tglink's) and serves discovery, JWKS, an
//! authorization endpoint that approves at once and a token endpoint that checks client
//! authentication, the redirect URI, PKCE and one-time codes.
//!
//! One process per [`FakeTelegramOidc`] (each test its own state); it ends when the handle is
//! dropped, or when the test binary ends (the script exits when its stdin closes). Control
//! methods choose who signs in and what goes wrong with the next id_token ([`Misbehaviour`]),
//! rotate the signing key, take endpoints down ([`Outage`]) and count requests ([`Stats`]).

use std::{
    collections::HashMap,
    io::{BufRead, BufReader},
    process::{Child, ChildStdin, Command, Stdio},
    sync::mpsc,
    time::Duration,
};

use serde::Deserialize;
use serde_json::{Value, json};
use tglink_shared::{
    config::MapEnv,
    secret::SecretString,
    telegram::oidc::{TelegramOidc, TelegramOidcConfig},
    time::Clock,
};

/// The bot id (client id) a fake started with [`FakeTelegramOidc::start`] expects.
pub const DEFAULT_CLIENT_ID: &str = "5550001";

/// One way the next id_token is bad (see the script's docstring).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Misbehaviour {
    WrongAud,
    WrongIss,
    Expired,
    FutureIat,
    WrongNonce,
    NoNonce,
    AlgNone,
    UnknownKid,
    Hs256PublicKey,
    BadSignature,
    BotAccount,
    NoIdClaim,
    /// The token endpoint answers without an id_token.
    NoIdToken,
}

impl Misbehaviour {
    pub const ALL: [Misbehaviour; 13] = [
        Self::WrongAud,
        Self::WrongIss,
        Self::Expired,
        Self::FutureIat,
        Self::WrongNonce,
        Self::NoNonce,
        Self::AlgNone,
        Self::UnknownKid,
        Self::Hs256PublicKey,
        Self::BadSignature,
        Self::BotAccount,
        Self::NoIdClaim,
        Self::NoIdToken,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::WrongAud => "wrong_aud",
            Self::WrongIss => "wrong_iss",
            Self::Expired => "expired",
            Self::FutureIat => "future_iat",
            Self::WrongNonce => "wrong_nonce",
            Self::NoNonce => "no_nonce",
            Self::AlgNone => "alg_none",
            Self::UnknownKid => "unknown_kid",
            Self::Hs256PublicKey => "hs256_public_key",
            Self::BadSignature => "bad_signature",
            Self::BotAccount => "bot_account",
            Self::NoIdClaim => "no_id_claim",
            Self::NoIdToken => "no_id_token",
        }
    }

    /// The `UpstreamError::InvalidIdToken` code tglink must refuse it with.
    pub fn expected_code(self) -> &'static str {
        match self {
            Self::WrongAud => "wrong_audience",
            Self::WrongIss => "wrong_issuer",
            Self::Expired => "expired",
            Self::FutureIat => "issued_in_future",
            Self::WrongNonce | Self::NoNonce => "nonce_mismatch",
            Self::AlgNone | Self::Hs256PublicKey => "alg_not_allowed",
            Self::UnknownKid => "unknown_kid",
            Self::BadSignature => "bad_signature",
            Self::BotAccount => "bot_account",
            Self::NoIdClaim => "missing_user_id",
            Self::NoIdToken => "missing_id_token",
        }
    }
}

/// An endpoint of the fake that can be taken down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Discovery,
    Jwks,
    Token,
}

/// How an endpoint answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outage {
    Ok,
    /// 503.
    Down,
    /// Takes the request and answers nothing for 20 s.
    Hang,
}

/// Requests the fake has served, per endpoint, and the query of the last `/auth`.
#[derive(Debug, Clone, Deserialize)]
pub struct Stats {
    pub discovery: u64,
    pub jwks: u64,
    pub auth: u64,
    pub token: u64,
    pub last_auth: Option<HashMap<String, String>>,
}

/// Where Telegram's authorization endpoint sent the browser back to.
#[derive(Debug, Clone)]
pub struct Callback {
    /// The whole `Location`.
    pub location: String,
    /// Its query parameters (`code` and `state`, or `error` and `state`).
    pub params: HashMap<String, String>,
}

pub struct FakeTelegramOidc {
    /// `http://127.0.0.1:<port>`: the issuer and the base of every endpoint.
    pub issuer: String,
    pub client_id: String,
    pub client_secret: String,
    child: Child,
    _stdin: ChildStdin,
    http: reqwest::Client,
}

impl FakeTelegramOidc {
    /// A fake for client id [`DEFAULT_CLIENT_ID`] and a random client secret.
    pub fn start() -> Self {
        Self::start_with(
            DEFAULT_CLIENT_ID,
            &format!(
                "tg-oidc-secret-{}",
                tglink_shared::oauth::pkce::new_random_token()
            ),
        )
    }

    /// A fake for this client (the bot id) and client secret.
    pub fn start_with(client_id: &str, client_secret: &str) -> Self {
        let root = crate::workspace_root();
        let python = root.join(".venv/bin/python");
        assert!(
            python.exists(),
            "{} not found: run `make venv` (PyJWT and cryptography are pinned there)",
            python.display()
        );
        let mut child = Command::new(python)
            .arg(root.join("tests/py/fake_telegram_oidc.py"))
            .args(["--client-id", client_id, "--client-secret", client_secret])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn fake_telegram_oidc.py");
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let _ = reader.read_line(&mut line);
            let _ = tx.send(line);
            // Keep reading so the child never blocks on a full pipe.
            let mut sink = String::new();
            while reader.read_line(&mut sink).is_ok_and(|n| n > 0) {
                sink.clear();
            }
        });
        let line = rx.recv_timeout(Duration::from_secs(30)).unwrap_or_default();
        let Some(issuer) = line
            .trim()
            .strip_prefix("fake telegram oidc listening on ")
            .map(str::to_owned)
        else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("fake_telegram_oidc.py did not start (said {line:?})");
        };
        Self {
            issuer,
            client_id: client_id.to_owned(),
            client_secret: client_secret.to_owned(),
            child,
            _stdin: stdin,
            http: reqwest::Client::builder()
                .no_proxy()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("reqwest client"),
        }
    }

    /// The variables that point tglink at this fake: `TELEGRAM_OIDC_ISSUER`,
    /// `TELEGRAM_BOT_ID`, `TELEGRAM_OIDC_CLIENT_SECRET`.
    pub fn env(&self) -> MapEnv {
        MapEnv::new()
            .with("TELEGRAM_OIDC_ISSUER", &self.issuer)
            .with("TELEGRAM_BOT_ID", &self.client_id)
            .with("TELEGRAM_OIDC_CLIENT_SECRET", &self.client_secret)
    }

    /// tglink's configuration for this fake.
    pub fn config(&self) -> TelegramOidcConfig {
        TelegramOidcConfig::new(
            &self.issuer,
            &self.client_id,
            SecretString::new(&self.client_secret),
        )
    }

    /// A relying party for this fake with the system clock.
    pub fn relying_party(&self) -> TelegramOidc {
        TelegramOidc::new(self.config(), Default::default(), Clock::system())
    }

    async fn control(&self, path: &str, body: Value) -> Value {
        let resp = self
            .http
            .post(format!("{}/control/{path}", self.issuer))
            .json(&body)
            .send()
            .await
            .expect("fake telegram oidc control");
        assert!(
            resp.status().is_success(),
            "control {path}: {}",
            resp.status()
        );
        resp.json().await.expect("control answer")
    }

    /// Who signs in from now on: `{"id", "first_name"?, "name"?, "username"?, "picture"?,
    /// "phone_number"?, "is_bot"?}`.
    pub async fn set_user(&self, user: Value) {
        self.control("user", user).await;
    }

    /// The next id_token the token endpoint issues is bad in this way.
    pub async fn misbehave_next(&self, how: Misbehaviour) {
        self.control("misbehave", json!({"next": how.as_str()}))
            .await;
    }

    /// The algorithm id_tokens are signed with from now on (`RS256`, `ES256`, `EdDSA`).
    pub async fn set_alg(&self, alg: &str) {
        self.control("alg", json!({"alg": alg})).await;
    }

    /// A new RSA signing key with a new `kid`; the JWKS serves it (and the old one unless
    /// `drop_old`).
    pub async fn rotate_key(&self, drop_old: bool) {
        self.control("rotate", json!({"drop_old": drop_old})).await;
    }

    pub async fn outage(&self, endpoint: Endpoint, how: Outage) {
        let target = match endpoint {
            Endpoint::Discovery => "discovery",
            Endpoint::Jwks => "jwks",
            Endpoint::Token => "token",
        };
        let mode = match how {
            Outage::Ok => "ok",
            Outage::Down => "down",
            Outage::Hang => "hang",
        };
        self.control("outage", json!({"target": target, "mode": mode}))
            .await;
    }

    /// The next authorization redirects back with `error` (e.g. `access_denied`: the user
    /// cancelled).
    pub async fn deny_next(&self, error: &str) {
        self.control("deny", json!({"error": error})).await;
    }

    /// An id_token for the current user made now, outside the flow, with `nonce` (and bad in
    /// the way `how` says).
    pub async fn mint(&self, nonce: &str, how: Option<Misbehaviour>) -> String {
        let answer = self
            .control(
                "mint",
                json!({"nonce": nonce, "misbehave": how.map(Misbehaviour::as_str)}),
            )
            .await;
        answer["id_token"].as_str().expect("id_token").to_owned()
    }

    pub async fn stats(&self) -> Stats {
        self.http
            .get(format!("{}/control/stats", self.issuer))
            .send()
            .await
            .expect("fake telegram oidc stats")
            .json()
            .await
            .expect("stats json")
    }

    /// The browser at Telegram: GETs `authorization_url` (redirects not followed) and returns
    /// where Telegram sends it back; panics if Telegram does not redirect (a 400 for a bad
    /// client or redirect URI).
    pub async fn approve(&self, authorization_url: &str) -> Callback {
        let resp = self
            .http
            .get(authorization_url)
            .send()
            .await
            .expect("fake telegram oidc /auth");
        assert_eq!(resp.status().as_u16(), 302, "/auth did not redirect");
        let location = resp
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .expect("Location")
            .to_owned();
        let query = location.split_once('?').map(|(_, q)| q).unwrap_or("");
        let params = form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        Callback { location, params }
    }
}

impl Drop for FakeTelegramOidc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
