//! Reads input files (CSV, NDJSON, Parquet) into Arrow batches, remembering which file and row
//! each value came from so that bad source data can be reported precisely.

use std::fs::File;
use std::io::{BufReader, Seek};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, RecordBatch, StringArray};
use arrow::compute::{CastOptions, cast_with_options, concat_batches};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use meshwork_core::descriptor::InputSource;

use crate::PipelineError;

/// Where a batch of rows came from, for messages about bad values.
#[derive(Debug, Clone)]
pub enum Provenance {
    /// A data file.
    File {
        /// Path relative to the mesh repository.
        path: String,
        /// For line-oriented text files (CSV), the number of lines before the first row (the
        /// header); `None` where rows are not lines (NDJSON may skip blank lines, Parquet has none).
        lines_before: Option<usize>,
    },
    /// The result of the product's transform.
    Transform {
        /// Where the SQL came from.
        origin: String,
    },
    /// Another product, read through an identity input.
    Product(String),
    /// A table or query of an operational database: rows are named by their primary key.
    Database {
        /// The connection's name.
        connection: String,
        /// The table or query, as messages name it.
        what: String,
        /// The contract's primary key columns.
        key: Vec<String>,
    },
}

impl Provenance {
    /// Names the row at 0-based `index` (counted from the start of this source).
    pub fn locate(&self, index: usize) -> String {
        let row = index + 1;
        match self {
            Provenance::File { path, lines_before: Some(before) } => format!("{path}: row {row} (line {})", row + before),
            Provenance::File { path, lines_before: None } => format!("{path}: row {row}"),
            Provenance::Transform { origin } => format!("{origin}: result row {row}"),
            Provenance::Product(id) => format!("product `{id}`: row {row}"),
            Provenance::Database { connection, what, .. } => format!("{what} of database `{connection}`: row {row}"),
        }
    }

    /// Names row `index` of `batch`, whose first row is row `first_row` of this source: a
    /// database row by its primary key (`id = 42`), others by [`Provenance::locate`].
    pub fn locate_in(&self, batch: &RecordBatch, first_row: usize, index: usize) -> String {
        if let Provenance::Database { connection, what, key } = self
            && !key.is_empty()
        {
            let formatter = arrow::util::display::FormatOptions::default();
            let values: Option<Vec<String>> = key
                .iter()
                .map(|k| {
                    let column = batch.column_by_name(k)?;
                    let display = arrow::util::display::ArrayFormatter::try_new(column.as_ref(), &formatter).ok()?;
                    Some(format!("{k} = {}", display.value(index)))
                })
                .collect();
            if let Some(values) = values {
                return format!("{what} of database `{connection}`: row with {}", values.join(", "));
            }
        }
        self.locate(first_row + index)
    }

    /// Names the source as a whole.
    pub fn describe(&self) -> String {
        match self {
            Provenance::File { path, .. } => path.clone(),
            Provenance::Transform { origin } => format!("{origin}: result"),
            Provenance::Product(id) => format!("product `{id}`"),
            Provenance::Database { connection, what, .. } => format!("{what} of database `{connection}`"),
        }
    }
}

/// The files matching `pattern` (relative to `root`), sorted. A pattern without wildcards
/// names one file.
pub fn expand_glob(root: &Path, pattern: &str) -> Result<Vec<PathBuf>, glob::PatternError> {
    let full = root.join(pattern);
    let mut files: Vec<PathBuf> =
        glob::glob(&full.to_string_lossy())?.filter_map(Result::ok).filter(|p| p.is_file()).collect();
    files.sort();
    Ok(files)
}

fn read_error(path: &str, err: impl std::fmt::Display) -> PipelineError {
    PipelineError::Read { file: path.to_owned(), message: err.to_string() }
}

/// Rows per batch read from a file: the unit of streaming, of memory and of the counts in
/// messages about bad values.
pub const CHUNK_ROWS: usize = 64 * 1024;

/// The batches of one file, read as they are consumed, and their schema.
pub struct Chunks {
    /// The columns every batch has.
    pub schema: SchemaRef,
    /// The batches.
    pub batches: Box<dyn Iterator<Item = Result<RecordBatch, PipelineError>> + Send>,
}

