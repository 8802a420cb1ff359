//! `cluster:` in `mesh.yaml`: the Apache Ballista scheduler queries run on, and which queries go.

// Imports are shared by every section of the parser: see `mod.rs`.
use super::*;

const PATH: &str = "cluster";

pub(super) fn cluster_config(d: &mut Decoder<'_>, node: &Node) -> Option<ClusterConfig> {
    let map = d.mapping(node, PATH, &["scheduler", "run", "min_scan"])?;
    let code = DiagnosticCode::InvalidValue;
    let scheduler = d.parsed(map, PATH, "scheduler", Some("127.0.0.1:50050"), code, scheduler_address);
    let all = d.choice(map, PATH, "run", None, &[("all", true), ("large", false)]).unwrap_or(false);
    let min_scan = d.parsed(map, PATH, "min_scan", None, code, parse_bytes);
    if all && let Some(node) = Decoder::get(map, "min_scan") {
        d.report(
            code,
            node.span(),
            &join(PATH, "min_scan"),
            "`min_scan` applies to `run: large` only".into(),
            Some("remove it, or write `run: large` to send only queries scanning that much".into()),
        );
    }
    let run = if all { ClusterRun::All } else { ClusterRun::Large { min_scan_bytes: min_scan.unwrap_or(ClusterRun::DEFAULT_MIN_SCAN_BYTES) } };
    Some(ClusterConfig { scheduler: scheduler?, run })
}

/// `HOST:PORT` of a Ballista scheduler, with or without a `df://` or `grpc://` prefix (Ballista's
/// own clients write `df://`); no credentials or path: Ballista has neither.
fn scheduler_address(text: &str) -> Result<String, (String, Option<String>)> {
    let rest = text.strip_prefix("df://").or_else(|| text.strip_prefix("grpc://")).unwrap_or(text);
    let hint = Some("write the scheduler's host and gRPC port, e.g. `127.0.0.1:50050`".to_owned());
    let Some((host, port)) = rest.rsplit_once(':') else {
        return Err((format!("`{text}` names no port"), hint));
    };
    if host.is_empty() || host.contains(['/', '@', '?', '#', ' ']) || rest.contains('/') {
        return Err((format!("`{text}` is not a `HOST:PORT` address"), hint));
    }
    parse_port(port).map_err(|(message, _)| (message, hint))?;
    Ok(rest.to_owned())
}
