//! `meshwork product lineage`: product and column lineage across the mesh, as text, JSON,
//! Graphviz dot or Mermaid, restricted to the products the caller may see.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;

use clap::ValueEnum;
use meshwork_core::id::ProductId;
use meshwork_core::lineage::{ColumnSource, ProductLineage};
use serde_json::json;

use crate::commands::{open_as, visible_product};
use crate::output::text_table;

/// Output format of `product lineage`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LineageFormat {
    /// Human-readable text.
    Text,
    /// JSON for scripts.
    Json,
    /// A Graphviz `digraph`.
    Dot,
    /// A Mermaid `flowchart`.
    Mermaid,
}

/// Which way to follow lineage from the product.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// The products it is built from, transitively.
    Upstream,
    /// The products built from it, transitively.
    Downstream,
    /// Both.
    Both,
}

impl Direction {
    fn describe(self) -> &'static str {
        match self {
            Direction::Upstream => "upstream",
            Direction::Downstream => "downstream",
            Direction::Both => "upstream and downstream",
        }
    }
}

/// The part of the mesh's lineage one command shows.
struct View {
    root: ProductId,
    direction: Direction,
    /// Products in view, the root included.
    products: BTreeSet<ProductId>,
    /// `(upstream, downstream)` edges between products in view.
    edges: BTreeSet<(ProductId, ProductId)>,
    /// Column lineage of the products in view, sources limited to products in view and files;
    /// `None` without `--columns`.
    columns: Option<BTreeMap<ProductId, ProductLineage>>,
}

/// `meshwork product lineage`.
pub async fn product_lineage(
    dir: &Path,
    principal: Option<&str>,
    name: &str,
    columns: bool,
    direction: Direction,
    format: LineageFormat,
) -> anyhow::Result<()> {
    let (catalog, governance, principal) = open_as(dir, principal).await?;
    let (root, _) = visible_product(catalog.as_ref(), &governance, &principal, name).await?;
    let records = catalog.products().await?;
    let visible: BTreeSet<ProductId> = governance.visible(&principal, &records).into_iter().map(|r| r.id.clone()).collect();
    // Only edges between visible products: lineage is never followed through a product the
    // caller may not see, so a hidden product cannot be inferred from a gap.
    let edges: Vec<(ProductId, ProductId)> = catalog
        .lineage()
        .await?
        .into_iter()
        .filter(|e| visible.contains(&e.upstream) && visible.contains(&e.downstream))
        .map(|e| (e.upstream, e.downstream))
        .collect();
    let mut products = BTreeSet::from([root.clone()]);
    if direction != Direction::Downstream {
        reach(&root, &edges, |(up, down)| (down, up), &mut products);
    }
    if direction != Direction::Upstream {
        reach(&root, &edges, |(up, down)| (up, down), &mut products);
    }
    let edges: BTreeSet<(ProductId, ProductId)> = edges.into_iter().filter(|(up, down)| products.contains(up) && products.contains(down)).collect();
    let columns = if columns {
        let mut all = catalog.current_column_lineage().await?;
        all.retain(|id, _| products.contains(id));
        for lineage in all.values_mut() {
            for column in &mut lineage.columns {
                column.sources.retain(|s| s.product.as_ref().is_none_or(|p| products.contains(p)));
            }
        }
        Some(all)
    } else {
        None
    };
    let view = View { root, direction, products, edges, columns };
    match format {
        LineageFormat::Text => print!("{}", text(&view)),
        LineageFormat::Json => println!("{}", serde_json::to_string_pretty(&json_value(&view)).expect("json")),
        LineageFormat::Dot => print!("{}", dot(&view)),
        LineageFormat::Mermaid => print!("{}", mermaid(&view)),
    }
    Ok(())
}

/// Adds every product reachable from `start` along `edges` (oriented by `orient` as
/// `(from, to)`) to `seen`.
fn reach<'e>(
    start: &ProductId,
    edges: &'e [(ProductId, ProductId)],
    orient: impl Fn((&'e ProductId, &'e ProductId)) -> (&'e ProductId, &'e ProductId),
    seen: &mut BTreeSet<ProductId>,
) {
    let mut stack = vec![start.clone()];
    let mut visited = BTreeSet::from([start.clone()]);
    while let Some(at) = stack.pop() {
        for (from, to) in edges.iter().map(|(a, b)| orient((a, b))) {
            if *from == at && visited.insert(to.clone()) {
                seen.insert(to.clone());
                stack.push(to.clone());
            }
        }
    }
}

/// `sales.orders.amount`, or `raw.amount (file)` for a file input.
fn source_name(source: &ColumnSource) -> String {
    match &source.product {
        Some(product) => format!("{product}.{}", source.column),
        None => format!("{}.{} (file)", source.input, source.column),
    }
}

