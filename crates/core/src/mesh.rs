//! A whole mesh repository in memory, the checks that span files, and the build order.

use std::collections::{BTreeMap, BTreeSet};

use sha2::{Digest, Sha256};

use crate::descriptor::{DomainDescriptor, InputSource, MeshConfig, ProductDescriptor, QualityCheck};
use crate::diagnostic::{Diagnostic, DiagnosticCode, did_you_mean, one_of};
use crate::id::{DomainName, ProductId};
use crate::yaml::Positions;

/// A domain as loaded from `domains/<dir>/domain.yaml`.
#[derive(Debug, Clone)]
pub struct DomainEntry {
    /// The descriptor.
    pub descriptor: DomainDescriptor,
    /// Path of `domain.yaml`, relative to the repository.
    pub file: String,
    /// Name of the directory under `domains/`.
    pub dir_name: String,
    /// Where its fields sit.
    pub positions: Positions,
}

/// A product as loaded from `domains/<d>/products/<p>/product.yaml`.
#[derive(Debug, Clone)]
pub struct ProductEntry {
    /// The descriptor, with the transform SQL read in.
    pub descriptor: ProductDescriptor,
    /// Path of `product.yaml`, relative to the repository.
    pub file: String,
    /// Name of the domain directory it sits under.
    pub dir_domain: String,
    /// Name of its own directory.
    pub dir_name: String,
    /// Where its fields sit.
    pub positions: Positions,
}

/// Everything a mesh repository declares.
#[derive(Debug, Clone)]
pub struct MeshRepo {
    /// `mesh.yaml`.
    pub config: MeshConfig,
    /// Domains by name.
    pub domains: BTreeMap<DomainName, DomainEntry>,
    /// Products by address.
    pub products: BTreeMap<ProductId, ProductEntry>,
    /// Products whose descriptor exists but failed to parse (named by their directories): their
    /// own errors are reported, so references to them are not reported again.
    pub unparsed: BTreeSet<ProductId>,
}

impl ProductEntry {
    /// Where the product's transform SQL is written: its `.sql` file (relative to the repository)
    /// or `product.yaml` for inline SQL. `None` without a transform.
    pub fn transform_file(&self) -> Option<String> {
        let transform = self.descriptor.transform.as_ref()?;
        Some(match &transform.file {
            Some(file) => format!("{}/{file}", self.file.rsplit_once('/').map(|(dir, _)| dir).unwrap_or(".")),
            None => self.file.clone(),
        })
    }

    fn diagnostic(&self, code: DiagnosticCode, field: &str, message: String, hint: Option<String>) -> Diagnostic {
        let mut diagnostic = Diagnostic::new(code, &self.file, message).field(field).at_position(self.positions.locate(field));
        diagnostic.hint = hint;
        diagnostic
    }
}

