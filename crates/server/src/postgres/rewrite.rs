//! Our own rewrites of Postgres statements, after datafusion-postgres's: SQL that drivers
//! send and DataFusion plans differently or not at all, turned into SQL with PostgreSQL's
//! meaning.
//!
//! They run on the planner thread right after parsing (`PgParser::parse`); the result is printed
//! and planned again by DataFusion in the connection's session, so every rewrite produces SQL
//! that prints and parses back to itself, and plans through the same gate and policy rewrite
//! as anything a client writes: a rewrite only changes the shape of SQL, never what it may
//! read. Each rule is in its own file; [`bool_literal`] is an expression planner instead,
//! because only the schema knows whether a column is boolean.

pub(crate) mod array_subquery;
pub(crate) mod bool_literal;
pub(crate) mod like_escape;
pub(crate) mod output_names;
pub(crate) mod scalar_subquery;

use std::sync::Arc;

use datafusion::arrow::datatypes::{Field, Schema};
use datafusion::sql::sqlparser::ast::{Expr, Statement};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion_postgres::datafusion_pg_catalog::sql::rules::SqlStatementRewriteRule;

/// The rules, in the order they run.
pub(crate) fn rules() -> Vec<Arc<dyn SqlStatementRewriteRule>> {
    // Output names first: an `ARRAY(SELECT …)` column is named `array`, not after its rewrite.
    vec![Arc::new(like_escape::LikeEscape), Arc::new(output_names::OutputNames), Arc::new(array_subquery::ArraySubquery), Arc::new(scalar_subquery::ScalarSubquery)]
}

/// `statement` with every rule applied.
pub(crate) fn apply(rules: &[Arc<dyn SqlStatementRewriteRule>], statement: Statement) -> Statement {
    rules.iter().fold(statement, |statement, rule| rule.rewrite(statement))
}

/// `schema` with the names the client sees: PostgreSQL allows the same output name twice,
/// DataFusion does not, so [`output_names`] renames the later ones and this takes it back.
pub(crate) fn wire_schema(schema: &Schema) -> Schema {
    if !schema.fields().iter().any(|f| output_names::wire_name(f.name()) != f.name()) {
        return schema.clone();
    }
    let fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone().with_name(output_names::wire_name(f.name()))).collect();
    Schema::new_with_metadata(fields, schema.metadata().clone())
}

/// Parses an expression a rule built as text from printed parts (which print back to what
/// they were parsed from); `None` if it does not parse, and the rule then leaves the SQL as
/// it was.
fn expression(sql: &str) -> Option<Expr> {
    Parser::new(&PostgreSqlDialect {}).try_with_sql(sql).and_then(|mut p| p.parse_expr()).ok()
}
