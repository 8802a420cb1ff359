CREATE TABLE quality_runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    product_id TEXT NOT NULL,
    at TEXT NOT NULL,
    trigger_kind TEXT NOT NULL,
    outcome TEXT NOT NULL,
    published_seq BIGINT,
    row_count BIGINT NOT NULL,
    build_ms DOUBLE PRECISION NOT NULL,
    stage_ms DOUBLE PRECISION NOT NULL,
    quality_ms DOUBLE PRECISION NOT NULL,
    results TEXT NOT NULL
);
CREATE INDEX quality_runs_product ON quality_runs (product_id, id);
CREATE TABLE events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    kind TEXT NOT NULL,
    product_id TEXT,
    payload TEXT NOT NULL
);
CREATE INDEX events_product ON events (product_id, id);
CREATE TABLE slo_checks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    product_id TEXT NOT NULL,
    objective TEXT NOT NULL,
    at TEXT NOT NULL,
    status TEXT NOT NULL,
    value DOUBLE PRECISION,
    threshold DOUBLE PRECISION NOT NULL,
    budget_remaining DOUBLE PRECISION,
    message TEXT NOT NULL
);
CREATE INDEX slo_checks_product ON slo_checks (product_id, objective, at);
CREATE TABLE webhook_deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    webhook TEXT NOT NULL,
    event_id BIGINT NOT NULL,
    attempt BIGINT NOT NULL,
    at TEXT NOT NULL,
    status BIGINT,
    outcome TEXT NOT NULL,
    error TEXT
);
CREATE INDEX webhook_deliveries_webhook ON webhook_deliveries (webhook, id);
