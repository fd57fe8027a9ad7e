-- tollgate-auth schema, version 1. Portable between SQLite and PostgreSQL: only TEXT
-- and BIGINT columns (booleans are 0/1), no engine-specific types or defaults.

CREATE TABLE users (
    id TEXT PRIMARY KEY,
    email TEXT NOT NULL,
    email_verified BIGINT NOT NULL,
    -- Argon2id PHC string; NULL for an account that only signs in through a provider.
    password_hash TEXT,
    -- Space-separated role names.
    roles TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    -- Access tokens issued before this (seconds) are refused here and revoked at the
    -- edge (revoke_subject): "log out everywhere", role changes.
    tokens_valid_after BIGINT NOT NULL
);
CREATE UNIQUE INDEX users_email ON users (email);

-- External identities (Google, Kakao, any OIDC provider) linked to an account.
CREATE TABLE identities (
    provider TEXT NOT NULL,
    subject TEXT NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    email TEXT,
    email_verified BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (provider, subject)
);
CREATE INDEX identities_user ON identities (user_id);

-- A session is one refresh family at the revocation service (id = sid).
CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- How it was started: "password", or a provider name.
    method TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    -- When the current refresh token expires (sliding).
    expires_at BIGINT NOT NULL,
    current_jti TEXT NOT NULL,
    previous_jti TEXT,
    rotated_at_ms BIGINT,
    -- The pair issued by the last rotation, sealed under a key derived from the
    -- refresh token it replaced (which is never stored), so that a replay of that token
    -- within the window gets the same pair back; NULL once unused.
    successor TEXT,
    -- "pending" until the revocation service has accepted the rotation, then "committed".
    successor_state TEXT,
    revoked_at BIGINT,
    revoked_reason TEXT
);
CREATE INDEX sessions_user ON sessions (user_id);

-- The access and refresh key sets (tollgate-origin's KeySet export: private keys, so
-- protect the database), one row each, shared by every instance. `version` makes
-- updates compare-and-swap, so two instances rotating at once cannot lose a key.
CREATE TABLE key_sets (
    purpose TEXT PRIMARY KEY,
    version BIGINT NOT NULL,
    document TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
