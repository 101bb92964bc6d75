//! `link`: an app user's Telegram link, and the admin controls over links.
//!
//! App JWT (the user id is always the JWT's `sub`, never a body field):
//!
//! - `GET /api/telegram/link`: the caller's link, or `404 link_not_found`. A host backend
//!   (roles hold `APP_JWT_SERVICE_ROLE`, default `tglink:service`) may name any user:
//!   `?user_id=<app user>` or `?telegram_user_id=<id>` (exactly one); an ordinary JWT naming
//!   anyone but itself is `403 forbidden`. The link shows `reachable` (with
//!   `unreachable_reason` and `unreachable_since` when not) and `chat_id` once known (a Mini
//!   App link gets it when the user starts the bot).
//! - `POST /api/telegram/link` with exactly one of `{"access_token"}` (a tglink access token
//!   from `POST /oauth/token`) or `{"init_data"}`: links the caller to the Telegram user the
//!   Mini App proved. `201` for a new link, `200` when this pair was linked already,
//!   `409 link_conflict` when either side is linked elsewhere. The `init_data` form uses the
//!   initData up (the sign-in record's replay claims: an initData that signed in cannot link)
//!   and writes the link in one transaction ([`SignIns::link_with_initdata`]). The
//!   `access_token` form is verified ([`AccessTokenVerifier`]: ES256 only, `typ: at+jwt`, a
//!   published `kid`, issuer, audience, expiry; anything else is `401 access_token_invalid`),
//!   then links through [`SignIns::link_with_session`]: its session (`sub` + `sid`) must still
//!   be live and must not have linked before, checked in the link's own transaction — an
//!   ended session (unlink, revoke, `/disconnect`, block, logout) is `401 session_invalid`, also
//!   after an unblock. Only the app user of the request's app JWT is linked. Both forms refuse a
//!   blocked Telegram user inside the same transaction as the link.
//! - `DELETE /api/telegram/link`: removes the caller's link (both items, atomically): `204`, or
//!   `404 link_not_found`.
//!
//! Admin JWT (the roles claim holds `APP_JWT_ADMIN_ROLE`, default `tglink:admin`; others get
//! `403 forbidden`):
//!
//! - `POST /api/admin/telegram/links/{telegram_user_id}/revoke`: removes that Telegram user's
//!   link: `200 {"revoked": link}`, or `404 link_not_found`.
//! - `POST …/block`: blocks the Telegram user and removes its link, atomically; blocking again
//!   keeps the first block. A blocked Telegram user gets no session, no link (Mini App or bot).
//! - `POST …/unblock`: removes the block: `200`, or `404 block_not_found`.
//!
//! `TELEGRAM_FEATURE_ENABLED` off: every route `404`. `TELEGRAM_MINIAPP_ENABLED` off:
//! `POST /api/telegram/link` is `404` (both of its forms are Mini App proofs); reading and
//! removing links and the admin routes stay.

use std::sync::Arc;

use async_trait::async_trait;
use lambda_http::{Body, Request, Response, http::StatusCode};
use serde::{Deserialize, Serialize};
use tglink_shared::{
    auth::{AppUser, JwtVerifier},
    http::{Problem, empty, json, parse_json},
    ids::{TelegramUserId, UserId},
    oauth::{AccessTokenError, AccessTokenVerifier},
    routes::{Endpoint, Operation, PathParam, Route, dispatch, routes, switched_off},
    runtime::{Function, Startup, StartupError},
    store::{
        Block, Blocks, Link, LinkSide, LinkSource, Links, SignIns, StoreError,
        signins::{InitDataLinkOutcome, SessionId, TokenLinkOutcome},
    },
    telegram::miniapp::{Flags, MiniAppConfig, MiniAppError, RawInitData},
    time::{Clock, UnixTime},
};

