//! Which `SET`/`RESET` statements a Postgres client may send: the client settings drivers send
//! at connect time, never an engine setting, however the name is spelled.
//!
//! datafusion-postgres's `SET` hook hands every setting it does not know to DataFusion, which
//! would let a client lift the per-query memory limit, change EXPLAIN output or point spill files
//! at a directory of its choosing. So the rule is an allow-list over the parsed statement: the
//! name is normalised from its identifiers (quoted or not, any case, comments and spaces already
//! gone in the AST), and only names on the list pass. A quoted identifier that contains dots is
//! one name with dots in it, which no client setting has.

use datafusion::sql::sqlparser::ast::{ObjectName, Reset, Set, Statement};

/// Client settings drivers send (psql, libpq, JDBC, psycopg, Npgsql, ODBC): they change how the
/// server talks to that client, never what it may read or how much it may use. datafusion-postgres
/// keeps the formatting ones in the connection's metadata; the others are accepted and ignored.
const CLIENT_SETTINGS: &[&str] = &[
    "application_name",
    "bytea_output",
    "client_encoding",
    "client_min_messages",
    "datestyle",
    "default_transaction_isolation",
    "default_transaction_read_only",
    "extra_float_digits",
    "idle_in_transaction_session_timeout",
    "intervalstyle",
    "lock_timeout",
    "search_path",
    "standard_conforming_strings",
    "statement_timeout",
    "timezone",
];

/// A settings statement that is not allowed, with the normalised name it tried to change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RefusedSetting(pub(crate) String);

impl RefusedSetting {
    /// The message the client sees.
    pub(crate) fn message(&self) -> String {
        format!(
            "setting `{}` is not allowed: engine settings are fixed by the server; only client settings ({}) may be changed",
            self.0,
            CLIENT_SETTINGS.join(", ")
        )
    }
}

/// `Err` if `statement` is a `SET` or `RESET` of anything but a client setting; `Ok` for any
/// other statement.
pub(crate) fn check(statement: &Statement) -> Result<(), RefusedSetting> {
    match statement {
        Statement::Set(set) => check_set(set),
        Statement::Reset(reset) => match &reset.reset {
            Reset::ALL => Err(RefusedSetting("ALL".into())),
            Reset::ConfigurationParameter(name) => allowed(name),
        },
        _ => Ok(()),
    }
}

fn check_set(set: &Set) -> Result<(), RefusedSetting> {
    match set {
        // `SET x`, `SET SESSION x`, `SET LOCAL x`: the scope does not matter, the name does.
        Set::SingleAssignment { variable, .. } => allowed(variable),
        Set::ParenthesizedAssignments { variables, .. } => variables.iter().try_for_each(allowed),
        Set::MultipleAssignments { assignments } => assignments.iter().try_for_each(|a| allowed(&a.name)),
        // Time zone, client encoding and transaction characteristics are client settings.
        Set::SetTimeZone { .. } | Set::SetNames { .. } | Set::SetNamesDefault {} | Set::SetTransaction { .. } => Ok(()),
        Set::SetRole { .. } => Err(RefusedSetting("ROLE".into())),
        Set::SetSessionAuthorization(_) => Err(RefusedSetting("SESSION AUTHORIZATION".into())),
        Set::SetSessionParam(_) => Err(RefusedSetting(set.to_string())),
    }
}

/// Whether `name` (already lower-cased) is a client setting a driver may change.
pub(crate) fn is_client_setting(name: &str) -> bool {
    CLIENT_SETTINGS.contains(&name)
}

fn allowed(name: &ObjectName) -> Result<(), RefusedSetting> {
    let normalised = normalise(name);
    if CLIENT_SETTINGS.contains(&normalised.as_str()) { Ok(()) } else { Err(RefusedSetting(normalised)) }
}

/// The setting's name as the server would resolve it: every part's text, lower-cased, joined
/// with dots (`"DataFusion".Execution."batch_size"` → `datafusion.execution.batch_size`).
fn normalise(name: &ObjectName) -> String {
    name.0
        .iter()
        .map(|part| match part.as_ident() {
            Some(ident) => ident.value.to_lowercase(),
            None => part.to_string().to_lowercase(),
        })
        .collect::<Vec<_>>()
        .join(".")
}

#[cfg(test)]
mod tests {
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    use super::*;

    fn verdict(sql: &str) -> Result<(), String> {
        let statements = Parser::parse_sql(&PostgreSqlDialect {}, sql).unwrap();
        check(&statements[0]).map_err(|r| r.0)
    }

    #[test]
    fn engine_settings_are_refused_however_spelled() {
        for (sql, name) in [
            ("SET datafusion.execution.batch_size = 1", "datafusion.execution.batch_size"),
            ("SET \"datafusion\".execution.batch_size = 1", "datafusion.execution.batch_size"),
            ("SET \"DataFusion\".\"Runtime\".memory_limit = '10G'", "datafusion.runtime.memory_limit"),
            ("SET /* hi */ datafusion . runtime . temp_directory = '/tmp/x'", "datafusion.runtime.temp_directory"),
            ("SET \"datafusion.runtime.temp_directory\" TO '/tmp/x'", "datafusion.runtime.temp_directory"),
            ("SET LOCAL \"datafusion\".explain.logical_plan_only = true", "datafusion.explain.logical_plan_only"),
            ("SET SESSION datafusion.explain.physical_plan_only = true", "datafusion.explain.physical_plan_only"),
            ("RESET \"datafusion\".execution.batch_size", "datafusion.execution.batch_size"),
            ("RESET ALL", "ALL"),
            ("SET ROLE admin", "ROLE"),
            ("SET work_mem = '1GB'", "work_mem"),
        ] {
            assert_eq!(verdict(sql), Err(name.to_owned()), "{sql}");
        }
    }

    #[test]
    fn client_settings_drivers_send_pass() {
        for sql in [
            "SET client_encoding = 'UTF8'",
            "SET DateStyle = 'ISO, MDY'",
            "SET extra_float_digits = 3",
            "SET application_name = 'PostgreSQL JDBC Driver'",
            "SET search_path = public",
            "SET SESSION \"TimeZone\" = 'UTC'",
            "SET TIME ZONE 'UTC'",
            "SET NAMES 'UTF8'",
            "RESET application_name",
            "SELECT 1",
        ] {
            assert_eq!(verdict(sql), Ok(()), "{sql}");
        }
    }
}
