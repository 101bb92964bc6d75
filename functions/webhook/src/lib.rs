//! `webhook`: `POST /api/telegram/webhook`, the target of Telegram's `setWebhook`.
//!
//! Every request must carry `X-Telegram-Bot-Api-Secret-Token` equal to
//! `TELEGRAM_WEBHOOK_SECRET` (compared in constant time); otherwise 401 with no detail. The
//! body is a Bot API `Update` (64 KiB limit, unknown fields ignored); malformed bodies are
//! 4xx problems. The bot acts on messages from people (not bots) in private chats:
//!
//! - `/start <token>` (or `/start@<bot> <token>`): consumes the connect token and links the
//!   Telegram user and chat to the token's app user, atomically with the claim of the update
//!   ([`ConnectFlow`]): ≤ 2 store calls, no outbound call. The confirmation names the app
//!   account (the label stored with the token at mint time, else the app user id) and offers
//!   `/disconnect`. A Telegram user blocked by an admin is told so, and the token stays
//!   unconsumed.
//! - A connect token posted in a group, supergroup or channel (`/start <token>` or a
//!   `…?start=<token>` link) is burned: consumed without linking anyone, with no reply (it
//!   was exposed to everyone there).
//! - `/status`: which app account this Telegram account is linked to (read only).
//! - `/disconnect`: removes the link (both items, atomically), under a Powertools-style claim
//!   of the update ([`Claims`]).
//! - `/start` alone: how to connect; for a linked user it also records the private chat on the
//!   link and marks it reachable ([`Links::set_reachability`]).
//! - `my_chat_member` in a private chat (the user blocked or unblocked the bot): `kicked` marks
//!   the link unreachable (`bot_blocked`), `member` reachable again, under a claim of the update
//!   like `/disconnect`, so a redelivery does not apply an old change again.
//!
//! Everything else (other updates, other commands, other group messages, bots) is answered
//! `200` with an empty body and no store call — or, with `TGLINK_FORWARD_URL` set, forwarded
//! to the host's own bot ([`forward`]): under a claim of the update, so that a redelivery of a
//! forwarded update is not forwarded again, and the host's reply becomes the webhook's.
//!
//! Replies ride in the webhook response as a Bot API method call
//! (`{"method":"sendMessage","chat_id":…,"text":…}`), which Telegram executes: the bot never
//! calls out. Telegram redelivers an update until it gets a 2xx; a redelivered update that was
//! handled is answered `200` with no effect and no reply. A store outage is a `503` with
//! nothing half-written, so Telegram's redelivery is the retry.

pub mod command;
pub mod config;
pub mod forward;

use std::sync::Arc;

use async_trait::async_trait;
use lambda_http::{
    Body, Request, Response,
    http::{HeaderValue, StatusCode},
};
use serde::Serialize;
use tglink_shared::{
    config::required,
    http::{Problem, body_bytes, empty, json, parse_json_open},
    ids::TelegramUserId,
    routes::{Endpoint, Operation, Route, dispatch, routes},
    runtime::{Function, Startup, StartupError},
    store::{
        ClaimKey, ClaimOutcome, ClaimTimes, Claims, ConnectAttempt, ConnectFlow, ConnectOutcome,
        ConnectTokens, LinkSide, Links, Reachability, StoreError, UnreachableReason,
    },
    telegram::{
        bot_username::BotUsername,
        update::{ChatMemberUpdated, Update},
    },
    time::{Clock, UnixTime},
    token::OneTimeToken,
};

use crate::{
    command::Command,
    config::{Texts, WebhookSecret},
    forward::{ForwardError, Forwarding, HostReply},
};

/// What `webhook` does: one operation per route.
enum WebhookOp {
    Receive,
}

impl Operation for WebhookOp {
    const ENDPOINTS: &'static [Endpoint<Self>] = &[Endpoint::new(
        Route::new("POST", "/api/telegram/webhook"),
        |_| Self::Receive,
    )];
}

pub const ROUTES: &[Route] = &routes::<WebhookOp, { WebhookOp::ENDPOINTS.len() }>();

/// The header Telegram sends the `secret_token` of `setWebhook` in.
pub const SECRET_HEADER: &str = "x-telegram-bot-api-secret-token";

/// How long an update's claim is kept: Telegram gives up redelivering within 24 hours.
pub const CLAIM_RETAIN_SECS: u64 = 86_400;

/// How long an in-progress `/disconnect` blocks a redelivery of the same update; a crashed
/// attempt's update is handled again after this.
pub const CLAIM_IN_PROGRESS_SECS: u64 = 60;

