-- The high-water mark an incremental load read up to (JSON: input, column, value), recorded with
-- the publication that read it, so it advances only when that publication commits.
ALTER TABLE product_versions ADD COLUMN watermark TEXT;
