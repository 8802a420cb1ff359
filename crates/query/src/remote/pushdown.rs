//! Which filters of a virtual product's scan its database evaluates, and their SQL.
//!
//! A filter is pushed only where the database's answer is exactly DataFusion's, so that it can
//! leave the plan (`Exact`), which is also what lets limits and aggregates follow it down:
//! comparisons of numbers, booleans and dates with literals on both databases, timestamps and
//! text equality (`text`/`varchar` only, whose equality is bytewise) on PostgreSQL, `IS NULL`,
//! `IN`, `BETWEEN`, `LIKE` on PostgreSQL text, and `AND`/`OR`/`NOT` of those. Everything else
//! (MySQL's text, whose default collations compare case- and accent-insensitively; text
//! ordering, which follows the database's collation; functions) stays above the scan and runs
//! here. No text literal is sent to MySQL, whose string literals read backslashes as escapes.
//! A Flight SQL endpoint that speaks DataFusion's SQL (another Meshwork) compares as Meshwork
//! does: every comparison of a column with a literal is sent to it.

use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::arrow::datatypes::{DataType, Schema};
use datafusion::common::{Column, Result, ScalarValue};
use datafusion::logical_expr::expr::{Cast, InList, Like};
use datafusion::logical_expr::{Between, BinaryExpr, Expr, Operator};
use datafusion::sql::unparser::Unparser;
use datafusion::sql::unparser::dialect::{DefaultDialect, MySqlDialect, PostgreSqlDialect};
use meshwork_catalog::RemoteColumn;
use meshwork_sources::TypeFamily;

use super::Dialect;

/// A virtual product's columns as its database knows them, with the contract's type of each.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Columns<'a> {
    pub(crate) dialect: Dialect,
    pub(crate) columns: &'a [RemoteColumn],
    /// The contract's Arrow schema, in the order of `columns`.
    pub(crate) contract: &'a Schema,
}

/// The family a column's values compare in once converted to the contract's type, where that
/// conversion keeps every value and its order (so the database's comparison of its own values
/// is the comparison here): whole numbers as whole numbers or decimals, decimals as decimals
/// (converted strictly: a value with more decimal places than the contract's scale is an error,
/// never rounded), booleans, dates, timestamps, text as text. `None` for everything else:
/// floating point (`-0` and `0` compare equal in the databases and apart here), bytes, and any
/// value that changes kind on the way (a number read as a string, a date as a timestamp).
pub(crate) fn exact_family(column: &RemoteColumn, contract: &DataType) -> Option<TypeFamily> {
    let family = TypeFamily::of(&column.type_name);
    let kept = match family {
        TypeFamily::Integer => contract.is_integer() || matches!(contract, DataType::Decimal128(..)),
        TypeFamily::Decimal => matches!(contract, DataType::Decimal128(..)),
        TypeFamily::Boolean => contract == &DataType::Boolean,
        TypeFamily::Date => contract == &DataType::Date32,
        TypeFamily::Timestamp => matches!(contract, DataType::Timestamp(..)),
        TypeFamily::Text => matches!(contract, DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8),
        TypeFamily::Float | TypeFamily::Binary => false,
    };
    kept.then_some(family)
}

