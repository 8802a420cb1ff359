//! "How to connect" on a product page: psql, Python ADBC (Flight SQL) and curl, with the
//! product's address, the viewer's principal and this server's own addresses.
//!
//! The ports are the ones the servers are bound to. The host is the bound address, unless that
//! is a wildcard or loopback address (which says nothing useful to someone on another machine):
//! then it is the host the browser itself reached this server by (the `Host` header).

use std::net::{IpAddr, SocketAddr};

use maud::{Markup, html};
use meshwork_core::id::ProductId;

use crate::BoundAddresses;

/// Where a client on the viewer's side reaches each interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoints {
    /// `host:port` of the HTTP API (IPv6 hosts in brackets).
    pub(crate) http: String,
    /// `host:port` of Flight SQL.
    pub(crate) flight_sql: String,
    /// Host of the Postgres wire, as `psql -h` takes it (no brackets).
    pub(crate) postgres_host: String,
    /// Port of the Postgres wire.
    pub(crate) postgres_port: u16,
}

impl Endpoints {
    /// The endpoints for a page requested with `host` (the `Host` header), for servers bound at
    /// `bound`.
    pub(crate) fn new(bound: BoundAddresses, host: Option<&str>) -> Endpoints {
        let requested = host.and_then(host_name);
        let name = |addr: SocketAddr| -> String {
            match (&requested, addr.ip()) {
                (Some(host), ip) if ip.is_unspecified() || ip.is_loopback() => host.clone(),
                (None, ip) if ip.is_unspecified() => "localhost".into(),
                (_, ip) => ip.to_string(),
            }
        };
        let url_host = |host: String| if host.contains(':') { format!("[{host}]") } else { host };
        Endpoints {
            http: format!("{}:{}", url_host(name(bound.http)), bound.http.port()),
            flight_sql: format!("{}:{}", url_host(name(bound.flight_sql)), bound.flight_sql.port()),
            postgres_host: name(bound.postgres),
            postgres_port: bound.postgres.port(),
        }
    }
}

/// The host name of a `Host` header (`name`, `name:port`, `[v6]:port`), if it is a plain DNS
/// name or IP address; anything else is ignored rather than echoed into a command line.
fn host_name(header: &str) -> Option<String> {
    let host = match header.strip_prefix('[') {
        Some(rest) => rest.split_once(']').map(|(v6, _)| v6)?,
        None => header.rsplit_once(':').map_or(header, |(host, _)| host),
    };
    let plain = !host.is_empty() && host.len() <= 253 && host.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
    match host.parse::<IpAddr>() {
        Ok(ip) => Some(ip.to_string()),
        Err(_) if plain => Some(host.to_ascii_lowercase()),
        Err(_) => None,
    }
}

/// The statement every snippet runs: the first rows of the product.
pub(crate) fn sample_sql(product: &ProductId) -> String {
    format!("SELECT * FROM {product} LIMIT 10")
}

/// The three snippets; `principal` is the viewer's name (the Postgres user), the token is
/// left in `$MESHWORK_TOKEN` (never put on a page).
pub(crate) fn snippets(product: &ProductId, principal: &str, endpoints: &Endpoints) -> Markup {
    let sql = sample_sql(product);
    let psql = format!(
        "PGPASSWORD=$MESHWORK_TOKEN psql -h {} -p {} -U {} -d meshwork \\\n  -c '{sql}'",
        endpoints.postgres_host,
        endpoints.postgres_port,
        shell_word(principal)
    );
    let python = format!(
        "import os\nimport adbc_driver_flightsql.dbapi as flightsql\n\nconn = flightsql.connect(\"grpc://{}\",\n    db_kwargs={{\"adbc.flight.sql.authorization_header\": \"Bearer \" + os.environ[\"MESHWORK_TOKEN\"]}})\ncur = conn.cursor()\ncur.execute(\"{sql}\")\nprint(cur.fetch_arrow_table())",
        endpoints.flight_sql
    );
    let curl = format!(
        "curl -s -H \"Authorization: Bearer $MESHWORK_TOKEN\" -H 'Content-Type: application/json' \\\n  -d '{{\"sql\": \"{sql}\"}}' http://{}/api/v1/query",
        endpoints.http
    );
    html! {
        p { "Each snippet reads the token from " code { "MESHWORK_TOKEN" } " (" code { "meshwork token create --principal " (principal) } ")." }
        @for (title, code) in [("psql (Postgres wire)", psql), ("Python, ADBC Flight SQL", python), ("curl (HTTP API)", curl)] {
            figure.snippet {
                figcaption { (title) }
                pre tabindex="0" { code { (code) } }
            }
        }
    }
}

/// `word` as one shell word: as is when plain, else in single quotes.
fn shell_word(word: &str) -> String {
    if !word.is_empty() && word.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.@".contains(&b)) {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bound(ip: &str) -> BoundAddresses {
        let at = |port: u16| SocketAddr::new(ip.parse().unwrap(), port);
        BoundAddresses { http: at(8080), flight_sql: at(50051), postgres: at(5433) }
    }

    #[test]
    fn wildcard_and_loopback_binds_take_the_requested_host() {
        let e = Endpoints::new(bound("0.0.0.0"), Some("mesh.example.com:8080"));
        assert_eq!((e.http.as_str(), e.flight_sql.as_str(), e.postgres_host.as_str(), e.postgres_port), ("mesh.example.com:8080", "mesh.example.com:50051", "mesh.example.com", 5433));
        let e = Endpoints::new(bound("127.0.0.1"), Some("[::1]:8080"));
        assert_eq!((e.http.as_str(), e.postgres_host.as_str()), ("[::1]:8080", "::1"));
        let e = Endpoints::new(bound("0.0.0.0"), Some("evil.com'; rm -rf /"));
        assert_eq!(e.http, "localhost:8080");
    }

    #[test]
    fn a_specific_bind_address_is_named_as_is() {
        let e = Endpoints::new(bound("10.1.2.3"), Some("proxy.example.com"));
        assert_eq!((e.http.as_str(), e.postgres_host.as_str()), ("10.1.2.3:8080", "10.1.2.3"));
    }

    #[test]
    fn snippets_name_the_product_the_principal_and_the_ports() {
        let e = Endpoints::new(bound("0.0.0.0"), Some("mesh.example.com"));
        let html = snippets(&"sales.orders".parse().unwrap(), "ana", &e).into_string();
        assert!(html.contains("psql -h mesh.example.com -p 5433 -U ana -d meshwork"), "{html}");
        assert!(html.contains("grpc://mesh.example.com:50051"), "{html}");
        assert!(html.contains("http://mesh.example.com:8080/api/v1/query"), "{html}");
        assert!(html.contains("SELECT * FROM sales.orders LIMIT 10"), "{html}");
        assert_eq!(shell_word("o'brien"), r"'o'\''brien'");
    }
}
