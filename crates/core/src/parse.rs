//! Parsers for `mesh.yaml`, `domain.yaml` and `product.yaml` that report every problem in a file
//! at once, each with its line, column, field path and a hint.

use std::collections::{BTreeMap, HashSet};

use marked_yaml::Node;
use marked_yaml::types::MarkedMappingNode;

use crate::column_type::ColumnType;
use crate::descriptor::*;
use crate::diagnostic::{Diagnostic, DiagnosticCode, did_you_mean, one_of};
use crate::event::EventKind;
use crate::id::{DomainName, NameError, ProductId, ProductName, check_identifier, check_name};
use crate::yaml::{Decoder, Positions, join};

/// Result of parsing one file: the value with the position of its fields, or every problem found.
pub type Parsed<T> = Result<Located<T>, Vec<Diagnostic>>;

/// A parsed value and where its fields sit in the file.
#[derive(Debug, Clone)]
pub struct Located<T> {
    /// The value.
    pub value: T,
    /// Positions of the fields, for diagnostics raised by later checks.
    pub positions: Positions,
}

fn finish<T>(decoder: Decoder<'_>, value: Option<T>) -> Parsed<T> {
    match value {
        Some(value) if decoder.diagnostics.is_empty() => Ok(Located { value, positions: decoder.positions }),
        _ => Err(decoder.diagnostics),
    }
}

fn name_error(err: NameError) -> (String, Option<String>) {
    match err {
        NameError::Invalid(name) => (
            format!("`{name}` is not a valid name"),
            Some(format!("use snake_case: a lowercase letter, then lowercase letters, digits or `_`, e.g. `{}`", snake_case(&name))),
        ),
        NameError::NotQualified(text) => {
            (format!("`{text}` is not a product address"), Some("write it as `domain.product`, e.g. `sales.orders`".into()))
        }
    }
}

/// A best-effort snake_case spelling of `name`, for hints.
fn snake_case(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 && !out.ends_with('_') {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    let out = out.trim_matches('_').to_owned();
    if out.starts_with(|c: char| c.is_ascii_lowercase()) { out } else { format!("p_{out}") }
}

/// Parses a duration like `90s`, `15m`, `24h`, `7d` or `2w`.
pub fn parse_duration(text: &str) -> Result<DurationSpec, (String, Option<String>)> {
    let bad = || (format!("invalid duration `{text}`"), Some("write a whole number and a unit `s`, `m`, `h`, `d` or `w`, e.g. `24h`".into()));
    let text = text.trim();
    let unit_at = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (number, unit) = text.split_at(unit_at);
    let number: u64 = number.parse().map_err(|_| bad())?;
    let factor = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 604_800,
        _ => return Err(bad()),
    };
    Ok(DurationSpec { seconds: number * factor })
}

fn parse_port(text: &str) -> Result<u16, (String, Option<String>)> {
    text.parse::<u16>()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| (format!("`{text}` is not a TCP port"), Some("use a number from 1 to 65535".into())))
}

/// `metadata:`, either a URL (`metadata: postgres://meshwork@db/mesh`) or a mapping with `url`
/// and `password_env`. The password never sits in the file: a URL that carries one is refused.
fn metadata_store(d: &mut Decoder<'_>, node: &Node) -> Option<MetadataStore> {
    let (url_node, password_env) = match node.as_mapping() {
        Some(_) => {
            let map = d.mapping(node, "metadata", &["url", "password_env"])?;
            let password_env = d.parsed(map, "metadata", "password_env", None, DiagnosticCode::InvalidValue, |name| {
                let valid = name.chars().next().is_some_and(|c| c.is_ascii_uppercase() || c == '_')
                    && name.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
                if valid { Ok(name.to_owned()) } else { Err((format!("`{name}` is not an environment variable name"), Some("use upper-case letters, digits and `_`, e.g. `MESHWORK_METADATA_PASSWORD`".into()))) }
            });
            (d.required(map, "metadata", "url", "postgres://meshwork@localhost:5432/meshwork")?, password_env)
        }
        None => (node, None),
    };
    let field = if node.as_mapping().is_some() { "metadata.url" } else { "metadata" };
    let scalar = d.scalar(url_node, field, "a URL")?;
    match metadata_url(scalar.as_str(), password_env) {
        Ok(store) => Some(store),
        Err((message, hint)) => {
            d.report(DiagnosticCode::InvalidValue, scalar.span(), field, message, Some(hint));
            None
        }
    }
}

/// The store a metadata URL names.
fn metadata_url(url: &str, password_env: Option<String>) -> Result<MetadataStore, (String, String)> {
    if let Some(path) = url.strip_prefix("sqlite:") {
        let path = path.strip_prefix("//").unwrap_or(path);
        let path = path.split('?').next().unwrap_or(path);
        if path.is_empty() {
            return Err(("`sqlite:` names no file".into(), format!("write `sqlite:{DEFAULT_CATALOG_PATH}` or omit `metadata`")));
        }
        return Ok(MetadataStore::Sqlite { path: path.to_owned() });
    }
    let Some(rest) = url.strip_prefix("postgres://").or_else(|| url.strip_prefix("postgresql://")) else {
        return Err((
            format!("unsupported metadata store `{url}`"),
            "use `sqlite:PATH` (the embedded default) or `postgres://USER@HOST:PORT/DATABASE`".into(),
        ));
    };
    let authority = rest.split(['/', '?']).next().unwrap_or(rest);
    if let Some((user_info, _)) = authority.rsplit_once('@')
        && user_info.contains(':')
    {
        // Say where the password goes without echoing the URL that holds it.
        return Err((
            "the metadata URL holds a password, which must not be written in `mesh.yaml`".into(),
            "remove it from the URL, put it in an environment variable and name that variable in `metadata.password_env`".into(),
        ));
    }
    if authority.rsplit('@').next().is_none_or(str::is_empty) || !rest.contains('/') {
        return Err((format!("`{url}` names no host or database"), "write `postgres://USER@HOST:PORT/DATABASE`".into()));
    }
    Ok(MetadataStore::Postgres { url: url.to_owned(), password_env })
}

