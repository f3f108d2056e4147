//! TOTP (RFC 6238: HMAC-SHA-1, 6 digits, 30 s steps, ±1 step of clock skew) and the encryption of
//! its secret at rest (AES-256-GCM). Pure: the single-use rule (a later step only) is enforced with a
//! compare-and-set in [`super::mfa`].
use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use totp_rs::{Algorithm, Builder, Secret, Totp};
use uuid::Uuid;

use super::tokens::random_bytes;

/// 160-bit secrets, as RFC 4226 recommends.
const SECRET_LEN: usize = 20;

#[derive(Debug, thiserror::Error)]
pub enum TotpError {
    #[error("TOTP secret does not decrypt (wrong AUTH_TOTP_ENCRYPTION_KEY, or tampered row)")]
    Decrypt,
    #[error("building TOTP: {0}")]
    Build(String),
}

/// What an authenticator app needs to be set up.
pub struct Enrolment {
    pub secret_base32: String,
    pub otpauth_uri: String,
    /// `data:image/png;base64,...`
    pub qr_code: String,
}

/// A fresh random secret.
pub fn generate_secret() -> Vec<u8> {
    random_bytes::<SECRET_LEN>().to_vec()
}

fn totp(secret: Vec<u8>, issuer: &str, account: &str) -> Result<Totp, TotpError> {
    Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(6)
        .with_step_duration(30)
        .with_skew(1)
        .with_secret(Secret::from(secret))
        .with_issuer(Some(issuer.replace(':', "")))
        .with_account_name(account.replace(':', ""))
        .build()
        .map_err(|e| TotpError::Build(e.to_string()))
}

pub fn enrolment(secret: &[u8], issuer: &str, account: &str) -> Result<Enrolment, TotpError> {
    let totp = totp(secret.to_vec(), issuer, account)?;
    let otpauth_uri = totp.to_url().map_err(|e| TotpError::Build(e.to_string()))?;
    let png = totp
        .to_qr_base64()
        .map_err(|e| TotpError::Build(e.to_string()))?;
    Ok(Enrolment {
        secret_base32: totp.secret().to_base32(),
        otpauth_uri,
        qr_code: format!("data:image/png;base64,{png}"),
    })
}

/// The time step `code` matches at `unix_time` (within ±1 step), if any. The caller must still
/// check the step is later than the last one used.
pub fn matching_step(secret: &[u8], code: &str, unix_time: u64) -> Result<Option<u64>, TotpError> {
    let totp = totp(secret.to_vec(), "x", "x")?;
    Ok(totp.check(code.trim(), unix_time))
}

pub fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Whether `code` has the shape of a TOTP code (else it may be a recovery code).
pub fn looks_like_totp(code: &str) -> bool {
    let code = code.trim();
    code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit())
}

fn key(key: &[u8; 32]) -> LessSafeKey {
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key).expect("a 32-byte AES-256 key"))
}

/// `nonce || ciphertext || tag`. The user id is authenticated data: a ciphertext copied to another
/// user's row does not decrypt.
pub fn encrypt_secret(enc_key: &[u8; 32], user_id: Uuid, secret: &[u8]) -> Vec<u8> {
    let nonce_bytes = random_bytes::<NONCE_LEN>();
    let mut in_out = secret.to_vec();
    key(enc_key)
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce_bytes),
            Aad::from(user_id.as_bytes()),
            &mut in_out,
        )
        .expect("AES-GCM sealing cannot fail for small inputs");
    let mut stored = nonce_bytes.to_vec();
    stored.extend_from_slice(&in_out);
    stored
}

pub fn decrypt_secret(
    enc_key: &[u8; 32],
    user_id: Uuid,
    stored: &[u8],
) -> Result<Vec<u8>, TotpError> {
    if stored.len() < NONCE_LEN {
        return Err(TotpError::Decrypt);
    }
    let (nonce, sealed) = stored.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| TotpError::Decrypt)?;
    let mut in_out = sealed.to_vec();
    let plain = key(enc_key)
        .open_in_place(nonce, Aad::from(user_id.as_bytes()), &mut in_out)
        .map_err(|_| TotpError::Decrypt)?;
    Ok(plain.to_vec())
}

/// The secret in base32 as shown to users (for tests and `otpauth://` URIs).
pub fn secret_from_base32(base32: &str) -> Option<Vec<u8>> {
    Secret::try_from_base32(base32)
        .ok()
        .map(|s| s.as_bytes().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6238_sha1_vector() {
        // RFC 6238 appendix B: secret "12345678901234567890", T = 59 -> 94287082 (8 digits);
        // the 6-digit code is its last six digits.
        let secret = b"12345678901234567890".to_vec();
        assert_eq!(matching_step(&secret, "287082", 59).unwrap(), Some(1));
        assert_eq!(matching_step(&secret, "287083", 59).unwrap(), None);
    }

    #[test]
    fn codes_of_the_neighbouring_steps_match_and_no_further() {
        let secret = generate_secret();
        let t = 1_800_000_000u64;
        let code_at = |time: u64| {
            totp(secret.clone(), "x", "x")
                .unwrap()
                .generate(time)
                .to_string()
        };
        assert_eq!(
            matching_step(&secret, &code_at(t), t).unwrap(),
            Some(t / 30)
        );
        assert_eq!(
            matching_step(&secret, &code_at(t - 30), t).unwrap(),
            Some(t / 30 - 1)
        );
        assert_eq!(
            matching_step(&secret, &code_at(t + 30), t).unwrap(),
            Some(t / 30 + 1)
        );
        assert_eq!(matching_step(&secret, &code_at(t + 90), t).unwrap(), None);
    }

    #[test]
    fn the_secret_is_encrypted_and_bound_to_its_user() {
        let key = [9u8; 32];
        let user = Uuid::new_v4();
        let secret = generate_secret();
        let stored = encrypt_secret(&key, user, &secret);
        assert!(!stored.windows(secret.len()).any(|w| w == secret.as_slice()));
        assert_ne!(stored, encrypt_secret(&key, user, &secret), "random nonce");
        assert_eq!(decrypt_secret(&key, user, &stored).unwrap(), secret);
        assert!(decrypt_secret(&key, Uuid::new_v4(), &stored).is_err());
        assert!(decrypt_secret(&[8u8; 32], user, &stored).is_err());
        let mut tampered = stored.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert!(decrypt_secret(&key, user, &tampered).is_err());
    }

    #[test]
    fn enrolment_gives_uri_qr_and_base32() {
        let secret = generate_secret();
        let e = enrolment(&secret, "Ironclad", "ada@example.com").unwrap();
        assert!(
            e.otpauth_uri
                .starts_with("otpauth://totp/Ironclad:ada%40example.com?"),
            "{}",
            e.otpauth_uri
        );
        assert!(
            e.otpauth_uri
                .contains(&format!("secret={}", e.secret_base32))
        );
        assert!(e.qr_code.starts_with("data:image/png;base64,"));
        assert_eq!(secret_from_base32(&e.secret_base32).unwrap(), secret);
    }

    #[test]
    fn totp_shape() {
        assert!(looks_like_totp("012345"));
        assert!(!looks_like_totp("01234"));
        assert!(!looks_like_totp("ABCD-EFGH"));
    }
}
