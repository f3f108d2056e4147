//! Organisations and their members: who a SaaS sells to.
//!
//! - `orgs`: a name and a unique slug (for display and lookup; every path names an org by its id).
//!   A deleted org keeps its row (`deleted_at`), so what refers to it (orders, audit) stays whole;
//!   its slug is free again.
//! - Every account has a **personal organisation** (`personal_for`), made by a trigger in the
//!   transaction that inserts the account, whatever inserts it; existing accounts get theirs here.
//!   It goes with its account.
//! - `org_members`: one role per member (`owner`, `admin`, `member`).
//! - `org_invitations`: pending, accepted or revoked invitations, the token kept as a hash.
//! - `org_api_keys`: keys a program authenticates with on the org's routes its scopes allow.
//! - `org_audit`: who did what to an org's membership and settings (also what the invitation
//!   send limits count).
//! - `seat_limit` (NULL: unlimited) is the seats hook billing writes.
use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261202_000070_orgs"
    }
}

const UP: &str = r#"
CREATE TABLE orgs (
    id            uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    name          text        NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    slug          text        NOT NULL CHECK (slug ~ '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$'),
    personal_for  uuid        UNIQUE REFERENCES users (id) ON DELETE CASCADE,
    seat_limit    integer     CHECK (seat_limit > 0),
    -- Kept by a trigger on org_members: the guard reads it with the membership, no count per request.
    member_count  integer     NOT NULL DEFAULT 0 CHECK (member_count >= 0),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    deleted_at    timestamptz,
    CHECK (personal_for IS NULL OR deleted_at IS NULL)
);
CREATE UNIQUE INDEX orgs_slug ON orgs (slug) WHERE deleted_at IS NULL;
CREATE TRIGGER orgs_set_updated_at BEFORE UPDATE ON orgs
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE org_members (
    org_id      uuid        NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    user_id     uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role        text        NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, user_id)
);
CREATE INDEX org_members_by_user ON org_members (user_id);

CREATE FUNCTION count_org_members() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        UPDATE orgs SET member_count = member_count + 1 WHERE id = NEW.org_id;
    ELSE
        UPDATE orgs SET member_count = member_count - 1 WHERE id = OLD.org_id;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER org_members_count AFTER INSERT OR DELETE ON org_members
    FOR EACH ROW EXECUTE FUNCTION count_org_members();

-- Pending while neither accepted nor revoked (an expired one stays pending until resent).
CREATE TABLE org_invitations (
    id           uuid        PRIMARY KEY,
    org_id       uuid        NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    email        text        NOT NULL CHECK (email = lower(btrim(email))),
    role         text        NOT NULL CHECK (role IN ('admin', 'member')),
    -- SHA-256 of the emailed token: the token itself is never stored.
    token_hash   bytea       NOT NULL UNIQUE,
    invited_by   uuid        REFERENCES users (id) ON DELETE SET NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    sent_at      timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    accepted_at  timestamptz,
    accepted_by  uuid        REFERENCES users (id) ON DELETE SET NULL,
    revoked_at   timestamptz,
    CHECK (accepted_at IS NULL OR revoked_at IS NULL),
    CHECK (accepted_by IS NULL OR accepted_at IS NOT NULL)
);
CREATE UNIQUE INDEX org_invitations_pending ON org_invitations (org_id, email)
    WHERE accepted_at IS NULL AND revoked_at IS NULL;

-- An org's API keys: the key itself is shown once and kept only as its SHA-256.
CREATE TABLE org_api_keys (
    id            uuid        PRIMARY KEY,
    org_id        uuid        NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    name          text        NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    prefix        text        NOT NULL CHECK (prefix IN ('ic_live_', 'ic_test_')),
    last4         text        NOT NULL CHECK (length(last4) = 4),
    key_hash      bytea       NOT NULL UNIQUE,
    scopes        jsonb       NOT NULL CHECK (jsonb_typeof(scopes) = 'array'),
    created_by    uuid        REFERENCES users (id) ON DELETE SET NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz,
    -- Written at most once a minute (and when the address changes), not on every request.
    last_used_at  timestamptz,
    last_used_ip  text,
    revoked_at    timestamptz
);
CREATE INDEX org_api_keys_by_org ON org_api_keys (org_id, created_at DESC);

CREATE TABLE org_audit (
    id             bigserial   PRIMARY KEY,
    org_id         uuid        NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    -- A person, or one of the org's API keys.
    actor_user_id     uuid     REFERENCES users (id) ON DELETE SET NULL,
    actor_api_key_id  uuid     REFERENCES org_api_keys (id) ON DELETE SET NULL,
    action         text        NOT NULL,
    subject        text,
    detail         jsonb       NOT NULL DEFAULT '{}',
    at             timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX org_audit_by_org ON org_audit (org_id, at DESC);
-- The invitation send limit per inviter counts their recent sends.
CREATE INDEX org_audit_by_actor ON org_audit (actor_user_id, at DESC);

CREATE FUNCTION create_personal_org() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    org uuid := gen_random_uuid();
BEGIN
    INSERT INTO orgs (id, name, slug, personal_for)
        VALUES (org, 'Personal', 'personal-' || replace(NEW.id::text, '-', ''), NEW.id);
    INSERT INTO org_members (org_id, user_id, role) VALUES (org, NEW.id, 'owner');
    RETURN NULL;
END
$$;
CREATE TRIGGER users_personal_org AFTER INSERT ON users
    FOR EACH ROW EXECUTE FUNCTION create_personal_org();

WITH personal AS (
    INSERT INTO orgs (name, slug, personal_for)
    SELECT 'Personal', 'personal-' || replace(u.id::text, '-', ''), u.id FROM users u
    RETURNING id, personal_for
)
INSERT INTO org_members (org_id, user_id, role) SELECT id, personal_for, 'owner' FROM personal;
"#;

const DOWN: &str = r#"
DROP TRIGGER users_personal_org ON users;
DROP FUNCTION create_personal_org();
DROP TABLE org_audit;
DROP TABLE org_api_keys;
DROP TABLE org_invitations;
DROP TABLE org_members;
DROP FUNCTION count_org_members();
DROP TABLE orgs;
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