/// `storage:`, either a URL (`storage: s3://bucket/prefix`) or a mapping: `data_dir` for a
/// local directory, or `url` with `endpoint`, `region` and `allow_http` for object storage.
/// Credentials never sit in the file: keys that would hold them are refused with where they go.
fn storage_location(d: &mut Decoder<'_>, node: &Node) -> Option<StorageLocation> {
    const PATH: &str = "storage";
    let Some(map) = node.as_mapping() else {
        let scalar = d.scalar(node, PATH, "a URL or a mapping")?;
        return match storage_url(scalar.as_str()) {
            Ok(location) => Some(location),
            Err((message, hint)) => {
                d.report(DiagnosticCode::InvalidValue, scalar.span(), PATH, message, Some(hint));
                None
            }
        };
    };
    for secret in ["access_key_id", "secret_access_key", "session_token", "password"] {
        if let Some(key) = map.keys().find(|k| k.as_str() == secret) {
            d.report(
                DiagnosticCode::InvalidValue,
                key.span(),
                &format!("{PATH}.{secret}"),
                "storage credentials must not be written in `mesh.yaml`".into(),
                Some("remove the key and set `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` in the environment of every `meshwork` process".into()),
            );
            return None;
        }
    }
    let map = d.mapping(node, PATH, &["data_dir", "url", "endpoint", "region", "allow_http"])?;
    let data_dir = d.text(map, PATH, "data_dir");
    let Some(url_node) = Decoder::get(map, "url") else {
        for key in ["endpoint", "region", "allow_http"] {
            if let Some(value) = Decoder::get(map, key) {
                d.report(
                    DiagnosticCode::InvalidValue,
                    value.span(),
                    &format!("{PATH}.{key}"),
                    format!("`{key}` applies to object storage only"),
                    Some("add `url: s3://BUCKET/PREFIX`, or remove the key for a local `data_dir`".into()),
                );
            }
        }
        return Some(StorageLocation::Local { data_dir: data_dir.unwrap_or_else(|| DEFAULT_DATA_DIR.to_owned()) });
    };
    if let Some(value) = Decoder::get(map, "data_dir") {
        d.report(
            DiagnosticCode::InvalidValue,
            value.span(),
            "storage.data_dir",
            "`data_dir` and `url` both name where tables live".into(),
            Some("keep `url` for object storage or `data_dir` for a local directory".into()),
        );
        return None;
    }
    let field = "storage.url";
    let scalar = d.scalar(url_node, field, "a URL")?;
    let location = match storage_url(scalar.as_str()) {
        Ok(StorageLocation::S3(s3)) => s3,
        Ok(StorageLocation::Local { .. }) => {
            d.report(
                DiagnosticCode::InvalidValue,
                scalar.span(),
                field,
                format!("`{}` is not an object storage URL", scalar.as_str()),
                Some("write `url: s3://BUCKET/PREFIX`, or `data_dir: PATH` for a local directory".into()),
            );
            return None;
        }
        Err((message, hint)) => {
            d.report(DiagnosticCode::InvalidValue, scalar.span(), field, message, Some(hint));
            return None;
        }
    };
    let endpoint = d.parsed(map, PATH, "endpoint", None, DiagnosticCode::InvalidValue, |t| {
        let Some(rest) = t.strip_prefix("https://").or_else(|| t.strip_prefix("http://")) else {
            return Err((format!("`{t}` is not an http(s) URL"), Some("write the server's address, e.g. `https://s3.example.com` or `http://127.0.0.1:9000`".into())));
        };
        if rest.split('/').next().is_some_and(|authority| authority.contains('@')) {
            return Err(("the endpoint holds credentials, which must not be written in `mesh.yaml`".into(), Some("write only the address; set `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` in the environment".into())));
        }
        Ok(t.trim_end_matches('/').to_owned())
    });
    let region = d.text(map, PATH, "region");
    let allow_http = d.boolean(map, PATH, "allow_http").unwrap_or(false);
    Some(StorageLocation::S3(S3Location { endpoint, region, allow_http, ..location }))
}

