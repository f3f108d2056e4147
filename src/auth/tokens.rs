//! Access tokens (JWT, HS256, `kid`-selected keys) and opaque tokens (refresh, email, MFA, recovery).
//! Pure: no database, unit-tested below.
use std::time::Duration;

use aws_lc_rs::{digest, rand};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::domain::{Aal, Role};

/// The only algorithm we sign with and accept. Pinned: the `alg` of an incoming token is never
/// trusted to choose how it is verified.
const ALGORITHM: Algorithm = Algorithm::HS256;

/// Claims of an access token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccessClaims {
    pub iss: String,
    pub aud: String,
    /// The user id.
    pub sub: Uuid,
    pub iat: i64,
    pub exp: i64,
    pub jti: Uuid,
    /// The server-side session this token belongs to.
    pub sid: Uuid,
    pub role: Role,
    pub aal: Aal,
    pub amr: Vec<String>,
    /// Unix time of the last second-factor verification in this session (absent at `aal1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mfa_time: Option<i64>,
}

/// What [`JwtKeys::issue`] needs to know about the session.
#[derive(Debug, Clone, Copy)]
pub struct SessionFacts {
    pub user_id: Uuid,
    pub session_id: Uuid,
    pub role: Role,
    pub aal: Aal,
    pub mfa_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid: {0}")]
    Invalid(String),
}

struct Key {
    kid: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
}

/// Signing key (current) and verification keys (current and, during a rotation, the previous one).
#[derive(Clone)]
pub struct JwtKeys(std::sync::Arc<Inner>);

struct Inner {
    current: Key,
    previous: Option<Key>,
    validation: Validation,
    issuer: String,
    audience: String,
}

impl std::fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtKeys")
            .field("current_kid", &self.0.current.kid)
            .field("previous_kid", &self.0.previous.as_ref().map(|k| &k.kid))
            .field("issuer", &self.0.issuer)
            .field("audience", &self.0.audience)
            .field("leeway_secs", &self.0.validation.leeway)
            .finish()
    }
}

impl JwtKeys {
    pub fn new(
        current: (String, Vec<u8>),
        previous: Option<(String, Vec<u8>)>,
        issuer: String,
        audience: String,
        leeway: Duration,
    ) -> Self {
        let key = |(kid, secret): (String, Vec<u8>)| Key {
            kid,
            encoding: EncodingKey::from_secret(&secret),
            decoding: DecodingKey::from_secret(&secret),
        };
        let mut validation = Validation::new(ALGORITHM);
        validation.leeway = leeway.as_secs();
        validation.validate_exp = true;
        validation.validate_aud = true;
        // Off by default in jsonwebtoken: a token that says it is not valid yet is refused.
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "sub", "aud", "iss"]);
        validation.set_issuer(&[&issuer]);
        validation.set_audience(&[&audience]);
        Self(std::sync::Arc::new(Inner {
            current: key(current),
            previous: previous.map(key),
            validation,
            issuer,
            audience,
        }))
    }

    pub fn current_kid(&self) -> &str {
        &self.0.current.kid
    }

    /// Signs an access token for `facts`, valid for `ttl`.
    pub fn issue(&self, facts: SessionFacts, ttl: Duration, now: DateTime<Utc>) -> String {
        let claims = AccessClaims {
            iss: self.0.issuer.clone(),
            aud: self.0.audience.clone(),
            sub: facts.user_id,
            iat: now.timestamp(),
            exp: now.timestamp() + ttl.as_secs() as i64,
            jti: Uuid::new_v4(),
            sid: facts.session_id,
            role: facts.role,
            aal: facts.aal,
            amr: facts.aal.amr(),
            mfa_time: facts.mfa_at.map(|t| t.timestamp()),
        };
        let mut header = Header::new(ALGORITHM);
        header.kid = Some(self.0.current.kid.clone());
        jsonwebtoken::encode(&header, &claims, &self.0.current.encoding)
            .expect("HS256 signing with an in-memory key cannot fail")
    }

    /// Verifies signature (key chosen by `kid`, algorithm pinned), `iss`, `aud`, `exp` and, when
    /// present, `nbf` (both with the configured leeway) and the claims' shape.
    pub fn verify(&self, token: &str) -> Result<AccessClaims, TokenError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| TokenError::Invalid(format!("header: {e}")))?;
        if header.alg != ALGORITHM {
            return Err(TokenError::Invalid("unexpected algorithm".into()));
        }
        let kid = header
            .kid
            .ok_or_else(|| TokenError::Invalid("no kid".into()))?;
        let key = [Some(&self.0.current), self.0.previous.as_ref()]
            .into_iter()
            .flatten()
            .find(|k| k.kid == kid)
            .ok_or_else(|| TokenError::Invalid("unknown kid".into()))?;
        let data = jsonwebtoken::decode::<AccessClaims>(token, &key.decoding, &self.0.validation)
            .map_err(|e| match e.kind() {
            ErrorKind::ExpiredSignature => TokenError::Expired,
            _ => TokenError::Invalid(e.to_string()),
        })?;
        let claims = data.claims;
        // The level and its evidence must agree; a signed token never disagrees, but keep the
        // invariant where every guard can rely on it.
        if (claims.aal == Aal::Aal2) != claims.mfa_time.is_some() {
            return Err(TokenError::Invalid("aal and mfa_time disagree".into()));
        }
        Ok(claims)
    }
}

