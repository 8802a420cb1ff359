//! `domain.yaml`: a domain, its owners and principals.

// Imports are shared by every section of the parser: see `mod.rs`.
use super::*;

/// Parses `domain.yaml`.
pub fn parse_domain(file: &str, text: &str) -> Parsed<DomainDescriptor> {
    let mut d = Decoder::new(file);
    let value = d.load(text).and_then(|root| domain(&mut d, &root));
    finish(d, value)
}

pub(super) fn domain(d: &mut Decoder<'_>, root: &Node) -> Option<DomainDescriptor> {
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
pub(super) fn principal_refs(d: &mut Decoder<'_>, map: &MarkedMappingNode, path: &str, key: &str) -> Vec<String> {
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
