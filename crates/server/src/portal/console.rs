//! The SQL console: run a statement as the signed-in principal through the gate (admission,
//! governed session, audit), see its rows a page at a time with their Arrow types, download the
//! whole result as CSV or Parquet, cancel a running statement.
//!
//! Pages are computed again for each request rather than kept: page N runs the statement again,
//! skips the rows of the earlier pages as they stream by and stops after one page, so the server
//! holds at most one page of rows (and the batch it came in) per request, whatever the result's
//! size, and nothing between requests. The price is running the statement once per page (each an
//! audited query); a statement without `ORDER BY` may order its rows differently each time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Form};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use futures::StreamExt;
use maud::{Markup, html};
use meshwork_core::lifecycle::Deprecation;
use serde::Deserialize;

use super::error::{PortalError, status_of};
use super::layout::{self, Nav, csrf_field};
use super::viewer::Viewer;
use crate::error::ServeError;
use crate::gate::{Gate, GovernedStream};
use crate::http::classic_schema;

/// The interface name in the audit log and metrics.
const INTERFACE: &str = "portal";
/// Rows per page.
pub(crate) const PAGE_ROWS: usize = 100;

/// The last page the console pages to: 10 million rows in. Bounds the rows a page request
/// skips (and the arithmetic of where a page starts).
const MAX_PAGE: usize = 100_000;
/// The statement the editor starts with.
const EXAMPLE: &str = "SELECT 1 AS answer";

/// Console runs in progress, by session and query id, so a viewer can cancel their own runs
/// (and only those).
#[derive(Default)]
pub(crate) struct Running {
    tasks: Mutex<HashMap<(String, String), tokio::task::AbortHandle>>,
}

/// Aborts the run's task when the request that started it goes away (the browser cancelled or
/// closed the connection), and forgets it.
struct RunGuard {
    running: Arc<Running>,
    key: (String, String),
    handle: tokio::task::AbortHandle,
}

impl Drop for RunGuard {
    fn drop(&mut self) {
        self.handle.abort();
        self.running.tasks.lock().expect("running lock").remove(&self.key);
    }
}

/// `?sql=` to start the editor with (the "try it" links of product pages).
#[derive(Deserialize)]
pub(super) struct Prefill {
    sql: Option<String>,
}

/// `GET /console`.
pub(super) async fn page(viewer: Viewer, Query(prefill): Query<Prefill>) -> Markup {
    let sql = prefill.sql.unwrap_or_else(|| EXAMPLE.to_owned());
    console_page(&viewer, &sql, html! {})
}

fn console_page(viewer: &Viewer, sql: &str, results: Markup) -> Markup {
    let body = html! {
        h1 { "SQL console" }
        div #console .console {
            form #run method="post" action="/console" hx-post="/console/run" hx-target="#results" hx-indicator="#console" hx-sync="this:replace" data-query-run {
                (csrf_field(viewer))
                div .field {
                    label for="sql" { "SQL query" }
                    textarea #sql .sql name="sql" rows="5" spellcheck="false" autocapitalize="off" aria-describedby="sql-hint" required { (sql) }
                    p #sql-hint .hint { "Runs as " strong { (viewer.identity.principal.name) } " over the products you may read, named " code { "domain.product" } ". Ctrl+Enter runs it." }
                }
                div .actions {
                    button type="submit" { "Run" }
                    span .running role="status" { "Running…" }
                }
            }
            div .actions {
                input #query-id type="hidden" name="query_id" value="";
                button .cancel.secondary type="button" hx-post="/console/cancel" hx-include="#query-id" hx-swap="none" { "Cancel" }
            }
            section #results aria-live="polite" aria-label="Results" { (results) }
        }
    };
    layout::page("SQL console", Some(viewer), Nav::Console, body)
}

/// A run of the editor's statement, or a page of its result.
#[derive(Deserialize)]
pub(super) struct RunForm {
    sql: String,
    #[serde(default)]
    page: Option<usize>,
    #[serde(default)]
    query_id: Option<String>,
}

/// What a run came to.
enum Outcome {
    Rows { schema: SchemaRef, rows: Vec<RecordBatch>, more: bool, deprecations: Vec<Deprecation>, privacy: Vec<meshwork_query::PrivacySpent> },
    Failed(ServeError),
    Cancelled,
}

