//! PostgreSQL functions that clients call on the catalog and that datafusion-pg-catalog lacks
//! or answers wrongly (`pg_get_userbyid` always said `postgres`, `pg_table_is_visible` always
//! true, `pg_get_constraintdef` empty). Registering a function under a name replaces the one
//! there.

use std::collections::HashMap;
use std::fmt::Debug;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Int32Array, ListArray, StringArray, StructArray, new_null_array};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Fields, Int64Type};
use datafusion::common::{DataFusionError, Result, exec_err};
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility};
use datafusion::prelude::SessionContext;

use super::keys::PrimaryKey;
use super::relations::Relations;
use super::settings::setting;
use super::types::TypeNames;

/// A function's body: its arguments as arrays of the batch's length, and that length.
type Body = dyn Fn(&[ArrayRef], usize) -> Result<ArrayRef> + Send + Sync;

/// A catalog function: a name, a result type and a body over any arguments.
struct PgFunction {
    name: &'static str,
    signature: Signature,
    returns: DataType,
    body: Arc<Body>,
}

impl Debug for PgFunction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PgFunction({})", self.name)
    }
}

// Functions are told apart by name: there is one of each per session.
impl PartialEq for PgFunction {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for PgFunction {}

impl Hash for PgFunction {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.name.hash(state);
    }
}

impl ScalarUDFImpl for PgFunction {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(self.returns.clone())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        Ok(ColumnarValue::Array((self.body)(&arrays, args.number_rows)?))
    }
}

fn function(name: &'static str, nullary: bool, returns: DataType, body: impl Fn(&[ArrayRef], usize) -> Result<ArrayRef> + Send + Sync + 'static) -> ScalarUDF {
    let signature = if nullary { Signature::nullary(Volatility::Stable) } else { Signature::variadic_any(Volatility::Stable) };
    ScalarUDF::new_from_impl(PgFunction { name, signature, returns, body: Arc::new(body) })
}

/// Argument `i` as integers (OIDs, column numbers); NULL where absent or NULL.
fn ints(args: &[ArrayRef], i: usize, rows: usize) -> Result<Vec<Option<i64>>> {
    match args.get(i) {
        Some(array) => Ok(cast(array, &DataType::Int64)?.as_primitive::<Int64Type>().iter().collect()),
        None => Ok(vec![None; rows]),
    }
}

/// Argument `i` as text.
fn texts(args: &[ArrayRef], i: usize, rows: usize) -> Result<Vec<Option<String>>> {
    match args.get(i) {
        Some(array) => Ok(cast(array, &DataType::Utf8)?.as_string::<i32>().iter().map(|v| v.map(str::to_owned)).collect()),
        None => Ok(vec![None; rows]),
    }
}

/// Argument 0 as lists of OIDs: a list, or text as PostgreSQL prints `oidvector` (`25 23`) or an
/// array (`{25,23}`, or `[25, 23]` as the static catalog stores it).
fn oid_lists(args: &[ArrayRef], rows: usize) -> Result<Vec<Option<Vec<i32>>>> {
    let Some(array) = args.first() else { return Ok(vec![None; rows]) };
    if let DataType::List(_) | DataType::LargeList(_) = array.data_type() {
        let lists = cast(array, &DataType::List(Arc::new(Field::new_list_field(DataType::Int64, true))))?;
        let lists = lists.as_list::<i32>();
        return Ok((0..lists.len())
            .map(|i| (!lists.is_null(i)).then(|| lists.value(i).as_primitive::<Int64Type>().iter().flatten().map(|o| o as i32).collect()))
            .collect());
    }
    texts(args, 0, rows)?
        .into_iter()
        .map(|text| match text {
            None => Ok(None),
            Some(text) => text
                .trim_matches(|c| matches!(c, '[' | ']' | '{' | '}'))
                .split(|c: char| c == ',' || c.is_whitespace())
                .filter(|part| !part.is_empty())
                .map(|part| part.parse::<i32>().map_err(|_| DataFusionError::Execution(format!("`{text}` is not a list of type OIDs"))))
                .collect::<Result<Vec<_>>>()
                .map(Some),
        })
        .collect()
}

fn text_array(values: impl IntoIterator<Item = Option<String>>) -> ArrayRef {
    Arc::new(values.into_iter().collect::<StringArray>())
}

/// A function answering the same for every non-NULL first argument.
fn constant_bool(name: &'static str, value: bool) -> ScalarUDF {
    function(name, false, DataType::Boolean, move |args, rows| {
        let values: BooleanArray = ints(args, 0, rows)?.iter().map(|v| v.map(|_| value)).collect();
        Ok(Arc::new(values))
    })
}

