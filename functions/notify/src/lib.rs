//! `notify`: `POST /api/telegram/notify`, a host backend's message to a linked user, sent by
//! the bot (`sendMessage`) with Telegram's limits kept across every instance.
//!
//! - **Who**: an app JWT whose roles hold `APP_JWT_NOTIFY_ROLE` (default `tglink:notify`);
//!   any other JWT is `403 forbidden`.
//! - **Body**: exactly one of `user_id` (app user) or `telegram_user_id`; `text` (1–4096
//!   characters); optional `parse_mode` (`HTML` | `MarkdownV2`), `disable_notification`,
//!   `protect_content`, and `buttons`: rows of `{"text","url"}` URL buttons (https only, at most
//!   8 a row and 100 in all, text 1–64 characters) sent as an inline keyboard.
//! - **Idempotent**: the `Idempotency-Key` header (required, 1–255 printable ASCII, scoped to
//!   the JWT's `sub`) names a claim ([`Claims`], `CLAIM#notify#…`, kept 24 h) holding a digest
//!   of the request (never its text) and, once sent, the first answer: a retry gets that answer
//!   again without a second send, one while the first is in flight `409 notify_in_progress`,
//!   the same key with another body `422 idempotency_key_reused`. A send that Telegram did not
//!   accept releases the claim, so a retry sends.
//! - **Limits**: a token bucket per chat (`NOTIFY_CHAT_RATE`/s, burst `NOTIFY_CHAT_BURST`) and
//!   one per bot (`NOTIFY_GLOBAL_RATE`/s), in the store ([`RateLimits`]), taken in the same
//!   transaction as the claim: over a limit is `429 rate_limited` with `Retry-After` and no
//!   Telegram call. Telegram's own `429` is `429 telegram_rate_limited` with its `retry_after`.
//! - **Reachability**: a link marked unreachable is `410 chat_unreachable` without a Telegram
//!   call; a `403`/`400` saying the bot was blocked, the user deactivated or the chat gone
//!   marks it so (the webhook marks it reachable again on `my_chat_member` `member` or
//!   `/start`).
//!
//! Budget per delivered message: 1 link read, 1 read of the claim and both buckets, 1
//! transaction, 1 claim completion (4 DynamoDB calls), 0 KMS, 1 Telegram call. The message text,
//! the bot token and the JWT are never logged.

use std::sync::Arc;

use async_trait::async_trait;
use lambda_http::{
    Body, Request, Response,
    http::{HeaderValue, StatusCode},
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tglink_shared::{
    auth::JwtVerifier,
    config::{ConfigError, optional, positive_or},
    http::{Problem, json as json_response, parse_json},
    ids::{TelegramUserId, UserId},
    routes::{Endpoint, Operation, Route, dispatch, routes, switched_off},
    runtime::{Function, Startup, StartupError},
    store::{
        Admission, Bucket, BucketKey, ClaimKey, ClaimRecord, ClaimStatus, ClaimTimes, Claims, Link,
        Links, RateLimits, Reachability, StoreError, UnreachableReason,
    },
    telegram::bot_api::{BotApi, BotToken, SendError},
    time::{Clock, UnixTime},
    token::TokenHash,
};

/// What `notify` does: one operation per route.
enum NotifyOp {
    Send,
}

impl Operation for NotifyOp {
    const ENDPOINTS: &'static [Endpoint<Self>] = &[Endpoint::new(
        Route::new("POST", "/api/telegram/notify"),
        |_| Self::Send,
    )];
}

pub const ROUTES: &[Route] = &routes::<NotifyOp, { NotifyOp::ENDPOINTS.len() }>();

/// Default `APP_JWT_NOTIFY_ROLE`.
pub const DEFAULT_NOTIFY_ROLE: &str = "tglink:notify";
/// Defaults of `NOTIFY_CHAT_RATE`, `NOTIFY_CHAT_BURST`, `NOTIFY_GLOBAL_RATE` (Telegram's
/// documented limits: about one message a second per chat, 30 a second per bot).
pub const DEFAULT_CHAT_RATE: u64 = 1;
pub const DEFAULT_CHAT_BURST: u64 = 3;
pub const DEFAULT_GLOBAL_RATE: u64 = 30;

