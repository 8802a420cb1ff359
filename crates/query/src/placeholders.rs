//! Positional `?` placeholders, as JDBC and ODBC clients write them, numbered `$1`, `$2`, … in
//! the parsed statement so DataFusion binds them by position.
//!
//! The numbering works on the syntax tree, never on the text: a `?` inside a string literal, a
//! quoted identifier or a comment is not a placeholder token, so it is never touched. Numbers
//! follow the placeholders' positions in the text (their spans), not the order the tree is
//! walked in, which differs for a few constructs (`TRIM(? FROM ?)`).

use std::ops::ControlFlow;

use datafusion::common::DataFusionError;
use datafusion::sql::parser::{CopyToSource, Statement as DFStatement};
use datafusion::sql::sqlparser::ast::{Value, ValueWithSpan, Visit, VisitMut, Visitor, VisitorMut};

use crate::QueryError;

/// Which placeholder styles a session's statements may use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Placeholders {
    /// `$1`, `$2`, … (PostgreSQL's style); a `?` is left to the SQL parser.
    #[default]
    Numbered,
    /// `$1`, `$2`, … or bare `?` (JDBC's and ODBC's style), the `?` numbered from left to right;
    /// one statement may not mix both.
    Positional,
}

/// Rewrites every bare `?` placeholder of `statement` to `$1`, `$2`, … in text order, and `?n`
/// to `$n`. A statement with both bare `?` and numbered or named placeholders is refused.
pub(crate) fn number_positional(statement: &mut DFStatement) -> Result<(), QueryError> {
    let mut found = Found::default();
    walk(statement, &mut found);
    if found.bare.is_empty() {
        if found.numbered_question {
            walk_mut(statement, &mut Renumber { numbers: Vec::new(), next: 0 });
        }
        return Ok(());
    }
    if let Some(other) = found.other {
        return Err(QueryError::Sql(DataFusionError::Plan(format!(
            "the statement mixes `?` and `{other}` placeholders (hint: write every placeholder as `?`, bound by position, or number every one `$1`, `$2`, …)"
        ))));
    }
    // `numbers[i]` is the number of the i-th bare `?` in walk order: its rank in text order.
    let mut by_position: Vec<(usize, (u64, u64))> = found.bare.iter().copied().enumerate().collect();
    by_position.sort_by_key(|(_, at)| *at);
    let mut numbers = vec![0; by_position.len()];
    for (rank, (walked, _)) in by_position.into_iter().enumerate() {
        numbers[walked] = rank + 1;
    }
    walk_mut(statement, &mut Renumber { numbers, next: 0 });
    Ok(())
}

/// The placeholders of a statement, in walk order.
#[derive(Default)]
struct Found {
    /// Where each bare `?` starts: (line, column).
    bare: Vec<(u64, u64)>,
    /// Whether a `?n` placeholder was seen.
    numbered_question: bool,
    /// The first placeholder of another style (`$1`, `$name`, `:name`…).
    other: Option<String>,
}

impl Visitor for Found {
    type Break = ();

    fn pre_visit_value(&mut self, value: &ValueWithSpan) -> ControlFlow<()> {
        if let Value::Placeholder(text) = &value.value {
            if text == "?" {
                let start = value.span.start;
                self.bare.push((start.line, start.column));
            } else if is_numbered_question(text) {
                self.numbered_question = true;
            } else if self.other.is_none() {
                self.other = Some(text.clone());
            }
        }
        ControlFlow::Continue(())
    }
}

/// `?1`, `?2`, … (SQLite's numbered style).
fn is_numbered_question(text: &str) -> bool {
    text.strip_prefix('?').is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Gives each bare `?` its number and each `?n` the name `$n`.
struct Renumber {
    numbers: Vec<usize>,
    next: usize,
}

impl VisitorMut for Renumber {
    type Break = ();

    fn pre_visit_value(&mut self, value: &mut ValueWithSpan) -> ControlFlow<()> {
        if let Value::Placeholder(text) = &mut value.value {
            if text == "?" {
                *text = format!("${}", self.numbers[self.next]);
                self.next += 1;
            } else if is_numbered_question(text) {
                *text = format!("${}", &text[1..]);
            }
        }
        ControlFlow::Continue(())
    }
}

/// Walks DataFusion's statements (`EXPLAIN` and `COPY` wrap standard ones).
fn walk(statement: &DFStatement, visitor: &mut Found) {
    let _ = match statement {
        DFStatement::Statement(statement) => Visit::visit(statement.as_ref(), visitor),
        DFStatement::Explain(explain) => {
            walk(&explain.statement, visitor);
            ControlFlow::Continue(())
        }
        DFStatement::CopyTo(copy) => match &copy.source {
            CopyToSource::Query(query) => Visit::visit(query.as_ref(), visitor),
            CopyToSource::Relation(_) => ControlFlow::Continue(()),
        },
        DFStatement::CreateExternalTable(_) | DFStatement::Reset(_) => ControlFlow::Continue(()),
    };
}

/// [`walk`], changing the tree; visits in the same order.
fn walk_mut(statement: &mut DFStatement, visitor: &mut Renumber) {
    let _ = match statement {
        DFStatement::Statement(statement) => VisitMut::visit(statement.as_mut(), visitor),
        DFStatement::Explain(explain) => {
            walk_mut(&mut explain.statement, visitor);
            ControlFlow::Continue(())
        }
        DFStatement::CopyTo(copy) => match &mut copy.source {
            CopyToSource::Query(query) => VisitMut::visit(query.as_mut(), visitor),
            CopyToSource::Relation(_) => ControlFlow::Continue(()),
        },
        DFStatement::CreateExternalTable(_) | DFStatement::Reset(_) => ControlFlow::Continue(()),
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::parser::DFParser;

    fn numbered(sql: &str) -> Result<String, String> {
        let mut statements = DFParser::parse_sql(sql).map_err(|e| e.to_string())?;
        let mut statement = statements.pop_front().unwrap();
        number_positional(&mut statement).map_err(|e| e.to_string())?;
        Ok(statement.to_string())
    }

    #[test]
    fn question_marks_are_numbered_in_text_order() {
        assert_eq!(
            numbered("SELECT a FROM t WHERE b = ? AND c IN (?, ?) LIMIT ?").unwrap(),
            "SELECT a FROM t WHERE b = $1 AND c IN ($2, $3) LIMIT $4"
        );
        // The tree holds TRIM's operand before the characters; the text has them the other way.
        assert_eq!(numbered("SELECT TRIM(? FROM ?)").unwrap(), "SELECT TRIM($1 FROM $2)");
        assert_eq!(numbered("EXPLAIN SELECT ? + ?").unwrap(), "EXPLAIN SELECT $1 + $2");
    }

    #[test]
    fn question_marks_in_literals_identifiers_and_comments_are_kept() {
        assert_eq!(
            numbered("SELECT '?' AS \"what?\", a FROM t -- where ?\nWHERE /* ? */ b = ? AND c = 'x?y'").unwrap(),
            "SELECT '?' AS \"what?\", a FROM t WHERE b = $1 AND c = 'x?y'"
        );
    }

    #[test]
    fn numbered_placeholders_pass_and_mixing_is_refused() {
        assert_eq!(numbered("SELECT $2, $1").unwrap(), "SELECT $2, $1");
        assert_eq!(numbered("SELECT ?2, ?1").unwrap(), "SELECT $2, $1");
        let err = numbered("SELECT ? , $1").unwrap_err();
        assert!(err.contains("mixes `?` and `$1` placeholders"), "{err}");
    }
}