impl MeshRepo {
    /// Checks the database inputs of every product against `mesh.yaml`'s `connections:`: the
    /// connection exists and is of the source's kind; at most one input loads incrementally, and
    /// a `merge` has a primary key to merge on.
    pub fn check_connections(&self) -> Vec<Diagnostic> {
        let mut out = Vec::new();
        let names: Vec<&str> = self.config.connections.keys().map(String::as_str).collect();
        for entry in self.products.values() {
            let p = &entry.descriptor;
            let mut incremental = 0;
            for (i, input) in p.inputs.iter().enumerate() {
                if let InputSource::FlightSql(source) = &input.source {
                    if !self.config.flight_endpoints.contains_key(&source.connection) {
                        let endpoints: Vec<&str> = self.config.flight_endpoints.keys().map(String::as_str).collect();
                        let (message, hint) = match self.config.connections.get(&source.connection) {
                            Some(connection) => (
                                format!("input `{}` reads a Flight SQL endpoint, but connection `{}` is a `{}` database", input.name, source.connection, connection.kind),
                                format!("set `kind: {}`, or name a connection whose URL is `grpc://HOST:PORT`", connection.kind),
                            ),
                            None => (
                                format!("connection `{}` is not declared in `mesh.yaml`", source.connection),
                                match did_you_mean(&source.connection, endpoints.iter().copied()) {
                                    Some(close) => format!("did you mean `{close}`?"),
                                    None => format!("add `connections: {{ {}: {{ url: \"grpc://HOST:PORT\", token_env: VARIABLE }} }}` to `mesh.yaml`", source.connection),
                                },
                            ),
                        };
                        out.push(entry.diagnostic(DiagnosticCode::MissingReference, &format!("inputs[{i}].source.connection"), message, Some(hint)));
                    }
                    continue;
                }
                let Some((kind, source)) = input.source.database() else { continue };
                let field = format!("inputs[{i}].source.connection");
                match self.config.connections.get(&source.connection) {
                    None => out.push(entry.diagnostic(
                        DiagnosticCode::MissingReference,
                        &field,
                        format!("connection `{}` is not declared in `mesh.yaml`", source.connection),
                        Some(match did_you_mean(&source.connection, names.iter().copied()) {
                            Some(close) => format!("did you mean `{close}`?"),
                            None if names.is_empty() => format!("add `connections: {{ {}: {{ url: \"{kind}://USER@HOST:PORT/DATABASE\", password_env: VARIABLE }} }}` to `mesh.yaml`", source.connection),
                            None => format!("declared connections are {}", one_of(names.iter().copied())),
                        }),
                    )),
                    Some(connection) if connection.kind != kind => out.push(entry.diagnostic(
                        DiagnosticCode::InvalidValue,
                        &format!("inputs[{i}].source.kind"),
                        format!("input `{}` reads `{kind}`, but connection `{}` is a `{}` database", input.name, source.connection, connection.kind),
                        Some(format!("set `kind: {}`", connection.kind)),
                    )),
                    Some(_) => {}
                }
                if let Some(inc) = &source.incremental {
                    incremental += 1;
                    if incremental == 2 {
                        out.push(entry.diagnostic(
                            DiagnosticCode::InvalidValue,
                            &format!("inputs[{i}].source.incremental"),
                            "only one input of a product may load incrementally".into(),
                            Some("remove `incremental` from all inputs but one".into()),
                        ));
                    }
                    if inc.mode == crate::descriptor::LoadMode::Merge && p.contract.primary_key.is_empty() {
                        // `mode` may be left to its default: point at what is written nearest.
                        let field = format!("inputs[{i}].source.incremental.mode");
                        out.push(
                            Diagnostic::new(
                                DiagnosticCode::MissingField,
                                &entry.file,
                                "an incremental `merge` (the default mode) replaces rows by the contract's primary key, and the contract declares none",
                            )
                            .field(&field)
                            .at_position(entry.positions.locate_nearest(&field))
                            .hint("add `primary_key: [..]` to the contract, or set `mode: append`"),
                        );
                    }
                }
            }
        }
        out
    }

