//! `product.yaml`: identity and lifecycle, input ports, transform and contract.

// Imports are shared by every section of the parser: see `mod.rs`.
use super::*;

/// Parses `product.yaml`. A transform given as a `.sql` file comes back with empty `sql`; the
/// repository loader reads the file.
pub fn parse_product(file: &str, text: &str) -> Parsed<ProductDescriptor> {
    let mut d = Decoder::new(file);
    let value = d.load(text).and_then(|root| product(&mut d, &root));
    finish(d, value)
}

pub(super) const PRODUCT_FIELDS: &[&str] = &[
    "name",
    "domain",
    "version",
    "title",
    "description",
    "owner",
    "tags",
    "status",
    "sunset",
    "successor",
    "inputs",
    "transform",
    "contract",
    "quality",
    "slo",
    "refresh",
    "access",
    "output_ports",
    "virtual",
];

pub(super) fn product(d: &mut Decoder<'_>, root: &Node) -> Option<ProductDescriptor> {
    let map = d.mapping(root, "", PRODUCT_FIELDS)?;
    let name = d.parsed(map, "", "name", Some("orders"), DiagnosticCode::InvalidName, |t| ProductName::new(t).map_err(name_error));
    let domain = d.parsed(map, "", "domain", Some("sales"), DiagnosticCode::InvalidName, |t| DomainName::new(t).map_err(name_error));
    // Any text is accepted here; whether it is semantic versioning is the `semver_version`
    // governance rule's call, so a mesh can stage that rule like any other.
    let version = d.required_text(map, "", "version", "1.0.0");
    let title = d.text(map, "", "title");
    let description = d.text(map, "", "description");
    let owner = d.parsed(map, "", "owner", None, DiagnosticCode::InvalidValue, |t| match t.split_once(':') {
        Some(("user" | "group" | "service", rest)) if !rest.is_empty() => Ok(t.to_owned()),
        _ => Err((format!("`{t}` is not an owner reference"), Some("write `user:NAME` or `group:NAME`, e.g. `group:sales-data`".into()))),
    });
    let tags = d.texts(map, "", "tags");
    let status = d
        .choice(
            map,
            "",
            "status",
            None,
            &[("draft", ProductStatus::Draft), ("active", ProductStatus::Active), ("deprecated", ProductStatus::Deprecated)],
        )
        .unwrap_or(ProductStatus::Active);
    let sunset = d.parsed(map, "", "sunset", None, DiagnosticCode::InvalidValue, |t| {
        // A calendar date, so `2025-13-45` is refused; exactly ten characters, as written back.
        let date = if t.len() == 10 { chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d").ok() } else { None };
        date.ok_or_else(|| (format!("`{t}` is not a date"), Some("write a calendar date as YYYY-MM-DD, e.g. `2027-06-30`".into())))
    });
    let successor = d.parsed(map, "", "successor", None, DiagnosticCode::InvalidName, |t| t.parse::<ProductId>().map_err(name_error));
    let inputs = inputs(d, map);
    let transform = transform(d, map);
    let contract = Decoder::get(map, "contract").and_then(|node| contract(d, node));
    if Decoder::get(map, "contract").is_none() {
        d.required(map, "", "contract", "{ columns: [...] }");
    }
    let quality = quality(d, map, contract.as_ref());
    let slo = Decoder::get(map, "slo").and_then(|node| slo(d, node, contract.as_ref()));
    let refresh = Decoder::get(map, "refresh").and_then(|node| refresh(d, node)).unwrap_or_default();
    let access = Decoder::get(map, "access").and_then(|node| access(d, node, contract.as_ref()));
    let output_ports = Decoder::get(map, "output_ports").and_then(|node| output_ports(d, node)).unwrap_or_default();
    let storage = if d.boolean(map, "", "virtual").unwrap_or(false) { Storage::Virtual } else { Storage::Copy };
    if storage == Storage::Virtual {
        check_virtual(d, map, &inputs, transform.is_some());
    } else if let Some(i) = inputs.iter().position(|i| matches!(i.source, InputSource::FlightSql(_))) {
        let field = format!("inputs[{i}].source.kind");
        d.report(
            DiagnosticCode::InvalidValue,
            Decoder::get(map, "inputs").map_or(map.span(), |n| n.span()),
            &field,
            format!("input `{}` reads a Flight SQL endpoint, which is served live, not copied", inputs[i].name),
            Some("add `virtual: true` and keep it the product's only input".into()),
        );
    }

    if inputs.is_empty() && Decoder::get(map, "inputs").is_none() {
        d.required(map, "", "inputs", "[{ name: raw, source: { kind: csv, path: data/raw.csv } }]");
    }
    Some(ProductDescriptor {
        name: name?,
        domain: domain?,
        version: version?,
        title,
        description,
        owner,
        tags,
        status,
        sunset,
        successor,
        inputs,
        transform,
        contract: contract?,
        quality,
        slo,
        refresh,
        access,
        output_ports,
        storage,
    })
}

/// A virtual product is served from one database table or query as it is: one input, read in
/// full when queried, and no transform (the query engine, not a build, shapes its rows).
fn check_virtual(d: &mut Decoder<'_>, map: &MarkedMappingNode, inputs: &[InputPort], transformed: bool) {
    let Some(node) = Decoder::get(map, "virtual") else { return };
    let span = node.span();
    if transformed {
        d.report(
            DiagnosticCode::InvalidValue,
            Decoder::get(map, "transform").map_or(span, |t| t.span()),
            "transform",
            "a virtual product is served from its database input as it is and takes no `transform`".into(),
            Some("remove `transform` (shape the rows in the input's `query:`), or remove `virtual: true` to build a copy".into()),
        );
    }
    match inputs {
        [input] if matches!(input.source, InputSource::FlightSql(_)) => {}
        [input] => match input.source.database() {
            None => d.report(
                DiagnosticCode::InvalidValue,
                span,
                "virtual",
                format!("a virtual product is served live from a database, and input `{}` is not one", input.name),
                Some("read `source: { kind: postgres, connection: NAME, table: SCHEMA.TABLE }` (or `kind: mysql`, or `kind: flight_sql` with `table: DOMAIN.PRODUCT`), or remove `virtual: true`".into()),
            ),
            Some((_, source)) if source.incremental.is_some() => d.report(
                DiagnosticCode::InvalidValue,
                span,
                "inputs[0].source.incremental",
                "a virtual product copies nothing, so it has no incremental loads".into(),
                Some("remove `incremental` (a freshness objective can read the source's column: `slo: { freshness: { max_age: 1h, column: … } }`)".into()),
            ),
            Some(_) => {}
        },
        [] => {}
        _ => d.report(
            DiagnosticCode::InvalidValue,
            span,
            "virtual",
            format!("a virtual product is served from exactly one database input, and this one has {}", inputs.len()),
            Some("keep one input, or remove `virtual: true` to build a copy that joins them".into()),
        ),
    }
}

pub(super) fn inputs(d: &mut Decoder<'_>, map: &MarkedMappingNode) -> Vec<InputPort> {
    let mut ports = Vec::new();
    let mut seen = HashSet::new();
    for (field, node) in d.list(map, "", "inputs") {
        let Some(port) = d.mapping(node, &field, &["name", "source", "product"]) else { continue };
        let name = d.parsed(port, &field, "name", Some("raw_orders"), DiagnosticCode::InvalidName, |t| {
            check_name(t).map(|()| t.to_owned()).map_err(name_error)
        });
        let product = d.parsed(port, &field, "product", None, DiagnosticCode::InvalidName, |t| t.parse::<ProductId>().map_err(name_error));
        let source_node = Decoder::get(port, "source");
        let source = match (product, source_node) {
            (Some(product), None) => Some(InputSource::Product { product }),
            (None, Some(node)) => source(d, node, &join(&field, "source")),
            (Some(_), Some(_)) => {
                d.report(
                    DiagnosticCode::InvalidValue,
                    port.span(),
                    &field,
                    "an input reads either a `source` or a `product`, not both".into(),
                    Some("split it into two inputs".into()),
                );
                None
            }
            (None, None) => {
                if Decoder::get(port, "product").is_none() {
                    d.report(
                        DiagnosticCode::MissingField,
                        port.span(),
                        &field,
                        "an input needs a `source` or a `product`".into(),
                        Some("add `source: { kind: csv, path: data/file.csv }` or `product: domain.product`".into()),
                    );
                }
                None
            }
        };
        if let Some(name) = &name
            && !seen.insert(name.clone())
        {
            d.report(
                DiagnosticCode::Duplicate,
                port.span(),
                &join(&field, "name"),
                format!("input `{name}` is declared twice"),
                Some("give each input its own name".into()),
            );
        }
        if let (Some(name), Some(source)) = (name, source) {
            ports.push(InputPort { name, source });
        }
    }
    ports
}

pub(super) fn source(d: &mut Decoder<'_>, node: &Node, field: &str) -> Option<InputSource> {
    let kinds = [("csv", "csv"), ("ndjson", "ndjson"), ("parquet", "parquet"), ("postgres", "postgres"), ("mysql", "mysql"), ("flight_sql", "flight_sql")];
    let map = d.mapping(node, field, &["kind", "path", "header", "delimiter", "null_values", "connection", "table", "query", "incremental"])?;
    let kind = d.choice(map, field, "kind", Some("csv"), &kinds)?;
    let (own, foreign): (&[&str], &[&str]) = match kind {
        "postgres" | "mysql" | "flight_sql" => (&["connection", "table", "query", "incremental"], &["path", "header", "delimiter", "null_values"]),
        _ => (&["path", "header", "delimiter", "null_values"], &["connection", "table", "query", "incremental"]),
    };
    for key in foreign {
        if let Some(value) = Decoder::get(map, key) {
            let applies = match (own.contains(&"path"), *key) {
                (true, "incremental") => "database sources (`postgres`, `mysql`)",
                (true, _) => "database sources (`postgres`, `mysql`, `flight_sql`)",
                (false, _) => "file sources",
            };
            d.report(
                DiagnosticCode::InvalidValue,
                value.span(),
                &join(field, key),
                format!("`{key}` applies to {applies}, not `{kind}`"),
                Some(format!("remove `{key}`")),
            );
        }
    }
    match kind {
        "postgres" => return database_source(d, map, field).map(InputSource::Postgres),
        "mysql" => return database_source(d, map, field).map(InputSource::Mysql),
        "flight_sql" => {
            if let Some(node) = Decoder::get(map, "incremental") {
                d.report(
                    DiagnosticCode::InvalidValue,
                    node.span(),
                    &join(field, "incremental"),
                    "a `flight_sql` source is read live by a virtual product and has no incremental loads".into(),
                    Some("remove `incremental`".into()),
                );
            }
            return database_source(d, map, field).map(InputSource::FlightSql);
        }
        _ => {}
    }
    let path = d.required_text(map, field, "path", "data/file.csv");
    if kind != "csv" && kind != "postgres" && kind != "mysql" {
        for key in ["header", "delimiter", "null_values"] {
            if let Some(value) = Decoder::get(map, key) {
                d.report(
                    DiagnosticCode::InvalidValue,
                    value.span(),
                    &join(field, key),
                    format!("`{key}` applies to csv sources only, not `{kind}`"),
                    Some(format!("remove `{key}`")),
                );
            }
        }
    }
    let path = path?;
    Some(match kind {
        "csv" => {
            let header = d.boolean(map, field, "header").unwrap_or(true);
            let delimiter = d
                .parsed(map, field, "delimiter", None, DiagnosticCode::InvalidValue, |t| {
                    let t = if t == "\\t" { "\t" } else { t };
                    let mut chars = t.chars();
                    match (chars.next(), chars.next()) {
                        (Some(c), None) if c.is_ascii() => Ok(c),
                        _ => Err((format!("delimiter `{t}` must be one ASCII character"), Some("e.g. `,`, `;`, `|` or `\\t`".into()))),
                    }
                })
                .unwrap_or(',');
            let null_values = if Decoder::get(map, "null_values").is_some() { d.texts(map, field, "null_values") } else { vec![String::new()] };
            InputSource::Csv { path, header, delimiter, null_values }
        }
        "ndjson" => InputSource::Ndjson { path },
        _ => InputSource::Parquet { path },
    })
}

/// `connection`, `table` or `query`, and `incremental` of a database source. Whether the
/// connection exists is a check across files (`MeshRepo::check_connections`).
fn database_source(d: &mut Decoder<'_>, map: &MarkedMappingNode, field: &str) -> Option<DatabaseSource> {
    let connection = d.parsed(map, field, "connection", Some("crm"), DiagnosticCode::InvalidName, |t| check_name(t).map(|()| t.to_owned()).map_err(name_error));
    let table = d.parsed(map, field, "table", None, DiagnosticCode::InvalidValue, |t| {
        let parts: Vec<&str> = t.split('.').collect();
        if parts.len() <= 2 && parts.iter().all(|p| check_identifier(p).is_ok()) {
            Ok(t.to_owned())
        } else {
            Err((format!("`{t}` is not a table name"), Some("write `table` or `schema.table`; for anything else write a `query`".into())))
        }
    });
    let query = d.text(map, field, "query").map(|q| q.trim().trim_end_matches(';').trim().to_owned());
    let read = match (table, query, Decoder::get(map, "table").is_some() || Decoder::get(map, "query").is_some()) {
        (Some(table), None, _) => Some(DatabaseRead::Table(table)),
        (None, Some(query), _) if !query.is_empty() => Some(DatabaseRead::Query(query)),
        (None, Some(_), _) => {
            d.report(DiagnosticCode::InvalidValue, map.span(), &join(field, "query"), "the query is empty".into(), Some("write a `SELECT` statement".into()));
            None
        }
        (Some(_), Some(_), _) => {
            d.report(DiagnosticCode::InvalidValue, map.span(), field, "a database source reads a `table` or a `query`, not both".into(), Some("keep one of them".into()));
            None
        }
        (None, _, false) => {
            d.report(
                DiagnosticCode::MissingField,
                map.span(),
                field,
                "a database source needs a `table` or a `query`".into(),
                Some("add `table: public.customers` or `query: SELECT …`".into()),
            );
            None
        }
        _ => None,
    };
    let incremental = Decoder::get(map, "incremental").and_then(|node| {
        let path = join(field, "incremental");
        let inc = d.mapping(node, &path, &["column", "mode"])?;
        let column = d.parsed(inc, &path, "column", Some("updated_at"), DiagnosticCode::InvalidName, |t| check_identifier(t).map(|()| t.to_owned()).map_err(name_error));
        let mode = d.choice(inc, &path, "mode", None, &[("append", LoadMode::Append), ("merge", LoadMode::Merge)]).unwrap_or(LoadMode::Merge);
        Some(Incremental { column: column?, mode })
    });
    Some(DatabaseSource { connection: connection?, read: read?, incremental })
}

pub(super) fn transform(d: &mut Decoder<'_>, map: &MarkedMappingNode) -> Option<Transform> {
    let node = Decoder::get(map, "transform")?;
    d.mark("transform", node);
    if let Some(scalar) = node.as_scalar() {
        let text = scalar.as_str().trim();
        // A single word ending in `.sql` names a file; anything else is inline SQL.
        return if text.ends_with(".sql") && !text.contains(char::is_whitespace) {
            Some(Transform { file: Some(text.to_owned()), sql: String::new() })
        } else {
            Some(Transform { file: None, sql: text.to_owned() })
        };
    }
    let t = d.mapping(node, "transform", &["sql", "file"])?;
    match (d.text(t, "transform", "sql"), d.text(t, "transform", "file")) {
        (Some(sql), None) => Some(Transform { file: None, sql }),
        (None, Some(file)) => Some(Transform { file: Some(file), sql: String::new() }),
        _ => {
            d.report(
                DiagnosticCode::InvalidValue,
                t.span(),
                "transform",
                "a transform has exactly one of `sql` or `file`".into(),
                Some("e.g. `transform: transform.sql`".into()),
            );
            None
        }
    }
}

pub(super) const CLASSIFICATIONS: &[(&str, Classification)] = &[
    ("public", Classification::Public),
    ("internal", Classification::Internal),
    ("confidential", Classification::Confidential),
    ("pii", Classification::Pii),
];

pub(super) fn contract(d: &mut Decoder<'_>, node: &Node) -> Option<Contract> {
    let map = d.mapping(node, "contract", &["columns", "primary_key"])?;
    let mut columns: Vec<Column> = Vec::new();
    // Columns whose name is valid even if another field of theirs is not: references to them
    // are not reported again.
    let mut named: Vec<Column> = Vec::new();
    let items = d.list(map, "contract", "columns");
    if items.is_empty() {
        d.report(
            DiagnosticCode::MissingField,
            map.span(),
            "contract.columns",
            "a contract needs at least one column".into(),
            Some("add `columns: [{ name: id, type: bigint }]`".into()),
        );
    }
    for (field, node) in items {
        let Some(c) = d.mapping(node, &field, &["name", "type", "nullable", "description", "classification"]) else { continue };
        // Any identifier is accepted; snake_case is the `snake_case_names` governance rule.
        let name = d.parsed(c, &field, "name", Some("order_id"), DiagnosticCode::InvalidName, |t| {
            check_identifier(t).map(|()| t.to_owned()).map_err(name_error)
        });
        let data_type = d.parsed(c, &field, "type", Some("bigint"), DiagnosticCode::InvalidValue, |t| {
            t.parse::<ColumnType>().map_err(|e| (e.message, e.hint))
        });
        let nullable = d.boolean(c, &field, "nullable").unwrap_or(true);
        let description = d.text(c, &field, "description");
        let classification = d.choice(c, &field, "classification", None, CLASSIFICATIONS);
        if let Some(name) = &name
            && named.iter().any(|existing| &existing.name == name)
        {
            d.report(
                DiagnosticCode::Duplicate,
                c.span(),
                &join(&field, "name"),
                format!("column `{name}` is declared twice"),
                Some("column names must be unique in a contract".into()),
            );
            continue;
        }
        if let Some(name) = name {
            let column = Column { name, data_type: data_type.unwrap_or(ColumnType::String), nullable, description, classification };
            if data_type.is_some() {
                columns.push(column.clone());
            }
            named.push(column);
        }
    }
    let mut primary_key = Vec::new();
    for (field, node) in d.list(map, "contract", "primary_key") {
        let Some(scalar) = d.scalar(node, &field, "a column name") else { continue };
        check_column(d, &named, scalar.as_str(), scalar.span(), &field);
        primary_key.push(scalar.as_str().to_owned());
    }
    Some(Contract { columns, primary_key })
}

/// Reports `column` if the contract does not declare it.
pub(super) fn check_column(d: &mut Decoder<'_>, columns: &[Column], column: &str, span: &marked_yaml::Span, field: &str) -> bool {
    if columns.iter().any(|c| c.name == column) {
        return true;
    }
    let names = columns.iter().map(|c| c.name.as_str());
    let hint = match crate::diagnostic::did_you_mean(column, names.clone()) {
        Some(close) => format!("did you mean `{close}`?"),
        None if columns.is_empty() => "the contract declares no valid column".to_owned(),
        None => format!("the contract declares {}", crate::diagnostic::one_of(names)),
    };
    d.report(DiagnosticCode::MissingReference, span, field, format!("column `{column}` is not in the contract"), Some(hint));
    false
}

pub(super) fn column_field(d: &mut Decoder<'_>, map: &MarkedMappingNode, path: &str, key: &str, contract: Option<&Contract>) -> Option<String> {
    let node = d.required(map, path, key, "order_id")?;
    let field = join(path, key);
    let scalar = d.scalar(node, &field, "a column name")?;
    if let Some(contract) = contract {
        check_column(d, &contract.columns, scalar.as_str(), scalar.span(), &field);
    }
    Some(scalar.as_str().to_owned())
}

pub(super) const RULES: &[(&str, &str)] = &[
    ("not_null", "not_null"),
    ("unique", "unique"),
    ("accepted_values", "accepted_values"),
    ("range", "range"),
    ("regex", "regex"),
    ("row_count", "row_count"),
    ("freshness", "freshness"),
    ("referential", "referential"),
    ("sql", "sql"),
];