/// What one side of a comparison is.
enum Operand<'a> {
    Column(&'a RemoteColumn, TypeFamily),
    Literal(&'a ScalarValue),
}

impl<'a> Columns<'a> {
    fn column(&self, name: &str) -> Option<&'a RemoteColumn> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// The column named `name` and the family it compares exactly in, if it does.
    pub(crate) fn exact(&self, name: &str) -> Option<(&'a RemoteColumn, TypeFamily)> {
        let i = self.columns.iter().position(|c| c.name == name)?;
        let column = &self.columns[i];
        exact_family(column, self.contract.fields().get(i)?.data_type()).map(|family| (column, family))
    }

    /// Whether `expr` is evaluated by the database exactly as here.
    pub(crate) fn pushable(&self, expr: &Expr) -> bool {
        match expr {
            Expr::BinaryExpr(BinaryExpr { left, op: Operator::And | Operator::Or, right }) => self.pushable(left) && self.pushable(right),
            Expr::BinaryExpr(BinaryExpr { left, op: op @ (Operator::Eq | Operator::NotEq | Operator::Lt | Operator::LtEq | Operator::Gt | Operator::GtEq), right }) => {
                self.comparison(left, *op, right)
            }
            Expr::Not(inner) => self.pushable(inner),
            Expr::IsNull(inner) | Expr::IsNotNull(inner) => matches!(inner.as_ref(), Expr::Column(c) if self.column(&c.name).is_some()),
            Expr::InList(InList { expr, list, .. }) => !list.is_empty() && list.iter().all(|item| self.comparison(expr, Operator::Eq, item)),
            Expr::Between(Between { expr, low, high, .. }) => self.comparison(expr, Operator::GtEq, low) && self.comparison(expr, Operator::LtEq, high),
            Expr::Like(Like { negated: _, expr, pattern, escape_char: None, case_insensitive: false }) => {
                self.dialect != Dialect::Mysql
                    && matches!(self.operand(expr), Some(Operand::Column(c, TypeFamily::Text)) if self.bytewise_text(c))
                    && matches!(self.operand(pattern), Some(Operand::Literal(v)) if is_text(v))
            }
            _ => false,
        }
    }

    /// Whether `left op right` compares a column with a literal (either way round) the way
    /// DataFusion does.
    fn comparison(&self, left: &Expr, op: Operator, right: &Expr) -> bool {
        let (column, family, value) = match (self.operand(left), self.operand(right)) {
            (Some(Operand::Column(c, f)), Some(Operand::Literal(v))) | (Some(Operand::Literal(v)), Some(Operand::Column(c, f))) => (c, f, v),
            _ => return false,
        };
        let equality = matches!(op, Operator::Eq | Operator::NotEq);
        let same_engine = self.dialect == Dialect::DataFusion;
        match family {
            TypeFamily::Integer | TypeFamily::Decimal => is_number(value),
            TypeFamily::Boolean => equality && matches!(value, ScalarValue::Boolean(Some(_))),
            TypeFamily::Date => matches!(value, ScalarValue::Date32(Some(_))),
            TypeFamily::Timestamp => self.dialect != Dialect::Mysql && is_timestamp(value),
            // Text orders by the database's collation, except in the same engine.
            TypeFamily::Text => (equality || same_engine) && self.dialect != Dialect::Mysql && self.bytewise_text(column) && is_text(value),
            TypeFamily::Float | TypeFamily::Binary => false,
        }
    }

    fn operand<'e>(&self, expr: &'e Expr) -> Option<Operand<'e>>
    where
        'a: 'e,
    {
        match expr {
            Expr::Column(c) => self.exact(&c.name).map(|(column, family)| Operand::Column(column, family)),
            Expr::Literal(value, _) if !value.is_null() => Some(Operand::Literal(value)),
            // Coercion widens a column to compare it with another kind of number: whole numbers
            // to wider whole numbers or decimals, decimals to wider decimals, which both
            // databases do alike. Nothing else (a user's `CAST(price AS INT)` rounds in
            // PostgreSQL and truncates here; MySQL's `CAST` knows fewer target types).
            Expr::Cast(Cast { expr, field }) if self.dialect != Dialect::Mysql => match (self.operand(expr)?, field.data_type()) {
                (Operand::Column(c, TypeFamily::Integer), DataType::Int64 | DataType::Decimal128(..)) => Some(Operand::Column(c, TypeFamily::Integer)),
                (Operand::Column(c, TypeFamily::Decimal), DataType::Decimal128(..)) => Some(Operand::Column(c, TypeFamily::Decimal)),
                _ => None,
            },
            _ => None,
        }
    }

    /// `expr` (which [`Columns::pushable`] accepted) as the database's SQL, over its column
    /// names.
    pub(crate) fn to_sql(&self, expr: &Expr) -> Result<String> {
        let renamed = expr
            .clone()
            .transform(|e| match e {
                Expr::Column(c) => match self.column(&c.name) {
                    Some(column) => Ok(Transformed::yes(Expr::Column(Column::new_unqualified(column.source.clone())))),
                    None => datafusion::common::plan_err!("column `{}` is not a column of the remote source", c.name),
                },
                // DataFusion reads `1.50` as a double: a decimal goes as an explicit decimal.
                Expr::Literal(value @ ScalarValue::Decimal128(Some(_), _, _), _) if self.dialect == Dialect::DataFusion => {
                    let data_type = value.data_type();
                    Ok(Transformed::yes(Expr::Cast(Cast::new(Box::new(Expr::Literal(ScalarValue::Utf8(Some(value.to_string())), None)), data_type))))
                }
                other => Ok(Transformed::no(other)),
            })?
            .data;
        let sql = match self.dialect {
            Dialect::Postgres => Unparser::new(&PostgreSqlDialect {}).expr_to_sql(&renamed)?,
            Dialect::Mysql => Unparser::new(&MySqlDialect {}).expr_to_sql(&renamed)?,
            Dialect::DataFusion => Unparser::new(&DefaultDialect {}).expr_to_sql(&renamed)?,
        };
        Ok(sql.to_string())
    }
}

impl Columns<'_> {
    /// Whether the column's text compares bytewise: PostgreSQL's `text` and `varchar` (under the
    /// deterministic collations every database starts with; `char(n)` pads, `uuid`, `json` and
    /// others compare by their own rules), and every string of the same engine.
    fn bytewise_text(&self, column: &RemoteColumn) -> bool {
        match self.dialect {
            // An endpoint's strings (`arrow_type_name` says `TEXT` for them, and a name of
            // their own for times, intervals and lists, which compare by their own rules).
            Dialect::DataFusion => column.type_name == "TEXT",
            _ => matches!(column.type_name.to_ascii_uppercase().as_str(), "TEXT" | "VARCHAR" | "CHARACTER VARYING"),
        }
    }
}

