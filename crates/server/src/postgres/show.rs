//! `SHOW` of the settings drivers read at connect time, answered in PostgreSQL's spelling.
//!
//! datafusion-postgres's `SetShowHook` answers some of them differently from PostgreSQL
//! (`read_committed`, `read uncommitted`, its own version text) and the rest with an empty
//! `unsupported_show_statement`; drivers then mis-detect the isolation level, the string
//! escaping rules or the identifier length. This hook runs before it and answers those names;
//! every other name still goes to `SetShowHook`.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::common::{ParamValues, ToDFSchema};
use datafusion::logical_expr::{EmptyRelation, LogicalPlan};
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::Statement;
use datafusion_postgres::QueryHook;
use datafusion_postgres::hooks::HookClient;
use datafusion_postgres::pgwire;
use pgwire::api::ClientInfo;
use pgwire::api::auth::DefaultServerParameterProvider;
use pgwire::api::results::{DataRowEncoder, FieldFormat, FieldInfo, QueryResponse, Response};
use pgwire::api::Type;
use pgwire::error::{PgWireError, PgWireResult};

use super::version::{DATE_STYLE, SERVER_VERSION, SERVER_VERSION_NUM};

/// A setting this hook answers: PostgreSQL's name for it (the column name) and where its
/// value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Setting {
    ServerVersion,
    ServerVersionNum,
    TransactionIsolation,
    StandardConformingStrings,
    ServerEncoding,
    ClientEncoding,
    DateStyle,
    IntegerDatetimes,
    MaxIdentifierLength,
    SearchPath,
    TimeZone,
}

impl Setting {
    /// The setting `SHOW` names, however it is spelled (`SHOW TIME ZONE`, `SHOW datestyle`).
    fn named(statement: &Statement) -> Option<Setting> {
        let Statement::ShowVariable { variable } = statement else { return None };
        let words: Vec<String> = variable.iter().map(|w| w.value.to_ascii_lowercase()).collect();
        let words: Vec<&str> = words.iter().map(String::as_str).collect();
        Some(match words.as_slice() {
            ["server_version"] => Setting::ServerVersion,
            ["server_version_num"] => Setting::ServerVersionNum,
            ["transaction_isolation"] | ["transaction", "isolation", "level"] | ["default_transaction_isolation"] => Setting::TransactionIsolation,
            ["standard_conforming_strings"] => Setting::StandardConformingStrings,
            ["server_encoding"] => Setting::ServerEncoding,
            ["client_encoding"] => Setting::ClientEncoding,
            ["datestyle"] => Setting::DateStyle,
            ["integer_datetimes"] => Setting::IntegerDatetimes,
            ["max_identifier_length"] => Setting::MaxIdentifierLength,
            ["search_path"] => Setting::SearchPath,
            ["timezone"] | ["time", "zone"] => Setting::TimeZone,
            _ => return None,
        })
    }

    /// PostgreSQL's name, which is also the column `SHOW` answers with.
    fn name(self) -> &'static str {
        match self {
            Setting::ServerVersion => "server_version",
            Setting::ServerVersionNum => "server_version_num",
            Setting::TransactionIsolation => "transaction_isolation",
            Setting::StandardConformingStrings => "standard_conforming_strings",
            Setting::ServerEncoding => "server_encoding",
            Setting::ClientEncoding => "client_encoding",
            Setting::DateStyle => "DateStyle",
            Setting::IntegerDatetimes => "integer_datetimes",
            Setting::MaxIdentifierLength => "max_identifier_length",
            Setting::SearchPath => "search_path",
            Setting::TimeZone => "TimeZone",
        }
    }

    /// The value for `client`: what it set with `SET` (kept in its metadata by the SET hook),
    /// else what the server announced at startup.
    fn value(self, metadata: &HashMap<String, String>) -> String {
        let set = |key: &str| metadata.get(key).cloned();
        match self {
            Setting::ServerVersion => SERVER_VERSION.to_owned(),
            Setting::ServerVersionNum => SERVER_VERSION_NUM.to_owned(),
            // Statements are read-only and see the published version: read committed is the
            // closest of PostgreSQL's levels, and the one drivers expect by default.
            Setting::TransactionIsolation => "read committed".to_owned(),
            Setting::StandardConformingStrings | Setting::IntegerDatetimes => "on".to_owned(),
            // pgwire speaks UTF-8 only.
            Setting::ServerEncoding | Setting::ClientEncoding => "UTF8".to_owned(),
            Setting::DateStyle => set("datestyle").unwrap_or_else(|| DATE_STYLE.to_owned()),
            Setting::MaxIdentifierLength => "63".to_owned(),
            Setting::SearchPath => set("search_path").unwrap_or_else(|| DefaultServerParameterProvider::default().search_path),
            Setting::TimeZone => set("timezone").unwrap_or_else(|| DefaultServerParameterProvider::default().time_zone),
        }
    }
}

/// Answers `SHOW` of the settings in [`Setting`], in the simple and the extended protocol.
#[derive(Debug)]
pub(crate) struct ShowHook;

fn answer(setting: Setting, metadata: &HashMap<String, String>) -> PgWireResult<Response> {
    let fields = Arc::new(vec![FieldInfo::new(setting.name().to_owned(), None, None, Type::TEXT, FieldFormat::Text)]);
    let mut encoder = DataRowEncoder::new(fields.clone());
    encoder.encode_field(&Some(setting.value(metadata)))?;
    let row = encoder.take_row();
    let mut response = QueryResponse::new(fields, futures::stream::iter([Ok(row)]));
    response.set_command_tag("SHOW");
    Ok(Response::Query(response))
}

#[async_trait]
impl QueryHook for ShowHook {
    async fn handle_simple_query(&self, statement: &Statement, _context: &SessionContext, client: &mut dyn HookClient) -> Option<PgWireResult<Response>> {
        Setting::named(statement).map(|setting| answer(setting, client.metadata()))
    }

    async fn handle_extended_parse_query(&self, statement: &Statement, _context: &SessionContext, _client: &(dyn ClientInfo + Send + Sync)) -> Option<PgWireResult<LogicalPlan>> {
        let setting = Setting::named(statement)?;
        // Describe reports the column the rows come back under.
        let schema = Schema::new(vec![Field::new(setting.name(), DataType::Utf8, false)]);
        Some(
            schema
                .to_dfschema()
                .map(|schema| LogicalPlan::EmptyRelation(EmptyRelation { produce_one_row: true, schema: Arc::new(schema) }))
                .map_err(|e| PgWireError::ApiError(Box::new(e))),
        )
    }

    async fn handle_extended_query(&self, statement: &Statement, _plan: &LogicalPlan, _params: &ParamValues, _context: &SessionContext, client: &mut dyn HookClient) -> Option<PgWireResult<Response>> {
        Setting::named(statement).map(|setting| answer(setting, client.metadata()))
    }
}