/// A function answering NULL, for objects Meshwork has none of (sequences, triggers, user
/// functions).
fn always_null(name: &'static str, returns: DataType) -> ScalarUDF {
    let typ = returns.clone();
    function(name, false, returns, move |_, rows| Ok(new_null_array(&typ, rows)))
}

/// The `(x, n)` struct `_pg_expandarray` returns.
fn expanded_fields() -> Fields {
    Fields::from(vec![Field::new("x", DataType::Int32, true), Field::new("n", DataType::Int32, true)])
}

/// Argument 0 as a list of `int4` lists (int2vector, int2[] or oid[]).
fn int_lists(args: &[ArrayRef]) -> Result<ListArray> {
    let Some(array) = args.first() else { return exec_err!("the function needs an array argument") };
    let list = cast(array, &DataType::new_list(DataType::Int32, true)).map_err(|_| DataFusionError::Execution(format!("expected an array, got {}", array.data_type())))?;
    Ok(list.as_list::<i32>().clone())
}

/// `_pg_expandarray(a)`: per row, the list of `(element, position)`; the rewrite wraps calls
/// in `unnest` so each becomes a row, as the set-returning function does in PostgreSQL.
fn expandarray(name: &'static str, part: Option<&'static str>) -> ScalarUDF {
    let item = match part {
        None => DataType::Struct(expanded_fields()),
        Some(_) => DataType::Int32,
    };
    let returns = DataType::new_list(item.clone(), true);
    function(name, false, returns, move |args, _| {
        let lists = int_lists(args)?;
        let values = cast(lists.values(), &DataType::Int32)?;
        let mut positions = Vec::with_capacity(values.len());
        for (start, end) in lists.offsets().windows(2).map(|w| (w[0] as usize, w[1] as usize)) {
            positions.extend((start..end).map(|i| (i - start) as i32 + 1));
        }
        let positions: ArrayRef = Arc::new(Int32Array::from(positions));
        let items: ArrayRef = match part {
            Some("x") => values,
            Some(_) => positions,
            None => Arc::new(StructArray::try_new(expanded_fields(), vec![values, positions], None)?),
        };
        let field = Arc::new(Field::new("item", item.clone(), true));
        Ok(Arc::new(ListArray::try_new(field, OffsetBuffer::new(lists.offsets().inner().clone()), items, lists.nulls().cloned())?))
    })
}

/// `generate_subscripts(a, dim)` as a list per row (1 … length for dimension 1), which the
/// rewrite unnests.
fn subscripts() -> ScalarUDF {
    function("_mw_subscripts", false, DataType::new_list(DataType::Int32, true), move |args, rows| {
        let lists = int_lists(args)?;
        let dims = ints(args, 1, rows)?;
        let mut offsets = vec![0_i32];
        let mut values = Vec::new();
        for (i, dim) in dims.iter().enumerate() {
            if *dim == Some(1) && lists.is_valid(i) {
                values.extend(1..=lists.value_length(i));
            }
            offsets.push(values.len() as i32);
        }
        let field = Arc::new(Field::new("item", DataType::Int32, true));
        Ok(Arc::new(ListArray::try_new(field, OffsetBuffer::new(offsets.into()), Arc::new(Int32Array::from(values)), None)?))
    })
}

/// What the functions answer from: the session's principal and catalog.
pub(super) struct Answers {
    pub(super) principal: String,
    pub(super) relations: Arc<Relations>,
    pub(super) keys: Vec<PrimaryKey>,
    pub(super) descriptions: HashMap<(i32, i32), String>,
    pub(super) types: Arc<TypeNames>,
}