/// `POST /console/run` (htmx: the results fragment) and `POST /console` (without script: the
/// whole page).
pub(super) async fn run(
    State(gate): State<Arc<Gate>>,
    Extension(running): Extension<Arc<Running>>,
    headers: HeaderMap,
    viewer: Viewer,
    Form(form): Form<RunForm>,
) -> Response {
    let page = form.page.unwrap_or(1).clamp(1, MAX_PAGE);
    let query_id = form.query_id.filter(|id| !id.is_empty() && id.len() <= 64).unwrap_or_else(super::session::random_id);
    let task = tokio::spawn(run_page(gate.clone(), viewer.identity.principal.clone(), form.sql.clone(), page));
    let key = (viewer.session.clone(), query_id);
    running.tasks.lock().expect("running lock").insert(key.clone(), task.abort_handle());
    let _guard = RunGuard { running: running.clone(), key, handle: task.abort_handle() };
    let outcome = match task.await {
        Ok(outcome) => outcome,
        Err(join) if join.is_cancelled() => Outcome::Cancelled,
        Err(join) => Outcome::Failed(ServeError::Internal(join.to_string())),
    };
    let status = match &outcome {
        Outcome::Failed(error) => status_of(error),
        _ => StatusCode::OK,
    };
    let fragment = results(&viewer, &form.sql, page, &outcome);
    if headers.contains_key("hx-request") {
        (status, fragment).into_response()
    } else {
        (status, console_page(&viewer, &form.sql, fragment)).into_response()
    }
}

/// Runs `sql` as `principal` and keeps page `page` of its rows.
async fn run_page(gate: Arc<Gate>, principal: meshwork_core::principal::Principal, sql: String, page: usize) -> Outcome {
    let mut stream = match start(&gate, &principal, &sql).await {
        Ok(stream) => stream,
        Err(error) => return Outcome::Failed(error),
    };
    let schema = stream.schema();
    let deprecations = stream.deprecations().to_vec();
    let privacy = stream.privacy().to_vec();
    let mut skip = (page - 1) * PAGE_ROWS;
    let mut rows = Vec::new();
    let mut kept = 0;
    let mut more = false;
    while let Some(batch) = stream.next().await {
        let batch = match batch {
            Ok(batch) => batch,
            Err(error) => return Outcome::Failed(error.into()),
        };
        let mut batch = batch;
        if skip > 0 {
            let skipped = skip.min(batch.num_rows());
            skip -= skipped;
            batch = batch.slice(skipped, batch.num_rows() - skipped);
        }
        if batch.num_rows() == 0 {
            continue;
        }
        let wanted = PAGE_ROWS - kept;
        if batch.num_rows() > wanted {
            more = true;
        }
        let taken = batch.num_rows().min(wanted);
        if taken > 0 {
            rows.push(batch.slice(0, taken));
            kept += taken;
        }
        if more {
            break;
        }
        if kept == PAGE_ROWS {
            // One more row says whether there is a next page.
            more = loop {
                match stream.next().await {
                    Some(Ok(b)) if b.num_rows() == 0 => continue,
                    Some(Ok(_)) => break true,
                    Some(Err(error)) => return Outcome::Failed(error.into()),
                    None => break false,
                }
            };
            break;
        }
    }
    // Dropping the stream here ends the statement (its audit event says how far it got).
    drop(stream);
    Outcome::Rows { schema, rows, more, deprecations, privacy }
}

/// Opens a session for `principal`, admits and starts `sql`, and runs it to its first batch.
async fn start(gate: &Gate, principal: &meshwork_core::principal::Principal, sql: &str) -> Result<GovernedStream, ServeError> {
    let session = gate.session(principal, INTERFACE).await?;
    let mut stream = gate.run(&session, INTERFACE, sql, None).await?.holding(session);
    stream.prime().await?;
    Ok(stream)
}

