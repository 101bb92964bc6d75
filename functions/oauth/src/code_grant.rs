//! `grant_type=authorization_code` (RFC 6749 §4.1.3, PKCE RFC 7636 §4.5, OIDC Core §3.1.3):
//! a registered client (`TGLINK_OIDC_CLIENTS`) redeems the one-time code the `authorize`
//! function's Telegram callback issued.
//!
//! - Client authentication: a confidential client (`client_secret_sha256` registered) with
//!   `client_secret_basic` or `client_secret_post` (exactly one); a public client with
//!   `client_id` alone (`none`), and presenting a secret is refused. Failure →
//!   `401 invalid_client`.
//! - The code is redeemed once (port `Authorizations`, one conditional write recording the
//!   session id this redemption starts). It must be live, issued to this client, for this
//!   `redirect_uri`, and `code_verifier` must match its S256 `code_challenge`; otherwise
//!   `invalid_grant` (the code is spent all the same).
//! - A second redemption is refused and **ends the session the first one started**, so the
//!   refresh token it issued dies (RFC 6749 §4.1.2, §10.5; the access token lives out its
//!   `TGLINK_ACCESS_TOKEN_TTL_SEC`).
//! - The session starts with `amr` `telegram_oidc` ([`SignIns::start`]: the block check and
//!   the session cap as every sign-in; the code's hash is the sign-in's replay claim). Answer:
//!   `id_token` (ES256, `aud` = the client, `nonce`, `auth_time`, `amr`, `sid`, `at_hash`,
//!   profile claims with the `profile` scope), an access token and a refresh token.
//!
//! Two DynamoDB calls: the redemption and the session start.

use lambda_http::{Body, Request, Response, http::header};
use tglink_shared::{
    oauth::{IdTokenClaims, OidcClient, at_hash, pkce},
    store::{
        authorizations::RedeemOutcome,
        signins::{
            Amr, InitDataUse, NewSession, RefreshKey, RefreshToken, SessionId, StartOutcome,
        },
    },
    token::TokenHash,
};

use super::{Form, OAuth, OAuthError, claims};

pub const AUTHORIZATION_CODE: &str = "authorization_code";

/// How long the code's replay claim on the sign-in record outlives the code.
const CLAIM_RETAIN_SECS: u64 = 600;

pub async fn grant(deps: &OAuth, req: &Request, form: &Form) -> Result<Response<Body>, OAuthError> {
    let client = authenticate(deps, req, form)?;
    let code = form.required("code")?;
    let verifier = form.required("code_verifier")?;
    if !pkce::is_valid_verifier(verifier) {
        return Err(OAuthError::invalid_request(
            "code_verifier must be 43-128 of A-Z a-z 0-9 - . _ ~",
        ));
    }
    let redirect_uri = form.required("redirect_uri")?;
    let now = deps.clock.now();
    let code_hash = TokenHash::of(code.as_bytes());
    let sid = SessionId::random();
    let issued = match deps
        .authorizations
        .redeem_code(&code_hash, sid, now)
        .await?
    {
        RedeemOutcome::Redeemed(issued) => issued,
        RedeemOutcome::Replayed {
            telegram_user_id,
            sid: first,
        } => {
            let ended = deps.signins.end_session(telegram_user_id, first).await?;
            tracing::warn!(
                client_id = %client.client_id,
                telegram_user_id = telegram_user_id.get(),
                sid = %first,
                ended,
                outcome = "code_replayed",
                "oauth authorization_code: a used code was presented again; its session is ended"
            );
            return Err(OAuthError::invalid_grant(
                "the code was used before; what it issued is revoked",
            ));
        }
        RedeemOutcome::Unknown => {
            tracing::info!(client_id = %client.client_id, outcome = "unknown_code", "oauth authorization_code refused");
            return Err(OAuthError::invalid_grant("the code is invalid or expired"));
        }
    };
    let refused = |outcome: &'static str, description: &'static str| {
        tracing::info!(client_id = %client.client_id, outcome, "oauth authorization_code refused");
        OAuthError::invalid_grant(description)
    };
    if issued.client_id != client.client_id {
        return Err(refused(
            "wrong_client",
            "the code was issued to another client",
        ));
    }
    if issued.redirect_uri != redirect_uri {
        return Err(refused(
            "wrong_redirect_uri",
            "redirect_uri differs from the authorization request's",
        ));
    }
    if !pkce::verify_s256(verifier, &issued.code_challenge) {
        return Err(refused(
            "wrong_code_verifier",
            "code_verifier does not match the code_challenge",
        ));
    }

    let id = issued.telegram_user_id;
    let first = RefreshToken::mint(RefreshKey {
        telegram_user_id: id,
        sid,
        generation: 0,
    });
    let session = NewSession {
        telegram_user_id: id,
        sid,
        amr: Amr::TelegramOidc,
        client_id: client.client_id.clone(),
        profile: issued.profile.clone(),
        auth_time: issued.auth_time,
        created_at: now,
        expires_at: now.plus_secs(deps.session_ttl_secs),
        refresh: first.hash(),
    };
    // The code's hash is the sign-in's replay claim: one code starts at most one session even
    // if its record were lost.
    let claim = InitDataUse {
        telegram_user_id: id,
        fingerprint: code_hash,
        retain_until: issued.expires_at.plus_secs(CLAIM_RETAIN_SECS),
        now,
    };
    let started = match deps
        .signins
        .start(&session, &claim, deps.sessions_max)
        .await?
    {
        StartOutcome::Started { session, evicted } => {
            tracing::info!(
                client_id = %client.client_id,
                telegram_user_id = id.get(),
                sid = %session.sid,
                evicted = evicted.map(|s| s.to_string()),
                linked = session.app_user_id.is_some(),
                outcome = "started",
                "oauth authorization_code"
            );
            session
        }
        StartOutcome::Replayed => {
            return Err(refused("code_replayed", "the code was used before"));
        }
        StartOutcome::Blocked => {
            tracing::info!(
                telegram_user_id = id.get(),
                "oauth authorization_code: blocked user"
            );
            return Err(refused("blocked", "blocked: this Telegram user is blocked"));
        }
    };

    let access = claims(&deps.tokens, &started, now);
    let access_token = deps.signer.sign(&access).await?;
    let profile = issued.scope.split(' ').any(|s| s == "profile");
    let id_claims = IdTokenClaims {
        iss: deps.tokens.issuer.clone(),
        sub: id.to_string(),
        aud: client.client_id.clone(),
        azp: client.client_id.clone(),
        exp: access.exp,
        iat: access.iat,
        auth_time: access.auth_time,
        nonce: issued.nonce.clone(),
        amr: access.amr.clone(),
        sid: access.sid.clone(),
        at_hash: at_hash(&access_token),
        app_user_id: access.app_user_id.clone(),
        preferred_username: profile.then(|| started.profile.username.clone()).flatten(),
        given_name: profile
            .then(|| started.profile.first_name.clone())
            .flatten(),
        name: profile
            .then(|| started.profile.first_name.clone())
            .flatten(),
        locale: profile
            .then(|| started.profile.language_code.clone())
            .flatten(),
    };
    let id_token = deps.signer.sign_id_token(&id_claims).await?;
    let body = serde_json::json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": deps.tokens.access_token_ttl.as_secs(),
        "refresh_token": first.expose(),
        "id_token": id_token,
        "scope": issued.scope,
    });
    Ok(super::token_response(
        lambda_http::http::StatusCode::OK,
        body.to_string(),
    ))
}

