CREATE TABLE portal_sessions (
    id_hash TEXT PRIMARY KEY,
    principal TEXT NOT NULL,
    credential TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
CREATE INDEX portal_sessions_expires_at ON portal_sessions (expires_at);
