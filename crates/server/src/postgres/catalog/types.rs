//! Type and function names from PostgreSQL's catalog: `to_regtype`, and comparisons of the
//! `regproc` columns of `pg_type` (stored as names) with OIDs, as the ADBC driver writes them
//! (`typreceive != 0`).

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use datafusion::arrow::datatypes::DataType;
use datafusion::common::{DFSchema, Result, ScalarValue};
use datafusion::logical_expr::expr::Cast;
use datafusion::logical_expr::planner::{ExprPlanner, PlannerResult, RawBinaryExpr};
use datafusion::logical_expr::{Expr, ExprSchemable, lit};
use datafusion::sql::sqlparser::ast::BinaryOperator;
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::PgCatalogStaticTables;
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::oid_field::{OID_ALIAS_KEY, kind};

use super::relations::{int32_column, split_ident, text_column};

/// SQL's names for types PostgreSQL's catalog names otherwise.
const ALIASES: &[(&str, &str)] = &[
    ("integer", "int4"),
    ("int", "int4"),
    ("smallint", "int2"),
    ("bigint", "int8"),
    ("real", "float4"),
    ("float", "float8"),
    ("double precision", "float8"),
    ("boolean", "bool"),
    ("character varying", "varchar"),
    ("character", "bpchar"),
    ("char", "bpchar"),
    ("decimal", "numeric"),
    ("timestamp without time zone", "timestamp"),
    ("timestamp with time zone", "timestamptz"),
    ("time without time zone", "time"),
    ("time with time zone", "timetz"),
    ("bit varying", "varbit"),
];

/// Type OIDs by name, and function names by OID.
#[derive(Debug, Default)]
pub(super) struct TypeNames {
    types: HashMap<String, (i32, i32)>,
    names: HashMap<i32, String>,
    elements: HashMap<i32, i32>,
    procs: HashMap<i32, String>,
}

impl TypeNames {
    /// The names, read once for all sessions from PostgreSQL's static catalog.
    pub(super) fn shared(tables: &PgCatalogStaticTables) -> Result<Arc<TypeNames>> {
        static NAMES: OnceLock<Arc<TypeNames>> = OnceLock::new();
        if let Some(names) = NAMES.get() {
            return Ok(names.clone());
        }
        let names = Arc::new(TypeNames::new(tables)?);
        Ok(NAMES.get_or_init(|| names).clone())
    }

    fn new(tables: &PgCatalogStaticTables) -> Result<TypeNames> {
        let mut names = TypeNames::default();
        for batch in tables.pg_type.data() {
            let (oids, typnames, arrays) = (int32_column(batch, "oid")?, text_column(batch, "typname")?, int32_column(batch, "typarray")?);
            for ((oid, name), array) in oids.into_iter().zip(typnames).zip(arrays) {
                if let (Some(oid), Some(name)) = (oid, name) {
                    if let Some(array) = array.filter(|a| *a != 0) {
                        names.elements.insert(array, oid);
                    }
                    names.names.insert(oid, name.clone());
                    names.types.insert(name, (oid, array.unwrap_or(0)));
                }
            }
        }
        for batch in tables.pg_proc.data() {
            for (oid, name) in int32_column(batch, "oid")?.into_iter().zip(text_column(batch, "proname")?) {
                if let (Some(oid), Some(name)) = (oid, name) {
                    names.procs.insert(oid, name);
                }
            }
        }
        Ok(names)
    }

    /// How `oid::regtype` prints: SQL's name for the type (`integer`, `character varying`),
    /// `[]` after an array's element type, the number for an unknown OID.
    pub(super) fn display(&self, oid: i32) -> String {
        if let Some(element) = self.elements.get(&oid) {
            return format!("{}[]", self.display(*element));
        }
        match self.names.get(&oid) {
            Some(name) => {
                let sql = ALIASES.iter().filter(|(alias, _)| !matches!(*alias, "int" | "float" | "char" | "decimal")).find(|(_, n)| n == name);
                sql.map_or_else(|| name.clone(), |(alias, _)| (*alias).to_owned())
            }
            None => oid.to_string(),
        }
    }