/// The header naming an idempotent request.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// Set (`true`) on an answer replayed from the claim.
pub const REPLAYED: &str = "idempotent-replayed";

/// How long a key's claim is kept.
pub const CLAIM_RETAIN_SECS: u64 = 86_400;
/// How long an in-flight send blocks its key (longer than the Telegram call's timeout).
pub const CLAIM_IN_PROGRESS_SECS: u64 = 30;

pub const TEXT_MAX_CHARS: usize = 4096;
pub const BUTTONS_PER_ROW_MAX: usize = 8;
pub const BUTTONS_MAX: usize = 100;
pub const BUTTON_TEXT_MAX_CHARS: usize = 64;
pub const BUTTON_URL_MAX_BYTES: usize = 2048;
pub const IDEMPOTENCY_KEY_MAX: usize = 255;

pub struct Notify {
    /// `None` when `TELEGRAM_FEATURE_ENABLED` is off or no `TELEGRAM_BOT_TOKEN` is configured:
    /// the route is then `404`.
    pub bot: Option<BotToken>,
    pub api: BotApi,
    pub auth: JwtVerifier,
    pub notify_role: String,
    pub chat_rate: u32,
    pub chat_burst: u32,
    pub global_rate: u32,
    pub links: Arc<dyn Links>,
    pub claims: Arc<dyn Claims>,
    pub limits: Arc<dyn RateLimits>,
    pub clock: Clock,
}

/// The body of `POST /api/telegram/notify`.
#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyRequest {
    #[serde(default)]
    pub user_id: Option<String>,
    #[serde(default)]
    pub telegram_user_id: Option<i64>,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub parse_mode: Option<String>,
    #[serde(default)]
    pub disable_notification: Option<bool>,
    #[serde(default)]
    pub protect_content: Option<bool>,
    #[serde(default)]
    pub buttons: Option<Vec<Vec<Button>>>,
}

/// A URL button of the inline keyboard.
#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Button {
    pub text: String,
    pub url: String,
}

/// Who the message is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    User(UserId),
    Telegram(TelegramUserId),
}

/// The answer of a sent message (also what a retry with the same key gets).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Sent {
    pub message_id: i64,
    pub chat_id: i64,
    /// Unix seconds (Telegram's `date` of the message).
    pub sent_at: u64,
}