    /// Checks that span files: directory layout, references between products, and cycles.
    pub fn check(&self) -> Vec<Diagnostic> {
        let mut out = Vec::new();
        for domain in self.domains.values() {
            if domain.descriptor.name.as_str() != domain.dir_name {
                out.push(
                    Diagnostic::new(
                        DiagnosticCode::InvalidValue,
                        &domain.file,
                        format!("domain `{}` sits in directory `domains/{}`", domain.descriptor.name, domain.dir_name),
                    )
                    .field("name")
                    .at_position(domain.positions.locate("name"))
                    .hint(format!("rename the directory to `domains/{}` or set `name: {}`", domain.descriptor.name, domain.dir_name)),
                );
            }
        }
        let known: Vec<String> = self.products.keys().chain(&self.unparsed).map(ProductId::to_string).collect();
        let missing_product = |entry: &ProductEntry, field: &str, id: &ProductId| {
            let hint = match did_you_mean(&id.to_string(), known.iter().map(String::as_str)) {
                Some(close) => format!("did you mean `{close}`?"),
                None if known.is_empty() => "the mesh declares no products yet".to_owned(),
                None => format!("declared products are {}", one_of(known.iter().map(String::as_str))),
            };
            entry.diagnostic(DiagnosticCode::MissingReference, field, format!("product `{id}` does not exist"), Some(hint))
        };
        for entry in self.products.values() {
            let p = &entry.descriptor;
            if !self.domains.contains_key(&p.domain) {
                let names: Vec<&str> = self.domains.keys().map(DomainName::as_str).collect();
                out.push(entry.diagnostic(
                    DiagnosticCode::MissingReference,
                    "domain",
                    format!("domain `{}` does not exist", p.domain),
                    Some(match did_you_mean(p.domain.as_str(), names.iter().copied()) {
                        Some(close) => format!("did you mean `{close}`?"),
                        None => format!("create `domains/{}/domain.yaml`", p.domain),
                    }),
                ));
            }
            if p.domain.as_str() != entry.dir_domain {
                out.push(entry.diagnostic(
                    DiagnosticCode::InvalidValue,
                    "domain",
                    format!("product declares domain `{}` but sits under `domains/{}`", p.domain, entry.dir_domain),
                    Some(format!("move it to `domains/{}/products/` or set `domain: {}`", p.domain, entry.dir_domain)),
                ));
            }
            if p.name.as_str() != entry.dir_name {
                out.push(entry.diagnostic(
                    DiagnosticCode::InvalidValue,
                    "name",
                    format!("product `{}` sits in directory `{}`", p.name, entry.dir_name),
                    Some(format!("rename the directory to `{}` or set `name: {}`", p.name, entry.dir_name)),
                ));
            }
            if p.inputs.is_empty() && p.transform.is_none() {
                out.push(entry.diagnostic(
                    DiagnosticCode::MissingField,
                    "inputs",
                    "a product without a transform needs exactly one input".into(),
                    Some("add an input, or a `transform` that computes the rows".into()),
                ));
            }
            if p.inputs.len() > 1 && p.transform.is_none() {
                out.push(entry.diagnostic(
                    DiagnosticCode::MissingField,
                    "transform",
                    format!("a product with {} inputs needs a transform", p.inputs.len()),
                    Some("add `transform: transform.sql` with SQL that combines the inputs by their port names".into()),
                ));
            }
            for (i, input) in p.inputs.iter().enumerate() {
                if let crate::descriptor::InputSource::Product { product } = &input.source
                    && !self.products.contains_key(product)
                    && !self.unparsed.contains(product)
                {
                    out.push(missing_product(entry, &format!("inputs[{i}].product"), product));
                }
            }
            if let Some(successor) = &p.successor
                && !self.products.contains_key(successor)
                && !self.unparsed.contains(successor)
            {
                out.push(missing_product(entry, "successor", successor));
            }
            if let Some((base, n)) = crate::lifecycle::kept_major(&p.name)
                && let Some(newer) = self.products.get(&ProductId::new(p.domain.clone(), base.clone()))
            {
                let base_id = newer.descriptor.id();
                if p.major().is_some_and(|m| m != n) {
                    out.push(entry.diagnostic(
                        DiagnosticCode::InvalidValue,
                        "version",
                        format!("`{}` keeps major {n} of `{base_id}`, but its version `{}` is not a {n}.x version", p.name, p.version),
                        Some(format!("set `version: {n}.<minor>.<patch>`, or rename the product")),
                    ));
                }
                if newer.descriptor.major().is_some_and(|m| m <= n) {
                    out.push(entry.diagnostic(
                        DiagnosticCode::InvalidValue,
                        "name",
                        format!(
                            "`{}` keeps major {n} of `{base_id}` side by side, but `{base_id}` is at version `{}`, not a newer major",
                            p.name, newer.descriptor.version
                        ),
                        Some(format!("publish `{base_id}` as {}.0.0 or later, or remove `{}`", n + 1, p.name)),
                    ));
                }
            }
            for (i, rule) in p.quality.iter().enumerate() {
                if let QualityCheck::Referential { references, references_column, .. } = &rule.check {
                    match self.products.get(references) {
                        None if self.unparsed.contains(references) => {}
                        None => out.push(missing_product(entry, &format!("quality[{i}].references"), references)),
                        Some(target) if target.descriptor.contract.column(references_column).is_none() => out.push(entry.diagnostic(
                            DiagnosticCode::MissingReference,
                            &format!("quality[{i}].references_column"),
                            format!("column `{references_column}` is not in the contract of `{references}`"),
                            Some(format!(
                                "`{references}` has {}",
                                one_of(target.descriptor.contract.columns.iter().map(|c| c.name.as_str()))
                            )),
                        )),
                        Some(_) => {}
                    }
                }
            }
        }
        if let Err(cycle) = self.build_order() {
            let first = &self.products[&cycle[0]];
            let path: Vec<String> = cycle.iter().chain(std::iter::once(&cycle[0])).map(ProductId::to_string).collect();
            let input = first
                .descriptor
                .inputs
                .iter()
                .position(|i| matches!(&i.source, crate::descriptor::InputSource::Product { product } if cycle.contains(product)))
                .map(|i| format!("inputs[{i}].product"))
                .unwrap_or_else(|| "inputs".into());
            out.push(first.diagnostic(
                DiagnosticCode::DependencyCycle,
                &input,
                format!("products depend on each other in a cycle: {}", path.join(" -> ")),
                Some("a product cannot read, directly or through others, from itself; remove one of these inputs".into()),
            ));
        }
        out
    }

