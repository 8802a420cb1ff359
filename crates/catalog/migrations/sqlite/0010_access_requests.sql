CREATE TABLE access_requests (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    product_id TEXT NOT NULL,
    principal TEXT NOT NULL,
    purpose TEXT NOT NULL,
    until TEXT,
    status TEXT NOT NULL,
    created_at TEXT NOT NULL,
    decided_at TEXT,
    decided_by TEXT,
    comment TEXT
);
CREATE UNIQUE INDEX access_requests_one_pending ON access_requests (product_id, principal) WHERE status = 'pending';
CREATE INDEX access_requests_status ON access_requests (status, id);
CREATE TABLE grants (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    product_id TEXT NOT NULL,
    principal TEXT NOT NULL,
    request_id BIGINT,
    granted_by TEXT NOT NULL,
    purpose TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT,
    revoked_at TEXT,
    revoked_by TEXT,
    expiry_recorded BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX grants_product ON grants (product_id, principal);
CREATE INDEX grants_open ON grants (revoked_at, expires_at);
