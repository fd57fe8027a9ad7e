-- tollgate-auth schema, version 2: social login. Portable between SQLite and
-- PostgreSQL like version 1 (TEXT and BIGINT only; partial indexes exist in both).

-- Whether the account owns its email address (1): it can be found by it (password
-- login, linking) and no other owning account may have it. An account made by a
-- social login whose address was unverified, or already owned by another account,
-- keeps the address only as a label (0) and signs in through its identity alone.
ALTER TABLE users ADD COLUMN email_primary BIGINT NOT NULL DEFAULT 1;
DROP INDEX users_email;
CREATE UNIQUE INDEX users_email ON users (email) WHERE email_primary = 1;

-- Finished social-login attempts, by their `state`: a callback records its state
-- before exchanging the code, so a replayed callback is refused. Rows older than a
-- day are pruned (the attempt cookie lives ten minutes).
CREATE TABLE oauth_states (
    state TEXT PRIMARY KEY,
    provider TEXT NOT NULL,
    used_at BIGINT NOT NULL
);
CREATE INDEX oauth_states_used_at ON oauth_states (used_at);
