CREATE TABLE subscriptions (
    product_id TEXT NOT NULL,
    principal TEXT NOT NULL,
    webhook TEXT,
    events TEXT NOT NULL,
    secret TEXT,
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL,
    after_event BIGINT NOT NULL,
    PRIMARY KEY (product_id, principal)
);
