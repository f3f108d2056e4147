//! The auth layer: sessions and their refresh tokens, TOTP MFA, recovery codes, single-use email
//! tokens, login MFA challenges, brute-force counters and the audit trail.
//!
//! Every secret a client presents (refresh token, email token, MFA token, recovery code) is stored as
//! its SHA-256 only: they are 128+ bits of randomness, so a fast hash is enough and a database leak
//! yields nothing usable. The TOTP secret must be recoverable, so it is encrypted (AES-256-GCM) instead.
use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261123_000003_auth"
    }
}

const UP: &str = r#"
-- The contact address for invoices; changing it is the canonical MFA-protected action.
ALTER TABLE users ADD COLUMN billing_email text CHECK (billing_email = lower(btrim(billing_email)));

-- A login on one device. Access tokens carry its id; require_mfa and refresh check it is still live,
-- so revoking the row ends the session everywhere.
CREATE TABLE sessions (
    id              uuid        PRIMARY KEY,
    user_id         uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- Assurance level reached in this session; `mfa_at` is the last TOTP/recovery code verification.
    aal             text        NOT NULL CHECK (aal IN ('aal1', 'aal2')),
    mfa_at          timestamptz,
    user_agent      text,
    ip              text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    last_used_at    timestamptz NOT NULL DEFAULT now(),
    -- Absolute lifetime: refreshing does not extend it.
    expires_at      timestamptz NOT NULL,
    revoked_at      timestamptz,
    revoked_reason  text,
    CHECK ((aal = 'aal2') = (mfa_at IS NOT NULL))
);
CREATE INDEX sessions_live_by_user ON sessions (user_id) WHERE revoked_at IS NULL;

-- Every refresh token ever issued for a session (the "family"). Exactly one per session is unused;
-- presenting a used one means it was stolen or replayed, and the whole session is revoked.
CREATE TABLE refresh_tokens (
    token_hash  bytea       PRIMARY KEY,
    session_id  uuid        NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    used_at     timestamptz
);
CREATE INDEX refresh_tokens_by_session ON refresh_tokens (session_id);

-- One TOTP authenticator per user. Not active until `confirmed_at` is set (the user proved the app
-- works). `last_used_step` makes every code single-use: only a later time step is accepted, by an
-- atomic compare-and-set.
CREATE TABLE user_totp (
    user_id           uuid        PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    -- nonce (12 bytes) || AES-256-GCM ciphertext || tag, with the user id as associated data.
    secret_encrypted  bytea       NOT NULL,
    confirmed_at      timestamptz,
    last_used_step    bigint,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE TRIGGER user_totp_set_updated_at BEFORE UPDATE ON user_totp
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE recovery_codes (
    user_id     uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash   bytea       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    used_at     timestamptz,
    PRIMARY KEY (user_id, code_hash)
);

-- Links sent by email (verify address, reset password): single use, expiring.
CREATE TABLE email_tokens (
    token_hash  bytea       PRIMARY KEY,
    user_id     uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose     text        NOT NULL CHECK (purpose IN ('verify_email', 'password_reset')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz
);
CREATE INDEX email_tokens_by_user ON email_tokens (user_id, purpose);

-- The `mfa_token` handed out by a password login of a user with MFA: good only for
-- POST /auth/mfa/verify, short-lived, consumed once, dead after 5 wrong codes.
CREATE TABLE mfa_challenges (
    id               uuid        PRIMARY KEY,
    token_hash       bytea       NOT NULL UNIQUE,
    user_id          uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    failed_attempts  integer     NOT NULL DEFAULT 0,
    created_at       timestamptz NOT NULL DEFAULT now(),
    expires_at       timestamptz NOT NULL,
    consumed_at      timestamptz
);

-- Brute-force counters, per account and per IP, in the database so every app instance sees the
-- same count. A fixed window: `attempts` counts attempts since `window_started_at`.
CREATE TABLE auth_throttle (
    key                text        PRIMARY KEY,
    attempts           integer     NOT NULL,
    window_started_at  timestamptz NOT NULL
);

-- Append-only audit trail of security events. Kept when the user is deleted (user_id set NULL).
CREATE TABLE auth_events (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id     uuid        REFERENCES users (id) ON DELETE SET NULL,
    event       text        NOT NULL,
    session_id  uuid,
    ip          text,
    user_agent  text,
    details     jsonb       NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX auth_events_by_user ON auth_events (user_id, created_at DESC);
"#;

const DOWN: &str = r#"
DROP TABLE auth_events;
DROP TABLE auth_throttle;
DROP TABLE mfa_challenges;
DROP TABLE email_tokens;
DROP TABLE recovery_codes;
DROP TABLE user_totp;
DROP TABLE refresh_tokens;
DROP TABLE sessions;
ALTER TABLE users DROP COLUMN billing_email;
"#;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.get_connection().execute_unprepared(UP).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.get_connection().execute_unprepared(DOWN).await?;
        Ok(())
    }
}