fn is_text(value: &ScalarValue) -> bool {
    matches!(value, ScalarValue::Utf8(Some(_)) | ScalarValue::Utf8View(Some(_)) | ScalarValue::LargeUtf8(Some(_)))
}

fn is_timestamp(value: &ScalarValue) -> bool {
    matches!(
        value,
        ScalarValue::TimestampSecond(Some(_), _) | ScalarValue::TimestampMillisecond(Some(_), _) | ScalarValue::TimestampMicrosecond(Some(_), _) | ScalarValue::TimestampNanosecond(Some(_), _)
    )
}

/// A finite number (`NaN` and infinities have no literal both databases read).
fn is_number(value: &ScalarValue) -> bool {
    match value {
        ScalarValue::Float16(Some(v)) => v.is_finite(),
        ScalarValue::Float32(Some(v)) => v.is_finite(),
        ScalarValue::Float64(Some(v)) => v.is_finite(),
        ScalarValue::Int8(Some(_))
        | ScalarValue::Int16(Some(_))
        | ScalarValue::Int32(Some(_))
        | ScalarValue::Int64(Some(_))
        | ScalarValue::UInt8(Some(_))
        | ScalarValue::UInt16(Some(_))
        | ScalarValue::UInt32(Some(_))
        | ScalarValue::UInt64(Some(_))
        | ScalarValue::Decimal128(Some(_), _, _) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use datafusion::logical_expr::{col, lit};

    use super::*;

    fn columns() -> Vec<RemoteColumn> {
        [("id", "INT8"), ("name", "TEXT"), ("code", "BPCHAR"), ("at", "TIMESTAMPTZ"), ("day", "DATE"), ("blob", "BYTEA"), ("ratio", "FLOAT8"), ("code_text", "INT4")]
            .into_iter()
            .map(|(name, type_name)| RemoteColumn { name: name.into(), source: name.to_uppercase(), type_name: type_name.into() })
            .collect()
    }

    fn contract() -> Schema {
        use datafusion::arrow::datatypes::{Field, TimeUnit};
        let types = [
            DataType::Int64,
            DataType::Utf8,
            DataType::Utf8,
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            DataType::Date32,
            DataType::Binary,
            DataType::Float64,
            DataType::Utf8,
        ];
        Schema::new(columns().iter().zip(types).map(|(c, t)| Field::new(&c.name, t, true)).collect::<Vec<_>>())
    }

    #[test]
    fn only_what_the_database_answers_exactly_is_pushed() {
        let (columns, contract) = (columns(), contract());
        let pg = Columns { dialect: Dialect::Postgres, columns: &columns, contract: &contract };
        let my = Columns { dialect: Dialect::Mysql, columns: &columns, contract: &contract };
        let df_columns: Vec<RemoteColumn> = columns.iter().map(|c| RemoteColumn { type_name: if c.name == "name" { "TEXT".into() } else { c.type_name.clone() }, ..c.clone() }).collect();
        let df = Columns { dialect: Dialect::DataFusion, columns: &df_columns, contract: &contract };
        assert!(df.pushable(&col("name").lt(lit("m"))), "the same engine orders text alike");
        for (expr, postgres, mysql) in [
            (col("id").gt(lit(5i64)), true, true),
            (col("id").gt(lit(5i64)).and(col("name").eq(lit("x"))), true, false),
            (col("name").eq(lit("O'Brien")), true, false),
            (col("name").lt(lit("m")), false, false),
            (col("code").eq(lit("a")), false, false),
            (col("blob").is_null(), true, true),
            (col("name").like(lit("a%")), true, false),
            (col("id").in_list(vec![lit(1i64), lit(2i64)], false), true, true),
            (col("id").gt(lit(f64::NAN)), false, false),
            (col("id").gt(col("id")), false, false),
            (Expr::Not(Box::new(col("id").eq(lit(1i64)))), true, true),
            (col("ratio").eq(lit(0.0f64)), false, false),
            (col("ratio").is_null(), true, true),
            (col("code_text").eq(lit("10")), false, false),
            (Expr::Cast(Cast::new(Box::new(col("id")), DataType::Int32)).eq(lit(3i32)), false, false),
            (col("missing").eq(lit(1i64)), false, false),
        ] {
            assert_eq!(pg.pushable(&expr), postgres, "postgres: {expr}");
            assert_eq!(my.pushable(&expr), mysql, "mysql: {expr}");
        }
    }

    #[test]
    fn pushed_filters_read_the_source_names_and_quote_text() {
        let (columns, contract) = (columns(), contract());
        let pg = Columns { dialect: Dialect::Postgres, columns: &columns, contract: &contract };
        assert_eq!(pg.to_sql(&col("name").eq(lit("O'Brien")).and(col("id").gt(lit(5i64)))).unwrap(), "((\"NAME\" = 'O''Brien') AND (\"ID\" > 5))");
        let my = Columns { dialect: Dialect::Mysql, columns: &columns, contract: &contract };
        assert_eq!(my.to_sql(&col("id").lt_eq(lit(5i64))).unwrap(), "(`ID` <= 5)");
    }
}
