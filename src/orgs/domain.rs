//! Values of the orgs layer that parse: a name and a slug are valid once they exist.
use std::fmt;

/// An organisation's display name: trimmed, 1 to 100 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgName(String);

impl OrgName {
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        let name = raw.trim();
        if name.is_empty() {
            return Err("must not be empty");
        }
        if name.chars().count() > 100 {
            return Err("must be at most 100 characters");
        }
        if name.chars().any(char::is_control) {
            return Err("must not contain control characters");
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A unique, URL-safe handle: 3 to 48 of `a-z`, `0-9` and `-`, neither first nor last a `-`.
/// `personal-<32 hex digits>` is reserved for personal organisations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slug(String);

impl Slug {
    const MIN: usize = 3;
    const MAX: usize = 48;

    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        let slug = raw.trim();
        if !(Self::MIN..=Self::MAX).contains(&slug.len()) {
            return Err("must be 3 to 48 characters");
        }
        if !slug
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err("may hold only a-z, 0-9 and -");
        }
        if slug.starts_with('-') || slug.ends_with('-') {
            return Err("must not start or end with -");
        }
        if slug
            .strip_prefix("personal-")
            .is_some_and(|rest| rest.len() == 32 && rest.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            return Err("is reserved for personal organisations");
        }
        Ok(Self(slug.to_owned()))
    }

    /// A slug made from a name: lower-case ASCII letters and digits, runs of anything else as one
    /// `-`; `None` if too little of the name is usable.
    pub fn from_name(name: &OrgName) -> Option<Self> {
        let mut slug = String::new();
        for c in name.as_str().chars().flat_map(char::to_lowercase) {
            if c.is_ascii_alphanumeric() {
                slug.push(c);
            } else if !slug.is_empty() && !slug.ends_with('-') {
                slug.push('-');
            }
            if slug.len() >= Self::MAX {
                break;
            }
        }
        Self::parse(slug.trim_end_matches('-')).ok()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Slug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(OrgName::parse("  Acme Ltd ").unwrap().as_str(), "Acme Ltd");
        assert!(OrgName::parse("   ").is_err());
        assert!(OrgName::parse(&"x".repeat(101)).is_err());
        assert!(OrgName::parse(&"é".repeat(100)).is_ok());
        assert!(OrgName::parse("Acme\u{0000}").is_err());
    }

    #[test]
    fn slugs_are_url_safe_handles() {
        for good in [
            "acme",
            "acme-ltd",
            "a1b",
            "personal-team",
            "x".repeat(48).as_str(),
        ] {
            assert!(Slug::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "ab",
            "Acme",
            "-acme",
            "acme-",
            "ac me",
            "acmé",
            "../x",
            "personal-0123456789abcdef0123456789abcdef",
            "x".repeat(49).as_str(),
        ] {
            assert!(Slug::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn slugs_are_made_from_names() {
        let slug = |name: &str| Slug::from_name(&OrgName::parse(name).unwrap()).map(|s| s.0);
        assert_eq!(slug("Acme Ltd."), Some("acme-ltd".into()));
        assert_eq!(slug("  Ünïcode & Co "), Some("n-code-co".into()));
        assert_eq!(slug("日本"), None);
        assert_eq!(slug("Personal Team"), Some("personal-team".into()));
        assert_eq!(slug(&"ab ".repeat(30)).map(|s| s.len() <= 48), Some(true));
    }
}