pub struct Webhook {
    pub secret: WebhookSecret,
    pub bot_username: String,
    pub texts: Texts,
    pub flow: Arc<dyn ConnectFlow>,
    pub tokens: Arc<dyn ConnectTokens>,
    pub links: Arc<dyn Links>,
    pub claims: Arc<dyn Claims>,
    /// Where the updates tglink does not handle go (`TGLINK_FORWARD_URL`), if anywhere.
    pub forwarding: Option<Forwarding>,
    pub clock: Clock,
}

/// What tglink made of an update.
#[derive(Debug, PartialEq, Eq)]
pub enum Handled {
    /// Handled, with a reply for Telegram to send.
    Reply(SendMessage),
    /// Handled (or a duplicate of a handled one), nothing to send.
    Done,
    /// Not tglink's: the host's bot may want it ([`forward`]).
    NotMine,
}

/// A Bot API method call carried in the webhook response.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct SendMessage {
    pub method: &'static str,
    pub chat_id: i64,
    pub text: String,
}

impl SendMessage {
    pub fn new(chat_id: i64, text: String) -> Self {
        Self {
            method: "sendMessage",
            chat_id,
            text,
        }
    }
}

/// Why an update could not be handled. Mapped to HTTP in one place (`From` below).
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("webhook secret missing or wrong")]
    Unauthorized,
    #[error("the update is being handled by another attempt")]
    InProgress,
    #[error("the update could not be forwarded: {0}")]
    Forward(#[from] ForwardError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<WebhookError> for Problem {
    fn from(err: WebhookError) -> Self {
        match err {
            // No detail and no hint: the caller is not Telegram.
            WebhookError::Unauthorized => Problem::new(
                StatusCode::UNAUTHORIZED,
                "webhook_unauthorized",
                "Unauthorized",
            ),
            // Telegram redelivers on any non-2xx: this makes it try again later.
            WebhookError::InProgress => {
                let mut problem = Problem::new(
                    StatusCode::CONFLICT,
                    "update_in_progress",
                    "Update in progress",
                )
                .detail("this update is being handled; retry later");
                problem.retry_after = Some(CLAIM_IN_PROGRESS_SECS as u32);
                problem
            }
            // Non-2xx, so Telegram redelivers; the claim was released for that.
            WebhookError::Forward(_) => Problem::new(
                StatusCode::BAD_GATEWAY,
                "forward_failed",
                "Forwarding failed",
            )
            .detail("the host's bot did not take the update; Telegram will deliver it again"),
            WebhookError::Store(err) => err.into(),
        }
    }
}

