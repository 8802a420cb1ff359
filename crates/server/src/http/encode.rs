//! Result encoders of the HTTP API: JSON, CSV and Arrow IPC streams, written batch by batch as
//! the query produces them.

use std::sync::Arc;

use axum::body::Bytes;
use datafusion::arrow::record_batch::RecordBatch;
use futures::StreamExt;

use super::ARROW_STREAM;
use super::deprecation::{self, DeprecationInfo};
use super::products::ColumnInfo;
use crate::error::ServeError;
use crate::gate::GovernedStream;

/// The formats a result can be written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ResultFormat {
    Json,
    Csv,
    Arrow,
}

impl ResultFormat {
    pub(crate) fn from_accept(accept: Option<&str>) -> Result<ResultFormat, ServeError> {
        let Some(accept) = accept else { return Ok(ResultFormat::Json) };
        for item in accept.split(',') {
            let media = item.split(';').next().unwrap_or_default().trim();
            match media {
                "application/json" | "*/*" | "application/*" | "" => return Ok(ResultFormat::Json),
                "text/csv" | "text/*" => return Ok(ResultFormat::Csv),
                ARROW_STREAM => return Ok(ResultFormat::Arrow),
                _ => {}
            }
        }
        Err(ServeError::BadRequest(format!("cannot answer `Accept: {accept}`; ask for `application/json`, `text/csv` or `{ARROW_STREAM}`")))
    }

    pub(crate) fn content_type(self) -> &'static str {
        match self {
            ResultFormat::Json => "application/json",
            ResultFormat::Csv => "text/csv; charset=utf-8",
            ResultFormat::Arrow => ARROW_STREAM,
        }
    }
}

/// Encodes batches as they arrive. An error after the first bytes ends the body early: the
/// client sees a truncated (invalid) document, never a silently partial one that parses.
pub(crate) fn encode(stream: GovernedStream, format: ResultFormat, deprecations: Vec<DeprecationInfo>) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Send {
    let schema = stream.schema();
    let mut encoder = Encoder::new(format, schema);
    encoder.deprecations = deprecations;
    let head = futures::stream::once(futures::future::ready(encoder.head()));
    let mut encoder_tail = encoder.clone_for_tail();
    let body = stream.map(move |batch| match batch {
        Ok(batch) => encoder.batch(&batch),
        Err(err) => {
            tracing::warn!(error = %err, "query failed while streaming its result");
            Err(std::io::Error::other(err.to_string()))
        }
    });
    let tail = futures::stream::once(async move { encoder_tail.tail() });
    head.chain(body).chain(tail).filter(|chunk| futures::future::ready(!matches!(chunk, Ok(b) if b.is_empty())))
}

/// Writes one result format incrementally.
struct Encoder {
    format: ResultFormat,
    schema: datafusion::arrow::datatypes::SchemaRef,
    rows_written: bool,
    arrow: Option<datafusion::arrow::ipc::writer::StreamWriter<Vec<u8>>>,
    /// Put in the JSON document (and the Arrow schema's metadata) before the rows.
    deprecations: Vec<DeprecationInfo>,
}

impl Encoder {
    fn new(format: ResultFormat, schema: datafusion::arrow::datatypes::SchemaRef) -> Encoder {
        Encoder { format, schema, rows_written: false, arrow: None, deprecations: Vec::new() }
    }

    fn clone_for_tail(&self) -> Encoder {
        Encoder { format: self.format, schema: self.schema.clone(), rows_written: false, arrow: None, deprecations: Vec::new() }
    }