/// Why a notification was not sent. Mapped to HTTP in one place (`From` below).
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("the app JWT lacks the notify role")]
    Forbidden,
    #[error("Idempotency-Key must be 1-255 printable ASCII characters")]
    IdempotencyKeyInvalid,
    #[error("send exactly one of user_id or telegram_user_id")]
    TargetInvalid,
    #[error("text must be 1-4096 characters")]
    TextInvalid,
    #[error("parse_mode must be HTML or MarkdownV2")]
    ParseModeInvalid,
    #[error("buttons are invalid: {0}")]
    ButtonsInvalid(&'static str),
    #[error("no link")]
    LinkNotFound,
    #[error("the chat is unreachable ({})", .0.as_str())]
    ChatUnreachable(UnreachableReason),
    #[error("the idempotency key was used with another body")]
    KeyReused,
    #[error("a request with this idempotency key is in progress")]
    InProgress { retry_after: u64 },
    #[error("over the notify rate limit")]
    RateLimited { retry_after: u64 },
    #[error("Telegram is rate limiting")]
    TelegramRateLimited { retry_after: u64 },
    #[error("Telegram refused the message (HTTP {0})")]
    MessageRefused(u16),
    #[error("Telegram is unavailable: {0}")]
    TelegramUnavailable(SendError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn with_retry_after(mut problem: Problem, secs: u64) -> Problem {
    problem.retry_after = Some(secs.clamp(1, u64::from(u32::MAX)) as u32);
    problem
}

impl From<NotifyError> for Problem {
    fn from(err: NotifyError) -> Self {
        let cause = err.to_string();
        let bad = |code, detail: &str| Problem::bad_request(code, detail);
        let problem = match err {
            NotifyError::Forbidden => Problem::new(StatusCode::FORBIDDEN, "forbidden", "Forbidden")
                .detail("this endpoint needs the notify role (APP_JWT_NOTIFY_ROLE)"),
            NotifyError::IdempotencyKeyInvalid => bad(
                "idempotency_key_invalid",
                "send an Idempotency-Key header of 1-255 printable ASCII characters",
            ),
            NotifyError::TargetInvalid => bad(
                "target_invalid",
                "send exactly one of user_id or telegram_user_id (a positive integer)",
            ),
            NotifyError::TextInvalid => bad("text_invalid", "text must be 1-4096 characters"),
            NotifyError::ParseModeInvalid => bad(
                "parse_mode_invalid",
                "parse_mode must be HTML or MarkdownV2 (or absent)",
            ),
            NotifyError::ButtonsInvalid(why) => bad("buttons_invalid", why),
            NotifyError::LinkNotFound => {
                Problem::new(StatusCode::NOT_FOUND, "link_not_found", "Not found")
                    .detail("this user has no Telegram link")
            }
            NotifyError::ChatUnreachable(reason) => {
                Problem::new(StatusCode::GONE, "chat_unreachable", "Chat unreachable").detail(
                    format!(
                        "the bot cannot reach this user ({}); it becomes reachable again when \
                         the user unblocks or starts the bot",
                        reason.as_str()
                    ),
                )
            }
            NotifyError::KeyReused => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_key_reused",
                "Idempotency key reused",
            )
            .detail("this Idempotency-Key was used with another request body"),
            NotifyError::InProgress { retry_after } => with_retry_after(
                Problem::new(
                    StatusCode::CONFLICT,
                    "notify_in_progress",
                    "Request in progress",
                )
                .detail("a request with this Idempotency-Key is being sent; retry later"),
                retry_after,
            ),
            NotifyError::RateLimited { retry_after } => with_retry_after(
                Problem::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limited",
                    "Rate limited",
                )
                .detail("over the per-chat or per-bot message rate; nothing was sent"),
                retry_after,
            ),
            NotifyError::TelegramRateLimited { retry_after } => with_retry_after(
                Problem::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "telegram_rate_limited",
                    "Rate limited by Telegram",
                )
                .detail("Telegram asked to slow down; nothing was sent"),
                retry_after,
            ),
            NotifyError::MessageRefused(_) => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "message_refused",
                "Message refused",
            )
            .detail("Telegram refused the message (e.g. markup it cannot parse); nothing was sent"),
            NotifyError::TelegramUnavailable(_) => {
                let mut p = Problem::unavailable("Telegram");
                p.code = "telegram_unavailable";
                p
            }
            NotifyError::Store(err) => return err.into(),
        };
        problem.cause(cause)
    }
}

/// Reads a positive `u32` setting.
fn rate(
    env: &dyn tglink_shared::config::Env,
    name: &str,
    default: u64,
) -> Result<u32, ConfigError> {
    let value = positive_or(env, name, default)?;
    u32::try_from(value).map_err(|_| ConfigError::new(name, "is too large"))
}

