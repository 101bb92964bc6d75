//! Signatures of provider callbacks.
//!
//! The provider sends `X-Tglink-Signature: t=<unix seconds>,v1=<hex>` where `<hex>` is the
//! lowercase hex HMAC-SHA256, keyed with the UTF-8 bytes of `REGISTRATION_CALLBACK_SECRET`,
//! of the bytes `<t>.<raw request body>` (`<t>` exactly as it appears in the header). Several
//! `v1=` entries may be sent (e.g. one per secret while rotating); one valid entry suffices.
//! Entries of other schemes are ignored. The signature is checked first (constant time), then
//! the timestamp must be within [`TOLERANCE_SECS`] of the server's clock in either direction.

use std::fmt;

use aws_lc_rs::hmac;
use tglink_shared::{config::ConfigError, time::UnixTime};
use zeroize::Zeroizing;

/// The request header carrying the signature.
pub const HEADER: &str = "X-Tglink-Signature";

/// Largest accepted difference between the signed timestamp and the server's clock.
pub const TOLERANCE_SECS: u64 = 300;

/// At most this many `v1=` entries are tried.
pub const MAX_SIGNATURES: usize = 8;

/// Shortest accepted `REGISTRATION_CALLBACK_SECRET`.
pub const MIN_SECRET_LEN: usize = 32;

/// The HMAC key. `Debug` redacts it.
pub struct CallbackSecret {
    key: hmac::Key,
    _bytes: Zeroizing<Vec<u8>>,
}

impl CallbackSecret {
    /// The key of `REGISTRATION_CALLBACK_SECRET` (at least [`MIN_SECRET_LEN`] bytes).
    pub fn new(secret: &str) -> Result<Self, ConfigError> {
        if secret.len() < MIN_SECRET_LEN {
            return Err(ConfigError::new(
                "REGISTRATION_CALLBACK_SECRET",
                format_args!("is too short: use at least {MIN_SECRET_LEN} bytes"),
            ));
        }
        Ok(Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes()),
            _bytes: Zeroizing::new(secret.as_bytes().to_vec()),
        })
    }
}

impl fmt::Debug for CallbackSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CallbackSecret(<redacted>)")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the X-Tglink-Signature header is missing")]
    Missing,
    #[error("the X-Tglink-Signature header is malformed")]
    Malformed,
    #[error("no signature in X-Tglink-Signature matches the body")]
    Invalid,
    #[error("the signed timestamp is more than {TOLERANCE_SECS} seconds from the server's clock")]
    Stale,
}

fn message(timestamp: &str, body: &[u8]) -> Vec<u8> {
    let mut msg = Vec::with_capacity(timestamp.len() + 1 + body.len());
    msg.extend_from_slice(timestamp.as_bytes());
    msg.push(b'.');
    msg.extend_from_slice(body);
    msg
}

/// The lowercase hex HMAC-SHA256 of `<timestamp>.<body>` under `secret`.
pub fn signature_hex(secret: &[u8], timestamp: &str, body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    hex::encode(hmac::sign(&key, &message(timestamp, body)))
}

/// The header value a provider sends for `body` at `timestamp`: `t=<unix>,v1=<hex>`.
pub fn sign(secret: &[u8], timestamp: UnixTime, body: &[u8]) -> String {
    let t = timestamp.secs().to_string();
    format!("t={t},v1={}", signature_hex(secret, &t, body))
}

struct Parsed<'h> {
    timestamp: &'h str,
    signatures: Vec<Vec<u8>>,
}

fn parse(header: &str) -> Result<Parsed<'_>, SignatureError> {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        let (name, value) = part
            .trim()
            .split_once('=')
            .ok_or(SignatureError::Malformed)?;
        match name.trim() {
            "t" => {
                let valid =
                    (1..=20).contains(&value.len()) && value.bytes().all(|c| c.is_ascii_digit());
                if timestamp.is_some() || !valid {
                    return Err(SignatureError::Malformed);
                }
                timestamp = Some(value);
            }
            "v1" => {
                if signatures.len() == MAX_SIGNATURES {
                    return Err(SignatureError::Malformed);
                }
                let tag = hex::decode(value.trim()).map_err(|_| SignatureError::Malformed)?;
                if tag.len() != 32 {
                    return Err(SignatureError::Malformed);
                }
                signatures.push(tag);
            }
            _ => {}
        }
    }
    match timestamp {
        Some(timestamp) if !signatures.is_empty() => Ok(Parsed {
            timestamp,
            signatures,
        }),
        _ => Err(SignatureError::Malformed),
    }
}

