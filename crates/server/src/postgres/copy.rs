//! `COPY (SELECT …) TO STDOUT` and `COPY table [(columns)] TO STDOUT` on the Postgres wire, in
//! text, CSV and binary format: the query runs through the gate like any other (policy rewrite,
//! limits, cancellation, audit) and its rows are sent batch by batch as CopyData messages.
//!
//! Every value is first encoded the way a query's DataRow is (`encode.rs`, text or binary, with
//! the client's formatting settings); a row in COPY binary format is exactly a
//! DataRow's body, and the text and CSV formats quote and escape those texts as PostgreSQL's
//! `copyto.c` does. The messages are sent here rather than by pgwire's `send_copy_out_response`
//! because that one answers a failure mid-stream with a `CopyFail`, a frontend message libpq
//! does not expect; PostgreSQL sends an `ErrorResponse`, and so do we (the caller returns the
//! error). `COPY … FROM` and `COPY … TO PROGRAM` are refused here; `COPY … TO 'file'` is left to
//! the query layer, which refuses it as a write.

use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::sql::sqlparser::ast::{CopyLegacyCsvOption, CopyLegacyOption, CopyOption, CopySource, CopyTarget, Ident, Statement};
use datafusion_postgres::arrow_pg::datatypes::arrow_schema_to_pg_fields;
use datafusion_postgres::pgwire;
use futures::{Sink, SinkExt, StreamExt};
use pgwire::api::portal::Format;
use pgwire::api::results::{FieldInfo, Tag};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::PgWireBackendMessage;
use pgwire::messages::copy::{CopyData, CopyDone, CopyOutResponse};
use pgwire::messages::data::DataRow;
use pgwire::types::format::FormatOptions;
use prost::bytes::{BufMut, Bytes, BytesMut};

use super::encode::RowEncoder;
use super::{Batches, user_error};

/// The binary format's signature, flags and header extension length.
const BINARY_HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";
/// The binary format's trailer: a field count of -1.
const BINARY_TRAILER: &[u8] = &[0xff, 0xff];

/// A `COPY … TO STDOUT` to run: the query, and how to write its rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct CopyRequest {
    /// The SELECT whose rows are copied, run through the gate.
    pub(super) sql: String,
    pub(super) format: CopyFormat,
}

/// How rows are written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum CopyFormat {
    Text { delimiter: u8, null: String, header: bool },
    Csv { delimiter: u8, null: String, header: bool, quote: u8, escape: u8, force_quote: ForceQuote },
    Binary,
}

/// CSV columns quoted even when they need not be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum ForceQuote {
    Columns(Vec<String>),
    All,
}

/// The COPY statements this module answers: `None` for any other statement, and for
/// `COPY … TO 'file'`, which the query layer refuses as a write.
pub(super) fn request(statement: &Statement) -> Option<PgWireResult<CopyRequest>> {
    let Statement::Copy { source, to, target, options, legacy_options, .. } = statement else { return None };
    if !to {
        return Some(Err(refusal("`COPY … FROM` is not allowed: queries are read-only; products are published with `meshwork apply`")));
    }
    match target {
        CopyTarget::Stdout => {}
        CopyTarget::Program { .. } => return Some(Err(refusal("`COPY … TO PROGRAM` is not allowed: the server runs no programs; use `COPY … TO STDOUT`"))),
        CopyTarget::File { .. } => return None,
        CopyTarget::Stdin => return Some(Err(user_error("ERROR", "42601", "`COPY … TO STDIN` is not valid; use `COPY … TO STDOUT`"))),
    }
    let sql = match source {
        CopySource::Query(query) => query.to_string(),
        CopySource::Table { table_name, columns } if columns.is_empty() => format!("SELECT * FROM {table_name}"),
        CopySource::Table { table_name, columns } => format!("SELECT {} FROM {table_name}", idents(columns)),
    };
    Some(format(options, legacy_options).map(|format| CopyRequest { sql, format }))
}

