//! Principals: the users and services that read data products, with their groups, domain
//! memberships and attributes, and how they match the principal references of descriptors.

use std::collections::{BTreeMap, BTreeSet};

use marked_yaml::Node;

use crate::diagnostic::{Diagnostic, DiagnosticCode};
use crate::id::DomainName;
use crate::parse::Parsed;
use crate::yaml::Decoder;

/// Whether a principal is a person or a program.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrincipalKind {
    /// A person.
    User,
    /// A program: a dashboard, a pipeline, an application.
    Service,
    /// A domain acting as itself: what its products' builds and checks read upstream products
    /// as (see [`Principal::for_domain`]). Never declared in `principals.yaml`.
    Domain,
}

impl PrincipalKind {
    /// The keyword used in `principals.yaml` and in references (`user:…`, `service:…`).
    pub fn as_str(self) -> &'static str {
        match self {
            PrincipalKind::User => "user",
            PrincipalKind::Service => "service",
            PrincipalKind::Domain => "domain",
        }
    }
}

/// Someone or something that runs queries.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Principal {
    /// Unique name, e.g. `alice` or `bi-dashboard`.
    pub name: String,
    /// Person or program.
    pub kind: PrincipalKind,
    /// Groups the principal belongs to.
    pub groups: BTreeSet<String>,
    /// Domains the principal is a member of: declared here, or through a domain's `owners` and
    /// `members`.
    pub domains: BTreeSet<DomainName>,
    /// Free attributes used by row filters, e.g. `region: EU`.
    pub attributes: BTreeMap<String, String>,
    /// Platform administrators see every product and the audit log, and EXPLAIN in full; they
    /// are still subject to row filters and masks unless a descriptor exempts them.
    pub admin: bool,
}

/// Name of the principal the CLI acts as when no `--as` is given.
pub const LOCAL_ADMIN: &str = "admin";

/// The group every administrator is in, so descriptors can exempt admins by reference.
pub const ADMIN_GROUP: &str = "admins";

impl Principal {
    /// The local administrator: the operator at the terminal of a mesh repository.
    pub fn local_admin() -> Principal {
        Principal {
            name: LOCAL_ADMIN.into(),
            kind: PrincipalKind::User,
            groups: BTreeSet::from([ADMIN_GROUP.to_owned()]),
            domains: BTreeSet::new(),
            attributes: BTreeMap::new(),
            admin: true,
        }
    }

    /// The principal a domain's builds and checks act as: a member of that domain and nothing
    /// else, with the groups and attributes its `domain.yaml` declares under `principal:`. Reading
    /// an upstream product as this principal applies the upstream's access decision, row filters
    /// and masks to what a derived product is built from, exactly as to a consumer's query.
    pub fn for_domain(domain: &crate::descriptor::DomainDescriptor) -> Principal {
        Principal::domain(&domain.name, &domain.principal)
    }

    /// [`Principal::for_domain`] from a domain's name and declared principal.
    pub fn domain(name: &DomainName, declared: &crate::descriptor::DomainPrincipal) -> Principal {
        Principal {
            name: name.to_string(),
            kind: PrincipalKind::Domain,
            groups: declared.groups.clone(),
            domains: BTreeSet::from([name.clone()]),
            attributes: declared.attributes.clone(),
            admin: false,
        }
    }

    /// Whether a principal reference of a descriptor (`user:alice`, `service:bi`, `group:g`,
    /// `domain:d` or `*`) names this principal.
    pub fn matches(&self, reference: &str) -> bool {
        if reference == "*" {
            return true;
        }
        match reference.split_once(':') {
            Some(("user", name)) => self.kind == PrincipalKind::User && self.name == name,
            Some(("service", name)) => self.kind == PrincipalKind::Service && self.name == name,
            Some(("group", group)) => self.groups.contains(group),
            Some(("domain", domain)) => self.domains.iter().any(|d| d.as_str() == domain),
            _ => false,
        }
    }

    /// Whether the principal belongs to `domain`.
    pub fn in_domain(&self, domain: &DomainName) -> bool {
        self.domains.contains(domain)
    }
}

/// Checks a principal, group or attribute name: letters, digits, `-`, `_` and `.`.
fn check_principal_name(text: &str) -> Result<String, (String, Option<String>)> {
    let valid = !text.is_empty()
        && text.len() <= 128
        && text.starts_with(|c: char| c.is_ascii_alphanumeric())
        && text.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'));
    if valid {
        Ok(text.to_owned())
    } else {
        Err((format!("`{text}` is not a valid name"), Some("use letters, digits, `-`, `_`, `.` or `@`, e.g. `alice` or `bi-dashboard`".into())))
    }
}

/// Parses `principals.yaml`: `principals: [{ name, kind, groups, domains, attributes, admin }]`.
pub fn parse_principals(file: &str, text: &str) -> Parsed<Vec<Principal>> {
    let mut d = Decoder::new(file);
    let value = d.load(text).and_then(|root| principals(&mut d, &root));
    match value {
        Some(value) if d.diagnostics.is_empty() => Ok(crate::parse::Located { value, positions: d.positions }),
        _ => Err(d.diagnostics),
    }
}

