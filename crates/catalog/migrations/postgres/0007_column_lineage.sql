CREATE TABLE column_lineage (
    product_id TEXT COLLATE "C" NOT NULL,
    seq BIGINT NOT NULL,
    lineage TEXT NOT NULL,
    PRIMARY KEY (product_id, seq)
);