fn idents(columns: &[Ident]) -> String {
    columns.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

fn refusal(message: &str) -> PgWireError {
    user_error("ERROR", "42501", message)
}

fn syntax(message: String) -> PgWireError {
    user_error("ERROR", "42601", message)
}

fn unsupported(message: String) -> PgWireError {
    user_error("ERROR", "0A000", message)
}

/// The options as PostgreSQL reads them, with its checks of what goes with what.
fn format(options: &[CopyOption], legacy: &[CopyLegacyOption]) -> PgWireResult<CopyFormat> {
    let (mut kind, mut delimiter, mut null, mut header, mut quote, mut escape, mut force_quote) = (None::<String>, None, None, None, None, None, None);
    for option in options {
        match option {
            CopyOption::Format(name) => kind = Some(name.value.to_ascii_lowercase()),
            CopyOption::Delimiter(c) => delimiter = Some(*c),
            CopyOption::Null(s) => null = Some(s.clone()),
            CopyOption::Header(on) => header = Some(*on),
            CopyOption::Quote(c) => quote = Some(*c),
            CopyOption::Escape(c) => escape = Some(*c),
            CopyOption::ForceQuote(columns) => force_quote = Some(ForceQuote::Columns(columns.iter().map(|c| c.value.clone()).collect())),
            CopyOption::Encoding(name) => check_encoding(name)?,
            CopyOption::Freeze(_) => return Err(unsupported("COPY FREEZE cannot be used with COPY TO".into())),
            CopyOption::ForceNotNull(_) => return Err(unsupported("COPY FORCE_NOT_NULL cannot be used with COPY TO".into())),
            CopyOption::ForceNull(_) => return Err(unsupported("COPY FORCE_NULL cannot be used with COPY TO".into())),
        }
    }
    for option in legacy {
        match option {
            CopyLegacyOption::Binary => kind = Some("binary".into()),
            CopyLegacyOption::Delimiter(c) => delimiter = Some(*c),
            CopyLegacyOption::Null(s) => null = Some(s.clone()),
            CopyLegacyOption::Header => header = Some(true),
            CopyLegacyOption::Csv(csv) => {
                kind = Some("csv".into());
                for option in csv {
                    match option {
                        CopyLegacyCsvOption::Header => header = Some(true),
                        CopyLegacyCsvOption::Quote(c) => quote = Some(*c),
                        CopyLegacyCsvOption::Escape(c) => escape = Some(*c),
                        CopyLegacyCsvOption::ForceQuote(columns) if columns.is_empty() => force_quote = Some(ForceQuote::All),
                        CopyLegacyCsvOption::ForceQuote(columns) => force_quote = Some(ForceQuote::Columns(columns.iter().map(|c| c.value.clone()).collect())),
                        CopyLegacyCsvOption::ForceNotNull(_) => return Err(unsupported("COPY FORCE_NOT_NULL cannot be used with COPY TO".into())),
                    }
                }
            }
            other => return Err(syntax(format!("COPY option `{other}` is not supported; use FORMAT, DELIMITER, NULL, HEADER, QUOTE, ESCAPE or FORCE_QUOTE"))),
        }
    }
    let byte = |what: &str, c: char| -> PgWireResult<u8> {
        if c.is_ascii() { Ok(c as u8) } else { Err(unsupported(format!("COPY {what} must be a single one-byte character"))) }
    };
    let kind = kind.unwrap_or_else(|| "text".into());
    let csv = kind == "csv";
    if !csv {
        for (set, what) in [(quote.is_some(), "QUOTE"), (escape.is_some(), "ESCAPE"), (force_quote.is_some(), "FORCE_QUOTE")] {
            if set {
                return Err(unsupported(format!("COPY {what} requires CSV mode")));
            }
        }
    }
    match kind.as_str() {
        "binary" => {
            for (set, what) in [(delimiter.is_some(), "DELIMITER"), (null.is_some(), "NULL"), (header.is_some(), "HEADER")] {
                if set {
                    return Err(syntax(format!("cannot specify {what} in BINARY mode")));
                }
            }
            Ok(CopyFormat::Binary)
        }
        "text" | "csv" => {
            let delimiter = byte("delimiter", delimiter.unwrap_or(if csv { ',' } else { '\t' }))?;
            if delimiter == b'\n' || delimiter == b'\r' {
                return Err(unsupported("COPY delimiter cannot be newline or carriage return".into()));
            }
            if !csv && (delimiter == b'\\' || delimiter == b'.' || delimiter.is_ascii_lowercase() || delimiter.is_ascii_digit()) {
                return Err(unsupported(format!("COPY delimiter cannot be \"{}\"", delimiter as char)));
            }
            let null = null.unwrap_or_else(|| if csv { String::new() } else { "\\N".into() });
            if null.contains(['\n', '\r']) {
                return Err(unsupported("COPY null representation cannot use newline or carriage return".into()));
            }
            let header = header.unwrap_or(false);
            if !csv {
                return Ok(CopyFormat::Text { delimiter, null, header });
            }
            let quote = byte("quote", quote.unwrap_or('"'))?;
            let escape = escape.map(|c| byte("escape", c)).transpose()?.unwrap_or(quote);
            if quote == delimiter {
                return Err(unsupported("COPY delimiter and quote must be different".into()));
            }
            Ok(CopyFormat::Csv { delimiter, null, header, quote, escape, force_quote: force_quote.unwrap_or(ForceQuote::Columns(Vec::new())) })
        }
        other => Err(user_error("ERROR", "22023", format!("COPY format `{other}` not recognized; use text, csv or binary"))),
    }
}

fn check_encoding(name: &str) -> PgWireResult<()> {
    match name.to_ascii_lowercase().replace(['-', '_'], "").as_str() {
        "utf8" | "unicode" => Ok(()),
        _ => Err(unsupported(format!("COPY ENCODING `{name}` is not supported: the server sends UTF8"))),
    }
}

impl CopyFormat {
    fn code(&self) -> i8 {
        matches!(self, CopyFormat::Binary) as i8
    }
}

/// Sends the rows of `batches` as a COPY OUT: CopyOutResponse, one CopyData per row (the
/// header line or binary header first), CopyDone and `COPY n`. An error of the query, say a
/// cancel request or the time limit mid-stream, is returned as is and the caller answers
/// with an ErrorResponse, as PostgreSQL does.
pub(super) async fn send<C>(client: &mut C, format: &CopyFormat, schema: SchemaRef, mut batches: Batches, options: Arc<FormatOptions>) -> PgWireResult<()>
where
    C: Sink<PgWireBackendMessage> + Unpin,
    C::Error: std::fmt::Debug,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    let values = if matches!(format, CopyFormat::Binary) { Format::UnifiedBinary } else { Format::UnifiedText };
    let fields = Arc::new(arrow_schema_to_pg_fields(&schema, &values, Some(options))?);
    let writer = RowWriter::new(format, &fields)?;
    let columns = fields.len();
    let code = format.code();
    client.feed(PgWireBackendMessage::CopyOutResponse(CopyOutResponse::new(code, columns as i16, vec![code as i16; columns]))).await?;
    if let Some(line) = writer.header(&fields) {
        client.feed(PgWireBackendMessage::CopyData(CopyData::new(line))).await?;
    }
    let mut rows = 0usize;
    let mut header = matches!(format, CopyFormat::Binary);
    let mut encoder = RowEncoder::new(fields.clone());
    // Lines are written into one buffer and each split off it as its CopyData: a new block of
    // this size is allocated only when the previous one is used up (a reserve on a buffer
    // created empty would allocate per line).
    let mut lines = BytesMut::with_capacity(64 * 1024);
    while let Some(batch) = batches.next().await {
        for row in encoder.encode(&batch?)? {
            if std::mem::take(&mut header) {
                lines.put_slice(BINARY_HEADER);
            }
            writer.write(&row, &mut lines);
            client.feed(PgWireBackendMessage::CopyData(CopyData::new(lines.split().freeze()))).await?;
            rows += 1;
        }
    }
    if matches!(format, CopyFormat::Binary) {
        // With no rows, the header goes out with the trailer, as PostgreSQL sends it.
        let mut end = BytesMut::new();
        if header {
            end.put_slice(BINARY_HEADER);
        }
        end.put_slice(BINARY_TRAILER);
        client.feed(PgWireBackendMessage::CopyData(CopyData::new(end.freeze()))).await?;
    }
    client.feed(PgWireBackendMessage::CopyDone(CopyDone::new())).await?;
    client.send(PgWireBackendMessage::CommandComplete(Tag::new("COPY").with_rows(rows).into())).await?;
    Ok(())
}

