CREATE TABLE api_tokens (
    id TEXT PRIMARY KEY,
    principal TEXT NOT NULL,
    description TEXT,
    hash TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT,
    revoked_at TEXT
);
INSERT INTO settings (key, value) VALUES ('generation', '0');
