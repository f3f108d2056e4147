//! The API key format: `ic_live_` (production) or `ic_test_`, 32 random base62 characters
//! (190 bits), then 6 base62 characters of the CRC32 of the random part — like GitHub's tokens,
//! a key is recognisable in a leak scan and a mistyped one is refused before any database lookup.
//! Stored as SHA-256: the key is high-entropy, so a slow hash adds nothing, and it is checked on
//! every request.
use crate::auth::tokens::{random_bytes, token_hash};

const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
pub const LIVE: &str = "ic_live_";
pub const TEST: &str = "ic_test_";
const BODY: usize = 32;
const CHECKSUM: usize = 6;

/// A key as the client sends it: checked for shape and checksum, not yet looked up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyToken(String);

impl KeyToken {
    /// A new random key of the given kind.
    pub fn generate(live: bool) -> Self {
        let body: String = random_bytes::<BODY>()
            .iter()
            // 256 = 4 × 62 + 8: the small bias of `% 62` costs well under a bit of 190.
            .map(|b| ALPHABET[usize::from(*b) % 62] as char)
            .collect();
        let prefix = if live { LIVE } else { TEST };
        Self(format!("{prefix}{body}{}", checksum(&body)))
    }

    /// A bearer value that looks like a key at all (the prefix): to route it to key checking.
    pub fn looks_like(raw: &str) -> bool {
        raw.starts_with(LIVE) || raw.starts_with(TEST)
    }

    pub fn parse(raw: &str) -> Option<Self> {
        let rest = raw.strip_prefix(LIVE).or_else(|| raw.strip_prefix(TEST))?;
        if rest.len() != BODY + CHECKSUM || !rest.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return None;
        }
        let (body, sum) = rest.split_at(BODY);
        (checksum(body) == sum).then(|| Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `ic_live_` or `ic_test_`.
    pub fn prefix(&self) -> &str {
        &self.0[..LIVE.len()]
    }

    /// The last four characters, shown in lists to tell keys apart.
    pub fn last4(&self) -> &str {
        &self.0[self.0.len() - 4..]
    }

    pub fn hash(&self) -> Vec<u8> {
        token_hash(&self.0)
    }
}

fn checksum(body: &str) -> String {
    let mut n = crc32fast::hash(body.as_bytes());
    let mut digits = [b'0'; CHECKSUM];
    for digit in digits.iter_mut().rev() {
        *digit = ALPHABET[(n % 62) as usize];
        n /= 62;
    }
    String::from_utf8(digits.to_vec()).expect("ASCII")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_parse_and_look_like_keys() {
        for live in [true, false] {
            let key = KeyToken::generate(live);
            assert_eq!(key.as_str().len(), 8 + 32 + 6);
            assert_eq!(key.prefix(), if live { LIVE } else { TEST });
            assert!(KeyToken::looks_like(key.as_str()));
            assert_eq!(KeyToken::parse(key.as_str()), Some(key.clone()));
            assert_eq!(key.hash().len(), 32);
        }
        assert_ne!(KeyToken::generate(true), KeyToken::generate(true));
    }

    #[test]
    fn a_mistyped_key_fails_its_checksum() {
        let key = KeyToken::generate(true);
        let raw = key.as_str();
        for at in [8, 20, 39, 40, 45] {
            let mut bytes = raw.as_bytes().to_vec();
            bytes[at] = if bytes[at] == b'a' { b'b' } else { b'a' };
            let typo = String::from_utf8(bytes).unwrap();
            assert_eq!(KeyToken::parse(&typo), None, "typo at {at}");
        }
        for bad in [
            "",
            "ic_live_",
            "ic_prod_abc",
            &raw[..raw.len() - 1],
            &format!("{raw}x"),
        ] {
            assert_eq!(KeyToken::parse(bad), None, "{bad}");
        }
        assert!(!KeyToken::looks_like("eyJhbGciOi"));
    }

    #[test]
    fn the_checksum_is_six_base62_digits_of_crc32() {
        assert_eq!(checksum("").len(), 6);
        assert_eq!(checksum(""), "000000", "crc32 of nothing is 0");
        // 62^6 > 2^32: every CRC fits in six digits.
        assert!(62u64.pow(6) > u64::from(u32::MAX));
    }
}