/// Registers the functions in the session.
pub(super) fn register(ctx: &SessionContext, answers: Answers) {
    let Answers { principal, relations, keys, descriptions, types } = answers;

    // Who: the connected principal, for `session_user`, `current_user` (the library rewrites
    // it to `session_user`) and every owner column.
    let name = principal.clone();
    ctx.register_udf(function("session_user", true, DataType::Utf8, move |_, rows| Ok(text_array(vec![Some(name.clone()); rows]))));
    let name = principal.clone();
    ctx.register_udf(function("pg_get_userbyid", false, DataType::Utf8, move |args, rows| {
        Ok(text_array(ints(args, 0, rows)?.into_iter().map(|oid| oid.map(|_| name.clone()))))
    }));

    // Relations.
    let r = relations.clone();
    ctx.register_udf(function("pg_table_is_visible", false, DataType::Boolean, move |args, rows| {
        let values: BooleanArray = ints(args, 0, rows)?.iter().map(|oid| oid.map(|o| r.visible(o as i32))).collect();
        Ok(Arc::new(values))
    }));
    let r = relations.clone();
    ctx.register_udf(function("to_regclass", false, DataType::Int32, move |args, rows| {
        let values: Int32Array = texts(args, 0, rows)?.iter().map(|name| name.as_deref().and_then(|n| r.resolve(n))).collect();
        Ok(Arc::new(values))
    }));
    let r = relations.clone();
    ctx.register_udf(function("_mw_regclass_name", false, DataType::Utf8, move |args, rows| {
        Ok(text_array(ints(args, 0, rows)?.into_iter().map(|oid| oid.map(|o| r.regclass(o as i32)))))
    }));

    // Types.
    let t = types.clone();
    ctx.register_udf(function("to_regtype", false, DataType::Int32, move |args, rows| {
        let values: Int32Array = texts(args, 0, rows)?.iter().map(|name| name.as_deref().and_then(|n| t.resolve(n))).collect();
        Ok(Arc::new(values))
    }));

    let t = types.clone();
    ctx.register_udf(function("_mw_regtype_name", false, DataType::Utf8, move |args, rows| {
        Ok(text_array(ints(args, 0, rows)?.into_iter().map(|oid| oid.map(|o| t.display(o as i32)))))
    }));

    // `oidvector::regtype[]` / `oid[]::regtype[]` (pgcli's function list): the names. The
    // static catalog stores both as text (`25 23` and `[1034, 26]`).
    let t = types.clone();
    ctx.register_udf(function("_mw_regtype_names", false, DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true))), move |args, rows| {
        let lists = oid_lists(args, rows)?;
        let mut builder = datafusion::arrow::array::ListBuilder::new(datafusion::arrow::array::StringBuilder::new());
        for list in lists {
            match list {
                Some(oids) => {
                    for oid in oids {
                        builder.values().append_value(t.display(oid));
                    }
                    builder.append(true);
                }
                None => builder.append(false),
            }
        }
        Ok(Arc::new(builder.finish()))
    }));

    // Keys.
    let constraint_defs: HashMap<i64, String> = keys.iter().map(|k| (i64::from(k.constraint_oid), k.constraint_def())).collect();
    ctx.register_udf(function("pg_get_constraintdef", false, DataType::Utf8, move |args, rows| {
        Ok(text_array(ints(args, 0, rows)?.into_iter().map(|oid| oid.and_then(|o| constraint_defs.get(&o).cloned()))))
    }));
    let index_defs: HashMap<i64, PrimaryKey> = keys.iter().map(|k| (i64::from(k.index_oid), k.clone())).collect();
    ctx.register_udf(function("pg_get_indexdef", false, DataType::Utf8, move |args, rows| {
        let columns = ints(args, 1, rows)?;
        Ok(text_array(ints(args, 0, rows)?.into_iter().zip(columns).map(|(oid, column)| {
            let key = index_defs.get(&oid?)?;
            match column {
                Some(c) if c > 0 => key.columns.get(c as usize - 1).map(|(name, _)| super::relations::quote_ident(name)).or(Some(String::new())),
                _ => Some(key.index_def()),
            }
        })))
    }));

    // Descriptions.
    let d = descriptions.clone();
    ctx.register_udf(function("col_description", false, DataType::Utf8, move |args, rows| {
        let columns = ints(args, 1, rows)?;
        Ok(text_array(ints(args, 0, rows)?.into_iter().zip(columns).map(|(oid, column)| d.get(&(oid? as i32, column? as i32)).cloned())))
    }));
    let d = descriptions;
    ctx.register_udf(function("obj_description", false, DataType::Utf8, move |args, rows| {
        let catalogs = texts(args, 1, rows)?;
        Ok(text_array(ints(args, 0, rows)?.into_iter().zip(catalogs).map(|(oid, catalog)| {
            // Only relations have descriptions; one-argument calls are deprecated but allowed.
            if args.len() > 1 && catalog.as_deref() != Some("pg_class") {
                return None;
            }
            d.get(&(oid? as i32, 0)).cloned()
        })))
    }));
    ctx.register_udf(always_null("shobj_description", DataType::Utf8));

    // Settings.
    ctx.register_udf(function("current_setting", false, DataType::Utf8, move |args, rows| {
        let missing_ok = match args.get(1) {
            Some(a) => cast(a, &DataType::Boolean)?.as_boolean().iter().collect::<Vec<_>>(),
            None => vec![None; rows],
        };
        let mut out = Vec::with_capacity(rows);
        for (name, missing_ok) in texts(args, 0, rows)?.into_iter().zip(missing_ok) {
            match name.as_deref().map(|n| (n, setting(n))) {
                None => out.push(None),
                Some((_, Some(value))) => out.push(Some(value.to_owned())),
                Some((_, None)) if missing_ok == Some(true) => out.push(None),
                Some((n, None)) => return exec_err!("unrecognized configuration parameter `{n}`"),
            }
        }
        Ok(text_array(out))
    }));

    // Sets of rows: the rewrite wraps these in `unnest`.
    ctx.register_udf(expandarray("_pg_expandarray", None));
    ctx.register_udf(expandarray("_pg_expandarray_x", Some("x")));
    ctx.register_udf(expandarray("_pg_expandarray_n", Some("n")));
    ctx.register_udf(subscripts());

    // Objects Meshwork does not have.
    ctx.register_udf(constant_bool("pg_function_is_visible", true));
    ctx.register_udf(constant_bool("pg_type_is_visible", true));
    ctx.register_udf(constant_bool("pg_collation_is_visible", true));
    ctx.register_udf(always_null("pg_get_serial_sequence", DataType::Utf8));
    ctx.register_udf(always_null("pg_get_function_result", DataType::Utf8));
    ctx.register_udf(always_null("pg_get_function_arguments", DataType::Utf8));
    ctx.register_udf(always_null("pg_get_function_identity_arguments", DataType::Utf8));
    ctx.register_udf(always_null("pg_get_triggerdef", DataType::Utf8));
    ctx.register_udf(always_null("pg_get_viewdef", DataType::Utf8));
    ctx.register_udf(function("pg_my_temp_schema", true, DataType::Int32, |_, rows| Ok(Arc::new(Int32Array::from(vec![0; rows])))));
    ctx.register_udf(function("json_build_object", false, DataType::Utf8, json_build_object));
}