#[async_trait]
impl Function for Webhook {
    fn secrets() -> &'static [&'static str] {
        &["TELEGRAM_WEBHOOK_SECRET", "TGLINK_FORWARD_SECRET"]
    }

    async fn build(startup: &Startup) -> Result<Self, StartupError> {
        let env = startup.env();
        let secret = WebhookSecret::parse(&required(env, "TELEGRAM_WEBHOOK_SECRET")?)?;
        let bot_username = BotUsername::from_env(env)?.as_str().to_owned();
        let texts = Texts::from_env(env)?;
        let store = startup.store().await?;
        Ok(Self {
            secret,
            bot_username,
            texts,
            flow: store.connect_flow(),
            tokens: store.connect_tokens(),
            links: store.links(),
            claims: store.claims(),
            forwarding: Forwarding::from_env(env)?,
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

pub async fn handle(deps: &Webhook, req: Request) -> Response<Body> {
    dispatch(&req, async |op| match op {
        WebhookOp::Receive => receive(deps, &req).await,
    })
    .await
}

async fn receive(deps: &Webhook, req: &Request) -> Result<Response<Body>, Problem> {
    let presented = req.headers().get(SECRET_HEADER).map(HeaderValue::as_bytes);
    if !presented.is_some_and(|value| deps.secret.verify(value)) {
        tracing::warn!(
            header_present = presented.is_some(),
            "webhook call without the right secret"
        );
        return Err(WebhookError::Unauthorized.into());
    }
    let update: Update = parse_json_open(req)?;
    let handled = match deps.process(&update).await {
        Ok(Handled::NotMine) => match &deps.forwarding {
            Some(forwarding) => deps.forward(forwarding, &update, body_bytes(req)?).await,
            None => Ok(None),
        },
        Ok(Handled::Reply(reply)) => return Ok(json(StatusCode::OK, &reply)),
        Ok(Handled::Done) => Ok(None),
        Err(err) => Err(err),
    };
    match handled {
        Ok(Some(reply)) => Ok(Response::builder()
            .status(StatusCode::OK)
            .header(lambda_http::http::header::CONTENT_TYPE, "application/json")
            .header(lambda_http::http::header::CACHE_CONTROL, "no-store")
            .body(Body::Binary(reply))
            .expect("static response parts are valid")),
        Ok(None) => Ok(empty(StatusCode::OK)),
        Err(err) => {
            let cause = format!("update {} not handled: {err}", update.update_id);
            Err(Problem::from(err).cause(cause))
        }
    }
}

/// A connect token in a text seen where it must not be used: the payload of `/start <token>`
/// (any bot's), or of a `start=<token>` link parameter.
fn exposed_token(text: &str) -> Option<OneTimeToken> {
    let mut words = text.split_whitespace();
    if let Some(first) = words.next() {
        let name = first.split('@').next().unwrap_or("");
        if name.eq_ignore_ascii_case("/start")
            && let Some(Ok(token)) = words.next().map(OneTimeToken::parse)
        {
            return Some(token);
        }
    }
    text.match_indices("start=").find_map(|(at, key)| {
        let value = &text[at + key.len()..];
        let end = value
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
            .unwrap_or(value.len());
        OneTimeToken::parse(&value[..end]).ok()
    })
}

impl Webhook {
    /// What to answer to one update: a reply, nothing, or an error (non-2xx: Telegram
    /// redelivers).
    pub async fn process(&self, update: &Update) -> Result<Handled, WebhookError> {
        if let Some(post) = &update.channel_post {
            return self.burn_exposed(update, post.text.as_deref()).await;
        }
        if let Some(change) = &update.my_chat_member {
            return self.membership(update, change).await;
        }
        let Some(message) = &update.message else {
            return Ok(Handled::NotMine);
        };
        if !message.chat.is_private() {
            // A token posted in a group is exposed to everyone there: burned, never acted on,
            // and no reply lands in the group.
            return self.burn_exposed(update, message.text.as_deref()).await;
        }
        let (Some(from), Some(text)) = (&message.from, &message.text) else {
            return Ok(Handled::NotMine);
        };
        // Only people, in their private chat with the bot.
        if from.is_bot {
            return Ok(Handled::NotMine);
        }
        let Ok(telegram_user_id) = TelegramUserId::new(from.id) else {
            return Ok(Handled::NotMine);
        };
        let Some(command) = Command::parse(text, &self.bot_username) else {
            return Ok(Handled::NotMine);
        };
        let chat_id = message.chat.id;
        let now = self.clock.now();
        let text = match command {
            Command::Start(None) => {
                // The user talks to the bot: its chat is reachable (and known, for a Mini App
                // link). Idempotent, so a redelivery needs no claim.
                let change = Reachability::Reachable {
                    chat_id: Some(chat_id),
                };
                let updated = self
                    .links
                    .set_reachability(telegram_user_id, change)
                    .await?;
                tracing::info!(
                    update_id = update.update_id,
                    %telegram_user_id,
                    linked = updated.is_some(),
                    outcome = "welcome",
                    "/start"
                );
                Some(self.texts.welcome())
            }
            Command::Start(Some(payload)) => {
                self.connect(
                    update,
                    telegram_user_id,
                    chat_id,
                    from.username.clone(),
                    payload,
                    now,
                )
                .await?
            }
            Command::Status => Some(self.status(telegram_user_id).await?),
            Command::Disconnect => self.disconnect(update, telegram_user_id, now).await?,
        };
        Ok(match text {
            Some(text) => Handled::Reply(SendMessage::new(chat_id, text)),
            None => Handled::Done,
        })
    }

    /// `my_chat_member` of a private chat: the user blocked (`kicked`) or unblocked (`member`)
    /// the bot. Claimed like `/disconnect`; other chats and statuses are not tglink's.
    async fn membership(
        &self,
        update: &Update,
        change: &ChatMemberUpdated,
    ) -> Result<Handled, WebhookError> {
        let (Some(from), Some(member)) = (&change.from, &change.new_chat_member) else {
            return Ok(Handled::NotMine);
        };
        let Ok(telegram_user_id) = TelegramUserId::new(from.id) else {
            return Ok(Handled::NotMine);
        };
        if !change.chat.is_private() || from.is_bot {
            return Ok(Handled::NotMine);
        }
        let now = self.clock.now();
        let reachability = match member.status.as_str() {
            "kicked" => Reachability::Unreachable {
                reason: UnreachableReason::BotBlocked,
                now,
            },
            "member" => Reachability::Reachable {
                chat_id: Some(change.chat.id),
            },
            _ => return Ok(Handled::NotMine),
        };
        let update_id = update.update_id;
        let key = ClaimKey::telegram_update(&self.bot_username, update_id);
        let times = ClaimTimes {
            in_progress_secs: CLAIM_IN_PROGRESS_SECS,
            retain_secs: CLAIM_RETAIN_SECS,
        };
        let lease = match self.claims.begin(&key, now, times).await? {
            ClaimOutcome::Acquired(lease) => lease,
            ClaimOutcome::Completed => {
                tracing::info!(update_id, outcome = "duplicate", "my_chat_member");
                return Ok(Handled::Done);
            }
            ClaimOutcome::InProgress => return Err(WebhookError::InProgress),
        };
        let updated = match self
            .links
            .set_reachability(telegram_user_id, reachability)
            .await
        {
            Ok(updated) => updated,
            Err(err) => {
                if let Err(release) = self.claims.release(&lease).await {
                    tracing::warn!(update_id, error = %release, "claim not released");
                }
                return Err(err.into());
            }
        };
        if let Err(err) = self.claims.complete(&lease, now, CLAIM_RETAIN_SECS).await {
            tracing::warn!(update_id, error = %err, "claim not completed");
        }
        tracing::info!(
            update_id,
            %telegram_user_id,
            linked = updated.is_some(),
            reachable = matches!(reachability, Reachability::Reachable { .. }),
            outcome = "membership",
            "my_chat_member"
        );
        Ok(Handled::Done)
    }

    /// Burns the connect token in a group or channel text, if any: `/start <token>` (to any
    /// bot) or a `start=<token>` link. Idempotent, so a redelivery needs no claim. A text
    /// without a token is not tglink's.
    async fn burn_exposed(
        &self,
        update: &Update,
        text: Option<&str>,
    ) -> Result<Handled, WebhookError> {
        let Some(token) = text.and_then(exposed_token) else {
            return Ok(Handled::NotMine);
        };
        let burned = self.tokens.burn(&token.hash(), self.clock.now()).await?;
        tracing::info!(
            update_id = update.update_id,
            burned,
            outcome = "token_exposed",
            "/start"
        );
        Ok(Handled::Done)
    }

    /// Forwards an update tglink does not handle to the host's bot, under the update's claim:
    /// a redelivery of a forwarded update is not forwarded again (`200`, nothing), one being
    /// forwarded by another attempt is `409` (Telegram redelivers later), and a failed forward
    /// releases the claim (`502`, Telegram redelivers, and the redelivery is forwarded).
    async fn forward(
        &self,
        forwarding: &Forwarding,
        update: &Update,
        raw: &[u8],
    ) -> Result<Option<Vec<u8>>, WebhookError> {
        let update_id = update.update_id;
        let key = ClaimKey::telegram_update(&self.bot_username, update_id);
        let times = ClaimTimes {
            in_progress_secs: CLAIM_IN_PROGRESS_SECS,
            retain_secs: CLAIM_RETAIN_SECS,
        };
        let now = self.clock.now();
        let lease = match self.claims.begin(&key, now, times).await? {
            ClaimOutcome::Acquired(lease) => lease,
            ClaimOutcome::Completed => {
                tracing::info!(update_id, outcome = "duplicate", "forward");
                return Ok(None);
            }
            ClaimOutcome::InProgress => return Err(WebhookError::InProgress),
        };
        match forwarding.forward(raw).await {
            Ok(reply) => {
                if let Err(err) = self.claims.complete(&lease, now, CLAIM_RETAIN_SECS).await {
                    // Forwarded and answered 2xx: Telegram will not redeliver; the claim
                    // lapses at its in-progress expiry.
                    tracing::warn!(update_id, error = %err, "claim not completed");
                }
                let method_call = matches!(reply, HostReply::MethodCall(_));
                tracing::info!(update_id, method_call, outcome = "forwarded", "forward");
                Ok(match reply {
                    HostReply::MethodCall(body) => Some(body),
                    HostReply::Empty => None,
                })
            }
            Err(err) => {
                if let Err(release) = self.claims.release(&lease).await {
                    tracing::warn!(update_id, error = %release, "claim not released");
                }
                Err(err.into())
            }
        }
    }

    /// `/start <payload>`: one atomic consume + link + claim.
    async fn connect(
        &self,
        update: &Update,
        telegram_user_id: TelegramUserId,
        chat_id: i64,
        username: Option<String>,
        payload: &str,
        now: UnixTime,
    ) -> Result<Option<String>, WebhookError> {
        let update_id = update.update_id;
        let Ok(token) = OneTimeToken::parse(payload) else {
            tracing::info!(update_id, %telegram_user_id, outcome = "token_malformed", "/start");
            return Ok(Some(self.texts.link_invalid()));
        };
        let attempt = ConnectAttempt {
            token: token.hash(),
            claim: ClaimKey::telegram_update(&self.bot_username, update_id),
            claim_retain_secs: CLAIM_RETAIN_SECS,
            telegram_user_id,
            chat_id,
            username,
            now,
        };
        let reply = match self.flow.consume_and_link(&attempt).await? {
            ConnectOutcome::Linked {
                link,
                already,
                account,
            } => {
                tracing::info!(
                    update_id,
                    %telegram_user_id,
                    user_id = %link.user_id,
                    already_linked = already,
                    outcome = "linked",
                    "/start"
                );
                Some(
                    self.texts
                        .connected(account.as_deref().unwrap_or(link.user_id.as_str())),
                )
            }
            ConnectOutcome::Duplicate => {
                tracing::info!(update_id, outcome = "duplicate", "/start");
                None
            }
            ConnectOutcome::TokenInvalid => {
                tracing::info!(update_id, %telegram_user_id, outcome = "token_invalid", "/start");
                Some(self.texts.link_invalid())
            }
            ConnectOutcome::Blocked => {
                tracing::info!(update_id, %telegram_user_id, outcome = "blocked", "/start");
                Some(self.texts.blocked())
            }
            ConnectOutcome::Conflict(side) => {
                tracing::info!(
                    update_id,
                    %telegram_user_id,
                    outcome = "conflict",
                    side = ?side,
                    "/start"
                );
                Some(match side {
                    LinkSide::Telegram => self.texts.telegram_linked_elsewhere(),
                    LinkSide::User => self.texts.user_linked_elsewhere(),
                })
            }
        };
        Ok(reply)
    }

    /// `/status`: read only, so not claimed. A redelivery only happens when Telegram did not
    /// get the first answer, in which case the reply was never sent either.
    async fn status(&self, telegram_user_id: TelegramUserId) -> Result<String, WebhookError> {
        Ok(match self.links.get_by_telegram(telegram_user_id).await? {
            Some(link) => self.texts.status_linked(link.user_id.as_str()),
            None => self.texts.status_not_linked(),
        })
    }

    /// `/disconnect`: claim the update, unlink, complete the claim (or release it on failure,
    /// so Telegram's redelivery can run at once).
    async fn disconnect(
        &self,
        update: &Update,
        telegram_user_id: TelegramUserId,
        now: UnixTime,
    ) -> Result<Option<String>, WebhookError> {
        let update_id = update.update_id;
        let key = ClaimKey::telegram_update(&self.bot_username, update_id);
        let times = ClaimTimes {
            in_progress_secs: CLAIM_IN_PROGRESS_SECS,
            retain_secs: CLAIM_RETAIN_SECS,
        };
        let lease = match self.claims.begin(&key, now, times).await? {
            ClaimOutcome::Acquired(lease) => lease,
            ClaimOutcome::Completed => {
                tracing::info!(update_id, outcome = "duplicate", "/disconnect");
                return Ok(None);
            }
            ClaimOutcome::InProgress => return Err(WebhookError::InProgress),
        };
        let removed = match self.links.unlink_by_telegram(telegram_user_id).await {
            Ok(removed) => removed,
            Err(err) => {
                if let Err(release) = self.claims.release(&lease).await {
                    tracing::warn!(update_id, error = %release, "claim not released");
                }
                return Err(err.into());
            }
        };
        if let Err(err) = self.claims.complete(&lease, now, CLAIM_RETAIN_SECS).await {
            // The effect happened and the answer is 2xx, so Telegram will not redeliver; the
            // claim simply lapses at its in-progress expiry.
            tracing::warn!(update_id, error = %err, "claim not completed");
        }
        tracing::info!(
            update_id,
            %telegram_user_id,
            user_id = removed.as_ref().map(|l| l.user_id.as_str()),
            outcome = if removed.is_some() { "unlinked" } else { "not_linked" },
            "/disconnect"
        );
        Ok(Some(match removed {
            Some(_) => self.texts.disconnected(),
            None => self.texts.status_not_linked(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_reaches_its_operation() {
        tglink_shared::routes::check::<WebhookOp>();
    }
}
