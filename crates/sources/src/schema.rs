//! A source's columns as the database describes them, and the one table of which source types
//! may feed which contract types (documented in `docs/sources.md`, "Type mapping").

use meshwork_core::column_type::ColumnType;
use meshwork_core::descriptor::{Contract, DatabaseKind, DatabaseRead};
use sqlx::{Column as _, Executor as _, Statement as _, TypeInfo as _};

use crate::SourceError;
use crate::connect::{Session, SourceConnection, quote_ident};

/// A column of a source table or query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceColumn {
    /// Its name as the database reports it.
    pub name: String,
    /// Its type as the database names it (`INT8`, `TIMESTAMPTZ`, `VARCHAR`, `BIGINT UNSIGNED`…).
    pub type_name: String,
}

impl SourceColumn {
    /// The family of its type.
    pub fn family(&self) -> TypeFamily {
        TypeFamily::of(&self.type_name)
    }
}

/// Source types grouped by how their values map to contract types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TypeFamily {
    /// Whole numbers of any width, signed or not (`int2`…`int8`, `tinyint`…`bigint`, `year`, `oid`).
    Integer,
    /// Exact decimals (`numeric`, `decimal`).
    Decimal,
    /// Binary floating point (`real`, `double precision`, `float`, `double`).
    Float,
    /// `boolean` (MySQL's `tinyint(1)` reports itself as `BOOLEAN`).
    Boolean,
    /// A calendar date.
    Date,
    /// A timestamp with a time zone, or one taken as UTC (`timestamp`, `datetime`).
    Timestamp,
    /// Bytes (`bytea`, `binary`, `varbinary`, `blob`…).
    Binary,
    /// Everything else, read as its text (`text`, `varchar`, `char`, `uuid`, `json`, `enum`, `time`…).
    Text,
}

impl TypeFamily {
    /// The family of a type as PostgreSQL or MySQL names it.
    pub fn of(type_name: &str) -> TypeFamily {
        let name = type_name.to_ascii_uppercase();
        let base = name.trim_end_matches(" UNSIGNED");
        match base {
            "INT2" | "INT4" | "INT8" | "OID" | "SMALLINT" | "INTEGER" | "BIGINT" | "TINYINT" | "MEDIUMINT" | "INT" | "YEAR" | "SERIAL" | "BIGSERIAL" => TypeFamily::Integer,
            "NUMERIC" | "DECIMAL" => TypeFamily::Decimal,
            "FLOAT4" | "FLOAT8" | "REAL" | "DOUBLE PRECISION" | "FLOAT" | "DOUBLE" => TypeFamily::Float,
            "BOOL" | "BOOLEAN" => TypeFamily::Boolean,
            "DATE" => TypeFamily::Date,
            "TIMESTAMP" | "TIMESTAMPTZ" | "DATETIME" => TypeFamily::Timestamp,
            "BYTEA" | "BINARY" | "VARBINARY" | "BLOB" | "TINYBLOB" | "MEDIUMBLOB" | "LONGBLOB" => TypeFamily::Binary,
            _ => TypeFamily::Text,
        }
    }

    /// Whether values of this family may feed a contract column of type `to`. Integer, decimal
    /// and float values convert among numeric types (each value is checked to fit), dates widen
    /// to timestamps, and every family but bytes may feed `string` (its text); anything else is a
    /// mismatch to fix with a `CAST` in a `query:`.
    pub fn feeds(self, to: ColumnType) -> bool {
        use ColumnType::*;
        let numeric = matches!(to, TinyInt | SmallInt | Int | BigInt | Float | Double | Decimal { .. });
        match self {
            TypeFamily::Binary => to == Binary,
            _ if to == String => true,
            TypeFamily::Integer | TypeFamily::Decimal | TypeFamily::Float => numeric,
            TypeFamily::Boolean => to == Boolean,
            TypeFamily::Date => matches!(to, Date | Timestamp),
            TypeFamily::Timestamp => to == Timestamp,
            TypeFamily::Text => false,
        }
    }

    /// Whether a watermark column of this family compares exactly in order. Floats do not: the
    /// text of a float's maximum need not read back as the same float, so its row could be
    /// missed at the boundary.
    pub fn orders(self) -> bool {
        matches!(self, TypeFamily::Integer | TypeFamily::Decimal | TypeFamily::Date | TypeFamily::Timestamp | TypeFamily::Text)
    }
}

/// The `FROM` item of a source: a table as written (identifiers were checked when parsed, and
/// are left unquoted so the database folds their case as in any query), or the query as a
/// derived table.
pub fn from_item(read: &DatabaseRead) -> String {
    match read {
        DatabaseRead::Table(table) => table.clone(),
        // The line break ends a `--` comment the query may close with.
        DatabaseRead::Query(query) => format!("({query}\n) AS meshwork_source"),
    }
}

/// How a source is named in messages.
pub fn describe_read(read: &DatabaseRead) -> String {
    match read {
        DatabaseRead::Table(table) => format!("table `{table}`"),
        DatabaseRead::Query(_) => "the input's query".to_owned(),
    }
}

