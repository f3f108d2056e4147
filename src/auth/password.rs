//! Password hashing: Argon2id with OWASP's parameters, always on the blocking thread pool (a hash
//! takes tens of milliseconds of CPU and 19 MiB; on the async executor it would stall other requests).
use std::sync::LazyLock;

use argon2::{Algorithm, Argon2, Params, PasswordHash, PasswordHasher, PasswordVerifier, Version};
use secrecy::{ExposeSecret, SecretString};

/// OWASP Password Storage Cheat Sheet: Argon2id, m = 19 MiB, t = 2, p = 1.
pub const M_COST_KIB: u32 = 19 * 1024;
pub const T_COST: u32 = 2;
pub const P_COST: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("hashing: {0}")]
    Hash(String),
    #[error("the blocking pool is gone: {0}")]
    Join(String),
}

fn hasher() -> Argon2<'static> {
    let params = Params::new(M_COST_KIB, T_COST, P_COST, None).expect("valid Argon2 parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// A hash of a random password with the current parameters. Verifying against it costs exactly
/// what verifying a real user's hash costs, so an unknown email answers no faster than a known one.
/// At most one Argon2 computation per core at a time. Each needs 19 MiB; sixty-four of them at once
/// on the blocking pool would thrash the caches and slow every login down, so the rest queue here.
static HASHING_SLOTS: LazyLock<tokio::sync::Semaphore> = LazyLock::new(|| {
    tokio::sync::Semaphore::new(std::thread::available_parallelism().map_or(1, |n| n.get()))
});

/// Runs `work` on the blocking pool once a hashing slot is free.
async fn on_hashing_slot<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, PasswordError> {
    let _slot = HASHING_SLOTS
        .acquire()
        .await
        .map_err(|e| PasswordError::Join(e.to_string()))?;
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| PasswordError::Join(e.to_string()))
}

static DUMMY_HASH: LazyLock<String> = LazyLock::new(|| {
    let random = super::tokens::random_token();
    hash_now(&random).expect("hashing a random password")
});

fn hash_now(password: &str) -> Result<String, PasswordError> {
    hasher()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

/// Hashes `password` (PHC string) on the blocking pool.
pub async fn hash(password: &SecretString) -> Result<String, PasswordError> {
    let password = password.clone();
    on_hashing_slot(move || hash_now(password.expose_secret())).await?
}

/// The outcome of checking a password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verified {
    /// Correct. `rehash`: the stored hash uses other parameters than today's; store a new one.
    Yes {
        rehash: bool,
    },
    No,
}

/// Verifies `password` against `stored`, or against the dummy hash when there is no user (same
/// work, always `No`). Runs on the blocking pool.
pub async fn verify(
    password: &SecretString,
    stored: Option<String>,
) -> Result<Verified, PasswordError> {
    let password = password.clone();
    on_hashing_slot(move || {
        let (hash, real) = match stored {
            Some(hash) => (hash, true),
            None => (DUMMY_HASH.clone(), false),
        };
        let parsed = match PasswordHash::new(&hash) {
            Ok(parsed) => parsed,
            Err(error) => {
                // A corrupt stored hash must not become a way in; spend the usual work and refuse.
                tracing::error!(%error, "unparsable password hash");
                let _ = hasher()
                    .verify_password(password.expose_secret().as_bytes(), DUMMY_HASH.as_str());
                return Ok(Verified::No);
            }
        };
        match hasher().verify_password(password.expose_secret().as_bytes(), &parsed) {
            Ok(()) if real => Ok(Verified::Yes {
                rehash: needs_rehash(&parsed),
            }),
            Ok(()) | Err(argon2::password_hash::Error::PasswordInvalid) => Ok(Verified::No),
            Err(e) => Err(PasswordError::Hash(e.to_string())),
        }
    })
    .await?
}

/// Whether a stored hash was made with other settings than the current ones.
fn needs_rehash(hash: &PasswordHash) -> bool {
    if hash.algorithm.as_str() != argon2::ARGON2ID_IDENT.as_str()
        || hash.version != Some(Version::V0x13.into())
    {
        return true;
    }
    match Params::try_from(hash) {
        Ok(p) => p.m_cost() != M_COST_KIB || p.t_cost() != T_COST || p.p_cost() != P_COST,
        Err(_) => true,
    }
}

/// Makes the dummy hash now (at start-up) rather than during the first login of an unknown email,
/// which would otherwise take twice as long as any other.
pub fn warm_up() {
    LazyLock::force(&DUMMY_HASH);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(s: &str) -> SecretString {
        SecretString::from(s.to_owned())
    }

    #[tokio::test]
    async fn hashes_are_argon2id_with_owasp_parameters_and_verify() {
        let hash = hash(&secret("correct horse battery")).await.unwrap();
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert_eq!(
            verify(&secret("correct horse battery"), Some(hash.clone()))
                .await
                .unwrap(),
            Verified::Yes { rehash: false }
        );
        assert_eq!(
            verify(&secret("wrong horse battery"), Some(hash))
                .await
                .unwrap(),
            Verified::No
        );
    }

    #[tokio::test]
    async fn no_user_means_no_whatever_the_password() {
        assert_eq!(
            verify(&secret("anything at all"), None).await.unwrap(),
            Verified::No
        );
    }

    #[tokio::test]
    async fn weaker_parameters_ask_for_a_rehash() {
        let weak = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(8 * 1024, 1, 1, None).unwrap(),
        )
        .hash_password(b"correct horse battery")
        .unwrap()
        .to_string();
        assert_eq!(
            verify(&secret("correct horse battery"), Some(weak))
                .await
                .unwrap(),
            Verified::Yes { rehash: true }
        );
    }

    #[tokio::test]
    async fn a_corrupt_hash_refuses() {
        assert_eq!(
            verify(&secret("x"), Some("not a hash".into()))
                .await
                .unwrap(),
            Verified::No
        );
    }
}
