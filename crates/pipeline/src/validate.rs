//! `validate`: every offline check of a mesh repository, reported all at once.

use std::path::Path;

use datafusion::sql::parser::{DFParser, Statement};
use meshwork_core::diagnostic::{Diagnostic, DiagnosticCode, did_you_mean, one_of};
use meshwork_core::mesh::ProductEntry;

use crate::PipelineError;
use crate::repo::{LoadedMesh, load_mesh};

/// Loads the repository at `root` and checks descriptors, references, cycles, input files and
/// transform SQL, all in one pass. Returns the loaded mesh, or every problem found.
pub fn validate(root: &Path) -> Result<LoadedMesh, Vec<Diagnostic>> {
    load_mesh(root)
}

/// The checks `validate` runs against the databases products read (skipped with `--offline`):
/// each connection is reachable with its credentials, and each source has the columns the
/// product reads with types that feed its contract (see `docs/sources.md`). Every problem is
/// reported, at the input it concerns.
pub async fn check_sources(mesh: &LoadedMesh) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for entry in mesh.repo.products.values() {
        let descriptor = &entry.descriptor;
        // A virtual product's source is checked exactly as apply checks it (databases and
        // Flight SQL endpoints alike).
        if let Some((input, _)) = descriptor.remote() {
            if let Err(error) = crate::live::remote_source(mesh, descriptor).await {
                let field = "inputs[0].source";
                let hint = match &error {
                    PipelineError::Source(meshwork_sources::SourceError::Schema { .. }) => "fix the source or the contract; `meshwork validate --offline` skips the databases",
                    _ => "`meshwork validate --offline` checks everything but the databases",
                };
                out.push(
                    Diagnostic::new(DiagnosticCode::InvalidValue, &entry.file, format!("input `{}`: {error}", input.name))
                        .field(field)
                        .at_position(entry.positions.locate_nearest(field))
                        .hint(hint),
                );
            }
            continue;
        }
        for (i, input) in descriptor.inputs.iter().enumerate() {
            let Some((_, source)) = input.source.database() else { continue };
            let identity = descriptor.transform.is_none();
            let field = format!("inputs[{i}].source");
            let problem = async {
                let connection = mesh.repo.config.connections.get(&source.connection).ok_or_else(|| meshwork_sources::SourceError::UnknownConnection(source.connection.clone()))?;
                let mut session = meshwork_sources::connect(&source.connection, connection).await?;
                let columns = session.columns(&source.read).await;
                let checked = columns.and_then(|columns| session.check(&source.read, &columns, identity.then_some(&descriptor.contract), source.incremental.as_ref().map(|i| i.column.as_str())));
                session.close().await;
                checked
            };
            if let Err(error) = problem.await {
                let hint = match &error {
                    meshwork_sources::SourceError::Schema { .. } => "fix the source or the contract; `meshwork validate --offline` skips the databases",
                    _ => "`meshwork validate --offline` checks everything but the databases",
                };
                out.push(
                    Diagnostic::new(DiagnosticCode::InvalidValue, &entry.file, format!("input `{}`: {error}", input.name))
                        .field(&field)
                        .at_position(entry.positions.locate_nearest(&field))
                        .hint(hint),
                );
            }
        }
    }
    out
}

/// Parses the SQL expressions of the `access` block (row filter, SQL masks), so a typo is found by
/// `validate` rather than denying the product to everyone at query time (where a filter that
/// cannot be built means deny).
pub(crate) fn check_access_sql(entry: &ProductEntry) -> Vec<Diagnostic> {
    use datafusion::sql::sqlparser::dialect::GenericDialect;
    use datafusion::sql::sqlparser::parser::Parser;
    let Some(access) = &entry.descriptor.access else { return Vec::new() };
    let mut expressions: Vec<(String, &str)> = Vec::new();
    if let Some(filter) = &access.row_filter {
        expressions.push(("access.row_filter".into(), filter));
    }
    for (column, mask) in &access.masks {
        if let meshwork_core::descriptor::Mask::Sql { expr } = mask {
            expressions.push((format!("access.masks.{column}.expr"), expr));
        }
    }
    let mut out = Vec::new();
    for (field, sql) in expressions {
        let parsed = Parser::new(&GenericDialect {}).try_with_sql(sql).and_then(|mut p| {
            let expr = p.parse_expr()?;
            p.expect_token(&datafusion::sql::sqlparser::tokenizer::Token::EOF)?;
            Ok(expr)
        });
        if let Err(err) = parsed {
            out.push(
                Diagnostic::new(DiagnosticCode::InvalidValue, &entry.file, format!("invalid SQL expression `{sql}`: {}", err.to_string().trim_start_matches("sql parser error: ")))
                    .field(&field)
                    .at_position(entry.positions.locate_nearest(&field))
                    .hint("write one SQL condition over the product's columns, e.g. `region = principal.attr('region')`"),
            );
        }
    }
    out
}