#[async_trait]
impl Function for Notify {
    fn secrets() -> &'static [&'static str] {
        &["APP_JWT_SECRET", "APP_JWT_PUBLIC_KEY", "TELEGRAM_BOT_TOKEN"]
    }

    async fn build(startup: &Startup) -> Result<Self, StartupError> {
        let env = startup.env();
        let feature = tglink_shared::config::flag(env, "TELEGRAM_FEATURE_ENABLED", true)?;
        let bot = match optional(env, "TELEGRAM_BOT_TOKEN") {
            Some(raw) if feature => Some(
                BotToken::parse(&raw)
                    .map_err(|e| ConfigError::new("TELEGRAM_BOT_TOKEN", e.to_string()))?,
            ),
            _ => None,
        };
        let notify_role = optional(env, "APP_JWT_NOTIFY_ROLE")
            .map(|r| r.trim().to_owned())
            .filter(|r| !r.is_empty())
            .unwrap_or_else(|| DEFAULT_NOTIFY_ROLE.to_owned());
        let store = startup.store().await?;
        Ok(Self {
            bot,
            api: BotApi::from_env(env)?,
            auth: startup.jwt()?,
            notify_role,
            chat_rate: rate(env, "NOTIFY_CHAT_RATE", DEFAULT_CHAT_RATE)?,
            chat_burst: rate(env, "NOTIFY_CHAT_BURST", DEFAULT_CHAT_BURST)?,
            global_rate: rate(env, "NOTIFY_GLOBAL_RATE", DEFAULT_GLOBAL_RATE)?,
            links: store.links(),
            claims: store.claims(),
            limits: store.rate_limits(),
            clock: Clock::system(),
        })
    }

    fn routes(&self) -> &'static [Route] {
        ROUTES
    }

    async fn handle(&self, req: Request) -> Response<Body> {
        handle(self, req).await
    }
}

pub async fn handle(deps: &Notify, req: Request) -> Response<Body> {
    let Some(bot) = &deps.bot else {
        return switched_off();
    };
    dispatch(&req, async |op| match op {
        NotifyOp::Send => send(deps, bot, &req).await,
    })
    .await
}

/// The `Idempotency-Key` header: 1–255 printable ASCII characters.
pub fn idempotency_key(req: &Request) -> Result<&str, NotifyError> {
    let value = req
        .headers()
        .get(IDEMPOTENCY_KEY)
        .ok_or(NotifyError::IdempotencyKeyInvalid)?
        .to_str()
        .map_err(|_| NotifyError::IdempotencyKeyInvalid)?;
    let ok = !value.is_empty()
        && value.len() <= IDEMPOTENCY_KEY_MAX
        && value.bytes().all(|c| (0x20..=0x7e).contains(&c));
    if ok {
        Ok(value)
    } else {
        Err(NotifyError::IdempotencyKeyInvalid)
    }
}

impl NotifyRequest {
    /// Checks everything Telegram would refuse or tglink does not take; returns the target.
    pub fn validate(&self) -> Result<Target, NotifyError> {
        let target = match (&self.user_id, self.telegram_user_id) {
            (Some(user), None) => {
                Target::User(UserId::parse(user).map_err(|_| NotifyError::TargetInvalid)?)
            }
            (None, Some(id)) => {
                Target::Telegram(TelegramUserId::new(id).map_err(|_| NotifyError::TargetInvalid)?)
            }
            _ => return Err(NotifyError::TargetInvalid),
        };
        let chars = self.text.as_deref().map_or(0, |t| t.chars().count());
        let blank = self.text.as_deref().is_none_or(|t| t.trim().is_empty());
        if blank || chars > TEXT_MAX_CHARS {
            return Err(NotifyError::TextInvalid);
        }
        if let Some(mode) = &self.parse_mode
            && mode != "HTML"
            && mode != "MarkdownV2"
        {
            return Err(NotifyError::ParseModeInvalid);
        }
        if let Some(rows) = &self.buttons {
            validate_buttons(rows)?;
        }
        Ok(target)
    }

    /// The `sendMessage` parameters for `chat_id`.
    fn send_params(&self, chat_id: i64) -> Value {
        let mut params = json!({"chat_id": chat_id, "text": self.text});
        let object = params.as_object_mut().expect("an object");
        if let Some(mode) = &self.parse_mode {
            object.insert("parse_mode".into(), json!(mode));
        }
        if let Some(flag) = self.disable_notification {
            object.insert("disable_notification".into(), json!(flag));
        }
        if let Some(flag) = self.protect_content {
            object.insert("protect_content".into(), json!(flag));
        }
        if let Some(rows) = self.buttons.as_ref().filter(|rows| !rows.is_empty()) {
            object.insert(
                "reply_markup".into(),
                json!({"inline_keyboard": rows.iter().map(|row| row.iter().map(|b| json!({"text": b.text, "url": b.url})).collect::<Vec<_>>()).collect::<Vec<_>>()}),
            );
        }
        params
    }

