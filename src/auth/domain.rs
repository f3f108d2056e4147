//! Values that parse instead of validate: once you hold an [`Email`] or a [`NewPassword`], it is valid.
use std::{fmt, str::FromStr};

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

    /// The address and its parts (`ada.lovelace`, `adalovelace`, `ada`, `lovelace`, `example`,
    /// …): what a password must not be built from.
    pub fn guessable_words(&self) -> Vec<String> {
        let (local, domain) = self.0.split_once('@').unwrap_or((&self.0, ""));
        let joined: String = local.chars().filter(|c| c.is_alphanumeric()).collect();
        let mut words = vec![self.0.clone(), local.to_owned(), domain.to_owned(), joined];
        words.extend(
            self.0
                .split(|c: char| !c.is_alphanumeric())
                .filter(|w| w.len() >= 3)
                .map(str::to_owned),
        );
        words.dedup();
        words
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

pub const PASSWORD_MIN_CHARS: usize = 12;
pub const PASSWORD_MAX_CHARS: usize = 128;

/// zxcvbn's score a new password needs (0 to 4): 3 is "safely unguessable: moderate protection
/// from offline slow-hash scenarios" (under 10^10 guesses is refused).
pub const PASSWORD_MIN_SCORE: zxcvbn::Score = zxcvbn::Score::Three;

/// A password acceptable for a new credential (NIST SP 800-63B): 12 to 128 characters, any
/// characters, no composition rules, and hard to guess as zxcvbn estimates it, counting what an
/// attacker knows of this account (its email address, the product's name) as guessable.
pub struct NewPassword(SecretString);

impl NewPassword {
    /// `known` are words an attacker would try first: the account's email (see
    /// [`Email::guessable_words`]) and the product's name. A refusal says why, in zxcvbn's words.
    pub fn parse(raw: SecretString, known: &[&str]) -> Result<Self, String> {
        let password = raw.expose_secret();
        let chars = password.chars().count();
        if !(PASSWORD_MIN_CHARS..=PASSWORD_MAX_CHARS).contains(&chars) {
            return Err(format!(
                "must be between {PASSWORD_MIN_CHARS} and {PASSWORD_MAX_CHARS} characters"
            ));
        }
        let estimate = zxcvbn::zxcvbn(password, known);
        if estimate.score() < PASSWORD_MIN_SCORE {
            let mut advice = vec!["is too easy to guess".to_owned()];
            if let Some(feedback) = estimate.feedback() {
                advice.extend(feedback.warning().map(|w| w.to_string()));
                advice.extend(feedback.suggestions().iter().map(|s| s.to_string()));
            }
            return Err(advice.join(". "));
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
        NewPassword::parse(SecretString::from(s.to_owned()), &["Ironclad"])
    }

    fn password_of(s: &str, email: &str) -> Result<NewPassword, String> {
        let mut known = Email::parse(email).unwrap().guessable_words();
        known.push("Ironclad".into());
        let known: Vec<&str> = known.iter().map(String::as_str).collect();
        NewPassword::parse(SecretString::from(s.to_owned()), &known)
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
        assert!(password("lowercase only but quite unusual words").is_ok());
        // Characters, not bytes: 12 multi-byte characters are enough.
        assert!(password("ü7#qp!2vlm9").is_err());
        assert!(password("ü7#qp!2vlm9&").is_ok());
        let long: String = "correct horse battery staple "
            .repeat(5)
            .chars()
            .take(128)
            .collect();
        assert!(password(&long).is_ok());
        assert!(password(&format!("{long}x")).is_err());
    }

    #[test]
    fn guessable_passwords_are_refused_with_zxcvbns_advice() {
        for weak in [
            "aaaaaaaaaaaa",
            "123456789012",
            "passwordpassword",
            "ironclad1234",
            "Ironclad2026!",
            "qwertyuiopasdf",
        ] {
            let refusal = password(weak)
                .err()
                .unwrap_or_else(|| panic!("{weak:?} accepted"));
            assert!(refusal.starts_with("is too easy to guess"), "{refusal}");
        }
        let refusal = password("aaaaaaaaaaaa").err().unwrap();
        assert!(
            refusal.len() > "is too easy to guess".len(),
            "no advice: {refusal}"
        );
    }

    #[test]
    fn a_password_built_from_the_email_is_refused() {
        let email = "grace.hopper@navy-example.org";
        for weak in [
            "grace.hopper1906",
            "gracehopper1906",
            "navy-example.org!",
            "grace.hopper!!",
        ] {
            assert!(password_of(weak, email).is_err(), "{weak:?} accepted");
        }
        assert!(password_of("correct horse battery staple", email).is_ok());
        let words = Email::parse(email).unwrap().guessable_words();
        for part in ["gracehopper", "hopper", "navy-example.org"] {
            assert!(
                words.iter().any(|w| w == part),
                "{part} missing from {words:?}"
            );
        }
    }

    #[test]
    fn roles_and_levels_round_trip() {
        assert_eq!("admin".parse::<Role>().unwrap(), Role::Admin);
        assert!("root".parse::<Role>().is_err());
        assert_eq!(Aal::Aal2.amr(), vec!["pwd", "otp"]);
        assert_eq!("aal1".parse::<Aal>().unwrap().as_str(), "aal1");
    }
}