pub const LINK_GET: Route = Route::new("GET", "/api/telegram/link");
pub const LINK_POST: Route = Route::new("POST", "/api/telegram/link");
pub const LINK_DELETE: Route = Route::new("DELETE", "/api/telegram/link");
pub const REVOKE: Route = Route::new(
    "POST",
    "/api/admin/telegram/links/{telegram_user_id}/revoke",
);
pub const BLOCK: Route = Route::new("POST", "/api/admin/telegram/links/{telegram_user_id}/block");
pub const UNBLOCK: Route = Route::new(
    "POST",
    "/api/admin/telegram/links/{telegram_user_id}/unblock",
);

/// What `link` does: one operation per route, its path parameter typed.
enum LinkOp {
    Get,
    Create,
    Delete,
    Revoke(PathParam<TelegramUserId>),
    Block(PathParam<TelegramUserId>),
    Unblock(PathParam<TelegramUserId>),
}

impl Operation for LinkOp {
    const ENDPOINTS: &'static [Endpoint<Self>] = &[
        Endpoint::new(LINK_GET, |_| Self::Get),
        Endpoint::new(LINK_POST, |_| Self::Create),
        Endpoint::new(LINK_DELETE, |_| Self::Delete),
        Endpoint::new(REVOKE, |p| Self::Revoke(p.get("telegram_user_id"))),
        Endpoint::new(BLOCK, |p| Self::Block(p.get("telegram_user_id"))),
        Endpoint::new(UNBLOCK, |p| Self::Unblock(p.get("telegram_user_id"))),
    ];
}

pub const ROUTES: &[Route] = &routes::<LinkOp, { LinkOp::ENDPOINTS.len() }>();

pub struct LinkFunction {
    /// `TELEGRAM_FEATURE_ENABLED`.
    pub enabled: bool,
    /// `None` when the Mini App is switched off: linking by initData is then refused
    /// (`sign_in_method_disabled`); an access token from any sign-in still links.
    pub miniapp: Option<MiniAppConfig>,
    pub auth: JwtVerifier,
    pub links: Arc<dyn Links>,
    pub signins: Arc<dyn SignIns>,
    pub verifier: AccessTokenVerifier,
    pub blocks: Arc<dyn Blocks>,
    pub clock: Clock,
}

/// `POST /api/telegram/link`: exactly one of the two proofs.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkRequest {
    #[serde(default)]
    pub access_token: Option<AccessToken>,
    #[serde(default)]
    pub init_data: Option<RawInitData>,
}

/// An access token as presented. Never logged: `Debug` is redacted.
#[derive(Deserialize)]
#[serde(transparent)]
pub struct AccessToken(String);

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AccessToken(<redacted>)")
    }
}

/// A link as answered.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct LinkView {
    pub telegram_user_id: TelegramUserId,
    pub user_id: UserId,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chat_id: Option<i64>,
    /// `bot` or `miniapp`.
    pub source: &'static str,
    /// Unix seconds.
    pub linked_at: u64,
    /// Whether the bot can reach the user's private chat (see `notify`).
    pub reachable: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unreachable_reason: Option<&'static str>,
    /// Unix seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unreachable_since: Option<u64>,
}