    /// The digest a key's claim keeps: SHA-256 of the request's canonical JSON (keys sorted).
    fn digest(&self) -> String {
        let canonical = serde_json::to_value(self)
            .and_then(|v| serde_json::to_vec(&v))
            .unwrap_or_default();
        TokenHash::of(&canonical).as_str().to_owned()
    }
}

fn validate_buttons(rows: &[Vec<Button>]) -> Result<(), NotifyError> {
    let total: usize = rows.iter().map(Vec::len).sum();
    if total > BUTTONS_MAX {
        return Err(NotifyError::ButtonsInvalid("at most 100 buttons"));
    }
    for row in rows {
        if row.is_empty() || row.len() > BUTTONS_PER_ROW_MAX {
            return Err(NotifyError::ButtonsInvalid("each row holds 1-8 buttons"));
        }
        for button in row {
            let chars = button.text.chars().count();
            if button.text.trim().is_empty() || chars > BUTTON_TEXT_MAX_CHARS {
                return Err(NotifyError::ButtonsInvalid(
                    "a button's text must be 1-64 characters",
                ));
            }
            let https = button.url.len() <= BUTTON_URL_MAX_BYTES
                && url::Url::parse(&button.url).is_ok_and(|u| {
                    u.scheme() == "https"
                        && u.host_str().is_some_and(|h| !h.is_empty())
                        && u.username().is_empty()
                        && u.password().is_none()
                });
            if !https {
                return Err(NotifyError::ButtonsInvalid(
                    "a button's url must be an https URL (at most 2048 bytes, no user info)",
                ));
            }
        }
    }
    Ok(())
}

async fn send(deps: &Notify, bot: &BotToken, req: &Request) -> Result<Response<Body>, Problem> {
    let caller = deps.auth.authenticate(req)?;
    // The body is refused the same way on every route (unknown or wrong-typed fields by name),
    // then the role, the key and the values.
    let request: NotifyRequest = parse_json(req)?;
    if !caller.roles.contains(&deps.notify_role) {
        return Err(NotifyError::Forbidden.into());
    }
    let key = idempotency_key(req)?;
    let target = request.validate()?;
    let claim = ClaimKey::new(
        "notify",
        TokenHash::of(format!("{}\n{key}", caller.user_id.as_str()).as_bytes()).as_str(),
    );
    let digest = request.digest();
    deps.deliver(bot, &target, &request, &claim, &digest)
        .await
        .map_err(Problem::from)
}

fn answer(sent: &Sent, replayed: bool) -> Response<Body> {
    let mut resp = json_response(StatusCode::OK, sent);
    if replayed {
        resp.headers_mut()
            .insert(REPLAYED, HeaderValue::from_static("true"));
    }
    resp
}

/// A replayed answer from a live claim (or why there is none to give).
fn replay(record: ClaimRecord, digest: &str, now: UnixTime) -> Result<Response<Body>, NotifyError> {
    if record.digest.as_deref() != Some(digest) {
        return Err(NotifyError::KeyReused);
    }
    match (record.status, record.result) {
        (ClaimStatus::Completed, Some(result)) => {
            let sent: Sent = serde_json::from_str(&result)
                .map_err(|_| StoreError::Corrupt("notify result".into()))?;
            Ok(answer(&sent, true))
        }
        (ClaimStatus::InProgress { until }, _) => Err(NotifyError::InProgress {
            retry_after: until.secs().saturating_sub(now.secs()),
        }),
        (ClaimStatus::Completed, None) => {
            Err(StoreError::Corrupt("notify claim without result".into()).into())
        }
    }
}

