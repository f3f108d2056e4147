//! Values that parse instead of validate: once you hold an [`Email`] or a [`NewPassword`], it is valid.
use std::{collections::HashSet, fmt, str::FromStr, sync::LazyLock};

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A normalised email address (trimmed, lower-case), as stored in `users.email`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    /// Accepts what a mailbox plausibly is: one `@`, a non-empty local part, a dotted domain, no
    /// whitespace or control characters, at most 254 characters (RFC 5321). Deliverability is proven
    /// by the verification email, not by a regex.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let email = raw.trim().to_lowercase();
        if email.is_empty() || email.len() > 254 {
            return Err("must be an email address of at most 254 characters".into());
        }
        if email
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | ',' | ';'))
        {
            return Err("must not contain spaces or separators".into());
        }
        let Some((local, domain)) = email.split_once('@') else {
            return Err("must contain an @".into());
        };
        let domain_ok = !domain.contains('@')
            && domain.contains('.')
            && domain
                .split('.')
                .all(|label| !label.is_empty() && !label.starts_with('-') && !label.ends_with('-'));
        if local.is_empty() || local.len() > 64 || !domain_ok {
            return Err("is not a valid email address".into());
        }
        Ok(Self(email))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

pub const PASSWORD_MIN_CHARS: usize = 12;
pub const PASSWORD_MAX_CHARS: usize = 128;

/// The most common passwords (zxcvbn's list; source and licence in the file's header).
static COMMON_PASSWORDS: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    include_str!("common_passwords.txt")
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
});

pub fn common_password_count() -> usize {
    COMMON_PASSWORDS.len()
}

/// A password acceptable for a new credential (NIST SP 800-63B): 12 to 128 characters, any
/// characters, no composition rules, not one of the most common passwords.
pub struct NewPassword(SecretString);

impl NewPassword {
    pub fn parse(raw: SecretString) -> Result<Self, String> {
        let chars = raw.expose_secret().chars().count();
        if !(PASSWORD_MIN_CHARS..=PASSWORD_MAX_CHARS).contains(&chars) {
            return Err(format!(
                "must be between {PASSWORD_MIN_CHARS} and {PASSWORD_MAX_CHARS} characters"
            ));
        }
        let lowered = raw.expose_secret().to_lowercase();
        if COMMON_PASSWORDS.contains(lowered.as_str()) {
            return Err("is too common: it appears in lists of leaked passwords".into());
        }
        Ok(Self(raw))
    }

    pub fn secret(&self) -> &SecretString {
        &self.0
    }
}

/// What a user may do. Stored as `users.role`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Admin => "admin",
        }
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "user" => Ok(Role::User),
            "admin" => Ok(Role::Admin),
            other => Err(format!("unknown role {other:?}")),
        }
    }
}

/// Authenticator assurance level (NIST SP 800-63B): `aal1` password only, `aal2` password and a
/// second factor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Aal {
    Aal1,
    Aal2,
}

impl Aal {
    pub fn as_str(self) -> &'static str {
        match self {
            Aal::Aal1 => "aal1",
            Aal::Aal2 => "aal2",
        }
    }

    /// Authentication methods references (RFC 8176) matching the level.
    pub fn amr(self) -> Vec<String> {
        match self {
            Aal::Aal1 => vec!["pwd".into()],
            Aal::Aal2 => vec!["pwd".into(), "otp".into()],
        }
    }
}

impl FromStr for Aal {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "aal1" => Ok(Aal::Aal1),
            "aal2" => Ok(Aal::Aal2),
            other => Err(format!("unknown aal {other:?}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn password(s: &str) -> Result<NewPassword, String> {
        NewPassword::parse(SecretString::from(s.to_owned()))
    }

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(
            Email::parse("  Ada@Example.COM ").unwrap().as_str(),
            "ada@example.com"
        );
        for bad in [
            "",
            "ada",
            "ada@",
            "@example.com",
            "ada@example",
            "ada@@example.com",
            "a da@example.com",
            "ada@example..com",
            "ada@-example.com",
            "Ada <ada@example.com>",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} accepted");
        }
        let long = format!("{}@example.com", "a".repeat(250));
        assert!(Email::parse(&long).is_err());
    }

    #[test]
    fn passwords_need_12_to_128_characters_and_no_composition() {
        assert!(password("short pass").is_err());
        assert!(password("correct horse battery staple").is_ok());
        assert!(password("alllowercaseletters").is_ok());
        // Characters, not bytes: 12 multi-byte characters are enough.
        assert!(password("ééééééééééé").is_err());
        assert!(password("éééééééééééé").is_ok());
        assert!(password(&"x".repeat(128)).is_ok());
        assert!(password(&"x".repeat(129)).is_err());
    }

    #[test]
    fn common_passwords_are_refused_whatever_the_case() {
        assert!(
            common_password_count() >= 10_000,
            "{}",
            common_password_count()
        );
        assert!(COMMON_PASSWORDS.contains("password"));
        // Long enough, but on the list.
        let common = COMMON_PASSWORDS
            .iter()
            .find(|p| p.chars().count() >= PASSWORD_MIN_CHARS)
            .expect("a common password of 12+ characters");
        assert!(password(common).is_err());
        assert!(password(&common.to_uppercase()).is_err());
    }

    #[test]
    fn roles_and_levels_round_trip() {
        assert_eq!("admin".parse::<Role>().unwrap(), Role::Admin);
        assert!("root".parse::<Role>().is_err());
        assert_eq!(Aal::Aal2.amr(), vec!["pwd", "otp"]);
        assert_eq!("aal1".parse::<Aal>().unwrap().as_str(), "aal1");
    }
}
