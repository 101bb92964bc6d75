//! PKCE (RFC 7636) and the random values of an authorization request: the `S256` challenge of a
//! verifier, new verifiers, `state`s and `nonce`s, and the constant-time check a token endpoint
//! makes. Used both ways: tglink as Telegram's relying party (its own verifier, state and nonce
//! towards Telegram) and tglink as the host app's provider (the client's challenge).

use aws_lc_rs::{digest, rand::SecureRandom};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};

/// The only code challenge method tglink sends or accepts (`plain` is refused).
pub const S256: &str = "S256";

/// `n` random bytes from the system source, base64url without padding.
fn random_b64(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    aws_lc_rs::rand::SystemRandom::new()
        .fill(&mut bytes)
        .expect("system random source failed");
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A new code verifier: 32 random bytes in base64url (43 characters, RFC 7636 §4.1).
pub fn new_code_verifier() -> String {
    random_b64(32)
}

/// A new `state` or `nonce`: 32 random bytes in base64url (256 bits, unguessable).
pub fn new_random_token() -> String {
    random_b64(32)
}

/// `BASE64URL(SHA256(ASCII(verifier)))` (RFC 7636 §4.2).
pub fn s256_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, verifier.as_bytes()))
}

/// Whether `verifier` has the form RFC 7636 §4.1 requires: 43 to 128 characters of
/// `[A-Z] / [a-z] / [0-9] / "-" / "." / "_" / "~"`.
pub fn is_valid_verifier(verifier: &str) -> bool {
    (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~'))
}

/// Whether `challenge` has the form of an `S256` challenge (43 base64url characters).
pub fn is_valid_s256_challenge(challenge: &str) -> bool {
    challenge.len() == 43
        && challenge
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_'))
}

/// Whether `verifier` is well formed and its `S256` challenge is `challenge`, compared in
/// constant time.
pub fn verify_s256(verifier: &str, challenge: &str) -> bool {
    is_valid_verifier(verifier)
        && aws_lc_rs::constant_time::verify_slices_are_equal(
            s256_challenge(verifier).as_bytes(),
            challenge.as_bytes(),
        )
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7636 Appendix B.
    #[test]
    fn s256_matches_the_rfc_example() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        assert_eq!(
            s256_challenge(verifier),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        assert!(verify_s256(
            verifier,
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        ));
        assert!(!verify_s256(
            verifier,
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cN"
        ));
        // `plain` (the verifier as its own challenge) never passes.
        assert!(!verify_s256(verifier, verifier));
    }

    #[test]
    fn new_values_are_well_formed_and_distinct() {
        let v = new_code_verifier();
        assert!(is_valid_verifier(&v), "{v}");
        assert!(is_valid_s256_challenge(&s256_challenge(&v)));
        assert_ne!(new_random_token(), new_random_token());
        assert_eq!(new_random_token().len(), 43);
    }

    #[test]
    fn verifier_form_is_checked() {
        assert!(!is_valid_verifier(&"a".repeat(42)));
        assert!(is_valid_verifier(&"a".repeat(43)));
        assert!(is_valid_verifier(&"a~.-_".repeat(26)[..128]));
        assert!(!is_valid_verifier(&"a".repeat(129)));
        assert!(!is_valid_verifier(&format!("{}+", "a".repeat(43))));
        assert!(!verify_s256("short", &s256_challenge("short")));
    }
}