fn text(view: &View) -> String {
    let mut out = format!("lineage of {} ({}):\n", view.root, view.direction.describe());
    if view.edges.is_empty() {
        out.push_str("  no other products\n");
    }
    for (up, down) in &view.edges {
        let _ = writeln!(out, "  {up} -> {down}");
    }
    if let Some(columns) = &view.columns {
        let rows: Vec<Vec<String>> = columns
            .iter()
            .flat_map(|(id, lineage)| {
                lineage.columns.iter().flat_map(move |column| {
                    column.sources.iter().map(move |s| {
                        vec![
                            format!("  {id}.{}", column.name),
                            source_name(s),
                            s.derivation.as_str().to_owned(),
                            if s.carries_value { "yes".into() } else { "no".into() },
                        ]
                    })
                })
            })
            .collect();
        out.push_str("\ncolumns:\n");
        out.push_str(&text_table(&["  COLUMN", "SOURCE", "DERIVATION", "CARRIES VALUE"], &rows));
    }
    out
}

fn json_value(view: &View) -> serde_json::Value {
    let mut value = json!({
        "product": view.root.to_string(),
        "direction": view.direction.describe(),
        "products": view.products.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "edges": view.edges.iter().map(|(up, down)| json!({ "upstream": up.to_string(), "downstream": down.to_string() })).collect::<Vec<_>>(),
    });
    if let Some(columns) = &view.columns {
        value["columns"] = columns.iter().map(|(id, lineage)| (id.to_string(), json!(lineage.columns))).collect::<serde_json::Map<_, _>>().into();
    }
    value
}

/// A Mermaid node id: letters, digits and `_` only.
fn mermaid_id(text: &str) -> String {
    text.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect()
}

/// Where a column source sits in a graph: the product's column node, or the file input's.
fn source_node(consumer: &ProductId, source: &ColumnSource) -> (String, String) {
    match &source.product {
        Some(product) => (format!("{product}.{}", source.column), source.column.clone()),
        None => (format!("{consumer}:{}.{}", source.input, source.column), format!("{}.{} (file)", source.input, source.column)),
    }
}

fn dot(view: &View) -> String {
    let mut out = String::from("digraph lineage {\n  rankdir=LR;\n");
    match &view.columns {
        None => {
            for product in &view.products {
                let _ = writeln!(out, "  \"{product}\" [shape=box];");
            }
            for (up, down) in &view.edges {
                let _ = writeln!(out, "  \"{up}\" -> \"{down}\";");
            }
        }
        Some(columns) => {
            let (clusters, files, edges) = column_graph(view, columns);
            for (i, (product, nodes)) in clusters.iter().enumerate() {
                let _ = writeln!(out, "  subgraph cluster_{i} {{\n    label=\"{product}\";");
                for (id, label) in nodes {
                    let _ = writeln!(out, "    \"{id}\" [label=\"{label}\", shape=box];");
                }
                out.push_str("  }\n");
            }
            for (id, label) in &files {
                let _ = writeln!(out, "  \"{id}\" [label=\"{label}\", shape=note];");
            }
            for (from, to, derivation) in &edges {
                let _ = writeln!(out, "  \"{from}\" -> \"{to}\" [label=\"{derivation}\"];");
            }
        }
    }
    out.push_str("}\n");
    out
}

fn mermaid(view: &View) -> String {
    let mut out = String::from("flowchart LR\n");
    match &view.columns {
        None => {
            for product in &view.products {
                let _ = writeln!(out, "  {}[\"{product}\"]", mermaid_id(&product.to_string()));
            }
            for (up, down) in &view.edges {
                let _ = writeln!(out, "  {} --> {}", mermaid_id(&up.to_string()), mermaid_id(&down.to_string()));
            }
        }
        Some(columns) => {
            let (clusters, files, edges) = column_graph(view, columns);
            for (product, nodes) in &clusters {
                let _ = writeln!(out, "  subgraph {}[\"{product}\"]", mermaid_id(product));
                for (id, label) in nodes {
                    let _ = writeln!(out, "    {}[\"{label}\"]", mermaid_id(id));
                }
                out.push_str("  end\n");
            }
            for (id, label) in &files {
                let _ = writeln!(out, "  {}[/\"{label}\"/]", mermaid_id(id));
            }
            for (from, to, derivation) in &edges {
                let _ = writeln!(out, "  {} -->|{derivation}| {}", mermaid_id(from), mermaid_id(to));
            }
        }
    }
    out
}

/// Column nodes by product (`id`, label), file input nodes, and `(from, to, derivation)` edges.
type ColumnGraph = (BTreeMap<String, BTreeSet<(String, String)>>, BTreeSet<(String, String)>, Vec<(String, String, &'static str)>);

fn column_graph(view: &View, columns: &BTreeMap<ProductId, ProductLineage>) -> ColumnGraph {
    let mut clusters: BTreeMap<String, BTreeSet<(String, String)>> = BTreeMap::new();
    let mut files = BTreeSet::new();
    let mut edges = Vec::new();
    for product in &view.products {
        clusters.entry(product.to_string()).or_default();
    }
    for (id, lineage) in columns {
        for column in &lineage.columns {
            let target = format!("{id}.{}", column.name);
            clusters.entry(id.to_string()).or_default().insert((target.clone(), column.name.clone()));
            for source in &column.sources {
                let (node, label) = source_node(id, source);
                match &source.product {
                    Some(product) => {
                        clusters.entry(product.to_string()).or_default().insert((node.clone(), label));
                    }
                    None => {
                        files.insert((node.clone(), label));
                    }
                }
                edges.push((node, target.clone(), source.derivation.as_str()));
            }
        }
    }
    (clusters, files, edges)
}
