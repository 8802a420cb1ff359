//! `search_path`, which drivers set to name the schema their unqualified table names are in
//! (ibis, and so datacontract-cli, send `SELECT set_config('search_path', $1, false)`; others
//! `SET search_path = sales`): kept in the connection's metadata and made the session's default
//! schema before each statement is planned, so `orders` reads `sales.orders` and
//! `current_schema` answers `sales`. Name resolution only: what the principal may read, and the
//! policy rewrite of every scan, do not depend on it.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::common::{ParamValues, ScalarValue, ToDFSchema};
use datafusion::logical_expr::{ColumnarValue, EmptyRelation, LogicalPlan, Volatility, create_udf};
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::{
    Expr, FunctionArg, FunctionArgExpr, FunctionArguments, ObjectName, SelectItem, Set, SetExpr, Statement, Value,
};
use datafusion_postgres::QueryHook;
use datafusion_postgres::hooks::HookClient;
use datafusion_postgres::pgwire;
use pgwire::api::ClientInfo;
use pgwire::api::Type;
use pgwire::api::results::{DataRowEncoder, FieldFormat, FieldInfo, QueryResponse, Response, Tag};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};

use super::settings::is_client_setting;

const SEARCH_PATH: &str = "search_path";
/// The schema unqualified names resolve in when `search_path` names none of the mesh's.
const DEFAULT_SCHEMA: &str = "public";

/// Makes the first schema of the connection's `search_path` that the session has its default
/// schema (and `current_schema`'s answer), as PostgreSQL skips missing ones; `public` when it
/// names none.
pub(crate) fn apply(context: &SessionContext, metadata: &HashMap<String, String>) {
    let wanted = metadata.get(SEARCH_PATH).and_then(|path| first_schema(path, context)).unwrap_or_else(|| DEFAULT_SCHEMA.to_owned());
    let state = context.state_ref();
    if state.read().config().options().catalog.default_schema == wanted {
        return;
    }
    state.write().config_mut().options_mut().catalog.default_schema = wanted.clone();
    let answer = ScalarValue::Utf8(Some(wanted));
    context.register_udf(create_udf(
        "current_schema",
        vec![],
        DataType::Utf8,
        Volatility::Stable,
        Arc::new(move |_| Ok(ColumnarValue::Scalar(answer.clone()))),
    ));
}

fn first_schema(path: &str, context: &SessionContext) -> Option<String> {
    let catalog = context.catalog(meshwork_query::CATALOG_NAME)?;
    path.split(',')
        .map(|part| part.trim().trim_matches('"').trim_matches('\'').to_owned())
        .filter(|name| !name.is_empty() && name != "$user")
        .find(|name| name == DEFAULT_SCHEMA || catalog.schema(name).is_some())
}

/// `SELECT set_config('name', value, is_local)`: its name and value argument.
fn set_config(statement: &Statement) -> Option<(String, &Expr)> {
    let Statement::Query(query) = statement else { return None };
    let SetExpr::Select(select) = query.body.as_ref() else { return None };
    if !select.from.is_empty() || select.projection.len() != 1 {
        return None;
    }
    let (SelectItem::UnnamedExpr(Expr::Function(function)) | SelectItem::ExprWithAlias { expr: Expr::Function(function), .. }) = &select.projection[0] else {
        return None;
    };
    if function.name.to_string().to_ascii_lowercase() != "set_config" {
        return None;
    }
    let FunctionArguments::List(list) = &function.args else { return None };
    let args: Vec<&Expr> = list
        .args
        .iter()
        .filter_map(|arg| match arg {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e),
            _ => None,
        })
        .collect();
    let [Expr::Value(name), value, _local] = args.as_slice() else { return None };
    let name = name.value.clone().into_string()?.to_ascii_lowercase();
    Some((name, value))
}