/// Turns a row encoded as a DataRow (length-prefixed values, -1 for NULL) into one line of
/// the format.
struct RowWriter<'a> {
    format: &'a CopyFormat,
    /// CSV: which columns are always quoted.
    forced: Vec<bool>,
}

impl<'a> RowWriter<'a> {
    fn new(format: &'a CopyFormat, fields: &[FieldInfo]) -> PgWireResult<RowWriter<'a>> {
        let mut forced = vec![false; fields.len()];
        if let CopyFormat::Csv { force_quote, .. } = format {
            match force_quote {
                ForceQuote::All => forced.iter_mut().for_each(|f| *f = true),
                ForceQuote::Columns(names) => {
                    for name in names {
                        let at = fields.iter().position(|f| f.name() == name).ok_or_else(|| user_error("ERROR", "42P10", format!("FORCE_QUOTE column `{name}` is not a column of the copied query")))?;
                        forced[at] = true;
                    }
                }
            }
        }
        Ok(RowWriter { format, forced })
    }

    /// The HEADER line (column names), when asked for.
    fn header(&self, fields: &[FieldInfo]) -> Option<Bytes> {
        let mut line = BytesMut::new();
        match self.format {
            CopyFormat::Text { delimiter, header: true, .. } => {
                for (i, field) in fields.iter().enumerate() {
                    if i > 0 {
                        line.put_u8(*delimiter);
                    }
                    text_value(field.name().as_bytes(), *delimiter, &mut line);
                }
            }
            CopyFormat::Csv { delimiter, null, header: true, quote, escape, .. } => {
                for (i, field) in fields.iter().enumerate() {
                    if i > 0 {
                        line.put_u8(*delimiter);
                    }
                    csv_value(field.name().as_bytes(), false, fields.len() == 1, (*delimiter, null, *quote, *escape), &mut line);
                }
            }
            _ => return None,
        }
        line.put_u8(b'\n');
        Some(line.freeze())
    }

    fn write(&self, row: &DataRow, line: &mut BytesMut) {
        if let CopyFormat::Binary = self.format {
            line.put_i16(row.field_count);
            line.put_slice(&row.data);
            return;
        }
        let single = row.field_count == 1;
        for (i, value) in values(&row.data).enumerate() {
            match self.format {
                CopyFormat::Text { delimiter, null, .. } => {
                    if i > 0 {
                        line.put_u8(*delimiter);
                    }
                    match value {
                        None => line.put_slice(null.as_bytes()),
                        Some(text) => text_value(text, *delimiter, line),
                    }
                }
                CopyFormat::Csv { delimiter, null, quote, escape, .. } => {
                    if i > 0 {
                        line.put_u8(*delimiter);
                    }
                    match value {
                        None => line.put_slice(null.as_bytes()),
                        Some(text) => csv_value(text, self.forced[i], single, (*delimiter, null, *quote, *escape), line),
                    }
                }
                CopyFormat::Binary => unreachable!("binary rows are written whole"),
            }
        }
        line.put_u8(b'\n');
    }
}

/// The values of a DataRow's body: `None` for NULL.
fn values(data: &[u8]) -> impl Iterator<Item = Option<&[u8]>> {
    let mut at = 0;
    std::iter::from_fn(move || {
        let len = i32::from_be_bytes(data.get(at..at + 4)?.try_into().ok()?);
        at += 4;
        if len < 0 {
            return Some(None);
        }
        let value = &data[at..at + len as usize];
        at += len as usize;
        Some(Some(value))
    })
}

/// A value in text format: backslash escapes for the control characters, the backslash and
/// the delimiter (PostgreSQL's `CopyAttributeOutText`).
fn text_value(text: &[u8], delimiter: u8, line: &mut BytesMut) {
    // Most values (numbers, dates, plain words) need no escape: copied whole.
    if !text.iter().any(|&b| b == delimiter || matches!(b, b'\\' | b'\n' | b'\r' | b'\t' | 0x08 | 0x0c | 0x0b)) {
        line.put_slice(text);
        return;
    }
    for &b in text {
        match b {
            b'\\' => line.put_slice(b"\\\\"),
            b'\n' => line.put_slice(b"\\n"),
            b'\r' => line.put_slice(b"\\r"),
            b'\t' => line.put_slice(b"\\t"),
            0x08 => line.put_slice(b"\\b"),
            0x0c => line.put_slice(b"\\f"),
            0x0b => line.put_slice(b"\\v"),
            b if b == delimiter => {
                line.put_u8(b'\\');
                line.put_u8(b);
            }
            b => line.put_u8(b),
        }
    }
}

/// A value in CSV format (PostgreSQL's `CopyAttributeOutCSV`): quoted when forced, when it
/// reads like the NULL string (an empty string, by default), when it holds the delimiter, the
/// quote, a line break, or when it is `\.` alone on a line; inside quotes the quote and the
/// escape character are preceded by the escape.
fn csv_value(text: &[u8], forced: bool, single: bool, (delimiter, null, quote, escape): (u8, &str, u8, u8), line: &mut BytesMut) {
    let quoted = forced
        || text == null.as_bytes()
        || (single && text == b"\\.")
        || text.iter().any(|&b| b == delimiter || b == quote || b == b'\n' || b == b'\r');
    if !quoted {
        line.put_slice(text);
        return;
    }
    line.put_u8(quote);
    for &b in text {
        if b == quote || b == escape {
            line.put_u8(escape);
        }
        line.put_u8(b);
    }
    line.put_u8(quote);
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    fn parse(sql: &str) -> Option<PgWireResult<CopyRequest>> {
        request(&Parser::parse_sql(&PostgreSqlDialect {}, sql).unwrap().remove(0))
    }

    fn message(result: Option<PgWireResult<CopyRequest>>) -> String {
        match result {
            Some(Err(PgWireError::UserError(info))) => info.message.clone(),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn options_in_both_syntaxes() {
        let csv = |header| CopyFormat::Csv { delimiter: b',', null: String::new(), header, quote: b'"', escape: b'"', force_quote: ForceQuote::Columns(vec![]) };
        assert_eq!(parse("COPY (SELECT 1) TO STDOUT").unwrap().unwrap().format, CopyFormat::Text { delimiter: b'\t', null: "\\N".into(), header: false });
        assert_eq!(parse("COPY (SELECT 1) TO STDOUT WITH CSV HEADER").unwrap().unwrap().format, csv(true));
        assert_eq!(parse("COPY (SELECT 1) TO STDOUT (FORMAT csv, HEADER)").unwrap().unwrap().format, csv(true));
        assert_eq!(parse("COPY (SELECT 1) TO STDOUT (FORMAT binary)").unwrap().unwrap().format, CopyFormat::Binary);
        assert_eq!(parse("COPY (SELECT 1) TO STDOUT BINARY").unwrap().unwrap().format, CopyFormat::Binary);
        let request = parse("COPY \"customers\"(\"id\",\"name\") TO stdout WITH DELIMITER AS '\t' NULL AS '\\N'").unwrap().unwrap();
        assert_eq!(request, CopyRequest { sql: "SELECT \"id\", \"name\" FROM \"customers\"".into(), format: CopyFormat::Text { delimiter: b'\t', null: "\\N".into(), header: false } });
        assert_eq!(parse("COPY sales.orders TO STDOUT (FORMAT csv, DELIMITER ';', NULL 'NA', QUOTE '''')").unwrap().unwrap().format,
            CopyFormat::Csv { delimiter: b';', null: "NA".into(), header: false, quote: b'\'', escape: b'\'', force_quote: ForceQuote::Columns(vec![]) });
    }

    #[test]
    fn writes_and_bad_options_are_refused() {
        assert!(message(parse("COPY sales.orders FROM STDIN")).contains("`COPY … FROM` is not allowed"));
        assert!(message(parse("COPY sales.orders TO PROGRAM 'cat'")).contains("`COPY … TO PROGRAM` is not allowed"));
        assert!(parse("COPY sales.orders TO '/tmp/x'").is_none(), "left to the query layer, which refuses writes");
        assert_eq!(message(parse("COPY (SELECT 1) TO STDOUT (FORMAT binary, HEADER)")), "cannot specify HEADER in BINARY mode");
        assert_eq!(message(parse("COPY (SELECT 1) TO STDOUT (QUOTE '\"')")), "COPY QUOTE requires CSV mode");
        assert_eq!(message(parse("COPY (SELECT 1) TO STDOUT (FORMAT parquet)")), "COPY format `parquet` not recognized; use text, csv or binary");
        assert_eq!(message(parse("COPY (SELECT 1) TO STDOUT (FORCE_NULL (a))")), "COPY FORCE_NULL cannot be used with COPY TO");
    }

    #[test]
    fn values_are_escaped_and_quoted_like_postgres() {
        let mut line = BytesMut::new();
        text_value(b"a\tb\\c\nd|e", b'|', &mut line);
        assert_eq!(&line[..], b"a\\tb\\\\c\\nd\\|e");
        // Values without a byte to escape are copied whole; the delimiter alone is escaped.
        for (text, delimiter, expected) in [(&b"1996-03-13"[..], b'\t', &b"1996-03-13"[..]), (b"plain, words", b'\t', b"plain, words"), (b"a,b", b',', b"a\\,b"), (b"", b'\t', b"")] {
            let mut line = BytesMut::new();
            text_value(text, delimiter, &mut line);
            assert_eq!(&line[..], expected, "{}", String::from_utf8_lossy(text));
        }
        let options = (b',', "", b'"', b'"');
        for (text, expected) in [(&b"plain"[..], &b"plain"[..]), (b"", b"\"\""), (b"a,b", b"\"a,b\""), (b"say \"hi\"", b"\"say \"\"hi\"\"\""), (b"two\nlines", b"\"two\nlines\"")] {
            let mut line = BytesMut::new();
            csv_value(text, false, false, options, &mut line);
            assert_eq!(&line[..], expected, "{}", String::from_utf8_lossy(text));
        }
        let mut line = BytesMut::new();
        csv_value(b"x", true, false, options, &mut line);
        assert_eq!(&line[..], b"\"x\"");
    }
}
