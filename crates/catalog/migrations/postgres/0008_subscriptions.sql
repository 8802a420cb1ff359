CREATE TABLE subscriptions (
    product_id TEXT COLLATE "C" NOT NULL,
    principal TEXT COLLATE "C" NOT NULL,
    webhook TEXT,
    events TEXT NOT NULL,
    secret TEXT,
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL,
    after_event BIGINT NOT NULL,
    PRIMARY KEY (product_id, principal)
);
