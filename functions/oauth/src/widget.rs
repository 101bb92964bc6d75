//! The Login Widget token exchange: `grant_type=urn:ietf:params:oauth:grant-type:token-exchange`,
//! `subject_token_type=urn:tglink:params:oauth:token-type:telegram-login-widget`,
//! `subject_token` = the widget's fields as the query string of its `data-auth-url` redirect
//! (without `?`).
//!
//! The data is checked by [`tglink_shared::telegram::login_widget`] (hash keyed by
//! `SHA256(bot_token)`, `TELEGRAM_LOGIN_MAX_AGE_SEC`), then the same one write as the initData
//! exchange claims it on the Telegram user's sign-in record (one replay namespace with
//! initData: a widget payload used once is refused after), checks the block and starts a
//! session with `amr` `telegram_widget`. Refusals are `invalid_request` whose description
//! starts with the stable code ([`WidgetError::code`]). With `TELEGRAM_LOGIN_WIDGET_ENABLED`
//! off the exchange is refused with `sign_in_method_disabled`.

use lambda_http::{Body, Response};
use tglink_shared::{
    ids::TelegramUserId,
    store::signins::{Amr, NewSession, Profile, RefreshKey, RefreshToken, SessionId},
    telegram::login_widget::{RawWidgetData, WidgetError},
    time::UnixTime,
};

use super::{ACCESS_TOKEN_TYPE, OAuth, OAuthError, Refused, issue, method_disabled, start};

pub const WIDGET_TOKEN_TYPE: &str = "urn:tglink:params:oauth:token-type:telegram-login-widget";

/// A refusal: one log line (code and, once authenticated, the user id), and RFC 8693 §2.2.2's
/// `invalid_request` whose description starts with the stable code.
fn refused(err: WidgetError, id: Option<TelegramUserId>) -> OAuthError {
    tracing::info!(
        telegram_user_id = id.map(TelegramUserId::get),
        outcome = err.code(),
        "oauth widget exchange refused"
    );
    OAuthError::invalid_request(format!("{}: {err}", err.code()))
}

pub(super) async fn exchange(
    deps: &OAuth,
    subject: &str,
    client_id: String,
) -> Result<Response<Body>, OAuthError> {
    let Some(widget) = &deps.widget else {
        return Err(method_disabled("TELEGRAM_LOGIN_WIDGET_ENABLED"));
    };
    let now = deps.clock.now();
    let login = widget
        .verify(&RawWidgetData::new(subject), now)
        .map_err(|e| refused(e, None))?;
    let id = login.id;
    let first = RefreshToken::mint(RefreshKey {
        telegram_user_id: id,
        sid: SessionId::random(),
        generation: 0,
    });
    let session = NewSession {
        telegram_user_id: id,
        sid: first.key().sid,
        amr: Amr::TelegramWidget,
        client_id,
        profile: Profile {
            username: login.username.clone(),
            first_name: Some(login.first_name.clone()).filter(|n| !n.is_empty()),
            language_code: None,
            is_premium: None,
        },
        auth_time: UnixTime(login.auth_date),
        created_at: now,
        expires_at: now.plus_secs(widget.session_ttl_secs),
        refresh: first.hash(),
    };
    let use_ = widget.widget_use(&login, now);
    let started = start(deps, &session, &use_, |outcome| {
        let err = match outcome {
            Refused::Replayed => WidgetError::Replayed,
            Refused::Blocked => WidgetError::Blocked,
        };
        refused(err, Some(id))
    })
    .await?;
    issue(deps, &started, &first, Some(ACCESS_TOKEN_TYPE), now).await
}
