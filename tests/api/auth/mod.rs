//! Accounts and sessions over real HTTP: registration, verification, login, refresh rotation,
//! logout, password reset and change, rate limits, sessions, admins and the audit trail. (MFA has
//! its own area, `auth_mfa`.)
mod admins;
mod login;
mod passwords;
mod registration;
mod sessions;
mod throttle;