    /// Products in an order where every product comes after the products it reads; ties are
    /// broken by name so the order is stable. On a cycle, returns the products forming it.
    pub fn build_order(&self) -> Result<Vec<ProductId>, Vec<ProductId>> {
        let mut remaining: BTreeMap<&ProductId, BTreeSet<&ProductId>> = self
            .products
            .iter()
            .map(|(id, entry)| (id, entry.descriptor.upstream().filter(|u| self.products.contains_key(*u)).collect()))
            .collect();
        let mut order = Vec::with_capacity(remaining.len());
        loop {
            let ready: Vec<&ProductId> = remaining.iter().filter(|(_, deps)| deps.is_empty()).map(|(id, _)| *id).collect();
            if ready.is_empty() {
                break;
            }
            for id in ready {
                remaining.remove(id);
                for deps in remaining.values_mut() {
                    deps.remove(id);
                }
                order.push(id.clone());
            }
        }
        if remaining.is_empty() {
            return Ok(order);
        }
        // Walk upstream edges from any stuck product until a product repeats: that loop is a cycle.
        let mut path: Vec<&ProductId> = vec![*remaining.keys().next().expect("non-empty")];
        loop {
            let current = path[path.len() - 1];
            let next = *remaining[current].iter().next().expect("stuck products have stuck dependencies");
            if let Some(start) = path.iter().position(|p| *p == next) {
                let mut cycle: Vec<ProductId> = path[start..].iter().map(|p| (*p).clone()).collect();
                // Start the cycle at its smallest member so the message is stable.
                let min = cycle.iter().enumerate().min_by_key(|(_, id)| (*id).clone()).map(|(i, _)| i).unwrap_or(0);
                cycle.rotate_left(min);
                return Err(cycle);
            }
            path.push(next);
        }
    }

    /// Products that read `id`, directly.
    pub fn downstream(&self, id: &ProductId) -> Vec<ProductId> {
        self.products.values().filter(|e| e.descriptor.upstream().any(|u| u == id)).map(|e| e.descriptor.id()).collect()
    }

    /// Products that read `id` directly or through others, without `id` itself.
    pub fn downstream_of(&self, id: &ProductId) -> BTreeSet<ProductId> {
        let mut found = BTreeSet::new();
        let mut frontier = vec![id.clone()];
        while let Some(current) = frontier.pop() {
            for candidate in self.downstream(&current) {
                if candidate != *id && found.insert(candidate.clone()) {
                    frontier.push(candidate);
                }
            }
        }
        found
    }
}

/// A stable fingerprint of a descriptor (including its transform SQL): equal descriptors give
/// equal fingerprints, whatever their comments or key order in YAML.
pub fn descriptor_hash(descriptor: &ProductDescriptor) -> String {
    let json = serde_json::to_vec(descriptor).expect("descriptors serialize");
    hex::encode(Sha256::digest(json))
}
