CREATE TABLE principals (
    name TEXT PRIMARY KEY,
    definition TEXT NOT NULL
);
CREATE TABLE policies (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    domain TEXT,
    file TEXT NOT NULL,
    source TEXT NOT NULL
);
CREATE TABLE policy_states (
    domain TEXT NOT NULL,
    name TEXT NOT NULL,
    state TEXT NOT NULL,
    PRIMARY KEY (domain, name)
);
CREATE TABLE settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE audit_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    principal TEXT NOT NULL,
    interface TEXT NOT NULL,
    action TEXT NOT NULL,
    statement TEXT NOT NULL,
    products TEXT NOT NULL,
    rows_returned BIGINT,
    duration_ms DOUBLE PRECISION NOT NULL,
    outcome TEXT NOT NULL,
    error TEXT
);
CREATE INDEX audit_events_at ON audit_events (at);
CREATE TABLE audit_event_products (
    event_id BIGINT NOT NULL REFERENCES audit_events (id),
    product_id TEXT NOT NULL,
    PRIMARY KEY (event_id, product_id)
);
CREATE INDEX audit_event_products_product ON audit_event_products (product_id);