/// The location a storage URL names: `s3://bucket/prefix`, or a plain path (a local directory).
fn storage_url(url: &str) -> Result<StorageLocation, (String, String)> {
    let Some((scheme, rest)) = url.split_once("://") else {
        if url.is_empty() {
            return Err(("`storage` names no location".into(), format!("write `s3://BUCKET/PREFIX` or a directory, e.g. `{DEFAULT_DATA_DIR}`")));
        }
        return Ok(StorageLocation::Local { data_dir: url.to_owned() });
    };
    if scheme == "file" {
        return Ok(StorageLocation::Local { data_dir: rest.to_owned() });
    }
    if scheme != "s3" && scheme != "s3a" {
        return Err((
            format!("unsupported storage `{scheme}://`"),
            "use `s3://BUCKET/PREFIX` (any S3-compatible server) or a local directory".into(),
        ));
    }
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.contains('@') {
        return Err((
            "the storage URL holds credentials, which must not be written in `mesh.yaml`".into(),
            "write `s3://BUCKET/PREFIX` and set `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` in the environment".into(),
        ));
    }
    let valid_bucket = (3..=63).contains(&bucket.len())
        && bucket.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && bucket.starts_with(|c: char| c.is_ascii_alphanumeric())
        && bucket.ends_with(|c: char| c.is_ascii_alphanumeric());
    if !valid_bucket {
        return Err((format!("`{bucket}` is not a bucket name"), "bucket names are 3 to 63 lower-case letters, digits, `-` and `.`, e.g. `s3://analytics-mesh/prod`".into()));
    }
    let prefix = prefix.trim_matches('/');
    if prefix.contains(['?', '#']) || (!prefix.is_empty() && prefix.split('/').any(|part| part.is_empty() || part == "." || part == "..")) {
        return Err((format!("`{prefix}` is not a key prefix"), "write plain path segments, e.g. `s3://analytics-mesh/prod/tables`".into()));
    }
    Ok(StorageLocation::S3(S3Location { bucket: bucket.to_owned(), prefix: prefix.to_owned(), endpoint: None, region: None, allow_http: false }))
}

/// Parses `mesh.yaml`.
pub fn parse_mesh_config(file: &str, text: &str) -> Parsed<MeshConfig> {
    let mut d = Decoder::new(file);
    let value = d.load(text).and_then(|root| mesh_config(&mut d, &root));
    finish(d, value)
}

fn mesh_config(d: &mut Decoder<'_>, root: &Node) -> Option<MeshConfig> {
    let map = d.mapping(root, "", &["name", "description", "storage", "metadata", "server", "auth", "scheduler", "notifications", "policies"])?;
    let name = d.required_text(map, "", "name", "my-mesh");
    let description = d.text(map, "", "description");
    let storage = Decoder::get(map, "storage").and_then(|node| storage_location(d, node)).unwrap_or_default();
    let metadata = Decoder::get(map, "metadata").and_then(|node| metadata_store(d, node)).unwrap_or_default();
    let mut server = ServerConfig::default();
    if let Some(node) = Decoder::get(map, "server")
        && let Some(s) = d.mapping(
            node,
            "server",
            &["bind", "http_port", "flight_sql_port", "postgres_port", "query_memory", "query_timeout", "max_queries_per_principal"],
        )
    {
        server.bind = d.text(s, "server", "bind").unwrap_or(server.bind);
        let code = DiagnosticCode::InvalidValue;
        server.http_port = d.parsed(s, "server", "http_port", None, code, parse_port).unwrap_or(server.http_port);
        server.flight_sql_port = d.parsed(s, "server", "flight_sql_port", None, code, parse_port).unwrap_or(server.flight_sql_port);
        server.postgres_port = d.parsed(s, "server", "postgres_port", None, code, parse_port).unwrap_or(server.postgres_port);
        server.query_memory_bytes = d.parsed(s, "server", "query_memory", None, code, parse_bytes).unwrap_or(server.query_memory_bytes);
        server.query_timeout = d.parsed(s, "server", "query_timeout", None, code, parse_duration).unwrap_or(server.query_timeout);
        server.max_queries_per_principal = d
            .parsed(s, "server", "max_queries_per_principal", None, code, |t| {
                t.parse::<u32>().ok().filter(|n| *n > 0).ok_or_else(|| (format!("`{t}` is not a positive number"), Some("e.g. `8`".into())))
            })
            .unwrap_or(server.max_queries_per_principal);
    }
    let mut auth = AuthConfig::default();
    if let Some(node) = Decoder::get(map, "auth")
        && let Some(a) = d.mapping(node, "auth", &["oidc"])
        && let Some(node) = Decoder::get(a, "oidc")
    {
        auth.oidc = oidc_config(d, node);
    }
    let scheduler = Decoder::get(map, "scheduler").and_then(|node| scheduler_config(d, node)).unwrap_or_default();
    let notifications = Decoder::get(map, "notifications").and_then(|node| notifications(d, node)).unwrap_or_default();
    let policies = policy_states(d, map);
    Some(MeshConfig { name: name?, description, storage, metadata, server, auth, scheduler, notifications, policies })
}

fn scheduler_config(d: &mut Decoder<'_>, node: &Node) -> Option<SchedulerConfig> {
    const PATH: &str = "scheduler";
    let s = d.mapping(node, PATH, &["enabled", "slo_interval", "retries", "retry_backoff"])?;
    let mut config = SchedulerConfig::default();
    let code = DiagnosticCode::InvalidValue;
    config.enabled = d.boolean(s, PATH, "enabled").unwrap_or(config.enabled);
    config.slo_interval = d.parsed(s, PATH, "slo_interval", None, code, parse_duration).unwrap_or(config.slo_interval);
    config.retries = d
        .parsed(s, PATH, "retries", None, code, |t| t.parse::<u32>().map_err(|_| (format!("`{t}` is not a number of retries"), Some("e.g. `3`; `0` turns retries off".into()))))
        .unwrap_or(config.retries);
    config.retry_backoff = d.parsed(s, PATH, "retry_backoff", None, code, parse_duration).unwrap_or(config.retry_backoff);
    Some(config)
}