fn results(viewer: &Viewer, sql: &str, page: usize, outcome: &Outcome) -> Markup {
    match outcome {
        Outcome::Cancelled => html! { div .banner.warning role="status" { p { "Query cancelled." } } },
        Outcome::Failed(error) => failure(sql, error),
        Outcome::Rows { schema, rows, more, deprecations, privacy } => {
            let count: usize = rows.iter().map(RecordBatch::num_rows).sum();
            let first = (page - 1) * PAGE_ROWS + 1;
            let options = FormatOptions::default().with_null("NULL");
            html! {
                @for deprecation in deprecations {
                    div .banner.warning role="status" { p { strong { "Deprecated: " } (deprecation.warning()) } }
                }
                @for spent in privacy {
                    div .banner role="status" { p { strong { "Private answer: " } (spent.notice()) } }
                }
                p role="status" {
                    @if count == 0 { @if page == 1 { "No rows." } @else { "No more rows." } }
                    @else { "Rows " (first) "–" (first + count - 1) @if *more { " (more follow)" } }
                }
                div .table-wrap tabindex="0" role="region" aria-label="Query result" {
                    table .data {
                        thead { tr { @for field in schema.fields() { th scope="col" { (field.name()) span .type { (field.data_type()) } } } } }
                        tbody {
                            @for batch in rows {
                                @let formatters: Vec<_> = batch.columns().iter().map(|c| ArrayFormatter::try_new(c.as_ref(), &options)).collect();
                                @for row in 0..batch.num_rows() {
                                    tr {
                                        @for (column, formatter) in formatters.iter().enumerate() {
                                            @if batch.column(column).is_null(row) {
                                                td .null { "NULL" }
                                            } @else {
                                                td { @match formatter { Ok(f) => (f.value(row).to_string()), Err(_) => "?" } }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
                @if page > 1 || *more {
                    nav .pagination aria-label="Result pages" {
                        @if page > 1 { (page_button(viewer, sql, page - 1, "Previous page")) }
                        span { "Page " (page) }
                        @if *more { (page_button(viewer, sql, page + 1, "Next page")) }
                    }
                }
                div .downloads {
                    @for (format, label) in [("csv", "Download CSV"), ("parquet", "Download Parquet")] {
                        form method="post" action="/console/download" {
                            (csrf_field(viewer))
                            input type="hidden" name="sql" value=(sql);
                            input type="hidden" name="format" value=(format);
                            button .secondary type="submit" { (label) }
                        }
                    }
                }
            }
        }
    }
}

fn page_button(viewer: &Viewer, sql: &str, page: usize, label: &str) -> Markup {
    html! {
        form method="post" action="/console" hx-post="/console/run" hx-target="#results" hx-indicator="#console" data-query-run {
            (csrf_field(viewer))
            input type="hidden" name="sql" value=(sql);
            input type="hidden" name="page" value=(page);
            button .secondary type="submit" { (label) }
        }
    }
}

/// The error, with the line of the statement it points at and a caret under the column; the
/// `data-sql-*` attributes let `portal.js` select that spot in the editor.
fn failure(sql: &str, error: &ServeError) -> Markup {
    let position = match error {
        ServeError::Query(query) => query.position(),
        _ => None,
    };
    let excerpt = position.and_then(|(line, column)| {
        let text = sql.lines().nth(usize::try_from(line).ok()?.checked_sub(1)?)?;
        let caret = " ".repeat(usize::try_from(column).ok()?.saturating_sub(1).min(text.chars().count())) + "^";
        Some(format!("{text}\n{caret}"))
    });
    html! {
        div .banner.error role="alert" data-sql-line=[position.map(|p| p.0)] data-sql-column=[position.map(|p| p.1)] {
            p { strong { "Query failed: " } (error.client_message()) }
            @if let (Some((line, column)), Some(excerpt)) = (position, excerpt) {
                p { "At line " (line) ", column " (column) ":" }
                pre .position { (excerpt) }
            }
        }
    }
}

/// A run to cancel.
#[derive(Deserialize)]
pub(super) struct CancelForm {
    query_id: String,
}

/// `POST /console/cancel`: aborts the viewer's own run with that id: 204, or 404 when this
/// session runs nothing by that id (it has ended, or it is another session's).
pub(super) async fn cancel(Extension(running): Extension<Arc<Running>>, viewer: Viewer, Form(form): Form<CancelForm>) -> StatusCode {
    let handle = running.tasks.lock().expect("running lock").remove(&(viewer.session.clone(), form.query_id));
    match handle {
        Some(handle) => {
            tracing::info!(principal = %viewer.identity.principal.name, "console query cancelled");
            handle.abort();
            StatusCode::NO_CONTENT
        }
        None => StatusCode::NOT_FOUND,
    }
}

/// A download of the whole result.
#[derive(Deserialize)]
pub(super) struct DownloadForm {
    sql: String,
    format: DownloadFormat,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum DownloadFormat {
    Csv,
    Parquet,
}

/// `POST /console/download`: streams the whole result as a file. Errors found before the first
/// row are an error page; a failure later ends the file early (a truncated download, never a
/// silently partial one that looks complete).
pub(super) async fn download(State(gate): State<Arc<Gate>>, viewer: Viewer, Form(form): Form<DownloadForm>) -> Result<Response, PortalError> {
    // A hidden product is the "not found" page, like a missing one; other errors say what failed.
    let stream = start(&gate, &viewer.identity.principal, &form.sql).await?;
    let schema = classic_schema(&stream.schema());
    let (content_type, file) = match form.format {
        DownloadFormat::Csv => ("text/csv; charset=utf-8", "result.csv"),
        DownloadFormat::Parquet => ("application/vnd.apache.parquet", "result.parquet"),
    };
    let body = match form.format {
        DownloadFormat::Csv => Body::from_stream(csv_stream(stream, schema)),
        DownloadFormat::Parquet => Body::from_stream(parquet_stream(stream, schema)?),
    };
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{file}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}

fn classic(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch, std::io::Error> {
    let columns = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(column, field)| datafusion::arrow::compute::cast(column, field.data_type()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(std::io::Error::other)?;
    RecordBatch::try_new(schema.clone(), columns).map_err(std::io::Error::other)
}

fn csv_stream(stream: GovernedStream, schema: SchemaRef) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Send {
    let header_schema = schema.clone();
    let head = futures::stream::once(async move {
        let names: Vec<String> = header_schema.fields().iter().map(|f| csv_field(f.name())).collect();
        Ok::<_, std::io::Error>(Bytes::from(format!("{}\n", names.join(","))))
    });
    let rows = stream.map(move |batch| {
        let batch = classic(&batch.map_err(|e| std::io::Error::other(e.to_string()))?, &schema)?;
        let mut writer = datafusion::arrow::csv::WriterBuilder::new().with_header(false).build(Vec::new());
        writer.write(&batch).map_err(std::io::Error::other)?;
        Ok(Bytes::from(writer.into_inner()))
    });
    head.chain(rows)
}

fn csv_field(name: &str) -> String {
    if name.contains([',', '"', '\n', '\r']) { format!("\"{}\"", name.replace('"', "\"\"")) } else { name.to_owned() }
}

/// Parquet written as it streams: row groups are flushed every 64k rows, so the server holds
/// one row group at a time; the footer follows the last batch.
fn parquet_stream(stream: GovernedStream, schema: SchemaRef) -> Result<impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Send, PortalError> {
    use datafusion::parquet::arrow::ArrowWriter;
    use datafusion::parquet::file::properties::WriterProperties;
    let properties = WriterProperties::builder().set_max_row_group_row_count(Some(65_536)).build();
    let writer = ArrowWriter::try_new(Vec::new(), schema.clone(), Some(properties)).map_err(|e| PortalError::Serve(ServeError::Internal(e.to_string())))?;
    let writer = Arc::new(Mutex::new(Some(writer)));
    let tail_writer = writer.clone();
    let rows = stream.map(move |batch| {
        let batch = classic(&batch.map_err(|e| std::io::Error::other(e.to_string()))?, &schema)?;
        let mut guard = writer.lock().expect("parquet writer lock");
        let writer = guard.as_mut().ok_or_else(|| std::io::Error::other("the parquet writer is closed"))?;
        writer.write(&batch).map_err(std::io::Error::other)?;
        Ok(Bytes::from(std::mem::take(writer.inner_mut())))
    });
    let tail = futures::stream::once(async move {
        let writer = tail_writer.lock().expect("parquet writer lock").take().ok_or_else(|| std::io::Error::other("the parquet writer is closed"))?;
        // Flushes the last row group and writes the footer.
        let bytes = writer.into_inner().map_err(std::io::Error::other)?;
        Ok(Bytes::from(bytes))
    });
    Ok(rows.chain(tail).filter(|chunk| futures::future::ready(!matches!(chunk, Ok(b) if b.is_empty()))))
}
