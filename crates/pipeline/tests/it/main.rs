//! Building products from every input format, through the pipeline library.

use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::{Float64Array, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::util::pretty::pretty_format_batches;
use meshwork_catalog::SqlCatalog;
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

fn one_product_mesh(dir: &Path, product_yaml: &str) {
    write(dir, "mesh.yaml", "name: m\n");
    write(dir, "domains/shop/domain.yaml", "name: shop\n");
    write(dir, "domains/shop/products/p/product.yaml", product_yaml);
}

/// A build's schema and every batch it streams.
#[derive(Debug)]
struct Built {
    schema: arrow::datatypes::SchemaRef,
    batches: Vec<arrow::array::RecordBatch>,
}

async fn build(dir: &Path) -> Result<Built, meshwork_pipeline::PipelineError> {
    let mesh = load_mesh(dir).unwrap_or_else(|d| panic!("{d:#?}"));
    let catalog = SqlCatalog::open_sqlite(&dir.join(".meshwork/catalog.db")).await.unwrap();
    let governance = meshwork_query::Governance::load(&catalog).await.unwrap();
    let built = build_product(&mesh, &mesh.repo.products[&"shop.p".parse().unwrap()], &catalog, &governance, None).await?;
    let schema = built.schema.clone();
    Ok(Built { schema, batches: built.collect().await? })
}

#[tokio::test]
async fn csv_ndjson_and_parquet_inputs_build_into_one_product() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // Two CSV files through one glob, `;`-separated, with `NULL` and `n/a` as null markers; the
    // empty note is then a value (an empty string), not NULL.
    write(dir, "data/sales/part-1.csv", "sku;qty;note\nA-1;2;first\nB-2;NULL;n/a\n");
    write(dir, "data/sales/part-2.csv", "sku;qty;note\nA-1;5;\n");
    write(dir, "data/labels.ndjson", "{\"sku\": \"A-1\", \"label\": \"Apple\"}\n{\"sku\": \"B-2\", \"label\": \"Banana\"}\n");
    write_parquet(&dir.join("data/catalog/items.parquet"));
    one_product_mesh(
        dir,
        r#"name: p
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
    let built = build(dir).await.unwrap();
    assert_eq!(built.batches.iter().map(|b| b.num_rows()).sum::<usize>(), 3);
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
    one_product_mesh(
        dir,
        "name: p\ndomain: shop\nversion: 1.0.0\ninputs:\n  - { name: raw, source: { kind: csv, path: data/missing/*.csv } }\ncontract:\n  columns: [{ name: id, type: bigint }]\n",
    );
    let diagnostics = load_mesh(dir).unwrap_err();
    assert_eq!(diagnostics.len(), 1);
    assert_eq!(
        diagnostics[0].to_string(),
        "domains/shop/products/p/product.yaml:5:45: inputs[0].source.path: no file matches `data/missing/*.csv` (hint: paths are relative to the mesh repository root; globs like `data/orders/*.csv` are allowed)"
    );
}

#[tokio::test]
async fn headerless_csv_maps_columns_by_position_and_datetimes_keep_their_time() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write(dir, "data/a.csv", "1,2025-01-02T10:30:00Z\n2,2025-01-03T23:59:59Z\n");
    one_product_mesh(
        dir,
        "name: p\ndomain: shop\nversion: 1.0.0\ninputs:\n  - { name: raw, source: { kind: csv, path: data/a.csv, header: false } }\ncontract:\n  columns:\n    - { name: id, type: bigint }\n    - { name: at, type: timestamp }\n",
    );
    let built = build(dir).await.unwrap();
    expect_test::expect![[r#"
        +----+----------------------+
        | id | at                   |
        +----+----------------------+
        | 1  | 2025-01-02T10:30:00Z |
        | 2  | 2025-01-03T23:59:59Z |
        +----+----------------------+"#]]
    .assert_eq(&pretty_format_batches(&built.batches).unwrap().to_string());

    // In a transform, a date-time column not named in the contract is inferred as a timestamp,
    // not truncated to a date.
    write(dir, "data/b.csv", "ts,day\n2025-01-02T10:30:00Z,2025-01-02\n");
    one_product_mesh(
        dir,
        "name: p\ndomain: shop\nversion: 1.0.0\ninputs:\n  - { name: raw, source: { kind: csv, path: data/b.csv } }\ntransform: SELECT ts AS seen_at, day + INTERVAL '1 day' AS next_day FROM raw\ncontract:\n  columns:\n    - { name: seen_at, type: timestamp }\n    - { name: next_day, type: date }\n",
    );
    expect_test::expect![[r#"
        +----------------------+------------+
        | seen_at              | next_day   |
        +----------------------+------------+
        | 2025-01-02T10:30:00Z | 2025-01-03 |
        +----------------------+------------+"#]]
    .assert_eq(&pretty_format_batches(&build(dir).await.unwrap().batches).unwrap().to_string());
}

#[tokio::test]
async fn files_of_one_glob_must_agree_on_their_columns() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write(dir, "data/part-1.csv", "id,name\n1,a\n");
    write(dir, "data/part-2.csv", "name,id\nb,2\n");
    one_product_mesh(
        dir,
        "name: p\ndomain: shop\nversion: 1.0.0\ninputs:\n  - { name: raw, source: { kind: csv, path: \"data/part-*.csv\" } }\ntransform: SELECT id FROM raw\ncontract:\n  columns: [{ name: id, type: bigint }]\n",
    );
    let err = build(dir).await.unwrap_err().to_string();
    assert_eq!(
        err,
        "data/part-2.csv: cannot read input: columns name, id differ from id, name in the first file matching `data/part-*.csv`; files of one input must have the same columns in the same order"
    );
}

/// An identity build streams its files in blocks of 65,536 rows: row numbers count from the
/// start of each file across blocks, and files follow one another in glob order.
#[tokio::test]
async fn a_streamed_build_names_the_row_of_a_bad_value_past_the_first_block() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let rows = |from: usize, to: usize| (from..to).map(|i| format!("{i},n{i}\n")).collect::<String>();
    write(dir, "data/part-1.csv", &format!("id,name\n{}", rows(0, 70_000)));
    write(dir, "data/part-2.csv", &format!("id,name\n{}", rows(70_000, 200_000)));
    one_product_mesh(
        dir,
        "name: p\ndomain: shop\nversion: 1.0.0\ninputs:\n  - { name: raw, source: { kind: csv, path: \"data/part-*.csv\" } }\ncontract:\n  columns: [{ name: id, type: bigint, nullable: false }, { name: name, type: string }]\n",
    );
    let built = build(dir).await.unwrap();
    let ids: Vec<i64> = built.batches.iter().flat_map(|b| b.column(0).as_any().downcast_ref::<arrow::array::Int64Array>().unwrap().values().to_vec()).collect();
    assert_eq!(ids, (0..200_000).collect::<Vec<i64>>(), "every row, in file order");
    assert!(built.batches.iter().all(|b| b.num_rows() <= 64 * 1024), "streamed in blocks");

    // Row 100,001 of the second file (line 100,002) is bad, in its second block.
    let bad = rows(70_000, 200_000).replacen("170000,", "x170000,", 1);
    write(dir, "data/part-2.csv", &format!("id,name\n{bad}"));
    let err = build(dir).await.unwrap_err().to_string();
    assert_eq!(err, "data/part-2.csv: row 100001 (line 100002): column `id`: value `x170000` is not a valid bigint");
}

#[tokio::test]
async fn a_product_without_inputs_needs_a_transform() {
    let tmp = tempfile::tempdir().unwrap();
    one_product_mesh(tmp.path(), "name: p\ndomain: shop\nversion: 1.0.0\ninputs: []\ncontract:\n  columns: [{ name: id, type: bigint }]\n");
    let diagnostics = load_mesh(tmp.path()).unwrap_err();
    assert_eq!(
        diagnostics.iter().map(ToString::to_string).collect::<Vec<_>>(),
        ["domains/shop/products/p/product.yaml:4:9: inputs: a product without a transform needs exactly one input (hint: add an input, or a `transform` that computes the rows)"]
    );
}

mod lineage;
mod openlineage;
mod quality;
mod recovery;
mod unpublish;
