//! Password hashing: Argon2id with OWASP's parameters, always on the blocking thread pool (a hash
//! takes tens of milliseconds of CPU and 19 MiB; on the async executor it would stall other requests).
use std::sync::LazyLock;

use argon2::{
    Algorithm, Argon2, Block, CustomizedPasswordHasher, Params, PasswordHash, PasswordHasher,
    PasswordVerifier, Version,
    password_hash::{
        self,
        phc::{Output, ParamsString, Salt},
    },
};
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

/// At most one Argon2 computation per core at a time, each in the memory of its slot. Sixty-four
/// hashes at once on the blocking pool would thrash the caches and slow every login down, so the
/// rest queue here; and a slot keeps its 19 MiB from one hash to the next, where a fresh allocation
/// per hash costs mapping, faulting in and zeroing it (about a fifth of a login's CPU, measured).
struct HashingSlots {
    free: tokio::sync::Semaphore,
    memory: std::sync::Mutex<Vec<SlotHasher>>,
}

static HASHING_SLOTS: LazyLock<HashingSlots> = LazyLock::new(|| HashingSlots {
    free: tokio::sync::Semaphore::new(std::thread::available_parallelism().map_or(1, |n| n.get())),
    memory: std::sync::Mutex::new(Vec::new()),
});

/// Runs `work` on the blocking pool once a hashing slot is free, with that slot's memory.
async fn on_hashing_slot<T: Send + 'static>(
    work: impl FnOnce(&SlotHasher) -> T + Send + 'static,
) -> Result<T, PasswordError> {
    let slots = &*HASHING_SLOTS;
    let _slot = slots
        .free
        .acquire()
        .await
        .map_err(|e| PasswordError::Join(e.to_string()))?;
    let hasher = slots.take_memory();
    let (result, hasher) = tokio::task::spawn_blocking(move || (work(&hasher), hasher))
        .await
        .map_err(|e| PasswordError::Join(e.to_string()))?;
    slots.return_memory(hasher);
    Ok(result)
}

impl HashingSlots {
    fn take_memory(&self) -> SlotHasher {
        let mut memory = self.memory.lock().unwrap_or_else(|e| e.into_inner());
        memory.pop().unwrap_or_default()
    }

    fn return_memory(&self, hasher: SlotHasher) {
        let mut memory = self.memory.lock().unwrap_or_else(|e| e.into_inner());
        memory.push(hasher);
    }
}

/// Argon2 computed in memory kept for the current parameters, for new hashes and verification alike.
/// Verifying goes through the `password-hash` crate's own [`PasswordVerifier`] (its constant-time
/// comparison included); only where the blocks live differs. A hash with larger parameters gets
/// memory of its own.
#[derive(Default)]
struct SlotHasher {
    memory: std::cell::RefCell<Vec<Block>>,
}

impl CustomizedPasswordHasher<PasswordHash> for SlotHasher {
    type Params = Params;

    fn hash_password_customized(
        &self,
        password: &[u8],
        salt: &[u8],
        algorithm: Option<&str>,
        version: Option<u32>,
        params: Params,
    ) -> password_hash::Result<PasswordHash> {
        let algorithm = algorithm.map_or(Ok(Algorithm::default()), Algorithm::try_from)?;
        let version = version.map_or(Ok(Version::default()), Version::try_from)?;
        let argon2 = Argon2::new(algorithm, version, params.clone());
        let mut output = vec![0; params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN)];
        let mut memory = self.memory.borrow_mut();
        if memory.is_empty() {
            memory.resize(current_params().block_count(), Block::default());
        }
        if params.block_count() <= memory.len() {
            argon2.hash_password_into_with_memory(password, salt, &mut output, &mut memory[..])?;
        } else {
            argon2.hash_password_into(password, salt, &mut output)?;
        }
        Ok(PasswordHash {
            algorithm: algorithm.ident(),
            version: Some(version.into()),
            params: ParamsString::try_from(&params)?,
            salt: Some(Salt::new(salt)?),
            hash: Some(Output::new(&output)?),
        })
    }
}

/// New hashes: Argon2id, version 0x13, today's parameters, a random salt.
impl PasswordHasher<PasswordHash> for SlotHasher {
    fn hash_password_with_salt(
        &self,
        password: &[u8],
        salt: &[u8],
    ) -> password_hash::Result<PasswordHash> {
        let algorithm = Algorithm::Argon2id.ident();
        let version = Version::V0x13.into();
        self.hash_password_customized(
            password,
            salt,
            Some(algorithm.as_str()),
            Some(version),
            current_params(),
        )
    }
}

fn current_params() -> Params {
    Params::new(M_COST_KIB, T_COST, P_COST, None).expect("valid Argon2 parameters")
}

/// A hash of a random password with the current parameters. Verifying against it costs exactly
/// what verifying a real user's hash costs, so an unknown email answers no faster than a known one.
static DUMMY_HASH: LazyLock<String> = LazyLock::new(|| {
    let random = super::tokens::random_token();
    hash_now(&SlotHasher::default(), &random).expect("hashing a random password")
});

fn hash_now(slot: &SlotHasher, password: &str) -> Result<String, PasswordError> {
    slot.hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

/// Hashes `password` (PHC string) on the blocking pool.
pub async fn hash(password: &SecretString) -> Result<String, PasswordError> {
    let password = password.clone();
    on_hashing_slot(move |slot| hash_now(slot, password.expose_secret())).await?
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
    on_hashing_slot(move |slot| {
        let (hash, real) = match stored {
            Some(hash) => (hash, true),
            None => (DUMMY_HASH.clone(), false),
        };
        let password = password.expose_secret().as_bytes();
        let parsed = match PasswordHash::new(&hash) {
            Ok(parsed) => parsed,
            Err(error) => {
                // A corrupt stored hash must not become a way in; spend the usual work and refuse.
                tracing::error!(%error, "unparsable password hash");
                if let Ok(dummy) = PasswordHash::new(&DUMMY_HASH) {
                    let _ = slot.verify_password(password, &dummy);
                }
                return Ok(Verified::No);
            }
        };
        match slot.verify_password(password, &parsed) {
            Ok(()) if real => Ok(Verified::Yes {
                rehash: needs_rehash(&parsed),
            }),
            Ok(()) | Err(password_hash::Error::PasswordInvalid) => Ok(Verified::No),
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
    async fn hashes_needing_more_memory_than_a_slot_keeps_still_verify() {
        let heavier = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(32 * 1024, 2, 1, None).unwrap(),
        )
        .hash_password(b"correct horse battery")
        .unwrap()
        .to_string();
        assert_eq!(
            verify(&secret("correct horse battery"), Some(heavier.clone()))
                .await
                .unwrap(),
            Verified::Yes { rehash: true }
        );
        assert_eq!(
            verify(&secret("wrong horse battery"), Some(heavier))
                .await
                .unwrap(),
            Verified::No
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
