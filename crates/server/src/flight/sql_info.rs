//! What `GetSqlInfo` tells Flight SQL clients about this server: ADBC's `adbc_get_info` and the
//! JDBC driver's `DatabaseMetaData` read these. Every value is a claim about Meshwork checked
//! against what it does; a property it cannot state truthfully is left out, which clients read
//! as "unknown".

use arrow_flight::sql::metadata::{SqlInfoData, SqlInfoDataBuilder};
use arrow_flight::sql::{
    SqlInfo, SqlNullOrdering, SqlOuterJoinsSupportLevel, SqlSupportedCaseSensitivity, SqlSupportedGroupBy, SqlSupportedResultSetType, SqlSupportedSubqueries,
    SqlSupportedTransaction, SqlSupportedUnions, SqlTransactionIsolationLevel, SupportedSqlGrammar,
};

/// The Arrow columnar format version results are written in: arrow-ipc 59 reads and writes
/// every type up to format 1.5 (views came in 1.4, 32- and 64-bit decimals in 1.5).
const ARROW_FORMAT_VERSION: &str = "1.5";

/// `SupportedAnsi92SqlGrammarLevel::Ansi92EntrySql`, an enum arrow-flight does not export.
const ANSI92_ENTRY_SQL: i32 = 0;

/// The server's answers, built once.
pub(super) fn sql_info() -> &'static SqlInfoData {
    static INFO: std::sync::OnceLock<SqlInfoData> = std::sync::OnceLock::new();
    INFO.get_or_init(|| {
        let mut b = SqlInfoDataBuilder::new();
        // The server.
        b.append(SqlInfo::FlightSqlServerName, "Meshwork");
        b.append(SqlInfo::FlightSqlServerVersion, env!("CARGO_PKG_VERSION"));
        b.append(SqlInfo::FlightSqlServerArrowVersion, ARROW_FORMAT_VERSION);
        b.append(SqlInfo::FlightSqlServerReadOnly, true);
        b.append(SqlInfo::FlightSqlServerSql, true);
        b.append(SqlInfo::FlightSqlServerSubstrait, false);
        b.append(SqlInfo::FlightSqlServerTransaction, SqlSupportedTransaction::None as i32);
        // No CancelFlightInfo action: a client cancels by dropping the result stream.
        b.append(SqlInfo::FlightSqlServerCancel, false);
        b.append(SqlInfo::FlightSqlServerBulkIngestion, false);
        // Prepared statement handles are valid for a day from their creation or last binding.
        b.append(SqlInfo::FlightSqlServerStatementTimeout, (super::HANDLE_LIFETIME_SECS * 1000) as i32);

        // Statements: read-only queries in DataFusion's SQL.
        b.append(SqlInfo::SqlDdlCatalog, false);
        b.append(SqlInfo::SqlDdlSchema, false);
        b.append(SqlInfo::SqlDdlTable, false);
        b.append(SqlInfo::SqlSupportedGrammar, bit(SupportedSqlGrammar::SqlMinimumGrammar as i32));
        b.append(SqlInfo::SqlAnsi92SupportedLevel, bit(ANSI92_ENTRY_SQL));
        b.append(SqlInfo::SqlSupportsIntegrityEnhancementFacility, false);
        b.append(SqlInfo::SqlMaxStatementLength, meshwork_query::MAX_SQL_BYTES as i64);

        // Names: unquoted identifiers fold to lower case; `"` quotes them. Quoted identifiers are
        // case-sensitive, which `SqlSupportedCaseSensitivity` has no value for, so that is left out.
        b.append(SqlInfo::SqlIdentifierCase, SqlSupportedCaseSensitivity::SqlCaseSensitivityLowercase as i32);
        b.append(SqlInfo::SqlIdentifierQuoteChar, "\"");
        b.append(SqlInfo::SqlExtraNameCharacters, "");
        // Metadata patterns are matched by Arrow's `like`, where `\` escapes `%` and `_`.
        b.append(SqlInfo::SqlSearchStringEscape, "\\");
        b.append(SqlInfo::SqlSchemaTerm, "domain");
        b.append(SqlInfo::SqlCatalogTerm, "catalog");
        b.append(SqlInfo::SqlCatalogAtStart, true);
        b.append(SqlInfo::SqlSchemasSupportedActions, 0i32);
        b.append(SqlInfo::SqlCatalogsSupportedActions, 0i32);
        // Listings show only what the principal may read, so every table listed is selectable.
        b.append(SqlInfo::SqlAllTablesAreSelectable, true);

        // Query features.
        b.append(SqlInfo::SqlNullOrdering, SqlNullOrdering::SqlNullsSortedHigh as i32);
        b.append(SqlInfo::SqlSupportsColumnAliasing, true);
        b.append(SqlInfo::SqlNullPlusNullIsNull, true);
        b.append(SqlInfo::SqlSupportsTableCorrelationNames, true);
        b.append(SqlInfo::SqlSupportsDifferentTableCorrelationNames, true);
        b.append(SqlInfo::SqlSupportsExpressionsInOrderBy, true);
        b.append(SqlInfo::SqlSupportsOrderByUnrelated, true);
        b.append(SqlInfo::SqlSupportedGroupBy, bit(SqlSupportedGroupBy::SqlGroupByUnrelated as i32) | bit(SqlSupportedGroupBy::SqlGroupByBeyondSelect as i32));
        // DataFusion takes `ESCAPE '\'` only and refuses any other escape character.
        b.append(SqlInfo::SqlSupportsLikeEscapeClause, false);
        b.append(SqlInfo::SqlSupportsNonNullableColumns, true);
        b.append(SqlInfo::SqlOuterJoinsSupportLevel, SqlOuterJoinsSupportLevel::SqlFullOuterJoins as i32);
        // In `WHERE`: `= (SELECT …)`, `EXISTS`, `IN` and `> ALL (SELECT …)`.
        b.append(
            SqlInfo::SqlSupportedSubqueries,
            bit(SqlSupportedSubqueries::SqlSubqueriesInComparisons as i32)
                | bit(SqlSupportedSubqueries::SqlSubqueriesInExists as i32)
                | bit(SqlSupportedSubqueries::SqlSubqueriesInIns as i32)
                | bit(SqlSupportedSubqueries::SqlSubqueriesInQuantifieds as i32),
        );
        b.append(SqlInfo::SqlCorrelatedSubqueriesSupported, true);
        b.append(SqlInfo::SqlSupportedUnions, bit(SqlSupportedUnions::SqlUnion as i32) | bit(SqlSupportedUnions::SqlUnionAll as i32));
        b.append(SqlInfo::SqlSupportedPositionedCommands, 0i32);
        b.append(SqlInfo::SqlSelectForUpdateSupported, false);
        b.append(SqlInfo::SqlStoredProceduresSupported, false);
        b.append(SqlInfo::SqlStoredFunctionsUsingCallSyntaxSupported, false);
        b.append(SqlInfo::SqlNamedParametersSupported, false);
        b.append(SqlInfo::SqlSupportedResultSetTypes, bit(SqlSupportedResultSetType::SqlResultSetTypeForwardOnly as i32));

        // Transactions: none; every statement reads one published version of each product.
        b.append(SqlInfo::SqlTransactionsSupported, false);
        b.append(SqlInfo::SqlDefaultTransactionIsolation, SqlTransactionIsolationLevel::SqlTransactionNone as i32);
        b.append(SqlInfo::SqlSupportedTransactionsIsolationLevels, 0i32);
        b.append(SqlInfo::SqlDataDefinitionCausesTransactionCommit, false);
        b.append(SqlInfo::SqlDataDefinitionsInTransactionsIgnored, false);
        b.append(SqlInfo::SqlBatchUpdatesSupported, false);
        b.append(SqlInfo::SqlSavepointsSupported, false);
        b.build().expect("static SQL info builds")
    })
}

/// The bitmask value of one enum ordinal.
fn bit(ordinal: i32) -> i32 {
    1 << ordinal
}
