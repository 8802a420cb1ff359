//! Column lineage without building: a transform planned against the schemas its inputs declare,
//! so `validate` and `plan` can check what flows where before any data is read.
//!
//! An upstream product's schema is its contract in the repository (a product table holds
//! exactly its contract's columns). A file input's schema comes from the head of its first
//! file: the CSV header and a 100-record type sample, the first 100 NDJSON records, or the
//! Parquet footer; columns the product's contract names take the contract's type, as the build
//! types them. Planning needs no data, so every table is empty.

use std::fs::File;
use std::io::BufReader;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::datasource::MemTable;
use datafusion::execution::context::SQLOptions;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use datafusion::prelude::SessionContext;
use meshwork_core::descriptor::{Contract, InputSource};
use meshwork_core::lineage::ProductLineage;
use meshwork_core::mesh::ProductEntry;
use meshwork_storage::contract_schema;

use crate::LoadedMesh;
use crate::ingest::expand_glob;

/// Records sampled from the head of a text file to type its columns.
const SAMPLE_RECORDS: usize = 100;

/// Plans transforms against declared schemas; one session serves every product of a mesh, so
/// a 1,000-product mesh creates its function registry once.
pub struct DeclaredPlanner {
    ctx: SessionContext,
}

impl Default for DeclaredPlanner {
    fn default() -> Self {
        DeclaredPlanner { ctx: SessionContext::new() }
    }
}

impl DeclaredPlanner {
    /// The column lineage of `entry`'s transform over its inputs' declared schemas, or why it
    /// cannot be derived (the message names the input or DataFusion's planning error).
    pub fn lineage(&self, mesh: &LoadedMesh, entry: &ProductEntry) -> Result<ProductLineage, String> {
        let descriptor = &entry.descriptor;
        let Some(transform) = &descriptor.transform else { return Ok(ProductLineage::identity(descriptor)) };
        let result = self.plan(mesh, entry, &transform.sql);
        for input in &descriptor.inputs {
            // Tables of one product must not leak into the next one's plan.
            let _ = self.ctx.deregister_table(input.name.as_str());
        }
        result
    }

    fn plan(&self, mesh: &LoadedMesh, entry: &ProductEntry, sql: &str) -> Result<ProductLineage, String> {
        let descriptor = &entry.descriptor;
        for input in &descriptor.inputs {
            let schema = match &input.source {
                InputSource::Product { product } => match mesh.repo.products.get(product) {
                    Some(upstream) => contract_schema(&upstream.descriptor.contract),
                    None => return Err(format!("input `{}` reads `{product}`, which is not in the repository", input.name)),
                },
                // Planning reads no data and opens no connection: a database's columns are
                // known once it is read.
                InputSource::Postgres(_) | InputSource::Mysql(_) | InputSource::FlightSql(_) => {
                    return Err(format!("input `{}` reads a database, whose columns are known only when it is read", input.name));
                }
                source => file_schema(mesh, source, &descriptor.contract).map_err(|e| format!("input `{}`: {e}", input.name))?,
            };
            let table = MemTable::try_new(schema, vec![Vec::new()]).map_err(|e| e.to_string())?;
            self.ctx.register_table(input.name.as_str(), Arc::new(table)).map_err(|e| e.to_string())?;
        }
        let options = SQLOptions::new().with_allow_ddl(false).with_allow_dml(false).with_allow_statements(false);
        // Planning over in-memory tables never waits on IO: the future completes when first polled.
        let frame = futures::executor::block_on(self.ctx.sql_with_options(sql, options)).map_err(|e| e.strip_backtrace())?;
        crate::lineage::column_lineage(frame.logical_plan(), descriptor).map_err(|e| e.strip_backtrace())
    }
}

/// The schema of a file input, read from the head of its first file.
fn file_schema(mesh: &LoadedMesh, source: &InputSource, contract: &Contract) -> Result<SchemaRef, String> {
    let pattern = source.path().expect("file sources have a path");
    let files = expand_glob(&mesh.root, pattern).map_err(|e| e.to_string())?;
    let first = files.first().ok_or_else(|| format!("no file matches `{pattern}`"))?;
    let open = || File::open(first).map(BufReader::new).map_err(|e| format!("cannot read `{pattern}`: {e}"));
    let schema = match source {
        InputSource::Csv { header, delimiter, .. } => {
            let format = arrow::csv::reader::Format::default().with_header(*header).with_delimiter(*delimiter as u8);
            format.infer_schema(open()?, Some(SAMPLE_RECORDS)).map_err(|e| e.to_string())?.0
        }
        InputSource::Ndjson { .. } => arrow::json::reader::infer_json_schema(open()?, Some(SAMPLE_RECORDS)).map_err(|e| e.to_string())?.0,
        InputSource::Parquet { .. } => {
            let file = File::open(first).map_err(|e| format!("cannot read `{pattern}`: {e}"))?;
            ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| e.to_string())?.schema().as_ref().clone()
        }
        InputSource::Postgres(_) | InputSource::Mysql(_) | InputSource::FlightSql(_) | InputSource::Product { .. } => unreachable!("only files are files"),
    };
    let typed = contract_schema(contract);
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|field| {
            let name = field.name().trim();
            let data_type = match (source, typed.field_with_name(name)) {
                (InputSource::Csv { .. }, Ok(declared)) => declared.data_type().clone(),
                _ => field.data_type().clone(),
            };
            Field::new(name, if data_type == DataType::Null { DataType::Utf8 } else { data_type }, true)
        })
        .collect();
    Ok(Arc::new(Schema::new(fields)))
}
