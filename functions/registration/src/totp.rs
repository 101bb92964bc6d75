//! TOTP seeds and codes (RFC 6238: TOTP over RFC 4226 HOTP), by the `totp-rs` crate.
//!
//! A provider's `totp_seed` is the base32 secret as authenticator apps show it (spaces, lower
//! case and `=` padding tolerated), or a whole `otpauth://totp/…` key URI whose `algorithm`
//! (`SHA1`, `SHA256`, `SHA512`), `digits` (6–8) and `period` (seconds) then apply; the
//! defaults are SHA-1, 6 digits, 30 s. The secret must be at least 128 bits (RFC 4226 §4, R6).
//! A code is checked against the current time step and one on each side (clock skew); the
//! comparison is constant-time (`totp-rs` compares tokens with `constant_time_eq`).

use totp_rs::{Builder, Secret, Totp};

/// Why a `totp_seed` is refused (the seed itself is never part of the message).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SeedError {
    #[error(
        "totp_seed must be a base32 secret of at least 128 bits, or an otpauth://totp/ key URI with such a secret, digits 6-8, algorithm SHA1/SHA256/SHA512 and a positive period"
    )]
    Invalid,
}

/// The TOTP generator of a seed, or why it is refused.
pub fn parse_seed(raw: &str) -> Result<Totp, SeedError> {
    let raw = raw.trim();
    let is_uri = raw
        .get(..10)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("otpauth://"));
    if is_uri {
        return Totp::from_url(raw).map_err(|_| SeedError::Invalid);
    }
    let normalized: String = raw
        .chars()
        .filter(|c| !c.is_ascii_whitespace() && *c != '-')
        .collect::<String>()
        .trim_end_matches('=')
        .to_ascii_uppercase();
    if normalized.is_empty() {
        return Err(SeedError::Invalid);
    }
    let secret = Secret::try_from_base32(&normalized).map_err(|_| SeedError::Invalid)?;
    Builder::new()
        .with_secret(secret)
        .build()
        .map_err(|_| SeedError::Invalid)
}

/// The time step (`unix time / period`) whose code `code` is, among the step of `now` and one
/// on each side; `None` when it is none of them. A code that is not exactly the seed's number
/// of ASCII digits matches nothing.
pub fn matching_step(totp: &Totp, code: &str, now: u64) -> Option<u64> {
    let well_formed =
        code.len() == usize::from(totp.digits()) && code.bytes().all(|b| b.is_ascii_digit());
    if !well_formed {
        return None;
    }
    totp.check(code, now)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 Appendix B's seeds: ASCII "1234567890" repeated to 20, 32 and 64 bytes.
    const SHA1_SEED: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
    const SHA256_SEED: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZA";
    const SHA512_SEED: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZDGNA";

    /// RFC 6238 Appendix B: (time, SHA1, SHA256, SHA512), 8 digits, 30 s.
    const VECTORS: &[(u64, &str, &str, &str)] = &[
        (59, "94287082", "46119246", "90693936"),
        (1111111109, "07081804", "68084774", "25091201"),
        (1111111111, "14050471", "67062674", "99943326"),
        (1234567890, "89005924", "91819424", "93441116"),
        (2000000000, "69279037", "90698825", "38618901"),
        (20000000000, "65353130", "77737706", "47863826"),
    ];

    fn uri(seed: &str, algorithm: &str) -> String {
        format!("otpauth://totp/Example:alice?secret={seed}&algorithm={algorithm}&digits=8")
    }

    #[test]
    fn rfc_6238_appendix_b() {
        let sha1 = parse_seed(&uri(SHA1_SEED, "SHA1")).unwrap();
        let sha256 = parse_seed(&uri(SHA256_SEED, "SHA256")).unwrap();
        let sha512 = parse_seed(&uri(SHA512_SEED, "SHA512")).unwrap();
        for &(time, a, b, c) in VECTORS {
            let step = time / 30;
            assert_eq!(matching_step(&sha1, a, time), Some(step), "SHA1 at {time}");
            assert_eq!(
                matching_step(&sha256, b, time),
                Some(step),
                "SHA256 at {time}"
            );
            assert_eq!(
                matching_step(&sha512, c, time),
                Some(step),
                "SHA512 at {time}"
            );
        }
    }

    #[test]
    fn one_step_of_skew_each_side_and_no_more() {
        let totp = parse_seed(SHA1_SEED).unwrap();
        let now = 1_700_000_000;
        let code = |t: u64| totp.generate(t).to_string();
        assert_eq!(matching_step(&totp, &code(now), now), Some(now / 30));
        assert_eq!(
            matching_step(&totp, &code(now - 30), now),
            Some(now / 30 - 1)
        );
        assert_eq!(
            matching_step(&totp, &code(now + 30), now),
            Some(now / 30 + 1)
        );
        assert_eq!(matching_step(&totp, &code(now - 60), now), None);
        assert_eq!(matching_step(&totp, &code(now + 60), now), None);
    }

    #[test]
    fn defaults_are_sha1_6_digits_30_seconds() {
        let totp = parse_seed(" gezd gnbv gy3t qojq gezd gnbv gy3t qojq ").unwrap();
        assert_eq!((totp.digits(), totp.step()), (6, 30));
        assert_eq!(matching_step(&totp, "287082", 59), Some(1));
        for bad in ["28708", "2870820", "28708a", " 287082", "+28708"] {
            assert_eq!(matching_step(&totp, bad, 59), None, "{bad}");
        }
        let custom = parse_seed(&format!(
            "otpauth://totp/x?secret={SHA1_SEED}&period=60&digits=7"
        ))
        .unwrap();
        assert_eq!((custom.digits(), custom.step()), (7, 60));
    }

    #[test]
    fn refused_seeds() {
        for bad in [
            "",
            "   ",
            "JBSWY3DPEHPK3PXP", // 80 bits: below RFC 4226's 128
            "not base32!",
            "otpauth://hotp/x?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&counter=1",
            "otpauth://totp/x?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&digits=9",
            "otpauth://totp/x?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&algorithm=MD5",
            "otpauth://totp/x?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&period=0",
            "otpauth://totp/x?digits=6",
            "https://example.com/?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ",
        ] {
            assert_eq!(parse_seed(bad).err(), Some(SeedError::Invalid), "{bad}");
        }
        assert!(!SeedError::Invalid.to_string().contains("GEZD"));
    }
}
