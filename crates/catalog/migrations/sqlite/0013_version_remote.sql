-- Where a virtual product's rows are read when it is queried (JSON: connection, read, columns),
-- recorded with the publication that checked the remote against the contract.
ALTER TABLE product_versions ADD COLUMN remote TEXT;
