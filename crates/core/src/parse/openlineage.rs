//! `openlineage:` in `mesh.yaml`: the namespace of the mesh's jobs and datasets and the sinks
//! OpenLineage run events are delivered to (an NDJSON file, an HTTP endpoint).

// Imports are shared by every section of the parser: see `mod.rs`.
use super::*;

const PATH: &str = "openlineage";

pub(super) fn openlineage_config(d: &mut Decoder<'_>, node: &Node, mesh_name: Option<&str>) -> Option<OpenLineageConfig> {
    let map = d.mapping(node, PATH, &["namespace", "sinks"])?;
    let namespace = d.text(map, PATH, "namespace").or_else(|| mesh_name.map(str::to_owned));
    let example = "[{ name: marquez, kind: http, url: \"http://localhost:5000\" }]";
    let sinks_node = d.required(map, PATH, "sinks", example)?;
    let items = d.list(map, PATH, "sinks");
    if items.is_empty() && sinks_node.as_sequence().is_some() {
        d.report(DiagnosticCode::InvalidValue, sinks_node.span(), "openlineage.sinks", "`openlineage` names no sink".into(), Some(format!("add one, e.g. `sinks: {example}`, or remove `openlineage`")));
    }
    let mut sinks: Vec<LineageSink> = Vec::new();
    for (field, item) in items {
        let Some(s) = d.mapping(item, &field, &["name", "kind", "path", "url", "endpoint", "api_key_env"]) else { continue };
        let name = d.required_text(s, &field, "name", "marquez");
        let kind = d.choice(s, &field, "kind", Some("http"), &[("file", "file"), ("http", "http")]);
        let target = match kind {
            Some("file") => {
                for key in ["url", "endpoint", "api_key_env"] {
                    refuse_key(d, s, &field, key, "http");
                }
                d.required_text(s, &field, "path", ".meshwork/openlineage.ndjson").map(|path| LineageTarget::File { path })
            }
            Some(_) => {
                refuse_key(d, s, &field, "path", "file");
                http_target(d, s, &field)
            }
            None => None,
        };
        if let Some(name) = &name
            && sinks.iter().any(|other| &other.name == name)
        {
            d.report(DiagnosticCode::InvalidValue, s.span(), &field, format!("sink `{name}` is declared twice"), Some("give each sink its own name".into()));
            continue;
        }
        if let (Some(name), Some(target)) = (name, target) {
            sinks.push(LineageSink { name, target });
        }
    }
    if sinks.is_empty() {
        return None;
    }
    Some(OpenLineageConfig { namespace: namespace?, sinks })
}

/// Reports `key`, which only sinks of kind `owner` take.
fn refuse_key(d: &mut Decoder<'_>, map: &MarkedMappingNode, field: &str, key: &str, owner: &str) {
    if let Some(node) = Decoder::get(map, key) {
        d.report(
            DiagnosticCode::InvalidValue,
            node.span(),
            &join(field, key),
            format!("`{key}` applies to `{owner}` sinks only"),
            Some(format!("remove it, or write `kind: {owner}`")),
        );
    }
}

fn http_target(d: &mut Decoder<'_>, s: &MarkedMappingNode, field: &str) -> Option<LineageTarget> {
    let code = DiagnosticCode::InvalidValue;
    let url = d.parsed(s, field, "url", Some("http://localhost:5000"), code, |t| {
        let Some(rest) = t.strip_prefix("https://").or_else(|| t.strip_prefix("http://")) else {
            return Err((format!("`{t}` is not an http(s) URL"), Some("write the server's address, e.g. `http://localhost:5000`".into())));
        };
        if rest.split('/').next().is_some_and(|authority| authority.contains('@')) {
            return Err((
                "the URL holds credentials, which must not be written in `mesh.yaml`".into(),
                Some("write only the address; put an API key in an environment variable named by `api_key_env`".into()),
            ));
        }
        Ok(t.trim_end_matches('/').to_owned())
    });
    let endpoint = d
        .parsed(s, field, "endpoint", None, code, |t| {
            if t.contains("://") {
                Err((format!("`{t}` is an address, not a path"), Some("write the path under `url`, e.g. `api/v1/lineage`".into())))
            } else {
                Ok(t.trim_matches('/').to_owned())
            }
        })
        .unwrap_or_else(|| DEFAULT_LINEAGE_ENDPOINT.to_owned());
    let api_key_env = d.parsed(s, field, "api_key_env", None, code, |name| {
        let valid = name.chars().next().is_some_and(|c| c.is_ascii_uppercase() || c == '_')
            && name.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
        if valid {
            Ok(name.to_owned())
        } else {
            Err((format!("`{name}` is not an environment variable name"), Some("use upper-case letters, digits and `_`, e.g. `MARQUEZ_API_KEY`".into())))
        }
    });
    let url = url?;
    let url = if endpoint.is_empty() { url } else { format!("{url}/{endpoint}") };
    Some(LineageTarget::Http { url, api_key_env })
}