impl Notify {
    async fn link_of(&self, target: &Target) -> Result<Option<Link>, StoreError> {
        match target {
            Target::User(user) => self.links.get_by_user(user).await,
            Target::Telegram(id) => self.links.get_by_telegram(*id).await,
        }
    }

    async fn deliver(
        &self,
        bot: &BotToken,
        target: &Target,
        request: &NotifyRequest,
        claim: &ClaimKey,
        digest: &str,
    ) -> Result<Response<Body>, NotifyError> {
        let now = self.clock.now();
        let link = self
            .link_of(target)
            .await?
            .ok_or(NotifyError::LinkNotFound)?;
        let telegram_user_id = link.telegram_user_id;
        if let Some(unreachable) = &link.unreachable {
            tracing::info!(%telegram_user_id, outcome = "unreachable", "notify");
            return Err(NotifyError::ChatUnreachable(unreachable.reason));
        }
        // A private chat's id is its user's id: a Mini App link without a recorded chat is
        // reachable once the user has started the bot.
        let chat_id = link.chat_id.unwrap_or(telegram_user_id.get());
        let chat = Bucket {
            key: BucketKey::chat(chat_id),
            rate: self.chat_rate,
            burst: self.chat_burst,
        };
        let global = Bucket {
            key: BucketKey::bot(bot.bot_id().unwrap_or(0)),
            rate: self.global_rate,
            burst: self.global_rate,
        };
        let times = ClaimTimes {
            in_progress_secs: CLAIM_IN_PROGRESS_SECS,
            retain_secs: CLAIM_RETAIN_SECS,
        };
        let lease = match self
            .limits
            .admit(claim, digest, times, &chat, &global, now)
            .await?
        {
            Admission::Admitted(lease) => lease,
            Admission::Claimed(record) => {
                let replayed = replay(record, digest, now);
                let outcome = match &replayed {
                    Ok(_) => "replayed",
                    Err(NotifyError::KeyReused) => "key_reused",
                    Err(_) => "in_progress",
                };
                tracing::info!(%telegram_user_id, outcome, "notify");
                return replayed;
            }
            Admission::RateLimited { retry_after_secs } => {
                tracing::info!(%telegram_user_id, outcome = "rate_limited", retry_after_secs, "notify");
                return Err(NotifyError::RateLimited {
                    retry_after: retry_after_secs,
                });
            }
        };
        let failed = match self
            .api
            .send_message(bot, &request.send_params(chat_id))
            .await
        {
            Ok(message) => {
                let sent = Sent {
                    message_id: message.message_id,
                    chat_id: message.chat.id,
                    sent_at: message.date,
                };
                let result = serde_json::to_string(&sent).expect("serializable");
                if let Err(err) = self
                    .claims
                    .complete_with_result(&lease, now, CLAIM_RETAIN_SECS, digest, &result)
                    .await
                {
                    // Sent: the answer is 200. A retry after the in-progress lease would send
                    // again; the claim cannot say otherwise.
                    tracing::warn!(%telegram_user_id, error = %err, "claim not completed");
                }
                tracing::info!(%telegram_user_id, message_id = sent.message_id, outcome = "sent", "notify");
                return Ok(answer(&sent, false));
            }
            Err(err) => err,
        };
        // Not accepted by Telegram: the key is free again, nothing is recorded as sent.
        if let Err(release) = self.claims.release(&lease).await {
            tracing::warn!(%telegram_user_id, error = %release, "claim not released");
        }
        Err(match failed {
            SendError::RateLimited { retry_after } => {
                NotifyError::TelegramRateLimited { retry_after }
            }
            SendError::ChatUnreachable(reason) => {
                let change = Reachability::Unreachable { reason, now };
                if let Err(err) = self.links.set_reachability(telegram_user_id, change).await {
                    tracing::warn!(%telegram_user_id, error = %err, "reachability not recorded");
                }
                NotifyError::ChatUnreachable(reason)
            }
            SendError::Refused { status } => NotifyError::MessageRefused(status),
            other @ (SendError::TokenRejected { .. } | SendError::Unavailable(_)) => {
                NotifyError::TelegramUnavailable(other)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_reaches_its_operation() {
        tglink_shared::routes::check::<NotifyOp>();
    }

    fn request(body: Value) -> NotifyRequest {
        serde_json::from_value(body).unwrap()
    }

    #[test]
    fn requests_are_validated() {
        let ok = request(json!({"user_id": "u1", "text": "hi"}));
        assert_eq!(
            ok.validate().unwrap(),
            Target::User(UserId::parse("u1").unwrap())
        );
        let code = |body: Value| match request(body).validate() {
            Ok(_) => "ok",
            Err(NotifyError::TargetInvalid) => "target",
            Err(NotifyError::TextInvalid) => "text",
            Err(NotifyError::ParseModeInvalid) => "parse_mode",
            Err(NotifyError::ButtonsInvalid(_)) => "buttons",
            Err(_) => "other",
        };
        assert_eq!(code(json!({"text": "hi"})), "target");
        assert_eq!(
            code(json!({"user_id": "u", "telegram_user_id": 1, "text": "hi"})),
            "target"
        );
        assert_eq!(
            code(json!({"telegram_user_id": -1, "text": "hi"})),
            "target"
        );
        assert_eq!(code(json!({"user_id": "u"})), "text");
        assert_eq!(code(json!({"user_id": "u", "text": " "})), "text");
        assert_eq!(
            code(json!({"user_id": "u", "text": "é".repeat(4096)})),
            "ok"
        );
        assert_eq!(
            code(json!({"user_id": "u", "text": "x".repeat(4097)})),
            "text"
        );
        assert_eq!(
            code(json!({"user_id": "u", "text": "x", "parse_mode": "Markdown"})),
            "parse_mode"
        );
        assert_eq!(
            code(json!({"user_id": "u", "text": "x", "parse_mode": "HTML"})),
            "ok"
        );
        let button = |url: &str| json!({"user_id": "u", "text": "x", "buttons": [[{"text": "Open", "url": url}]]});
        assert_eq!(code(button("https://example.com/a?b=c")), "ok");
        for bad in [
            "http://example.com",
            "javascript:alert(1)",
            "https://u:p@example.com",
            "tg://resolve",
            "nope",
        ] {
            assert_eq!(code(button(bad)), "buttons", "{bad}");
        }
        let row: Vec<Value> = (0..9)
            .map(|_| json!({"text": "a", "url": "https://e.x"}))
            .collect();
        assert_eq!(
            code(json!({"user_id": "u", "text": "x", "buttons": [row]})),
            "buttons"
        );
        assert_eq!(
            code(json!({"user_id": "u", "text": "x", "buttons": [[]]})),
            "buttons"
        );
    }

    #[test]
    fn the_digest_follows_the_content_not_the_formatting() {
        let a = request(json!({"user_id": "u", "text": "hi", "protect_content": true}));
        let b: NotifyRequest =
            serde_json::from_str(r#"{ "protect_content":true,"text":"hi",  "user_id":"u"}"#)
                .unwrap();
        let c = request(json!({"user_id": "u", "text": "hi!"}));
        assert_eq!(a.digest(), b.digest());
        assert_ne!(a.digest(), c.digest());
        assert!(!a.digest().contains("hi"));
    }

    #[test]
    fn send_params_carry_the_options_and_keyboard() {
        let r = request(
            json!({"user_id": "u", "text": "hi", "parse_mode": "HTML", "disable_notification": true,
            "buttons": [[{"text": "Open", "url": "https://example.com"}]]}),
        );
        assert_eq!(
            r.send_params(42),
            json!({"chat_id": 42, "text": "hi", "parse_mode": "HTML", "disable_notification": true,
                "reply_markup": {"inline_keyboard": [[{"text": "Open", "url": "https://example.com"}]]}})
        );
    }
}