/// `SET search_path = sales, public` (names or strings).
fn set_search_path(statement: &Statement) -> Option<String> {
    let Statement::Set(Set::SingleAssignment { variable, values, .. }) = statement else { return None };
    if !is_search_path(variable) {
        return None;
    }
    let names: Vec<String> = values
        .iter()
        .map(|value| match value {
            Expr::Value(v) => v.value.clone().into_string().unwrap_or_else(|| v.to_string()),
            other => other.to_string().trim_matches('"').to_owned(),
        })
        .collect();
    Some(names.join(", "))
}

fn is_search_path(name: &ObjectName) -> bool {
    name.to_string().trim_matches('"').eq_ignore_ascii_case(SEARCH_PATH)
}

/// The value of `value`: a string literal, or placeholder `$n` from `params`.
fn value_text(value: &Expr, params: Option<&ParamValues>) -> Option<String> {
    match value {
        Expr::Value(v) => match &v.value {
            Value::Placeholder(p) => {
                let index: usize = p.trim_start_matches('$').parse().ok()?;
                match params? {
                    ParamValues::List(list) => match list.get(index.checked_sub(1)?)?.value() {
                        ScalarValue::Utf8(s) | ScalarValue::LargeUtf8(s) | ScalarValue::Utf8View(s) => s.clone(),
                        other => Some(other.to_string()),
                    },
                    ParamValues::Map(_) => None,
                }
            }
            other => other.clone().into_string(),
        },
        _ => None,
    }
}

fn answer_set_config(name: &str, value: Option<String>, client: &mut dyn HookClient) -> PgWireResult<Response> {
    if !is_client_setting(name) {
        return Err(PgWireError::UserError(Box::new(ErrorInfo::new(
            "ERROR".into(),
            "42501".into(),
            format!("setting `{name}` is not allowed: engine settings are fixed by the server; only client settings may be changed"),
        ))));
    }
    let value = value.unwrap_or_default();
    client.metadata_mut().insert(name.to_owned(), value.clone());
    let fields = Arc::new(vec![FieldInfo::new("set_config".into(), None, None, Type::TEXT, FieldFormat::Text)]);
    let mut encoder = DataRowEncoder::new(fields.clone());
    encoder.encode_field(&Some(value))?;
    let row = encoder.take_row();
    Ok(Response::Query(QueryResponse::new(fields, futures::stream::iter([Ok(row)]))))
}

/// Answers `set_config(…)` and `SET search_path …`, in the simple and the extended protocol.
#[derive(Debug)]
pub(crate) struct SearchPathHook;

#[async_trait]
impl QueryHook for SearchPathHook {
    async fn handle_simple_query(&self, statement: &Statement, _context: &SessionContext, client: &mut dyn HookClient) -> Option<PgWireResult<Response>> {
        if let Some(path) = set_search_path(statement) {
            client.metadata_mut().insert(SEARCH_PATH.into(), path);
            return Some(Ok(Response::Execution(Tag::new("SET"))));
        }
        let (name, value) = set_config(statement)?;
        let value = value_text(value, None);
        Some(answer_set_config(&name, value, client))
    }

    async fn handle_extended_parse_query(&self, statement: &Statement, _context: &SessionContext, _client: &(dyn ClientInfo + Send + Sync)) -> Option<PgWireResult<LogicalPlan>> {
        set_config(statement)?;
        let schema = Schema::new(vec![Field::new("set_config", DataType::Utf8, true)]);
        Some(
            schema
                .to_dfschema()
                .map(|schema| LogicalPlan::EmptyRelation(EmptyRelation { produce_one_row: true, schema: Arc::new(schema) }))
                .map_err(|e| PgWireError::ApiError(Box::new(e))),
        )
    }

    async fn handle_extended_query(&self, statement: &Statement, _plan: &LogicalPlan, params: &ParamValues, _context: &SessionContext, client: &mut dyn HookClient) -> Option<PgWireResult<Response>> {
        if let Some(path) = set_search_path(statement) {
            client.metadata_mut().insert(SEARCH_PATH.into(), path);
            return Some(Ok(Response::Execution(Tag::new("SET"))));
        }
        let (name, value) = set_config(statement)?;
        let value = value_text(value, Some(params));
        Some(answer_set_config(&name, value, client))
    }
}