/// Checks a callback: `header` is the raw `X-Tglink-Signature` value, `body` the raw request
/// body. Returns the signed timestamp.
pub fn verify(
    secret: &CallbackSecret,
    header: Option<&[u8]>,
    body: &[u8],
    now: UnixTime,
) -> Result<UnixTime, SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let header = std::str::from_utf8(header).map_err(|_| SignatureError::Malformed)?;
    let parsed = parse(header)?;
    let msg = message(parsed.timestamp, body);
    // Every entry is checked (constant time each), so timing does not reveal which matched.
    let matched = parsed.signatures.iter().fold(false, |ok, tag| {
        hmac::verify(&secret.key, &msg, tag).is_ok() | ok
    });
    if !matched {
        return Err(SignatureError::Invalid);
    }
    let signed_at = parsed
        .timestamp
        .parse::<u64>()
        .map(UnixTime)
        .map_err(|_| SignatureError::Malformed)?;
    if signed_at.secs().abs_diff(now.secs()) > TOLERANCE_SECS {
        return Err(SignatureError::Stale);
    }
    Ok(signed_at)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "example-callback-secret-0123456789abcdef";

    fn secret() -> CallbackSecret {
        CallbackSecret::new(SECRET).unwrap()
    }

    #[test]
    fn documented_example_matches() {
        // The worked example of docs/api.md ("Registration callbacks (for 2FA providers)").
        let body = br#"{"token":"tok","status":"completed","seed_id":"seed-1"}"#;
        assert_eq!(
            sign(SECRET.as_bytes(), UnixTime(1750000000), body),
            "t=1750000000,v1=0f7e138e76c41f097038339b334552eb0eac922173cfcafa0d6024cb97f0ffd0"
        );
    }

    #[test]
    fn round_trip_and_tolerance_in_both_directions() {
        let body = b"{\"token\":\"x\"}";
        let now = UnixTime(1_750_000_000);
        for offset in [0i64, 300, -300] {
            let t = UnixTime(now.secs().checked_add_signed(offset).unwrap());
            let header = sign(SECRET.as_bytes(), t, body);
            assert_eq!(verify(&secret(), Some(header.as_bytes()), body, now), Ok(t));
        }
        for offset in [301i64, -301, 86_400] {
            let t = UnixTime(now.secs().checked_add_signed(offset).unwrap());
            let header = sign(SECRET.as_bytes(), t, body);
            assert_eq!(
                verify(&secret(), Some(header.as_bytes()), body, now),
                Err(SignatureError::Stale)
            );
        }
    }

    #[test]
    fn altered_body_wrong_secret_and_moved_timestamp_are_invalid() {
        let now = UnixTime(1_750_000_000);
        let header = sign(SECRET.as_bytes(), now, b"{\"status\":\"completed\"}");
        assert_eq!(
            verify(
                &secret(),
                Some(header.as_bytes()),
                b"{\"status\":\"rejected\"}",
                now
            ),
            Err(SignatureError::Invalid)
        );
        let other = sign(b"another-secret-of-at-least-32-bytes!!", now, b"{}");
        assert_eq!(
            verify(&secret(), Some(other.as_bytes()), b"{}", now),
            Err(SignatureError::Invalid)
        );
        // The timestamp is signed: moving it invalidates the signature.
        let header = sign(SECRET.as_bytes(), now, b"{}");
        let moved = header.replace("t=1750000000", "t=1750000001");
        assert_eq!(
            verify(&secret(), Some(moved.as_bytes()), b"{}", now),
            Err(SignatureError::Invalid)
        );
        // A stale timestamp with a bad signature is reported as invalid, not stale.
        let stale_forged = format!("t=1,v1={}", "00".repeat(32));
        assert_eq!(
            verify(&secret(), Some(stale_forged.as_bytes()), b"{}", now),
            Err(SignatureError::Invalid)
        );
    }

    #[test]
    fn several_v1_entries_one_valid_suffices_and_other_schemes_are_ignored() {
        let now = UnixTime(1_750_000_000);
        let body = b"{}";
        let good = signature_hex(SECRET.as_bytes(), "1750000000", body);
        let bad = signature_hex(b"old-secret-old-secret-old-secret!", "1750000000", body);
        for header in [
            format!("t=1750000000,v1={bad},v1={good}"),
            format!("v1={good}, t=1750000000"),
            format!("t=1750000000,v0=zzz,v1={good}"),
        ] {
            assert_eq!(
                verify(&secret(), Some(header.as_bytes()), body, now),
                Ok(now),
                "{header}"
            );
        }
        let only_bad = format!("t=1750000000,v1={bad}");
        assert_eq!(
            verify(&secret(), Some(only_bad.as_bytes()), body, now),
            Err(SignatureError::Invalid)
        );
    }

    #[test]
    fn malformed_headers() {
        let now = UnixTime(1_750_000_000);
        let good = signature_hex(SECRET.as_bytes(), "1750000000", b"{}");
        assert_eq!(
            verify(&secret(), None, b"{}", now),
            Err(SignatureError::Missing)
        );
        for header in [
            String::new(),
            "garbage".into(),
            format!("v1={good}"),
            "t=1750000000".into(),
            format!("t=-5,v1={good}"),
            format!("t=17e8,v1={good}"),
            format!("t=1750000000,t=1750000000,v1={good}"),
            "t=1750000000,v1=abc".into(),
            format!("t=1750000000,v1={}", "zz".repeat(32)),
            format!(
                "t=1750000000{}",
                format!(",v1={good}").repeat(MAX_SIGNATURES + 1)
            ),
            format!("t={},v1={good}", "9".repeat(21)),
        ] {
            assert_eq!(
                verify(&secret(), Some(header.as_bytes()), b"{}", now),
                Err(SignatureError::Malformed),
                "{header}"
            );
        }
        assert_eq!(
            verify(&secret(), Some(&[0xff, 0xfe]), b"{}", now),
            Err(SignatureError::Malformed)
        );
    }

    #[test]
    fn secret_is_checked_and_redacted() {
        assert!(CallbackSecret::new("short").is_err());
        assert!(!format!("{:?}", secret()).contains("example"));
    }
}