/// The registered client of the request, authenticated as it is registered.
fn authenticate<'a>(
    deps: &'a OAuth,
    req: &Request,
    form: &Form,
) -> Result<&'a OidcClient, OAuthError> {
    let basic = basic_credentials(req)?;
    let post_secret = form.get("client_secret");
    let (client_id, secret) = match (basic, post_secret) {
        (Some(_), Some(_)) => {
            return Err(OAuthError::invalid_request(
                "use one client authentication method, not two",
            ));
        }
        (Some((id, secret)), None) => {
            if form.get("client_id").is_some_and(|f| f != id) {
                return Err(OAuthError::invalid_client(
                    "client_id differs from the credentials",
                ));
            }
            (id, Some(secret))
        }
        (None, secret) => {
            let id = form.required("client_id")?.to_owned();
            (id, secret.map(str::to_owned))
        }
    };
    let client = deps
        .clients
        .get(&client_id)
        .ok_or_else(|| OAuthError::invalid_client("unknown client or wrong credentials"))?;
    let authenticated = match (&secret, client.is_confidential()) {
        (Some(secret), true) => client.secret_matches(secret),
        (None, false) => true,
        // A confidential client without its secret, or a public one with a secret.
        _ => false,
    };
    if !authenticated {
        tracing::info!(client_id = %client.client_id, outcome = "client_auth_failed", "oauth authorization_code refused");
        return Err(OAuthError::invalid_client(
            "unknown client or wrong credentials",
        ));
    }
    Ok(client)
}

/// `Authorization: Basic` credentials (RFC 6749 §2.3.1: each part form-urlencoded).
fn basic_credentials(req: &Request) -> Result<Option<(String, String)>, OAuthError> {
    let Some(value) = req.headers().get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let bad = || OAuthError::invalid_client("malformed Basic credentials");
    let value = value.to_str().map_err(|_| bad())?;
    let (scheme, encoded) = value.split_once(' ').ok_or_else(bad)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(bad());
    }
    use base64::Engine;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| bad())?;
    let text = String::from_utf8(decoded).map_err(|_| bad())?;
    let (id, secret) = text.split_once(':').ok_or_else(bad)?;
    let unescape = |s: &str| -> Result<String, OAuthError> {
        percent_encoding::percent_decode_str(&s.replace('+', " "))
            .decode_utf8()
            .map(|c| c.into_owned())
            .map_err(|_| bad())
    };
    Ok(Some((unescape(id)?, unescape(secret)?)))
}
