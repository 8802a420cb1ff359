ALTER TABLE products ADD COLUMN unpublished_at TEXT;
