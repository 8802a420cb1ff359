//! `mesh.yaml`: storage, metadata store, servers, authentication, scheduler, notifications and
//! policy states (`openlineage:` has its own file).

// Imports are shared by every section of the parser: see `mod.rs`.
use super::*;

/// `metadata:`, either a URL (`metadata: postgres://meshwork@db/mesh`) or a mapping with `url`
/// and `password_env`. The password never sits in the file: a URL that carries one is refused.
pub(super) fn metadata_store(d: &mut Decoder<'_>, node: &Node) -> Option<MetadataStore> {
    let (url_node, password_env) = match node.as_mapping() {
        Some(_) => {
            let map = d.mapping(node, "metadata", &["url", "password_env"])?;
            let password_env = d.parsed(map, "metadata", "password_env", None, DiagnosticCode::InvalidValue, |t| env_name(t, "MESHWORK_METADATA_PASSWORD"));
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
pub(super) fn metadata_url(url: &str, password_env: Option<String>) -> Result<MetadataStore, (String, String)> {
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
    if holds_password(rest) {
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
pub(super) fn storage_location(d: &mut Decoder<'_>, node: &Node) -> Option<StorageLocation> {
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
    // Keys that would hold credentials are refused by name (never echoing their value); the
    // rest of the block is still checked, so every problem is reported at once.
    const SECRETS: [&str; 4] = ["access_key_id", "secret_access_key", "session_token", "password"];
    let mut holds_secret = false;
    for secret in SECRETS {
        if let Some(key) = map.keys().find(|k| k.as_str() == secret) {
            d.report(
                DiagnosticCode::InvalidValue,
                key.span(),
                &format!("{PATH}.{secret}"),
                "storage credentials must not be written in `mesh.yaml`".into(),
                Some("remove the key and set `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` in the environment of every `meshwork` process".into()),
            );
            holds_secret = true;
        }
    }
    let map = d.mapping(node, PATH, &["data_dir", "url", "endpoint", "region", "allow_http", SECRETS[0], SECRETS[1], SECRETS[2], SECRETS[3]])?;
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
        return (!holds_secret).then(|| StorageLocation::Local { data_dir: data_dir.unwrap_or_else(|| DEFAULT_DATA_DIR.to_owned()) });
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
        if rest.contains('?') {
            return Err(("the endpoint has a query string, which would put settings or credentials in `mesh.yaml`".into(), Some("write only the server's address".into())));
        }
        if rest.split('/').next().is_some_and(|authority| authority.contains('@')) {
            return Err(("the endpoint holds credentials, which must not be written in `mesh.yaml`".into(), Some("write only the address; set `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` in the environment".into())));
        }
        Ok(t.trim_end_matches('/').to_owned())
    });
    let region = d.text(map, PATH, "region");
    let allow_http = d.boolean(map, PATH, "allow_http");
    if holds_secret {
        return None;
    }
    Some(StorageLocation::S3(S3Location { endpoint, region, allow_http, ..location }))
}

/// The location a storage URL names: `s3://bucket/prefix`, or a plain path (a local directory).
pub(super) fn storage_url(url: &str) -> Result<StorageLocation, (String, String)> {
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
    // Plain segments only: they are the same in a URL and in an object key, so every reader and
    // writer (delta-rs by URL, Meshwork by key) names the same objects.
    let plain = |part: &str| !part.is_empty() && part != "." && part != ".." && part.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !prefix.is_empty() && !prefix.split('/').all(plain) {
        return Err((format!("`{prefix}` is not a key prefix"), "use segments of letters, digits, `.`, `_` and `-`, e.g. `s3://analytics-mesh/prod/tables`".into()));
    }
    Ok(StorageLocation::S3(S3Location { bucket: bucket.to_owned(), prefix: prefix.to_owned(), endpoint: None, region: None, allow_http: None }))
}

/// Parses `mesh.yaml`.
pub fn parse_mesh_config(file: &str, text: &str) -> Parsed<MeshConfig> {
    let mut d = Decoder::new(file);
    let value = d.load(text).and_then(|root| mesh_config(&mut d, &root));
    finish(d, value)
}

pub(super) fn mesh_config(d: &mut Decoder<'_>, root: &Node) -> Option<MeshConfig> {
    let map = d.mapping(root, "", &["name", "description", "storage", "metadata", "server", "auth", "scheduler", "notifications", "openlineage", "policies", "connections", "cluster"])?;
    let name = d.required_text(map, "", "name", "my-mesh");
    let description = d.text(map, "", "description");
    let storage = Decoder::get(map, "storage").and_then(|node| storage_location(d, node)).unwrap_or_default();
    let metadata = Decoder::get(map, "metadata").and_then(|node| metadata_store(d, node)).unwrap_or_default();
    let mut server = ServerConfig::default();
    if let Some(node) = Decoder::get(map, "server")
        && let Some(s) = d.mapping(
            node,
            "server",
            &["bind", "http_port", "flight_sql_port", "postgres_port", "query_memory", "query_timeout", "max_queries_per_principal", "session_ttl", "public_url"],
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
        server.session_ttl = d.parsed(s, "server", "session_ttl", None, code, parse_duration).unwrap_or(server.session_ttl);
        server.public_url = d.parsed(s, "server", "public_url", None, code, |t| {
            let plain = (t.starts_with("https://") || t.starts_with("http://")) && !t.contains(['?', '#', '@']);
            if plain { Ok(t.trim_end_matches('/').to_owned()) } else { Err((format!("`{t}` is not an http(s) address"), Some("write where users reach the server, e.g. `https://mesh.example.com`".into()))) }
        });
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
    let openlineage = Decoder::get(map, "openlineage").and_then(|node| openlineage_config(d, node, name.as_deref()));
    let policies = policy_states(d, map);
    let (connections, flight_endpoints) = Decoder::get(map, "connections").map(|node| connections(d, node)).unwrap_or_default();
    let cluster = Decoder::get(map, "cluster").and_then(|node| cluster_config(d, node));
    Some(MeshConfig { name: name?, description, storage, metadata, server, auth, scheduler, notifications, openlineage, policies, connections, flight_endpoints, cluster })
}

/// `connections:`, a mapping of names to `{ url, password_env }`. As for `metadata:`, a URL that
/// holds a password is refused without echoing it.
pub(super) fn connections(d: &mut Decoder<'_>, node: &Node) -> (BTreeMap<String, Connection>, BTreeMap<String, FlightEndpoint>) {
    let mut out = BTreeMap::new();
    let mut endpoints = BTreeMap::new();
    let Some(map) = node.as_mapping() else {
        d.report(
            DiagnosticCode::InvalidValue,
            node.span(),
            "connections",
            "`connections` must be a mapping of names to connections".into(),
            Some("e.g. `connections: { crm: { url: \"postgres://reader@crm-db:5432/crm\", password_env: CRM_PASSWORD } }`".into()),
        );
        return (out, endpoints);
    };
    for (key, value) in map.iter() {
        let name = key.as_str().to_owned();
        let field = join("connections", &name);
        if let Err(error) = check_name(&name) {
            let (message, hint) = name_error(error);
            d.report(DiagnosticCode::InvalidName, key.span(), &field, message, hint);
            continue;
        }
        let Some(c) = d.mapping(value, &field, &["url", "password_env", "token_env"]) else { continue };
        let Some(url_node) = d.required(c, &field, "url", "postgres://reader@localhost:5432/crm") else { continue };
        let url_field = join(&field, "url");
        let Some(scalar) = d.scalar(url_node, &url_field, "a URL") else { continue };
        let url = scalar.as_str();
        // The secret's variable is named for what it holds: a database's password, an endpoint's token.
        let flight = url.starts_with("grpc://") || url.starts_with("grpc+tls://");
        let (own, foreign, example) = if flight { ("token_env", "password_env", "PEER_TOKEN") } else { ("password_env", "token_env", "CRM_PASSWORD") };
        if let Some(value) = Decoder::get(c, foreign) {
            d.report(
                DiagnosticCode::InvalidValue,
                value.span(),
                &join(&field, foreign),
                format!("`{foreign}` is not for a {} connection", if flight { "Flight SQL" } else { "database" }),
                Some(format!("name the variable in `{own}`")),
            );
        }
        let secret_env = d.parsed(c, &field, own, None, DiagnosticCode::InvalidValue, |t| env_name(t, example));
        if flight {
            match flight_url(url) {
                Ok(()) => {
                    endpoints.insert(name, FlightEndpoint { url: url.to_owned(), token_env: secret_env });
                }
                Err((message, hint)) => d.report(DiagnosticCode::InvalidValue, scalar.span(), &url_field, message, Some(hint)),
            }
            continue;
        }
        match connection_url(url) {
            Ok(kind) => {
                out.insert(name, Connection { kind, url: url.to_owned(), password_env: secret_env });
            }
            Err((message, hint)) => d.report(DiagnosticCode::InvalidValue, scalar.span(), &url_field, message, Some(hint)),
        }
    }
    (out, endpoints)
}

/// A Flight SQL endpoint's URL: `grpc://HOST:PORT`, nothing else in it.
pub(super) fn flight_url(url: &str) -> Result<(), (String, String)> {
    if url.starts_with("grpc+tls://") {
        return Err((
            "Flight SQL over TLS (`grpc+tls://`) is not supported yet".into(),
            "reach the endpoint over a private network with `grpc://HOST:PORT`, or through a TLS-terminating proxy beside this server".into(),
        ));
    }
    let rest = url.strip_prefix("grpc://").unwrap_or(url);
    let well_formed = rest.rsplit_once(':').is_some_and(|(host, port)| !host.is_empty() && !host.contains(['@', '/', '?']) && port.parse::<u16>().is_ok());
    // Not echoed: a malformed URL may carry the token (`grpc://user:TOKEN@host`).
    if well_formed { Ok(()) } else { Err(("the URL is not a Flight SQL endpoint".into(), "write `grpc://HOST:PORT`, e.g. `grpc://emea-mesh:50051`, with nothing else in it; the token goes in `token_env`".into())) }
}

/// Whether a database URL (after its scheme) carries a password, in its user information
/// (`user:password@host`) or as a parameter (`?password=…`, `sslpassword=…`): the one rule for
/// `metadata:` and `connections:`, which both refuse it.
fn holds_password(rest: &str) -> bool {
    let authority = rest.split(['/', '?']).next().unwrap_or(rest);
    let in_user_info = authority.rsplit_once('@').is_some_and(|(user_info, _)| user_info.contains(':'));
    let query = rest.split_once('?').map_or("", |(_, q)| q);
    let in_parameters = query.split('&').any(|p| p.split('=').next().unwrap_or_default().to_ascii_lowercase().contains("password"));
    in_user_info || in_parameters
}

/// An environment variable name, for fields naming where a secret is (`example` for the hint).
fn env_name(name: &str, example: &str) -> Result<String, (String, Option<String>)> {
    let valid = name.chars().next().is_some_and(|c| c.is_ascii_uppercase() || c == '_')
        && name.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
    if valid { Ok(name.to_owned()) } else { Err((format!("`{name}` is not an environment variable name"), Some(format!("use upper-case letters, digits and `_`, e.g. `{example}`")))) }
}

/// The kind of database a connection URL names; a URL holding a password, no host or no database
/// is refused.
pub(super) fn connection_url(url: &str) -> Result<DatabaseKind, (String, String)> {
    let (kind, rest) = if let Some(rest) = url.strip_prefix("postgres://").or_else(|| url.strip_prefix("postgresql://")) {
        (DatabaseKind::Postgres, rest)
    } else if let Some(rest) = url.strip_prefix("mysql://").or_else(|| url.strip_prefix("mariadb://")) {
        (DatabaseKind::Mysql, rest)
    } else {
        let scheme = url.split_once("://").map_or(url, |(scheme, _)| scheme);
        return Err((format!("unsupported database `{scheme}`"), "use `postgres://USER@HOST:PORT/DATABASE` or `mysql://USER@HOST:PORT/DATABASE`".into()));
    };
    let authority = rest.split(['/', '?']).next().unwrap_or(rest);
    if holds_password(rest) {
        return Err((
            "the connection URL holds a password, which must not be written in `mesh.yaml`".into(),
            "remove it from the URL, put it in an environment variable and name that variable in `password_env`".into(),
        ));
    }
    let database = rest.split_once('/').map(|(_, path)| path.split('?').next().unwrap_or_default()).unwrap_or_default();
    if authority.rsplit('@').next().is_none_or(str::is_empty) || database.is_empty() {
        return Err(("the connection URL names no host or database".into(), format!("write `{kind}://USER@HOST:PORT/DATABASE`")));
    }
    Ok(kind)
}

pub(super) fn scheduler_config(d: &mut Decoder<'_>, node: &Node) -> Option<SchedulerConfig> {
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

pub(super) fn notifications(d: &mut Decoder<'_>, node: &Node) -> Option<Notifications> {
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

pub(super) fn oidc_config(d: &mut Decoder<'_>, node: &Node) -> Option<OidcConfig> {
    const PATH: &str = "auth.oidc";
    let o = d.mapping(node, PATH, &["issuer", "audience", "jwks", "algorithms", "principal_claim", "groups_claim", "attributes", "client_id", "client_secret_env"])?;
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
    let client_id = d.text(o, PATH, "client_id");
    let client_secret_env = d.text(o, PATH, "client_secret_env");
    Some(OidcConfig { issuer: issuer?, audiences, jwks: jwks?, algorithms, principal_claim, groups_claim, attributes, client_id, client_secret_env })
}

/// A `policies:` mapping of policy name to `off`, `warn` or `enforce`. Names are checked against
/// the policies that exist by the repository loader, which knows them.
pub(super) fn policy_states(d: &mut Decoder<'_>, map: &MarkedMappingNode) -> BTreeMap<String, PolicyState> {
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