    /// `to_regtype(name)`: the OID of a type written as SQL writes it (`integer`,
    /// `character varying(10)`, `pg_catalog.int4`, `text[]`); `None` when there is none.
    pub(super) fn resolve(&self, name: &str) -> Option<i32> {
        let mut name = name.trim().to_owned();
        let array = name.ends_with("[]");
        if array {
            name.truncate(name.len() - 2);
        }
        if let Some(open) = name.find('(') {
            name.truncate(open);
        }
        let parts = split_ident(&name)?;
        let base = match parts.as_slice() {
            [name] => name.split_whitespace().collect::<Vec<_>>().join(" "),
            [schema, name] if schema == "pg_catalog" => name.clone(),
            _ => return None,
        };
        let base = ALIASES.iter().find(|(alias, _)| *alias == base).map_or(base.as_str(), |(_, name)| name);
        let (oid, array_oid) = *self.types.get(base)?;
        match array {
            false => Some(oid),
            true => (array_oid != 0).then_some(array_oid),
        }
    }
}

/// Compares a `regproc` column stored as a function name with an OID the way PostgreSQL
/// would: 0 is the `-` stored for "none", another OID is that function's name.
#[derive(Debug)]
pub(super) struct RegprocComparison {
    pub(super) names: Arc<TypeNames>,
}

impl RegprocComparison {

    fn is_regproc(expr: &Expr, schema: &DFSchema) -> bool {
        matches!(expr.get_type(schema), Ok(DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8))
            && expr.metadata(schema).is_ok_and(|m| m.inner().get(OID_ALIAS_KEY).map(String::as_str) == Some(kind::REGPROC))
    }

    /// The name an OID literal stands for.
    fn name_of(&self, expr: &Expr) -> Option<String> {
        let value = match expr {
            Expr::Literal(value, _) => value,
            Expr::Cast(Cast { expr, .. }) => match expr.as_ref() {
                Expr::Literal(value, _) => value,
                _ => return None,
            },
            _ => return None,
        };
        let oid = match value.cast_to(&DataType::Int64).ok()? {
            ScalarValue::Int64(Some(oid)) => oid,
            _ => return None,
        };
        if oid == 0 {
            return Some("-".to_owned());
        }
        Some(self.names.procs.get(&i32::try_from(oid).ok()?).cloned().unwrap_or_else(|| oid.to_string()))
    }
}

impl ExprPlanner for RegprocComparison {
    fn plan_binary_op(&self, mut expr: RawBinaryExpr, schema: &DFSchema) -> Result<PlannerResult<RawBinaryExpr>> {
        use BinaryOperator::{Eq, NotEq};
        if !matches!(expr.op, Eq | NotEq) {
            return Ok(PlannerResult::Original(expr));
        }
        if Self::is_regproc(&expr.left, schema)
            && let Some(name) = self.name_of(&expr.right)
        {
            expr.right = lit(name);
        } else if Self::is_regproc(&expr.right, schema)
            && let Some(name) = self.name_of(&expr.left)
        {
            expr.left = lit(name);
        }
        Ok(PlannerResult::Original(expr))
    }
}

/// `pg_attribute.atttypmod` of the products' columns that have one, by table OID and column
/// number: `numeric(p,s)` is `((p << 16) | s) + 4`, as PostgreSQL stores it, so `format_type`
/// and drivers (SQLAlchemy's `NUMERIC(12, 2)`, JDBC's precision and scale) see the contract's
/// precision. Other columns keep `-1`.
pub(super) fn type_modifiers(
    relations: &super::relations::Relations,
    products: &[(meshwork_core::descriptor::ProductDescriptor, datafusion::arrow::datatypes::SchemaRef)],
) -> HashMap<(i32, i32), i32> {
    let mut out = HashMap::new();
    for (product, table) in products {
        let Some(oid) = relations.oid(product.domain.as_str(), product.name.as_str()) else { continue };
        for (i, field) in table.fields().iter().enumerate() {
            if let DataType::Decimal128(precision, scale) | DataType::Decimal256(precision, scale) = field.data_type() {
                out.insert((oid, i as i32 + 1), ((i32::from(*precision) << 16) | i32::from(*scale)) + 4);
            }
        }
    }
    out
}
