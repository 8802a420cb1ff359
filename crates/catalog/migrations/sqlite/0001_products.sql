CREATE TABLE domains (
    name TEXT PRIMARY KEY,
    title TEXT,
    description TEXT,
    owners TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE products (
    id TEXT PRIMARY KEY,
    domain TEXT NOT NULL,
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    title TEXT,
    description TEXT,
    owner TEXT,
    status TEXT NOT NULL,
    tags TEXT NOT NULL,
    descriptor TEXT NOT NULL,
    descriptor_hash TEXT NOT NULL,
    table_uri TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE product_versions (
    product_id TEXT NOT NULL REFERENCES products (id),
    seq BIGINT NOT NULL,
    version TEXT NOT NULL,
    delta_version BIGINT NOT NULL,
    schema_json TEXT NOT NULL,
    row_count BIGINT NOT NULL,
    descriptor_hash TEXT NOT NULL,
    input_fingerprint TEXT NOT NULL,
    published_at TEXT NOT NULL,
    PRIMARY KEY (product_id, seq)
);
CREATE TABLE lineage (
    upstream TEXT NOT NULL,
    downstream TEXT NOT NULL,
    PRIMARY KEY (upstream, downstream)
);