impl SourceConnection {
    /// The columns of `read`, as the database prepares `SELECT * FROM …` (nothing is run).
    pub async fn columns(&mut self, read: &DatabaseRead) -> Result<Vec<SourceColumn>, SourceError> {
        let sql = format!("SELECT * FROM {}", from_item(read));
        let columns = match &mut self.session {
            Session::Postgres(c) => c.prepare(sqlx::SqlSafeStr::into_sql_str(sqlx::AssertSqlSafe(sql))).await.map(|s| s.columns().iter().map(|c| SourceColumn { name: c.name().to_owned(), type_name: c.type_info().name().to_owned() }).collect()),
            Session::Mysql(c) => c.prepare(sqlx::SqlSafeStr::into_sql_str(sqlx::AssertSqlSafe(sql.clone()))).await.map(|s| s.columns().iter().map(|c| SourceColumn { name: c.name().to_owned(), type_name: c.type_info().name().to_owned() }).collect()),
        };
        columns.map_err(|e| self.query_error(&describe_read(read), e))
    }

    /// Checks the source's columns against what the product reads of them: see [`check`].
    pub fn check(&self, read: &DatabaseRead, columns: &[SourceColumn], contract: Option<&Contract>, watermark: Option<&str>) -> Result<(), SourceError> {
        check(&self.name, read, columns, contract, watermark)
    }
}

/// Checks the columns of `read` of connection `name` against what the product reads of them:
/// for an identity product (`contract` given) every contract column must be there with a type
/// that feeds it; the watermark column must be there and ordered. Every mismatch is reported at
/// once.
pub fn check(name: &str, read: &DatabaseRead, columns: &[SourceColumn], contract: Option<&Contract>, watermark: Option<&str>) -> Result<(), SourceError> {
    let mut problems = Vec::new();
    let find = |name: &str| columns.iter().find(|c| c.name == name).or_else(|| columns.iter().find(|c| c.name.eq_ignore_ascii_case(name)));
    let names = || columns.iter().map(|c| format!("`{}`", c.name)).collect::<Vec<_>>().join(", ");
    if let Some(contract) = contract {
        for column in &contract.columns {
            match find(&column.name) {
                None => problems.push(format!("contract column `{}` is not in the source (it has {}); rename it in a `query:` or change the contract", column.name, names())),
                Some(source) if !source.family().feeds(column.data_type) => problems.push(format!(
                    "column `{}` is `{}` in the source and `{}` in the contract; change the contract's type or CAST it in a `query:` (see docs/sources.md, \"Type mapping\")",
                    column.name,
                    source.type_name.to_ascii_lowercase(),
                    column.data_type
                )),
                Some(_) => {}
            }
        }
    }
    if let Some(watermark) = watermark {
        match find(watermark) {
            None => problems.push(format!("watermark column `{watermark}` is not in the source (it has {})", names())),
            Some(source) if !source.family().orders() => {
                problems.push(format!("watermark column `{watermark}` is `{}`, which does not compare exactly; use a timestamp, a date, a whole or decimal number, or text", source.type_name.to_ascii_lowercase()))
            }
            Some(_) => {}
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(SourceError::Schema { connection: name.to_owned(), what: describe_read(read), problems })
    }
}

/// The expression that reads `column` of `kind` the way [`crate::read`] transfers it: bytes as
/// bytes, timestamps as ISO 8601 text in UTC, anything else as the database's text.
pub fn transfer_expr(kind: DatabaseKind, column: &SourceColumn) -> String {
    let name = quote_ident(kind, &column.name);
    let upper = column.type_name.to_ascii_uppercase();
    match (kind, column.family()) {
        (_, TypeFamily::Binary) => name,
        // `infinity` has no ISO form: its text reaches the contract check, which refuses it.
        (DatabaseKind::Postgres, TypeFamily::Timestamp) if upper == "TIMESTAMPTZ" => {
            format!("CASE WHEN isfinite({name}) THEN to_char({name} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') ELSE CAST({name} AS TEXT) END")
        }
        (DatabaseKind::Postgres, TypeFamily::Timestamp) => {
            format!("CASE WHEN isfinite({name}) THEN to_char({name}, 'YYYY-MM-DD\"T\"HH24:MI:SS.US') ELSE CAST({name} AS TEXT) END")
        }
        (DatabaseKind::Postgres, _) => format!("CAST({name} AS TEXT)"),
        (DatabaseKind::Mysql, TypeFamily::Timestamp) => format!("DATE_FORMAT({name}, '%Y-%m-%dT%H:%i:%s.%f')"),
        (DatabaseKind::Mysql, _) => format!("CAST({name} AS CHAR)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_names_of_both_databases_fall_in_their_family() {
        for (name, family) in [
            ("INT8", TypeFamily::Integer),
            ("BIGINT UNSIGNED", TypeFamily::Integer),
            ("NUMERIC", TypeFamily::Decimal),
            ("FLOAT8", TypeFamily::Float),
            ("BOOLEAN", TypeFamily::Boolean),
            ("TIMESTAMPTZ", TypeFamily::Timestamp),
            ("DATETIME", TypeFamily::Timestamp),
            ("BYTEA", TypeFamily::Binary),
            ("VARCHAR", TypeFamily::Text),
            ("UUID", TypeFamily::Text),
            ("JSONB", TypeFamily::Text),
        ] {
            assert_eq!(TypeFamily::of(name), family, "{name}");
        }
    }

    #[test]
    fn text_feeds_only_strings_and_bytes_only_binary() {
        assert!(TypeFamily::Text.feeds(ColumnType::String));
        assert!(!TypeFamily::Text.feeds(ColumnType::BigInt));
        assert!(TypeFamily::Binary.feeds(ColumnType::Binary));
        assert!(!TypeFamily::Binary.feeds(ColumnType::String));
        assert!(TypeFamily::Integer.feeds(ColumnType::Decimal { precision: 10, scale: 2 }));
        assert!(TypeFamily::Date.feeds(ColumnType::Timestamp));
        assert!(!TypeFamily::Timestamp.feeds(ColumnType::Date));
    }
}