/// `json_build_object(key, value, …)` as JSON text (SQLAlchemy reads identity options with it).
fn json_build_object(args: &[ArrayRef], rows: usize) -> Result<ArrayRef> {
    if args.len() % 2 != 0 {
        return datafusion::common::plan_err!("json_build_object takes keys and values in pairs; got {} arguments", args.len());
    }
    let keys: Vec<Vec<Option<String>>> = (0..args.len() / 2).map(|i| texts(args, 2 * i, rows)).collect::<Result<_>>()?;
    let mut out = Vec::with_capacity(rows);
    for row in 0..rows {
        let mut object = serde_json::Map::new();
        for (pair, keys) in keys.iter().enumerate() {
            let Some(key) = keys[row].clone() else {
                return datafusion::common::exec_err!("json_build_object: a key is NULL (argument {})", 2 * pair + 1);
            };
            let value = datafusion::common::ScalarValue::try_from_array(&args[2 * pair + 1], row)?;
            object.insert(key, json_value(&value));
        }
        out.push(Some(serde_json::Value::Object(object).to_string()));
    }
    Ok(text_array(out))
}

/// A value as PostgreSQL's `to_json` writes it: numbers and booleans as themselves, NULL as
/// `null`, everything else as its text.
fn json_value(value: &datafusion::common::ScalarValue) -> serde_json::Value {
    use datafusion::common::ScalarValue as V;
    if value.is_null() {
        return serde_json::Value::Null;
    }
    match value {
        V::Boolean(Some(b)) => serde_json::Value::Bool(*b),
        V::Int8(Some(v)) => (*v).into(),
        V::Int16(Some(v)) => (*v).into(),
        V::Int32(Some(v)) => (*v).into(),
        V::Int64(Some(v)) => (*v).into(),
        V::UInt8(Some(v)) => (*v).into(),
        V::UInt16(Some(v)) => (*v).into(),
        V::UInt32(Some(v)) => (*v).into(),
        V::UInt64(Some(v)) => (*v).into(),
        V::Float32(Some(v)) => serde_json::Number::from_f64(f64::from(*v)).map_or(serde_json::Value::Null, serde_json::Value::Number),
        V::Float64(Some(v)) => serde_json::Number::from_f64(*v).map_or(serde_json::Value::Null, serde_json::Value::Number),
        V::Utf8(Some(v)) | V::LargeUtf8(Some(v)) | V::Utf8View(Some(v)) => serde_json::Value::String(v.clone()),
        other => serde_json::Value::String(other.to_string()),
    }
}
