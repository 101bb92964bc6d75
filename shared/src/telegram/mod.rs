//! Telegram-specific formats shared by the functions.
//!
//! [`initdata`] validates the `initData` string a Telegram Mini App hands to its backend,
//! under either the bot-token HMAC scheme or Telegram's Ed25519 third-party scheme;
//! [`bot_username`] is the service bot's name;
//! [`miniapp`] is what the Mini App endpoints build on it (configuration, refusals, replay);
//! [`oidc`] is Telegram's OpenID Connect with tglink as the relying party.

pub mod bot_api;
pub mod bot_username;
pub mod initdata;
pub mod miniapp;
pub mod oidc;
pub mod update;