/// Reads a CSV file with every column as text, `CHUNK_ROWS` rows at a time; cells equal to one
/// of `null_values` become NULL. Keeping text lets the contract decide the types and report the
/// exact cell that does not fit.
pub fn csv_text_chunks(path: &Path, display: &str, header: bool, delimiter: char, null_values: &[String]) -> Result<Chunks, PipelineError> {
    let file = File::open(path).map_err(|e| read_error(display, e))?;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let format = arrow::csv::reader::Format::default().with_header(header).with_delimiter(delimiter as u8);
    let (inferred, _) = format.infer_schema(&mut reader, Some(1)).map_err(|e| read_error(display, e))?;
    reader.rewind().map_err(|e| read_error(display, e))?;
    let mut names: Vec<String> = Vec::new();
    for field in inferred.fields() {
        let name = field.name().trim().to_owned();
        if names.contains(&name) {
            return Err(read_error(display, format!("column `{name}` appears twice in the header")));
        }
        names.push(name);
    }
    let schema: SchemaRef = Arc::new(Schema::new(names.iter().map(|n| Field::new(n, DataType::Utf8, true)).collect::<Vec<_>>()));
    // Arrow's reader gives an empty cell no bytes and marks it NULL (a regex test per cell
    // would cost a tenth of the ingest); an empty cell is an empty string unless `null_values`
    // lists it, so that mark is dropped below and the declared markers applied instead.
    let csv = arrow::csv::ReaderBuilder::new(schema.clone())
        .with_header(header)
        .with_delimiter(delimiter as u8)
        .with_batch_size(CHUNK_ROWS)
        .build(reader)
        .map_err(|e| read_error(display, e))?;
    let display = display.to_owned();
    let null_values = null_values.to_vec();
    let batches = csv.map(move |batch| {
        // Arrow's CSV errors count lines of the file, header included, as an editor does.
        let batch = batch.map_err(|e| read_error(&display, e))?;
        let columns: Vec<ArrayRef> = batch
            .columns()
            .iter()
            .map(|column| {
                let strings = column.as_any().downcast_ref::<StringArray>().expect("text columns");
                if null_values.is_empty() {
                    let (offsets, values, _) = strings.clone().into_parts();
                    return Arc::new(StringArray::new(offsets, values, None)) as ArrayRef;
                }
                let nulled: StringArray = (0..strings.len()).map(|i| Some(strings.value(i)).filter(|v| !null_values.iter().any(|n| n == v))).collect();
                Arc::new(nulled) as ArrayRef
            })
            .collect();
        RecordBatch::try_new(batch.schema(), columns).map_err(|e| read_error(&display, e))
    });
    Ok(Chunks { schema, batches: Box::new(batches) })
}

/// Reads a newline-delimited JSON file, `CHUNK_ROWS` records at a time, with the types inferred
/// from every record (a first pass over the file).
pub fn ndjson_chunks(path: &Path, display: &str) -> Result<Chunks, PipelineError> {
    let file = File::open(path).map_err(|e| read_error(display, e))?;
    let mut reader = BufReader::new(file);
    let (schema, _) = arrow::json::reader::infer_json_schema(&mut reader, None).map_err(|e| read_error(display, e))?;
    reader.rewind().map_err(|e| read_error(display, e))?;
    let schema = Arc::new(schema);
    let json = arrow::json::ReaderBuilder::new(schema.clone()).with_batch_size(CHUNK_ROWS).build(reader).map_err(|e| read_error(display, e))?;
    let display = display.to_owned();
    Ok(Chunks { schema, batches: Box::new(json.map(move |batch| batch.map_err(|e| read_error(&display, e)))) })
}

/// Reads a Parquet file, `CHUNK_ROWS` rows at a time.
pub fn parquet_chunks(path: &Path, display: &str) -> Result<Chunks, PipelineError> {
    let file = File::open(path).map_err(|e| read_error(display, e))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| read_error(display, e))?;
    let schema = builder.schema().clone();
    let reader = builder.with_batch_size(CHUNK_ROWS).build().map_err(|e| read_error(display, e))?;
    let display = display.to_owned();
    Ok(Chunks { schema, batches: Box::new(reader.map(move |batch| batch.map_err(|e| read_error(&display, e)))) })
}

/// The chunks of one file of a file input.
pub fn file_chunks(source: &InputSource, path: &Path, display: &str) -> Result<Chunks, PipelineError> {
    match source {
        InputSource::Csv { header, delimiter, null_values, .. } => csv_text_chunks(path, display, *header, *delimiter, null_values),
        InputSource::Ndjson { .. } => ndjson_chunks(path, display),
        InputSource::Parquet { .. } => parquet_chunks(path, display),
        InputSource::Postgres(_) | InputSource::Mysql(_) | InputSource::FlightSql(_) | InputSource::Product { .. } => unreachable!("only files are files"),
    }
}

/// Reads a whole file of a file input as one batch (a transform's file input, which type
/// inference reads in full).
pub fn read_whole(source: &InputSource, path: &Path, display: &str) -> Result<RecordBatch, PipelineError> {
    let Chunks { schema, batches } = file_chunks(source, path, display)?;
    let batches: Vec<RecordBatch> = batches.collect::<Result<_, _>>()?;
    concat_batches(&schema, &batches).map_err(|e| read_error(display, e))
}

/// Gives text columns the narrowest type that every value fits, as a user expects from a CSV
/// read by a SQL engine: integers, then floats, dates, timestamps, booleans, else text.
/// Columns named in `keep` are left as they are.
pub fn infer_text_types(batch: &RecordBatch, keep: &[&str]) -> Result<RecordBatch, arrow::error::ArrowError> {
    let candidates = [
        DataType::Int64,
        DataType::Float64,
        DataType::Date32,
        DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        DataType::Boolean,
    ];
    let options = CastOptions { safe: true, ..Default::default() };
    let mut fields = Vec::new();
    let mut columns = Vec::new();
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        let mut chosen = column.clone();
        if column.data_type() == &DataType::Utf8 && column.null_count() < column.len() && !keep.contains(&field.name().as_str()) {
            let strings = column.as_any().downcast_ref::<StringArray>().expect("text columns");
            // Arrow's date parser also accepts (and truncates) date-times: a date column is one
            // whose every value is a bare `YYYY-MM-DD`.
            let plain_dates = strings.iter().flatten().all(|v| v.len() == 10);
            for candidate in &candidates {
                if candidate == &DataType::Date32 && !plain_dates {
                    continue;
                }
                let cast = cast_with_options(column, candidate, &options)?;
                if cast.null_count() == column.null_count() {
                    chosen = cast;
                    break;
                }
            }
        }
        fields.push(Field::new(field.name(), chosen.data_type().clone(), true));
        columns.push(chosen);
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
}
