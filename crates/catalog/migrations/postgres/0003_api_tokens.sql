CREATE TABLE api_tokens (
    id TEXT COLLATE "C" PRIMARY KEY,
    principal TEXT COLLATE "C" NOT NULL,
    description TEXT,
    hash TEXT NOT NULL,
    created_at TEXT COLLATE "C" NOT NULL,
    expires_at TEXT COLLATE "C",
    revoked_at TEXT COLLATE "C"
);
INSERT INTO settings (key, value) VALUES ('generation', '0');