fn principals(d: &mut Decoder<'_>, root: &Node) -> Option<Vec<Principal>> {
    let map = d.mapping(root, "", &["principals"])?;
    let mut out: Vec<Principal> = Vec::new();
    for (field, node) in d.list(map, "", "principals") {
        let Some(p) = d.mapping(node, &field, &["name", "kind", "groups", "domains", "attributes", "admin"]) else { continue };
        let name = d.parsed(p, &field, "name", Some("alice"), DiagnosticCode::InvalidName, check_principal_name);
        let kind = d
            .choice(p, &field, "kind", None, &[("user", PrincipalKind::User), ("service", PrincipalKind::Service)])
            .unwrap_or(PrincipalKind::User);
        let groups = group_names(d, p, &field);
        let mut domains = BTreeSet::new();
        for (domain_field, domain) in d.list(p, &field, "domains") {
            if let Some(scalar) = d.scalar(domain, &domain_field, "a domain name") {
                match DomainName::new(scalar.as_str()) {
                    Ok(name) => {
                        domains.insert(name);
                    }
                    Err(err) => d.report(DiagnosticCode::InvalidName, scalar.span(), &domain_field, err.to_string(), None),
                }
            }
        }
        let attributes = attribute_map(d, p, &field);
        let admin = d.boolean(p, &field, "admin").unwrap_or(false);
        let Some(name) = name else { continue };
        if out.iter().any(|existing| existing.name == name) {
            let (line, column) = d.positions.locate(&format!("{field}.name")).unwrap_or((0, 0));
            d.diagnostics.push(
                Diagnostic::new(DiagnosticCode::Duplicate, d.file(), format!("principal `{name}` is declared twice"))
                    .field(format!("{field}.name"))
                    .at(line, column)
                    .hint("principal names are unique; merge the two entries"),
            );
            continue;
        }
        let mut groups = groups;
        if admin {
            groups.insert(ADMIN_GROUP.to_owned());
        }
        out.push(Principal { name, kind, groups, domains, attributes, admin });
    }
    Some(out)
}

/// The `groups` list of a principal declaration at `field`.
pub(crate) fn group_names(d: &mut Decoder<'_>, map: &marked_yaml::types::MarkedMappingNode, field: &str) -> BTreeSet<String> {
    let mut groups = BTreeSet::new();
    for (group_field, group) in d.list(map, field, "groups") {
        if let Some(scalar) = d.scalar(group, &group_field, "a group name") {
            match check_principal_name(scalar.as_str()) {
                Ok(g) => {
                    groups.insert(g);
                }
                Err((message, hint)) => d.report(DiagnosticCode::InvalidName, scalar.span(), &group_field, message, hint),
            }
        }
    }
    groups
}

/// The `attributes` map of a principal declaration at `field`: names to text values.
pub(crate) fn attribute_map(d: &mut Decoder<'_>, map: &marked_yaml::types::MarkedMappingNode, field: &str) -> BTreeMap<String, String> {
    let mut attributes = BTreeMap::new();
    if let Some(node) = Decoder::get(map, "attributes") {
        let attributes_field = if field.is_empty() { "attributes".to_owned() } else { format!("{field}.attributes") };
        if let Some(m) = node.as_mapping() {
            for (key, value) in m.iter() {
                let value_field = format!("{attributes_field}.{}", key.as_str());
                if let Err((message, hint)) = check_principal_name(key.as_str()) {
                    d.report(DiagnosticCode::InvalidName, key.span(), &value_field, message, hint);
                }
                if let Some(scalar) = d.scalar(value, &value_field, "a text value") {
                    attributes.insert(key.as_str().to_owned(), scalar.as_str().to_owned());
                }
            }
        } else {
            d.mapping(node, &attributes_field, &[]);
        }
    }
    attributes
}

/// The principals of a mesh: those declared in `principals.yaml`, with the domain memberships
/// that domains grant through their `owners` and `members` (`user:…`, `service:…` or every member
/// of a `group:…`), plus the local administrator unless the file declares one of that name.
pub fn resolve_principals(declared: &[Principal], domains: &[crate::descriptor::DomainDescriptor]) -> Vec<Principal> {
    let mut out: Vec<Principal> = declared.to_vec();
    if !out.iter().any(|p| p.name == LOCAL_ADMIN) {
        out.push(Principal::local_admin());
    }
    for domain in domains {
        for reference in domain.owners.iter().chain(&domain.members) {
            for principal in &mut out {
                // `domain:` references are not followed: membership is one level deep so it is
                // easy to tell who is in a domain by reading its `domain.yaml`.
                if !reference.starts_with("domain:") && reference != "*" && principal.matches(reference) {
                    principal.domains.insert(domain.name.clone());
                }
            }
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}