fn notifications(d: &mut Decoder<'_>, node: &Node) -> Option<Notifications> {
    let n = d.mapping(node, "notifications", &["webhooks"])?;
    let mut webhooks: Vec<Webhook> = Vec::new();
    for (field, item) in d.list(n, "notifications", "webhooks") {
        let Some(w) = d.mapping(item, &field, &["name", "url", "secret_env", "events"]) else { continue };
        let name = d.required_text(w, &field, "name", "ops-alerts");
        let url = d.parsed(w, &field, "url", Some("https://hooks.example.com/meshwork"), DiagnosticCode::InvalidValue, |t| {
            if t.starts_with("http://") || t.starts_with("https://") {
                Ok(t.to_owned())
            } else {
                Err((format!("`{t}` is not an http(s) URL"), Some("write the full address, e.g. `https://hooks.example.com/meshwork`".into())))
            }
        });
        let secret_env = d.required_text(w, &field, "secret_env", "MESHWORK_WEBHOOK_SECRET");
        let mut events = Vec::new();
        for (event_field, event) in d.list(w, &field, "events") {
            let Some(scalar) = d.scalar(event, &event_field, "an event kind") else { continue };
            let kind = scalar.as_str();
            if let Ok(parsed) = kind.parse::<EventKind>() {
                events.push(parsed);
            } else {
                let hint = match did_you_mean(kind, EventKind::keywords()) {
                    Some(close) => format!("did you mean `{close}`?"),
                    None => format!("use one of {}", one_of(EventKind::keywords())),
                };
                d.report(DiagnosticCode::InvalidValue, scalar.span(), &event_field, format!("unknown event kind `{kind}`"), Some(hint));
            }
        }
        if let Some(name) = &name
            && webhooks.iter().any(|other| &other.name == name)
        {
            d.report(DiagnosticCode::InvalidValue, w.span(), &field, format!("webhook `{name}` is declared twice"), Some("give each webhook its own name".into()));
            continue;
        }
        if let (Some(name), Some(url), Some(secret_env)) = (name, url, secret_env) {
            webhooks.push(Webhook { name, url, secret_env, events });
        }
    }
    Some(Notifications { webhooks })
}

fn oidc_config(d: &mut Decoder<'_>, node: &Node) -> Option<OidcConfig> {
    const PATH: &str = "auth.oidc";
    let o = d.mapping(node, PATH, &["issuer", "audience", "jwks", "algorithms", "principal_claim", "groups_claim", "attributes"])?;
    let issuer = d.required_text(o, PATH, "issuer", "https://login.example.com/");
    let audiences = match Decoder::get(o, "audience") {
        Some(node) if node.as_sequence().is_some() => d.texts(o, PATH, "audience"),
        Some(_) => d.text(o, PATH, "audience").into_iter().collect(),
        None => {
            d.required(o, PATH, "audience", "meshwork");
            Vec::new()
        }
    };
    let jwks = d.required_text(o, PATH, "jwks", "https://login.example.com/.well-known/jwks.json");
    let mut algorithms = Vec::new();
    for (field, item) in d.list(o, PATH, "algorithms") {
        let Some(scalar) = d.scalar(item, &field, "an algorithm name") else { continue };
        let name = scalar.as_str();
        if JWT_ALGORITHMS.contains(&name) {
            algorithms.push(name.to_owned());
        } else {
            let hint = match did_you_mean(name, JWT_ALGORITHMS.iter().copied()) {
                _ if name.starts_with("HS") => "symmetric `HS*` keys cannot come from a JWKS: use an asymmetric algorithm such as `RS256`".to_owned(),
                Some(close) => format!("did you mean `{close}`?"),
                None => format!("use one of {}", one_of(JWT_ALGORITHMS.iter().copied())),
            };
            d.report(DiagnosticCode::InvalidValue, scalar.span(), &field, format!("unsupported JWT algorithm `{name}`"), Some(hint));
        }
    }
    if algorithms.is_empty() {
        algorithms = DEFAULT_JWT_ALGORITHMS.iter().map(|a| (*a).to_owned()).collect();
    }
    let principal_claim = d.text(o, PATH, "principal_claim").unwrap_or_else(|| "sub".into());
    let groups_claim = d.text(o, PATH, "groups_claim").unwrap_or_else(|| "groups".into());
    let mut attributes = BTreeMap::new();
    if let Some(node) = Decoder::get(o, "attributes") {
        match node.as_mapping() {
            Some(m) => {
                for (key, value) in m.iter() {
                    let field = format!("{PATH}.attributes.{}", key.as_str());
                    if let Some(claim) = d.scalar(value, &field, "a claim name") {
                        attributes.insert(key.as_str().to_owned(), claim.as_str().to_owned());
                    }
                }
            }
            None => d.report(
                DiagnosticCode::InvalidValue,
                node.span(),
                "auth.oidc.attributes",
                "`auth.oidc.attributes` must map principal attributes to claims".into(),
                Some("e.g. `attributes: { region: region }`".into()),
            ),
        }
    }
    Some(OidcConfig { issuer: issuer?, audiences, jwks: jwks?, algorithms, principal_claim, groups_claim, attributes })
}