/// Parses the transform SQL and checks that it reads only the product's input ports.
pub(crate) fn check_transform(entry: &ProductEntry) -> Vec<Diagnostic> {
    let Some(transform) = &entry.descriptor.transform else { return Vec::new() };
    let file = entry.transform_file().unwrap_or_else(|| entry.file.clone());
    let inline = transform.file.is_none();
    let field = if inline { "transform".to_owned() } else { String::new() };
    // Inline SQL is located at the `transform` field; positions inside it are in the message.
    let inline_position = if inline { entry.positions.locate("transform") } else { None };
    let statements = match DFParser::parse_sql(&transform.sql) {
        Ok(statements) => statements,
        Err(err) => {
            let message = match &err {
                datafusion::error::DataFusionError::SQL(parser_error, _) => parser_error.to_string(),
                other => other.strip_backtrace(),
            };
            let d = Diagnostic::new(DiagnosticCode::InvalidValue, &file, format!("invalid SQL: {}", message.trim_start_matches("sql parser error: ")))
                .field(&field);
            // The parser gives no position when the SQL ends too early: point at its end.
            let end_of_sql = || message.contains("found: EOF").then(|| end_position(&transform.sql));
            return vec![d.at_position(inline_position.or_else(|| sql_position(&message)).or_else(end_of_sql))];
        }
    };
    let is_query = |s: &Statement| matches!(s, Statement::Statement(inner) if matches!(**inner, datafusion::sql::sqlparser::ast::Statement::Query(_)));
    if statements.len() != 1 || !is_query(&statements[0]) {
        return vec![Diagnostic::new(DiagnosticCode::InvalidValue, &file, "a transform is exactly one SELECT query")
            .field(&field)
            .hint("remove other statements; publishing is done by `meshwork apply`")];
    }
    let ports: Vec<&str> = entry.descriptor.inputs.iter().map(|i| i.name.as_str()).collect();
    let mut out = Vec::new();
    if let Ok((tables, _ctes)) = datafusion::sql::resolve::resolve_table_references(&statements[0], true) {
        for table in tables {
            let name = table.to_string();
            if !ports.contains(&table.table()) || table.schema().is_some() {
                let hint = match did_you_mean(table.table(), ports.iter().copied()) {
                    Some(close) => format!("did you mean `{close}`?"),
                    None => format!(
                        "a transform reads its input ports by name ({}); to read another product, add an input `{{ name: x, product: {name} }}`",
                        one_of(ports.iter().copied())
                    ),
                };
                out.push(
                    Diagnostic::new(DiagnosticCode::MissingReference, &file, format!("table `{name}` is not an input of this product"))
                        .field(&field)
                        .at_position(inline_position.or_else(|| find_in_sql(&transform.sql, &name)))
                        .hint(hint),
                );
            }
        }
    }
    out
}

/// The 1-based line and column of the first occurrence of `needle` in `sql`.
fn find_in_sql(sql: &str, needle: &str) -> Option<(usize, usize)> {
    let offset = sql.find(needle)?;
    let before = &sql[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    Some((line, column))
}

/// The 1-based line and column just after the last character of `sql`, ignoring trailing blanks.
fn end_position(sql: &str) -> (usize, usize) {
    let trimmed = sql.trim_end();
    let line = trimmed.matches('\n').count() + 1;
    let column = trimmed.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// Extracts `Line: L, Column: C` from a sqlparser message.
fn sql_position(message: &str) -> Option<(usize, usize)> {
    let at = message.find("Line: ")?;
    let rest = &message[at + 6..];
    let (line, rest) = rest.split_once(", Column: ")?;
    let column: String = rest.chars().take_while(char::is_ascii_digit).collect();
    Some((line.trim().parse().ok()?, column.parse().ok()?))
}