    fn head(&mut self) -> Result<Bytes, std::io::Error> {
        match self.format {
            ResultFormat::Json => {
                let columns: Vec<ColumnInfo> = self
                    .schema
                    .fields()
                    .iter()
                    .map(|f| ColumnInfo { name: f.name().clone(), data_type: f.data_type().to_string(), nullable: f.is_nullable() })
                    .collect();
                let deprecations = match self.deprecations.is_empty() {
                    true => String::new(),
                    false => format!("\"deprecations\":{},", serde_json::to_string(&self.deprecations)?),
                };
                Ok(Bytes::from(format!("{{\"columns\":{},{deprecations}\"rows\":[", serde_json::to_string(&columns)?)))
            }
            ResultFormat::Csv => {
                let header: Vec<String> = self.schema.fields().iter().map(|f| csv_field(f.name())).collect();
                Ok(Bytes::from(format!("{}\n", header.join(","))))
            }
            ResultFormat::Arrow => {
                // View types (`Utf8View`, `BinaryView`) are what DataFusion computes with, but
                // many Arrow readers cannot read them yet: send the classic types.
                self.schema = classic_schema(&self.schema);
                if !self.deprecations.is_empty() {
                    let mut metadata = self.schema.metadata().clone();
                    let warnings: Vec<&str> = self.deprecations.iter().map(|d| d.message.as_str()).collect();
                    metadata.insert(deprecation::METADATA.into(), warnings.join("\n"));
                    self.schema = Arc::new(self.schema.as_ref().clone().with_metadata(metadata));
                }
                let mut writer = datafusion::arrow::ipc::writer::StreamWriter::try_new(Vec::new(), &self.schema).map_err(std::io::Error::other)?;
                let bytes = std::mem::take(writer.get_mut());
                self.arrow = Some(writer);
                Ok(Bytes::from(bytes))
            }
        }
    }

    fn batch(&mut self, batch: &RecordBatch) -> Result<Bytes, std::io::Error> {
        if batch.num_rows() == 0 {
            return Ok(Bytes::new());
        }
        match self.format {
            ResultFormat::Json => {
                let mut writer = datafusion::arrow::json::WriterBuilder::new().with_explicit_nulls(true).build::<_, datafusion::arrow::json::writer::JsonArray>(Vec::new());
                writer.write(batch).map_err(std::io::Error::other)?;
                writer.finish().map_err(std::io::Error::other)?;
                let text = writer.into_inner();
                // `[{…},{…}]` → `{…},{…}`, joined to earlier batches with a comma.
                let inner = &text[1..text.len() - 1];
                let mut out = Vec::with_capacity(inner.len() + 1);
                if self.rows_written {
                    out.push(b',');
                }
                out.extend_from_slice(inner);
                self.rows_written = true;
                Ok(Bytes::from(out))
            }
            ResultFormat::Csv => {
                let mut writer = datafusion::arrow::csv::WriterBuilder::new().with_header(false).build(Vec::new());
                writer.write(batch).map_err(std::io::Error::other)?;
                Ok(Bytes::from(writer.into_inner()))
            }
            ResultFormat::Arrow => {
                let columns = batch
                    .columns()
                    .iter()
                    .zip(self.schema.fields())
                    .map(|(column, field)| datafusion::arrow::compute::cast(column, field.data_type()))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(std::io::Error::other)?;
                let batch = RecordBatch::try_new(self.schema.clone(), columns).map_err(std::io::Error::other)?;
                let writer = self.arrow.as_mut().expect("head written first");
                writer.write(&batch).map_err(std::io::Error::other)?;
                Ok(Bytes::from(std::mem::take(writer.get_mut())))
            }
        }
    }

    fn tail(&mut self) -> Result<Bytes, std::io::Error> {
        match self.format {
            ResultFormat::Json => Ok(Bytes::from_static(b"]}")),
            ResultFormat::Csv => Ok(Bytes::new()),
            ResultFormat::Arrow => {
                // The end-of-stream marker: a continuation token and a zero length.
                Ok(Bytes::from_static(&[0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0]))
            }
        }
    }
}

/// `schema` with view types replaced by their classic equivalents, which every Arrow, CSV and
/// Parquet reader knows (the HTTP API's Arrow streams and the portal's downloads).
pub(crate) fn classic_schema(schema: &datafusion::arrow::datatypes::Schema) -> datafusion::arrow::datatypes::SchemaRef {
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::Utf8View => f.as_ref().clone().with_data_type(DataType::Utf8),
            DataType::BinaryView => f.as_ref().clone().with_data_type(DataType::Binary),
            _ => f.as_ref().clone(),
        })
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

fn csv_field(name: &str) -> String {
    if name.contains([',', '"', '\n', '\r']) { format!("\"{}\"", name.replace('"', "\"\"")) } else { name.to_owned() }
}