/// Parses a size like `512MiB`, `2GiB`, `64MB` or a number of bytes.
pub fn parse_bytes(text: &str) -> Result<u64, (String, Option<String>)> {
    let bad = || (format!("invalid size `{text}`"), Some("write a number and a unit `KiB`, `MiB`, `GiB` (or `KB`, `MB`, `GB`), e.g. `512MiB`".into()));
    let text = text.trim();
    let unit_at = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(unit_at);
    let number: u64 = number.parse().map_err(|_| bad())?;
    let factor: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        _ => return Err(bad()),
    };
    number.checked_mul(factor).filter(|n| *n > 0).ok_or_else(bad)
}

/// A `policies:` mapping of policy name to `off`, `warn` or `enforce`. Names are checked against
/// the policies that exist by the repository loader, which knows them.
fn policy_states(d: &mut Decoder<'_>, map: &MarkedMappingNode) -> BTreeMap<String, PolicyState> {
    let mut policies = BTreeMap::new();
    if let Some(node) = Decoder::get(map, "policies") {
        if let Some(p) = node.as_mapping() {
            let states = [("off", PolicyState::Off), ("warn", PolicyState::Warn), ("enforce", PolicyState::Enforce)];
            for key in p.keys() {
                if let Some(state) = d.choice(p, "policies", key.as_str(), None, &states) {
                    policies.insert(key.as_str().to_owned(), state);
                }
            }
        } else {
            d.mapping(node, "policies", &[]);
        }
    }
    policies
}

/// Parses `domain.yaml`.
pub fn parse_domain(file: &str, text: &str) -> Parsed<DomainDescriptor> {
    let mut d = Decoder::new(file);
    let value = d.load(text).and_then(|root| domain(&mut d, &root));
    finish(d, value)
}

fn domain(d: &mut Decoder<'_>, root: &Node) -> Option<DomainDescriptor> {
    let map = d.mapping(root, "", &["name", "title", "description", "owners", "members", "policies", "principal"])?;
    let name = d.parsed(map, "", "name", Some("sales"), DiagnosticCode::InvalidName, |t| DomainName::new(t).map_err(name_error));
    let title = d.text(map, "", "title");
    let description = d.text(map, "", "description");
    let owners = principal_refs(d, map, "", "owners");
    let members = principal_refs(d, map, "", "members");
    let policies = policy_states(d, map);
    let principal = match Decoder::get(map, "principal") {
        Some(node) => match d.mapping(node, "principal", &["groups", "attributes"]) {
            Some(p) => {
                let groups = crate::principal::group_names(d, p, "principal");
                // A domain must not make its builds administrators by naming their group.
                if groups.contains(crate::principal::ADMIN_GROUP) {
                    let (line, column) = d.positions.locate("principal.groups").unwrap_or((0, 0));
                    d.diagnostics.push(
                        crate::diagnostic::Diagnostic::new(
                            DiagnosticCode::InvalidValue,
                            d.file(),
                            format!("a domain cannot be in the `{}` group", crate::principal::ADMIN_GROUP),
                        )
                        .field("principal.groups")
                        .at(line, column)
                        .hint("administrators are people declared with `admin: true` in `principals.yaml`; remove the group"),
                    );
                }
                crate::descriptor::DomainPrincipal { groups, attributes: crate::principal::attribute_map(d, p, "principal") }
            }
            None => Default::default(),
        },
        None => Default::default(),
    };
    Some(DomainDescriptor { name: name?, title, description, owners, members, policies, principal })
}

/// A list of principal references: `user:NAME`, `group:NAME`, `domain:NAME`, or `*` (everyone).
fn principal_refs(d: &mut Decoder<'_>, map: &MarkedMappingNode, path: &str, key: &str) -> Vec<String> {
    let mut refs = Vec::new();
    for (field, node) in d.list(map, path, key) {
        let Some(scalar) = d.scalar(node, &field, "a principal such as `group:analysts`") else { continue };
        let text = scalar.as_str();
        let valid = text == "*"
            || text
                .split_once(':')
                .is_some_and(|(kind, name)| matches!(kind, "user" | "group" | "domain" | "service") && !name.is_empty());
        if valid {
            refs.push(text.to_owned());
        } else {
            d.report(
                DiagnosticCode::InvalidValue,
                scalar.span(),
                &field,
                format!("`{text}` is not a principal reference"),
                Some("write `user:NAME`, `service:NAME`, `group:NAME`, `domain:NAME` or `*`".into()),
            );
        }
    }
    refs
}

/// Parses `product.yaml`. A transform given as a `.sql` file comes back with empty `sql`; the
/// repository loader reads the file.
pub fn parse_product(file: &str, text: &str) -> Parsed<ProductDescriptor> {
    let mut d = Decoder::new(file);
    let value = d.load(text).and_then(|root| product(&mut d, &root));
    finish(d, value)
}

const PRODUCT_FIELDS: &[&str] = &[
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
];