/// A fresh opaque token: 256 random bits, base64url (43 characters).
pub fn random_token() -> String {
    URL_SAFE_NO_PAD.encode(random_bytes::<32>())
}

pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    rand::fill(&mut bytes).expect("the system RNG is available");
    bytes
}

/// How opaque tokens are stored: SHA-256. They carry 128+ bits of entropy, so a slow hash adds
/// nothing, and lookups by hash stay indexable.
pub fn token_hash(token: &str) -> Vec<u8> {
    digest::digest(&digest::SHA256, token.as_bytes())
        .as_ref()
        .to_vec()
}

/// A recovery code: 80 random bits as 16 Crockford-style base32 characters in groups of four
/// (`7KQ2-M9XD-4RTB-H6VC`), easy to read aloud and type.
pub fn recovery_code() -> String {
    const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let bytes = random_bytes::<10>();
    let mut bits: u128 = 0;
    for b in bytes {
        bits = (bits << 8) | u128::from(b);
    }
    let chars: Vec<char> = (0..16)
        .map(|i| ALPHABET[((bits >> (75 - 5 * i)) & 0x1f) as usize] as char)
        .collect();
    chars
        .chunks(4)
        .map(|c| c.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join("-")
}

/// Canonical form of a typed recovery code: no separators or spaces, upper case, and the
/// look-alikes (`O`→`0`, `I`/`L`→`1`) folded as Crockford base32 does.
pub fn normalize_recovery_code(raw: &str) -> String {
    raw.chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .map(|c| match c.to_ascii_uppercase() {
            'O' => '0',
            'I' | 'L' => '1',
            other => other,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(kid: &str, secret: &[u8]) -> JwtKeys {
        JwtKeys::new(
            (kid.into(), secret.to_vec()),
            None,
            "ironclad".into(),
            "ironclad-api".into(),
            Duration::from_secs(5),
        )
    }

    fn facts(aal: Aal) -> SessionFacts {
        SessionFacts {
            user_id: Uuid::new_v4(),
            session_id: Uuid::new_v4(),
            role: Role::User,
            aal,
            mfa_at: (aal == Aal::Aal2).then(Utc::now),
        }
    }

    #[test]
    fn a_token_round_trips_with_its_claims() {
        let keys = keys("k1", &[1; 32]);
        let facts = facts(Aal::Aal2);
        let token = keys.issue(facts, Duration::from_secs(900), Utc::now());
        let claims = keys.verify(&token).unwrap();
        assert_eq!(claims.sub, facts.user_id);
        assert_eq!(claims.sid, facts.session_id);
        assert_eq!(claims.aal, Aal::Aal2);
        assert_eq!(claims.amr, vec!["pwd", "otp"]);
        assert_eq!(claims.exp - claims.iat, 900);
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.kid.as_deref(), Some("k1"));
    }

    #[test]
    fn expiry_respects_the_leeway() {
        let keys = keys("k1", &[1; 32]);
        let ttl = Duration::from_secs(60);
        // Expired 3 s ago: within the 5 s leeway.
        let recent = keys.issue(
            facts(Aal::Aal1),
            ttl,
            Utc::now() - chrono::Duration::seconds(63),
        );
        assert!(keys.verify(&recent).is_ok());
        let old = keys.issue(
            facts(Aal::Aal1),
            ttl,
            Utc::now() - chrono::Duration::seconds(70),
        );
        assert_eq!(keys.verify(&old), Err(TokenError::Expired));
    }

    #[test]
    fn a_token_not_valid_yet_is_refused() {
        let keys = keys("k1", &[1; 32]);
        let token = keys.issue(facts(Aal::Aal1), Duration::from_secs(900), Utc::now());
        let parts: Vec<&str> = token.split('.').collect();
        let mut claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        let sign = |claims: &serde_json::Value| {
            let mut header = Header::new(ALGORITHM);
            header.kid = Some("k1".into());
            jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(&[1; 32])).unwrap()
        };
        claims["nbf"] = (Utc::now().timestamp() + 3600).into();
        assert!(matches!(
            keys.verify(&sign(&claims)),
            Err(TokenError::Invalid(reason)) if reason.contains("ImmatureSignature")
        ));
        // Within the leeway, or already reached: fine.
        claims["nbf"] = (Utc::now().timestamp() + 3).into();
        assert!(keys.verify(&sign(&claims)).is_ok());
    }

    #[test]
    fn other_keys_unknown_kids_and_tampering_are_refused() {
        let ours = keys("k1", &[1; 32]);
        let theirs = keys("k1", &[2; 32]);
        let forged = theirs.issue(facts(Aal::Aal1), Duration::from_secs(60), Utc::now());
        assert!(matches!(ours.verify(&forged), Err(TokenError::Invalid(_))));

        let other_kid =
            keys("k9", &[1; 32]).issue(facts(Aal::Aal1), Duration::from_secs(60), Utc::now());
        assert!(matches!(
            ours.verify(&other_kid),
            Err(TokenError::Invalid(_))
        ));

        // Flip the payload to claim aal2 while keeping the signature.
        let token = ours.issue(facts(Aal::Aal1), Duration::from_secs(60), Utc::now());
        let parts: Vec<&str> = token.split('.').collect();
        let mut payload: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        payload["role"] = "admin".into();
        let tampered = format!(
            "{}.{}.{}",
            parts[0],
            URL_SAFE_NO_PAD.encode(payload.to_string()),
            parts[2]
        );
        assert!(matches!(
            ours.verify(&tampered),
            Err(TokenError::Invalid(_))
        ));
    }

    #[test]
    fn alg_none_and_other_algorithms_are_refused() {
        let ours = keys("k1", &[1; 32]);
        let token = ours.issue(facts(Aal::Aal1), Duration::from_secs(60), Utc::now());
        let payload = token.split('.').nth(1).unwrap();
        for header in [
            r#"{"alg":"none","typ":"JWT","kid":"k1"}"#,
            r#"{"alg":"HS512","typ":"JWT","kid":"k1"}"#,
        ] {
            let forged = format!("{}.{payload}.", URL_SAFE_NO_PAD.encode(header));
            assert!(ours.verify(&forged).is_err(), "{header} accepted");
        }
    }

    #[test]
    fn the_previous_key_still_verifies_during_rotation() {
        let old = keys("k1", &[1; 32]);
        let rotated = JwtKeys::new(
            ("k2".into(), vec![2; 32]),
            Some(("k1".into(), vec![1; 32])),
            "ironclad".into(),
            "ironclad-api".into(),
            Duration::from_secs(5),
        );
        let token = old.issue(facts(Aal::Aal1), Duration::from_secs(60), Utc::now());
        assert!(rotated.verify(&token).is_ok());
        let new = rotated.issue(facts(Aal::Aal1), Duration::from_secs(60), Utc::now());
        assert_eq!(
            jsonwebtoken::decode_header(&new).unwrap().kid.as_deref(),
            Some("k2")
        );
    }

    #[test]
    fn wrong_audience_or_issuer_is_refused() {
        let ours = keys("k1", &[1; 32]);
        let other_audience = JwtKeys::new(
            ("k1".into(), vec![1; 32]),
            None,
            "ironclad".into(),
            "another-api".into(),
            Duration::from_secs(5),
        );
        let token = other_audience.issue(facts(Aal::Aal1), Duration::from_secs(60), Utc::now());
        assert!(ours.verify(&token).is_err());
        let other_issuer = JwtKeys::new(
            ("k1".into(), vec![1; 32]),
            None,
            "someone-else".into(),
            "ironclad-api".into(),
            Duration::from_secs(5),
        );
        let token = other_issuer.issue(facts(Aal::Aal1), Duration::from_secs(60), Utc::now());
        assert!(ours.verify(&token).is_err());
    }

    #[test]
    fn opaque_tokens_are_random_and_hashed() {
        let a = random_token();
        assert_eq!(a.len(), 43);
        assert_ne!(a, random_token());
        assert_eq!(token_hash(&a).len(), 32);
        assert_eq!(token_hash(&a), token_hash(&a));
    }

    #[test]
    fn recovery_codes_are_readable_and_normalised() {
        let code = recovery_code();
        assert_eq!(code.len(), 19, "{code}");
        assert_eq!(code.matches('-').count(), 3);
        assert_ne!(code, recovery_code());
        assert_eq!(
            normalize_recovery_code(&code.to_lowercase()),
            code.replace('-', "")
        );
        assert_eq!(normalize_recovery_code(" o1il-0000 "), "01110000");
    }
}
