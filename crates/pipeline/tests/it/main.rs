//! Building products from every input format, through the pipeline library.

use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::{Float64Array, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::util::pretty::pretty_format_batches;
use meshwork_catalog::SqliteCatalog;
use meshwork_pipeline::{build_product, load_mesh};

fn write(dir: &Path, path: &str, content: &str) {
    let path = dir.join(path);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
}

fn write_parquet(path: &Path) {
    let schema = Arc::new(Schema::new(vec![
        Field::new("sku", DataType::Utf8, false),
        Field::new("price", DataType::Float64, false),
        Field::new("stock", DataType::Int64, true),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from(vec!["A-1", "B-2", "C-3"])),
            Arc::new(Float64Array::from(vec![9.99, 120.0, 0.5])),
            Arc::new(Int64Array::from(vec![Some(3), None, Some(40)])),
        ],
    )
    .unwrap();
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut writer = datafusion::parquet::arrow::ArrowWriter::try_new(std::fs::File::create(path).unwrap(), schema, None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
}

#[tokio::test]
async fn csv_ndjson_and_parquet_inputs_build_into_one_product() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write(dir, "mesh.yaml", "name: formats\n");
    write(dir, "domains/shop/domain.yaml", "name: shop\n");
    // Two CSV files through one glob, `;`-separated, with `NULL` and `n/a` as null markers; the
    // empty note is then a value (an empty string), not NULL.
    write(dir, "data/sales/part-1.csv", "sku;qty;note\nA-1;2;first\nB-2;NULL;n/a\n");
    write(dir, "data/sales/part-2.csv", "sku;qty;note\nA-1;5;\n");
    write(dir, "data/labels.ndjson", "{\"sku\": \"A-1\", \"label\": \"Apple\"}\n{\"sku\": \"B-2\", \"label\": \"Banana\"}\n");
    write_parquet(&dir.join("data/catalog/items.parquet"));
    write(
        dir,
        "domains/shop/products/stock/product.yaml",
        r#"name: stock
domain: shop
version: 0.1.0
inputs:
  - { name: sales, source: { kind: csv, path: "data/sales/*.csv", delimiter: ";", null_values: ["NULL", "n/a"] } }
  - { name: labels, source: { kind: ndjson, path: data/labels.ndjson } }
  - { name: items, source: { kind: parquet, path: data/catalog/items.parquet } }
transform: |
  SELECT i.sku, l.label, i.price, COALESCE(SUM(s.qty), 0) AS sold, COUNT(s.note) AS notes
  FROM items i
  LEFT JOIN labels l ON l.sku = i.sku
  LEFT JOIN sales s ON s.sku = i.sku
  GROUP BY i.sku, l.label, i.price
  ORDER BY i.sku
contract:
  columns:
    - { name: sku, type: string, nullable: false }
    - { name: label, type: string }
    - { name: price, type: "decimal(8,2)", nullable: false }
    - { name: sold, type: int, nullable: false }
    - { name: notes, type: bigint, nullable: false }
"#,
    );
    let mesh = load_mesh(dir).unwrap_or_else(|d| panic!("{d:#?}"));
    let catalog = SqliteCatalog::open(&dir.join(".meshwork/catalog.db")).await.unwrap();
    let entry = &mesh.repo.products[&"shop.stock".parse().unwrap()];
    let built = build_product(&mesh, entry, &catalog).await.unwrap();
    assert_eq!(built.row_count, 3);
    let table = pretty_format_batches(&built.batches).unwrap().to_string();
    expect_test::expect![[r#"
        +-----+--------+--------+------+-------+
        | sku | label  | price  | sold | notes |
        +-----+--------+--------+------+-------+
        | A-1 | Apple  | 9.99   | 7    | 2     |
        | B-2 | Banana | 120.00 | 0    | 0     |
        | C-3 |        | 0.50   | 0    | 0     |
        +-----+--------+--------+------+-------+"#]]
    .assert_eq(&table);
    assert_eq!(built.schema.field(3).data_type(), &DataType::Int32);
}

#[tokio::test]
async fn a_glob_that_matches_nothing_is_a_validation_error() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write(dir, "mesh.yaml", "name: m\n");
    write(dir, "domains/shop/domain.yaml", "name: shop\n");
    write(
        dir,
        "domains/shop/products/p/product.yaml",
        "name: p\ndomain: shop\nversion: 1.0.0\ninputs:\n  - { name: raw, source: { kind: csv, path: data/missing/*.csv } }\ncontract:\n  columns: [{ name: id, type: bigint }]\n",
    );
    let diagnostics = load_mesh(dir).unwrap_err();
    assert_eq!(diagnostics.len(), 1);
    assert_eq!(
        diagnostics[0].to_string(),
        "domains/shop/products/p/product.yaml:5:45: inputs[0].source.path: no file matches `data/missing/*.csv` (hint: paths are relative to the mesh repository root; globs like `data/orders/*.csv` are allowed)"
    );
}