fn product(d: &mut Decoder<'_>, root: &Node) -> Option<ProductDescriptor> {
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
        let ok = t.len() == 10 && t.as_bytes()[4] == b'-' && t.as_bytes()[7] == b'-' && t.chars().filter(char::is_ascii_digit).count() == 8;
        if ok { Ok(t.to_owned()) } else { Err((format!("`{t}` is not a date"), Some("write it as YYYY-MM-DD".into()))) }
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
    })
}

fn inputs(d: &mut Decoder<'_>, map: &MarkedMappingNode) -> Vec<InputPort> {
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
            (None, Some(node)) => file_source(d, node, &join(&field, "source")),
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

fn file_source(d: &mut Decoder<'_>, node: &Node, field: &str) -> Option<InputSource> {
    let kinds = [("csv", "csv"), ("ndjson", "ndjson"), ("parquet", "parquet")];
    let map = d.mapping(node, field, &["kind", "path", "header", "delimiter", "null_values"])?;
    let kind = d.choice(map, field, "kind", Some("csv"), &kinds)?;
    let path = d.required_text(map, field, "path", "data/file.csv");
    if kind != "csv" {
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

fn transform(d: &mut Decoder<'_>, map: &MarkedMappingNode) -> Option<Transform> {
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

const CLASSIFICATIONS: &[(&str, Classification)] = &[
    ("public", Classification::Public),
    ("internal", Classification::Internal),
    ("confidential", Classification::Confidential),
    ("pii", Classification::Pii),
];

fn contract(d: &mut Decoder<'_>, node: &Node) -> Option<Contract> {
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
fn check_column(d: &mut Decoder<'_>, columns: &[Column], column: &str, span: &marked_yaml::Span, field: &str) -> bool {
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

fn column_field(d: &mut Decoder<'_>, map: &MarkedMappingNode, path: &str, key: &str, contract: Option<&Contract>) -> Option<String> {
    let node = d.required(map, path, key, "order_id")?;
    let field = join(path, key);
    let scalar = d.scalar(node, &field, "a column name")?;
    if let Some(contract) = contract {
        check_column(d, &contract.columns, scalar.as_str(), scalar.span(), &field);
    }
    Some(scalar.as_str().to_owned())
}

const RULES: &[(&str, &str)] = &[
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

fn quality(d: &mut Decoder<'_>, map: &MarkedMappingNode, contract: Option<&Contract>) -> Vec<QualityRule> {
    let mut rules = Vec::new();
    for (field, node) in d.list(map, "", "quality") {
        let Some(kind) = (match node.as_mapping() {
            Some(m) => d.choice(m, &field, "rule", Some("not_null"), RULES),
            None => d.mapping(node, &field, &["rule"]).and(None),
        }) else {
            continue;
        };
        let allowed: &[&str] = match kind {
            "not_null" => &["column"],
            "unique" => &["column", "columns"],
            "accepted_values" => &["column", "values"],
            "range" => &["column", "min", "max", "min_inclusive", "max_inclusive"],
            "regex" => &["column", "pattern"],
            "row_count" => &["min", "max", "max_change_pct"],
            "freshness" => &["column", "max_age"],
            "referential" => &["column", "references", "references_column"],
            _ => &["assert"],
        };
        let all: Vec<&str> = ["rule", "name", "severity", "description"].iter().chain(allowed).copied().collect();
        let Some(r) = d.mapping(node, &field, &all) else { continue };
        let severity = d.choice(r, &field, "severity", None, &[("error", Severity::Error), ("warn", Severity::Warn)]).unwrap_or(Severity::Error);
        let check = match kind {
            "not_null" => column_field(d, r, &field, "column", contract).map(|column| QualityCheck::NotNull { column }),
            "unique" => {
                let columns = if Decoder::get(r, "columns").is_some() {
                    let cols = d.texts(r, &field, "columns");
                    if let (Some(contract), Some(node)) = (contract, Decoder::get(r, "columns")) {
                        for col in &cols {
                            check_column(d, &contract.columns, col, node.span(), &join(&field, "columns"));
                        }
                    }
                    cols
                } else {
                    column_field(d, r, &field, "column", contract).into_iter().collect()
                };
                (!columns.is_empty()).then_some(QualityCheck::Unique { columns })
            }
            "accepted_values" => {
                let column = column_field(d, r, &field, "column", contract);
                d.required(r, &field, "values", "[a, b]");
                let values = d.texts(r, &field, "values");
                column.map(|column| QualityCheck::AcceptedValues { column, values })
            }
            "range" => {
                let column = column_field(d, r, &field, "column", contract);
                let min = d.text(r, &field, "min");
                let max = d.text(r, &field, "max");
                if min.is_none() && max.is_none() {
                    d.report(DiagnosticCode::MissingField, r.span(), &field, "a range rule needs `min`, `max` or both".into(), Some("e.g. `min: 0`".into()));
                }
                let min_inclusive = d.boolean(r, &field, "min_inclusive").unwrap_or(true);
                let max_inclusive = d.boolean(r, &field, "max_inclusive").unwrap_or(true);
                column.map(|column| QualityCheck::Range { column, min, max, min_inclusive, max_inclusive })
            }
            "regex" => {
                let column = column_field(d, r, &field, "column", contract);
                let pattern = d.required_text(r, &field, "pattern", "'^[A-Z]{2}$'");
                column.zip(pattern).map(|(column, pattern)| QualityCheck::Regex { column, pattern })
            }
            "row_count" => {
                let count = |t: &str| t.parse::<u64>().map_err(|_| (format!("`{t}` is not a row count"), Some("use a whole number".into())));
                let min = d.parsed(r, &field, "min", None, DiagnosticCode::InvalidValue, count);
                let max = d.parsed(r, &field, "max", None, DiagnosticCode::InvalidValue, count);
                let max_change_pct = d.parsed(r, &field, "max_change_pct", None, DiagnosticCode::InvalidValue, |t| {
                    t.trim_end_matches('%').parse::<f64>().map_err(|_| (format!("`{t}` is not a percentage"), Some("e.g. `20`".into())))
                });
                Some(QualityCheck::RowCount { min, max, max_change_pct })
            }
            "freshness" => {
                let column = column_field(d, r, &field, "column", contract);
                let max_age = d.parsed(r, &field, "max_age", Some("24h"), DiagnosticCode::InvalidValue, parse_duration);
                column.zip(max_age).map(|(column, max_age)| QualityCheck::Freshness { column, max_age })
            }
            "referential" => {
                let column = column_field(d, r, &field, "column", contract);
                let references = d.parsed(r, &field, "references", Some("sales.customers"), DiagnosticCode::InvalidName, |t| {
                    t.parse::<ProductId>().map_err(name_error)
                });
                let references_column = d.required_text(r, &field, "references_column", "customer_id");
                match (column, references, references_column) {
                    (Some(column), Some(references), Some(references_column)) => {
                        Some(QualityCheck::Referential { column, references, references_column })
                    }
                    _ => None,
                }
            }
            _ => d.required_text(r, &field, "assert", "SELECT count(*) = 0 FROM this WHERE …").map(|assert| QualityCheck::Sql { assert }),
        };
        let Some(check) = check else { continue };
        let name = d.text(r, &field, "name").unwrap_or_else(|| match &check {
            QualityCheck::NotNull { column }
            | QualityCheck::AcceptedValues { column, .. }
            | QualityCheck::Range { column, .. }
            | QualityCheck::Regex { column, .. }
            | QualityCheck::Freshness { column, .. }
            | QualityCheck::Referential { column, .. } => format!("{kind}_{column}"),
            QualityCheck::Unique { columns } => format!("unique_{}", columns.join("_")),
            _ => format!("{kind}_{}", rules.len() + 1),
        });
        rules.push(QualityRule { name, severity, check });
    }
    rules
}

fn slo(d: &mut Decoder<'_>, node: &Node, contract: Option<&Contract>) -> Option<Slo> {
    let map = d.mapping(node, "slo", &["freshness", "completeness", "availability", "target", "window"])?;
    let code = DiagnosticCode::InvalidValue;
    let (freshness, freshness_column) = match Decoder::get(map, "freshness") {
        Some(node) if node.as_mapping().is_some() => {
            let f = d.mapping(node, "slo.freshness", &["max_age", "column"])?;
            let max_age = d.parsed(f, "slo.freshness", "max_age", Some("24h"), code, parse_duration);
            let column = Decoder::get(f, "column").and_then(|_| column_field(d, f, "slo.freshness", "column", contract));
            (max_age, column)
        }
        _ => (d.parsed(map, "slo", "freshness", None, code, parse_duration), None),
    };
    let completeness = Decoder::get(map, "completeness").and_then(|node| {
        let c = d.mapping(node, "slo.completeness", &["column", "upstream", "min_ratio"])?;
        let measure = match (Decoder::get(c, "column"), Decoder::get(c, "upstream")) {
            (Some(_), None) => column_field(d, c, "slo.completeness", "column", contract).map(|column| CompletenessMeasure::NonNull { column }),
            (None, Some(_)) => d
                .parsed(c, "slo.completeness", "upstream", None, DiagnosticCode::InvalidName, |t| t.parse::<ProductId>().map_err(name_error))
                .map(|upstream| CompletenessMeasure::UpstreamRows { upstream }),
            _ => {
                d.report(
                    DiagnosticCode::MissingField,
                    c.span(),
                    "slo.completeness",
                    "completeness measures either a column's non-null ratio or the row count against an upstream product".into(),
                    Some("write exactly one of `column: email` or `upstream: sales.orders`".into()),
                );
                None
            }
        };
        let min_ratio = d.parsed(c, "slo.completeness", "min_ratio", Some("0.99"), code, |t| {
            t.parse::<f64>()
                .ok()
                .filter(|r| (0.0..=1.0).contains(r))
                .ok_or_else(|| (format!("`{t}` is not a ratio"), Some("use a number from 0 to 1, e.g. `0.99`".into())))
        });
        Some(Completeness { measure: measure?, min_ratio: min_ratio? })
    });
    let percent = |t: &str| {
        t.trim_end_matches('%')
            .parse::<f64>()
            .ok()
            .filter(|p| *p > 0.0 && *p <= 100.0)
            .ok_or_else(|| (format!("`{t}` is not a percentage"), Some("a number above 0 and at most 100, e.g. `99.9`".into())))
    };
    let availability = d.parsed(map, "slo", "availability", None, code, percent);
    let target = d.parsed(map, "slo", "target", None, code, percent).unwrap_or(DEFAULT_SLO_TARGET);
    let window = d.parsed(map, "slo", "window", None, code, parse_duration).unwrap_or(DEFAULT_SLO_WINDOW);
    Some(Slo { freshness, freshness_column, completeness, availability, target, window })
}

fn refresh(d: &mut Decoder<'_>, node: &Node) -> Option<Refresh> {
    let map = d.mapping(node, "refresh", &["schedule", "on_upstream_change"])?;
    let schedule = d.parsed(map, "refresh", "schedule", None, DiagnosticCode::InvalidValue, |t| {
        let fields = t.split_whitespace().count();
        let hint = || Some("write 5 fields (minute hour day month weekday), e.g. `0 6 * * *`, or 6 with seconds first".into());
        if fields != 5 && fields != 6 {
            return Err((format!("`{t}` is not a cron expression"), hint()));
        }
        match t.parse::<croner::Cron>() {
            Ok(_) => Ok(t.to_owned()),
            Err(e) => Err((format!("`{t}` is not a cron expression: {e}"), hint())),
        }
    });
    let on_upstream_change = d.boolean(map, "refresh", "on_upstream_change").unwrap_or(false);
    Some(Refresh { schedule, on_upstream_change })
}

fn access(d: &mut Decoder<'_>, node: &Node, contract: Option<&Contract>) -> Option<Access> {
    let map = d.mapping(node, "access", &["readers", "row_filter", "masks", "unmasked_for"])?;
    let readers = principal_refs(d, map, "access", "readers");
    let row_filter = d.text(map, "access", "row_filter");
    let unmasked_for = principal_refs(d, map, "access", "unmasked_for");
    let mut masks = BTreeMap::new();
    if let Some(node) = Decoder::get(map, "masks") {
        match node.as_mapping() {
            Some(m) => {
                for (key, value) in m.iter() {
                    let field = join("access.masks", key.as_str());
                    if let Some(contract) = contract {
                        check_column(d, &contract.columns, key.as_str(), key.span(), &field);
                    }
                    if let Some(mask) = mask(d, value, &field) {
                        let column = contract.and_then(|c| c.column(key.as_str()));
                        if let Some(column) = column
                            && matches!(mask, Mask::Redact | Mask::Partial { .. })
                            && column.data_type != ColumnType::String
                        {
                            d.report(
                                DiagnosticCode::InvalidValue,
                                key.span(),
                                &field,
                                format!("mask `{}` needs a string column, but `{}` is {}", mask.kind(), key.as_str(), column.data_type),
                                Some("use `hash` or `null` for columns of other types".into()),
                            );
                        }
                        masks.insert(key.as_str().to_owned(), mask);
                    }
                }
            }
            None => {
                d.mapping(node, "access.masks", &[]);
            }
        }
    }
    Some(Access { readers, row_filter, masks, unmasked_for })
}

const MASK_KINDS: &[(&str, &str)] = &[("hash", "hash"), ("redact", "redact"), ("null", "null"), ("partial", "partial"), ("sql", "sql")];

fn mask(d: &mut Decoder<'_>, node: &Node, field: &str) -> Option<Mask> {
    let kind = if let Some(scalar) = node.as_scalar() {
        let text = scalar.as_str();
        match MASK_KINDS.iter().find(|(k, _)| *k == text) {
            Some((k, _)) if *k != "sql" => *k,
            _ => {
                d.report(
                    DiagnosticCode::InvalidValue,
                    scalar.span(),
                    field,
                    format!("unknown mask `{text}`, expected one of `hash`, `redact`, `null` or `partial`"),
                    Some("for a SQL expression write `{ kind: sql, expr: \"…\" }`".into()),
                );
                return None;
            }
        }
    } else {
        let m = d.mapping(node, field, &["kind", "keep_first", "keep_last", "expr"])?;
        let kind = d.choice(m, field, "kind", Some("partial"), MASK_KINDS)?;
        let count = |t: &str| t.parse::<u32>().map_err(|_| (format!("`{t}` is not a character count"), None));
        if kind == "partial" {
            let keep_first = d.parsed(m, field, "keep_first", None, DiagnosticCode::InvalidValue, count).unwrap_or(0);
            let keep_last = d.parsed(m, field, "keep_last", None, DiagnosticCode::InvalidValue, count).unwrap_or(4);
            return Some(Mask::Partial { keep_first, keep_last });
        }
        if kind == "sql" {
            return d.required_text(m, field, "expr", "'***'").map(|expr| Mask::Sql { expr });
        }
        kind
    };
    Some(match kind {
        "hash" => Mask::Hash,
        "redact" => Mask::Redact,
        "null" => Mask::Null,
        _ => Mask::Partial { keep_first: 0, keep_last: 4 },
    })
}

fn output_ports(d: &mut Decoder<'_>, node: &Node) -> Option<OutputPorts> {
    let map = d.mapping(node, "output_ports", &["sql", "flight_sql", "postgres", "rest", "file_export"])?;
    let mut ports = OutputPorts::default();
    for (key, slot) in [
        ("sql", &mut ports.sql),
        ("flight_sql", &mut ports.flight_sql),
        ("postgres", &mut ports.postgres),
        ("rest", &mut ports.rest),
        ("file_export", &mut ports.file_export),
    ] {
        if let Some(value) = d.boolean(map, "output_ports", key) {
            *slot = value;
        }
    }
    Some(ports)
}
