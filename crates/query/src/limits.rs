//! What one statement may ask of the planner: the length of its SQL, how deep it nests, and
//! planning itself, which runs on a thread of its own under the query's time limit.
//!
//! A chain such as `1+1+…+1`, `a AND b AND …` or `x || y || …` parses without recursion into a
//! tree as deep as the chain is long, and everything that walks that tree afterwards (printing,
//! planning, dropping it) recurses once per level: 100,000 terms overflow the 2 MiB stack of an
//! async worker and abort the whole process. So the text is parsed on a planner thread with a
//! large stack, its depth is measured there, and a statement nested deeper than
//! [`MAX_NESTING`] is refused (and dropped) there, before anything else sees its tree. Planning
//! is CPU work too, so it stays on that thread, off the runtime that serves other clients.

use std::ops::ControlFlow;
use std::sync::Arc;

use datafusion::common::DataFusionError;
use datafusion::execution::context::SQLOptions;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::{DataFrame, SessionContext};
use datafusion::sql::parser::{CopyToSource, Statement as DFStatement};
use datafusion::sql::sqlparser::parser::ParserError;
use datafusion::sql::sqlparser::ast::{Expr, Query, Select, SetExpr, Statement, TableFactor, Visit, Visitor};

use crate::QueryError;
use crate::engine::{QueryLimits, human};
use crate::placeholders::{Placeholders, number_positional};

/// The longest SQL text accepted, in bytes. Generated SQL with long `IN` lists fits; a
/// statement longer than this is an attempt to make the parser work, not a query.
pub const MAX_SQL_BYTES: usize = 1 << 20;

/// How deep a statement may nest: expressions inside expressions, subqueries, set operations
/// and joins each add a level. Plans this deep still run on an async worker's stack.
pub const MAX_NESTING: usize = 500;

/// Stack of a planner thread: enough to parse, measure and drop the deepest tree that
/// [`MAX_SQL_BYTES`] of SQL can describe (half a million levels).
const PLANNER_STACK_BYTES: usize = 512 << 20;

/// Refuses SQL text longer than [`MAX_SQL_BYTES`], before it is parsed.
pub fn check_length(sql: &str) -> Result<(), QueryError> {
    if sql.len() > MAX_SQL_BYTES {
        return Err(refusal(format!(
            "the statement is {} bytes long, more than the {} KiB a statement may have (hint: send shorter SQL: filter with a join or a product instead of listing thousands of values)",
            sql.len(),
            MAX_SQL_BYTES >> 10
        )));
    }
    Ok(())
}

/// Refuses a parsed statement nested deeper than [`MAX_NESTING`]. The walk stops at the limit,
/// so measuring never recurses deeper than the limit either.
pub fn check_nesting(statement: &Statement) -> Result<(), QueryError> {
    let mut depth = Depth { levels: Vec::new(), current: 0 };
    match statement.visit(&mut depth) {
        ControlFlow::Continue(()) => Ok(()),
        ControlFlow::Break(()) => Err(too_deep()),
    }
}

/// The refusal of a statement whose brackets or subqueries nest deeper than the SQL parser's
/// recursion limit (`sql_parser.recursion_limit`), which the parser reports without a hint.
pub fn recursion_refusal() -> QueryError {
    refusal(
        "the statement nests brackets or subqueries deeper than the SQL parser allows (hint: unnest them: use joins or common table expressions (`WITH`) instead of subqueries inside subqueries)"
            .into(),
    )
}

fn too_deep() -> QueryError {
    refusal(format!(
        "the statement nests more than {MAX_NESTING} levels deep (hint: replace long chains of `AND`, `OR`, `+` or `||` with `IN` lists or aggregates, and deep subqueries with joins)"
    ))
}

fn refusal(message: String) -> QueryError {
    QueryError::Sql(DataFusionError::Plan(message))
}

/// Counts levels on the way down and gives them back on the way up.
struct Depth {
    /// What each open node added, to give back in `post_visit_*`.
    levels: Vec<usize>,
    current: usize,
}

impl Depth {
    fn enter(&mut self, levels: usize) -> ControlFlow<()> {
        self.levels.push(levels);
        self.current += levels;
        if self.current > MAX_NESTING { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
    }

    fn leave(&mut self) -> ControlFlow<()> {
        self.current -= self.levels.pop().unwrap_or(0);
        ControlFlow::Continue(())
    }
}

impl Visitor for Depth {
    type Break = ();

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
        // `SELECT … UNION SELECT … UNION …` is a left-deep chain the visitor has no hook for:
        // count its length here, without recursion.
        let mut chain = 1;
        let mut body = query.body.as_ref();
        while let SetExpr::SetOperation { left, .. } = body {
            chain += 1;
            body = left.as_ref();
        }
        self.enter(chain)
    }

    fn post_visit_query(&mut self, _query: &Query) -> ControlFlow<()> {
        self.leave()
    }

    fn pre_visit_select(&mut self, select: &Select) -> ControlFlow<()> {
        // Joins are a flat list in the syntax but a left-deep tree in the plan.
        let joins: usize = select.from.iter().map(|t| 1 + t.joins.len()).sum();
        self.enter(1 + joins)
    }

    fn post_visit_select(&mut self, _select: &Select) -> ControlFlow<()> {
        self.leave()
    }