impl From<Link> for LinkView {
    fn from(link: Link) -> Self {
        Self {
            telegram_user_id: link.telegram_user_id,
            user_id: link.user_id,
            username: link.username,
            chat_id: link.chat_id,
            source: link.source.as_str(),
            linked_at: link.linked_at.secs(),
            reachable: link.unreachable.is_none(),
            unreachable_reason: link.unreachable.as_ref().map(|u| u.reason.as_str()),
            unreachable_since: link.unreachable.as_ref().map(|u| u.since.secs()),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Revoked {
    pub revoked: LinkView,
}

#[derive(Debug, Serialize)]
pub struct BlockView {
    pub telegram_user_id: TelegramUserId,
    pub blocked: bool,
    /// Unix seconds (of the first block, when blocked before).
    pub blocked_at: u64,
    pub blocked_by: UserId,
    pub already_blocked: bool,
    /// The link this call removed, if any.
    pub revoked: Option<LinkView>,
}

#[derive(Debug, Serialize)]
pub struct Unblocked {
    pub telegram_user_id: TelegramUserId,
    pub blocked: bool,
}

/// Why a link request was refused. Mapped to HTTP in one place (`From` below).
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("send exactly one of access_token or init_data")]
    ProofMissing,
    #[error(
        "linking by init_data is switched off (TELEGRAM_MINIAPP_ENABLED); link with the \
         access_token of a sign-in"
    )]
    InitDataOff,
    #[error(
        "the access token's session ended (unlink, revoke, block or logout), expired, or linked \
         before; sign in again"
    )]
    SessionInvalid,
    #[error(transparent)]
    AccessToken(#[from] AccessTokenError),
    #[error(transparent)]
    MiniApp(#[from] MiniAppError),
    #[error("linked elsewhere")]
    Conflict(LinkSide),
    #[error("no link")]
    LinkNotFound,
    #[error("not blocked")]
    BlockNotFound,
    #[error("the telegram user id must be a positive integer")]
    TelegramUserIdInvalid,
    #[error("name at most one of user_id or telegram_user_id")]
    LookupInvalid,
    #[error("only a service may look up another user's link")]
    LookupForbidden,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<LinkError> for Problem {
    fn from(err: LinkError) -> Self {
        match err {
            LinkError::ProofMissing => Problem::bad_request("body_invalid", err.to_string()),
            LinkError::InitDataOff => {
                Problem::bad_request("sign_in_method_disabled", err.to_string())
            }
            LinkError::SessionInvalid => {
                Problem::new(StatusCode::UNAUTHORIZED, "session_invalid", "Unauthorized")
                    .detail(err.to_string())
            }
            LinkError::MiniApp(e) => e.into(),
            LinkError::AccessToken(e) => e.into(),
            LinkError::Conflict(side) => {
                Problem::new(StatusCode::CONFLICT, "link_conflict", "Link conflict").detail(
                    match side {
                        LinkSide::Telegram => {
                            "this Telegram account is linked to another account; unlink it first"
                        }
                        LinkSide::User => {
                            "your account is linked to another Telegram account; unlink it first"
                        }
                    },
                )
            }
            LinkError::LinkNotFound => {
                Problem::new(StatusCode::NOT_FOUND, "link_not_found", "Not found")
                    .detail("no Telegram link")
            }
            LinkError::BlockNotFound => {
                Problem::new(StatusCode::NOT_FOUND, "block_not_found", "Not found")
                    .detail("this Telegram user is not blocked")
            }
            LinkError::TelegramUserIdInvalid => {
                Problem::bad_request("telegram_user_id_invalid", err.to_string())
            }
            LinkError::LookupInvalid => Problem::bad_request("lookup_invalid", err.to_string()),
            LinkError::LookupForbidden => {
                Problem::new(StatusCode::FORBIDDEN, "forbidden", "Forbidden").detail(
                    "looking up another user's link needs the service role (APP_JWT_SERVICE_ROLE)",
                )
            }
            LinkError::Store(e) => e.into(),
        }
    }
}

#[async_trait]
impl Function for LinkFunction {
    fn secrets() -> &'static [&'static str] {
        &["APP_JWT_SECRET", "APP_JWT_PUBLIC_KEY", "TELEGRAM_BOT_TOKEN"]
    }

    async fn build(startup: &Startup) -> Result<Self, StartupError> {
        let env = startup.env();
        let flags = Flags::from_env(env)?;
        let miniapp = if flags.miniapp_enabled() {
            Some(MiniAppConfig::from_env(env)?)
        } else {
            None
        };
        let store = startup.store().await?;
        Ok(Self {
            enabled: flags.feature,
            miniapp,
            auth: startup.jwt()?,
            links: store.links(),
            signins: store.signins(),
            verifier: startup.access_token_verifier().await?,
            blocks: store.blocks(),
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

pub async fn handle(deps: &LinkFunction, req: Request) -> Response<Body> {
    if !deps.enabled {
        return switched_off();
    }
    dispatch(&req, async |op| match op {
        LinkOp::Get => get(deps, &req).await,
        // An access token from any sign-in links; initData only while the Mini App is on.
        LinkOp::Create => create(deps, deps.miniapp.as_ref(), &req).await,
        LinkOp::Delete => delete(deps, &req).await,
        LinkOp::Revoke(id) => revoke(deps, &req, id).await,
        LinkOp::Block(id) => block(deps, &req, id).await,
        LinkOp::Unblock(id) => unblock(deps, &req, id).await,
    })
    .await
}

/// Whose link `GET /api/telegram/link` reads.
#[derive(Debug, PartialEq, Eq)]
enum Lookup {
    User(UserId),
    Telegram(TelegramUserId),
}

/// The lookup a request's query names (`user_id` or `telegram_user_id`), `None` for the
/// caller's own link.
fn lookup(req: &Request) -> Result<Option<Lookup>, LinkError> {
    let mut user = None;
    let mut telegram = None;
    let query = req.uri().query().unwrap_or("");
    for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
        let slot = match name.as_ref() {
            "user_id" => &mut user,
            "telegram_user_id" => &mut telegram,
            _ => continue,
        };
        if slot.replace(value.into_owned()).is_some() {
            return Err(LinkError::LookupInvalid);
        }
    }
    match (user, telegram) {
        (None, None) => Ok(None),
        (Some(user), None) => Ok(Some(Lookup::User(
            UserId::parse(&user).map_err(|_| LinkError::LookupInvalid)?,
        ))),
        (None, Some(id)) => Ok(Some(Lookup::Telegram(
            id.parse::<i64>()
                .ok()
                .and_then(|id| TelegramUserId::new(id).ok())
                .ok_or(LinkError::TelegramUserIdInvalid)?,
        ))),
        (Some(_), Some(_)) => Err(LinkError::LookupInvalid),
    }
}

async fn get(deps: &LinkFunction, req: &Request) -> Result<Response<Body>, Problem> {
    let user = deps.auth.authenticate(req)?;
    let found = match lookup(req)? {
        None => deps.links.get_by_user(&user.user_id).await?,
        Some(Lookup::User(other)) if other == user.user_id => {
            deps.links.get_by_user(&other).await?
        }
        Some(_) if !deps.auth.is_service(&user) => return Err(LinkError::LookupForbidden.into()),
        Some(Lookup::User(other)) => deps.links.get_by_user(&other).await?,
        Some(Lookup::Telegram(id)) => deps.links.get_by_telegram(id).await?,
    };
    match found {
        Some(link) => Ok(json(StatusCode::OK, &LinkView::from(link))),
        None => Err(LinkError::LinkNotFound.into()),
    }
}

async fn delete(deps: &LinkFunction, req: &Request) -> Result<Response<Body>, Problem> {
    let user = deps.auth.authenticate(req)?;
    match deps.links.unlink_by_user(&user.user_id).await? {
        Some(link) => {
            tracing::info!(
                user_id = %user.user_id,
                telegram_user_id = link.telegram_user_id.get(),
                outcome = "unlinked",
                "link delete"
            );
            Ok(empty(StatusCode::NO_CONTENT))
        }
        None => Err(LinkError::LinkNotFound.into()),
    }
}

async fn create(
    deps: &LinkFunction,
    miniapp: Option<&MiniAppConfig>,
    req: &Request,
) -> Result<Response<Body>, Problem> {
    let user = deps.auth.authenticate(req)?;
    let body: LinkRequest = parse_json(req)?;
    let now = deps.clock.now();
    let result = match (body.access_token, body.init_data) {
        (Some(token), None) => link_access_token(deps, &user, &token, now).await,
        (None, Some(raw)) => match miniapp {
            Some(config) => link_init_data(deps, config, &user, &raw, now).await,
            None => Err(LinkError::InitDataOff),
        },
        _ => Err(LinkError::ProofMissing),
    };
    match result {
        Ok((link, created)) => {
            let status = if created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            Ok(json(status, &LinkView::from(link)))
        }
        Err(err) => {
            let problem = Problem::from(err);
            if problem.status.is_client_error() {
                // The outcome is the problem's stable code, never Rust `Debug` text.
                tracing::info!(user_id = %user.user_id, outcome = problem.code, "link refused");
            }
            Err(problem)
        }
    }
}

/// `{"access_token"}`: verified, then its session (`sub` + `sid`) links the caller, in one
/// transaction that also checks the session is live and has not linked before
/// ([`SignIns::link_with_session`]).
async fn link_access_token(
    deps: &LinkFunction,
    user: &AppUser,
    token: &AccessToken,
    now: UnixTime,
) -> Result<(Link, bool), LinkError> {
    let claims = deps.verifier.verify(&token.0, now).await?;
    let (Ok(id), Some(sid)) = (
        TelegramUserId::parse(&claims.sub),
        SessionId::parse(&claims.sid),
    ) else {
        return Err(AccessTokenError::Invalid("no Telegram session").into());
    };
    let (link, created) = match deps
        .signins
        .link_with_session(id, sid, &user.user_id, claims.username.clone(), now)
        .await?
    {
        TokenLinkOutcome::Linked(link) => (link, true),
        TokenLinkOutcome::AlreadyLinked(link) => (link, false),
        TokenLinkOutcome::Invalid => return Err(LinkError::SessionInvalid),
        TokenLinkOutcome::Conflict(side) => return Err(LinkError::Conflict(side)),
        TokenLinkOutcome::Blocked => return Err(MiniAppError::Blocked.into()),
    };
    log_linked(&link, created, "access_token");
    Ok((link, created))
}

/// `{"init_data"}`: verify, then use the initData up and link in one step.
async fn link_init_data(
    deps: &LinkFunction,
    config: &MiniAppConfig,
    user: &AppUser,
    raw: &RawInitData,
    now: UnixTime,
) -> Result<(Link, bool), LinkError> {
    let verified = config.verify(raw, now)?;
    let link = Link {
        telegram_user_id: verified.telegram_user_id,
        user_id: user.user_id.clone(),
        chat_id: None,
        username: verified.user.username.clone(),
        source: LinkSource::MiniApp,
        linked_at: now,
        unreachable: None,
    };
    let use_ = config.initdata_use(&verified, now);
    let (link, created) = match deps.signins.link_with_initdata(&link, &use_).await? {
        InitDataLinkOutcome::Linked(link) => (link, true),
        InitDataLinkOutcome::AlreadyLinked(link) => (link, false),
        // Used up already: by this very request, when it is retried after an answer that was
        // lost or a 503 that came after the write (the pair is linked: "linked already").
        InitDataLinkOutcome::Replayed => match deps.links.get_by_user(&link.user_id).await? {
            Some(existing) if existing.telegram_user_id == link.telegram_user_id => {
                (existing, false)
            }
            _ => return Err(MiniAppError::Replayed.into()),
        },
        InitDataLinkOutcome::Blocked => return Err(MiniAppError::Blocked.into()),
        InitDataLinkOutcome::Conflict(side) => return Err(LinkError::Conflict(side)),
    };
    log_linked(&link, created, "init_data");
    Ok((link, created))
}

fn log_linked(link: &Link, created: bool, proof: &'static str) {
    tracing::info!(
        user_id = %link.user_id,
        telegram_user_id = link.telegram_user_id.get(),
        proof,
        outcome = if created { "linked" } else { "already_linked" },
        "link"
    );
}

async fn revoke(
    deps: &LinkFunction,
    req: &Request,
    id: PathParam<TelegramUserId>,
) -> Result<Response<Body>, Problem> {
    let admin = deps.auth.authenticate_admin(req)?;
    let id = id.or(LinkError::TelegramUserIdInvalid)?;
    match deps.links.unlink_by_telegram(id).await? {
        Some(link) => {
            tracing::info!(
                admin = %admin.user_id,
                telegram_user_id = id.get(),
                user_id = %link.user_id,
                outcome = "revoked",
                "admin revoke"
            );
            Ok(json(
                StatusCode::OK,
                &Revoked {
                    revoked: link.into(),
                },
            ))
        }
        None => Err(LinkError::LinkNotFound.into()),
    }
}

async fn block(
    deps: &LinkFunction,
    req: &Request,
    id: PathParam<TelegramUserId>,
) -> Result<Response<Body>, Problem> {
    let admin = deps.auth.authenticate_admin(req)?;
    let id = id.or(LinkError::TelegramUserIdInvalid)?;
    let outcome = deps
        .blocks
        .block(&Block {
            telegram_user_id: id,
            blocked_at: deps.clock.now(),
            blocked_by: admin.user_id.clone(),
        })
        .await?;
    tracing::info!(
        admin = %admin.user_id,
        telegram_user_id = id.get(),
        already_blocked = outcome.already,
        revoked_user_id = outcome.revoked.as_ref().map(|l| l.user_id.as_str()),
        outcome = "blocked",
        "admin block"
    );
    Ok(json(
        StatusCode::OK,
        &BlockView {
            telegram_user_id: id,
            blocked: true,
            blocked_at: outcome.block.blocked_at.secs(),
            blocked_by: outcome.block.blocked_by,
            already_blocked: outcome.already,
            revoked: outcome.revoked.map(LinkView::from),
        },
    ))
}

async fn unblock(
    deps: &LinkFunction,
    req: &Request,
    id: PathParam<TelegramUserId>,
) -> Result<Response<Body>, Problem> {
    let admin = deps.auth.authenticate_admin(req)?;
    let id = id.or(LinkError::TelegramUserIdInvalid)?;
    match deps.blocks.unblock(id).await? {
        Some(_) => {
            tracing::info!(
                admin = %admin.user_id,
                telegram_user_id = id.get(),
                outcome = "unblocked",
                "admin unblock"
            );
            Ok(json(
                StatusCode::OK,
                &Unblocked {
                    telegram_user_id: id,
                    blocked: false,
                },
            ))
        }
        None => Err(LinkError::BlockNotFound.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lambda_http::http::Method;
    use tglink_shared::routes::parse;

    #[test]
    fn problems_have_stable_codes() {
        let cases: Vec<(LinkError, u16, &str)> = vec![
            (LinkError::ProofMissing, 400, "body_invalid"),
            (LinkError::SessionInvalid, 401, "session_invalid"),
            (MiniAppError::Replayed.into(), 401, "initdata_replayed"),
            (MiniAppError::Blocked.into(), 401, "telegram_user_blocked"),
            (
                LinkError::Conflict(LinkSide::Telegram),
                409,
                "link_conflict",
            ),
            (LinkError::Conflict(LinkSide::User), 409, "link_conflict"),
            (LinkError::LinkNotFound, 404, "link_not_found"),
            (LinkError::BlockNotFound, 404, "block_not_found"),
            (
                LinkError::TelegramUserIdInvalid,
                400,
                "telegram_user_id_invalid",
            ),
            (
                LinkError::Store(StoreError::Unavailable("x".into())),
                503,
                "service_unavailable",
            ),
        ];
        for (err, status, code) in cases {
            let problem = Problem::from(err);
            assert_eq!(problem.status.as_u16(), status);
            assert_eq!(problem.code, code);
        }
    }

    #[test]
    fn every_route_reaches_its_operation() {
        tglink_shared::routes::check::<LinkOp>();
    }

    #[test]
    fn path_ids_must_be_positive_integers() {
        let id = |raw: &str| {
            let path = format!("/api/admin/telegram/links/{raw}/revoke");
            let Ok(LinkOp::Revoke(id)) = parse::<LinkOp>(&Method::POST, &path) else {
                panic!("{path} is not a revoke");
            };
            id.or(LinkError::TelegramUserIdInvalid)
        };
        assert_eq!(id("42").unwrap().get(), 42);
        for bad in ["0", "-1", "x", "1e3"] {
            assert!(matches!(id(bad), Err(LinkError::TelegramUserIdInvalid)));
        }
    }

    /// A link function on an empty in-memory store, and an app user's and an admin's JWT.
    fn app() -> (LinkFunction, String, String) {
        use tglink_shared::{
            auth::{DevClaims, sign_hs256},
            config::{JwtConfig, MapEnv},
            store::Store,
        };
        let env = MapEnv::new()
            .with("APP_JWT_SECRET", "unit-test-secret-unit-test-secret")
            .with("APP_JWT_ISSUER", "unit")
            .with("APP_JWT_AUDIENCE", "unit");
        let config = JwtConfig::from_env(&env).unwrap();
        let sign = |roles: Vec<String>| {
            let mut claims = DevClaims::new("user-1", &config, 600);
            claims.roles = roles;
            sign_hs256("unit-test-secret-unit-test-secret", &claims)
        };
        let store = Store::Sqlite(std::sync::Arc::new(
            tglink_shared::store::sqlite::SqliteStore::open(":memory:").unwrap(),
        ));
        let deps = LinkFunction {
            enabled: true,
            miniapp: None,
            auth: JwtVerifier::new(&config).unwrap(),
            links: store.links(),
            signins: store.signins(),
            verifier: tglink_shared::oauth::AccessTokenVerifier::new(
                tglink_shared::oauth::TokenConfig {
                    issuer: "http://127.0.0.1".into(),
                    audience: "unit".into(),
                    access_token_ttl: std::time::Duration::from_secs(300),
                },
                store.signing_keys(),
            ),
            blocks: store.blocks(),
            clock: Clock::system(),
        };
        (deps, sign(vec![]), sign(vec!["tglink:admin".into()]))
    }

    /// The status and `code` of the answer to `method path`.
    async fn call(
        deps: &LinkFunction,
        method: &str,
        path: &str,
        jwt: Option<&str>,
    ) -> (u16, String) {
        let mut req = lambda_http::http::Request::builder()
            .method(method)
            .uri(path);
        if let Some(jwt) = jwt {
            req = req.header("authorization", format!("Bearer {jwt}"));
        }
        let resp = handle(deps, req.body(Body::Empty).unwrap()).await;
        let Body::Text(text) = resp.body() else {
            panic!("expected a problem")
        };
        let body: serde_json::Value = serde_json::from_str(text).unwrap();
        (
            resp.status().as_u16(),
            body["code"].as_str().unwrap().to_owned(),
        )
    }

    #[tokio::test]
    async fn a_bad_path_id_is_answered_after_authentication() {
        let (deps, user, admin) = app();
        for action in ["revoke", "block", "unblock"] {
            let path = format!("/api/admin/telegram/links/abc/{action}");
            let answers = [
                (call(&deps, "POST", &path, None).await, 401, "auth_required"),
                (
                    call(&deps, "POST", &path, Some(&user)).await,
                    403,
                    "forbidden",
                ),
                (
                    call(&deps, "POST", &path, Some(&admin)).await,
                    400,
                    "telegram_user_id_invalid",
                ),
                (
                    call(&deps, "GET", &path, Some(&admin)).await,
                    405,
                    "method_not_allowed",
                ),
            ];
            for ((status, code), want_status, want_code) in answers {
                assert_eq!((status, code.as_str()), (want_status, want_code), "{path}");
            }
        }
        // The Mini App off: linking stays (by access token; a body is needed), reading too.
        assert_eq!(
            call(&deps, "POST", "/api/telegram/link", Some(&user)).await,
            (400, "body_missing".to_owned())
        );
        assert_eq!(
            call(&deps, "GET", "/api/telegram/link", Some(&user)).await,
            (404, "link_not_found".to_owned())
        );
        // The feature off: every request is 404, whatever its method.
        let off = LinkFunction {
            enabled: false,
            ..deps
        };
        for (method, path) in [
            ("GET", "/api/telegram/link"),
            ("PUT", "/api/telegram/link"),
            ("POST", "/api/admin/telegram/links/abc/revoke"),
        ] {
            assert_eq!(
                call(&off, method, path, Some(&admin)).await,
                (404, "not_found".to_owned())
            );
        }
    }

    #[test]
    fn access_tokens_are_redacted() {
        let token: AccessToken = serde_json::from_str(r#""abc-secret""#).unwrap();
        assert!(!format!("{token:?}").contains("abc-secret"));
    }
}