    fn pre_visit_table_factor(&mut self, _table: &TableFactor) -> ControlFlow<()> {
        self.enter(1)
    }

    fn post_visit_table_factor(&mut self, _table: &TableFactor) -> ControlFlow<()> {
        self.leave()
    }

    fn pre_visit_expr(&mut self, _expr: &Expr) -> ControlFlow<()> {
        self.enter(1)
    }

    fn post_visit_expr(&mut self, _expr: &Expr) -> ControlFlow<()> {
        self.leave()
    }
}

/// [`check_nesting`] for DataFusion's statements (`EXPLAIN`, `COPY` and `CREATE EXTERNAL TABLE`
/// wrap or stand beside the SQL standard ones).
fn check_df_nesting(statement: &DFStatement) -> Result<(), QueryError> {
    match statement {
        DFStatement::Statement(statement) => check_nesting(statement),
        DFStatement::Explain(explain) => check_df_nesting(&explain.statement),
        DFStatement::CopyTo(copy) => match &copy.source {
            CopyToSource::Query(query) => check_nesting(&Statement::Query(query.clone())),
            CopyToSource::Relation(_) => Ok(()),
        },
        DFStatement::CreateExternalTable(_) | DFStatement::Reset(_) => Ok(()),
    }
}

/// Runs `work` on a new planner thread with a large stack and waits for it without blocking
/// the async runtime. The thread can use the runtime (`Handle::block_on`), since planning
/// resolves tables asynchronously.
pub async fn on_planner_thread<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T, QueryError> {
    let (done, result) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("meshwork-planner".into())
        .stack_size(PLANNER_STACK_BYTES)
        .spawn(move || {
            // The receiver is gone when the statement's time ran out: the result is dropped
            // here, on this stack, like everything else the statement built.
            let _ = done.send(work());
        })
        .map_err(|e| QueryError::Internal(format!("cannot start a planner thread: {e}")))?;
    result.await.map_err(|_| QueryError::Internal("a planner thread stopped without an answer".into()))
}

/// Waits for `work` within the statement's time limit.
async fn within<T>(limits: &QueryLimits, work: impl Future<Output = Result<T, QueryError>>) -> Result<T, QueryError> {
    match limits.timeout {
        Some(limit) => tokio::time::timeout(limit, work).await.map_err(|_| QueryError::Timeout { limit: human(limit) })?,
        None => work.await,
    }
}

/// Parses and plans one read-only statement on a planner thread, under the statement's time
/// limit: length first, then nesting, then placeholders in the `placeholders` style, then the
/// logical plan, which `options` must allow.
pub(crate) async fn plan(ctx: &SessionContext, sql: &str, options: SQLOptions, limits: &QueryLimits, placeholders: Placeholders) -> Result<DataFrame, QueryError> {
    check_length(sql)?;
    let state = ctx.state();
    let sql = sql.to_owned();
    let runtime = tokio::runtime::Handle::current();
    let planning = on_planner_thread(move || -> Result<LogicalPlan, QueryError> {
        let dialect = state.config().options().sql_parser.dialect;
        let mut statement = state.sql_to_statement(&sql, &dialect).map_err(|err| match err {
            DataFusionError::SQL(parser, _) if matches!(*parser, ParserError::RecursionLimitExceeded) => recursion_refusal(),
            other => QueryError::from(other),
        })?;
        check_df_nesting(&statement)?;
        if placeholders == Placeholders::Positional {
            number_positional(&mut statement)?;
        }
        let plan = runtime.block_on(state.statement_to_plan(statement))?;
        options.verify_plan(&plan)?;
        Ok(plan)
    });
    let plan = within(limits, async { planning.await? }).await?;
    Ok(ctx.execute_logical_plan(plan).await?)
}

/// Optimizes and physically plans a statement on a planner thread, under the time limit.
pub(crate) async fn physical_plan(frame: DataFrame, limits: &QueryLimits) -> Result<Arc<dyn ExecutionPlan>, QueryError> {
    let runtime = tokio::runtime::Handle::current();
    let planning = on_planner_thread(move || runtime.block_on(frame.create_physical_plan()).map_err(QueryError::from));
    within(limits, async { planning.await? }).await
}

/// Whether `sql` certainly nests no deeper than [`MAX_NESTING`], judged from its tokens
/// without building a tree: every level of nesting has a keyword, operator or bracket of its
/// own, so fewer of those than the limit is a safe bound. For code that parses on an async
/// worker only to show a statement (`normalise`); anything else goes through [`plan`].
pub fn shallow(sql: &str) -> bool {
    use datafusion::sql::sqlparser::dialect::GenericDialect;
    use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};
    if sql.len() > MAX_SQL_BYTES {
        return false;
    }
    let Ok(tokens) = Tokenizer::new(&GenericDialect {}, sql).tokenize() else { return false };
    let structural = tokens
        .iter()
        .filter(|t| match t {
            Token::Whitespace(_) | Token::Comma | Token::Number(..) | Token::SingleQuotedString(_) | Token::DoubleQuotedString(_) => false,
            Token::Word(w) => w.keyword != datafusion::sql::sqlparser::keywords::Keyword::NoKeyword,
            _ => true,
        })
        .count();
    structural <= MAX_NESTING
}
