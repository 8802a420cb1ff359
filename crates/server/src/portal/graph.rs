//! The lineage graph of a product page: its upstream and downstream products, drawn as an SVG
//! in layers (one column per distance from the product), each box a link to its page.
//!
//! Only products the viewer may read are placed, and the walk goes on only through them: a
//! product behind a hidden one is not shown either, so the drawing never hints at a gap.

use std::collections::{BTreeMap, HashMap};

use maud::{Markup, html};
use meshwork_catalog::LineageEdge;
use meshwork_core::id::ProductId;

/// How many layers are drawn on each side of the product.
const MAX_DEPTH: i32 = 3;
/// Products drawn per layer; the rest are counted in a last box.
const MAX_PER_LAYER: usize = 10;
const BOX_W: f64 = 190.0;
const BOX_H: f64 = 34.0;
const GAP_X: f64 = 48.0;
const GAP_Y: f64 = 14.0;
/// Characters of a product address shown in a box; the whole address is its tooltip.
const LABEL_CHARS: usize = 24;

/// The products placed around one product, each with its layer: negative upstream, positive
/// downstream, 0 for the product itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LineageGraph {
    /// Placed products and their layers, the product itself first.
    pub(crate) nodes: Vec<(ProductId, i32)>,
    /// Edges between placed products, upstream first.
    pub(crate) edges: Vec<(ProductId, ProductId)>,
    /// Products left out of a full layer, by layer.
    pub(crate) elided: BTreeMap<i32, usize>,
}

impl LineageGraph {
    /// Walks `edges` from `center` both ways, breadth first, through products `visible` accepts
    /// only, up to [`MAX_DEPTH`] layers each side.
    pub(crate) fn around(center: &ProductId, edges: &[LineageEdge], visible: impl Fn(&ProductId) -> bool) -> LineageGraph {
        let mut layer: HashMap<ProductId, i32> = HashMap::from([(center.clone(), 0)]);
        let mut order = vec![(center.clone(), 0)];
        for direction in [-1, 1] {
            let mut frontier = vec![center.clone()];
            for depth in 1..=MAX_DEPTH {
                let mut next: Vec<ProductId> = edges
                    .iter()
                    .filter_map(|e| match direction {
                        -1 if frontier.contains(&e.downstream) => Some(e.upstream.clone()),
                        1 if frontier.contains(&e.upstream) => Some(e.downstream.clone()),
                        _ => None,
                    })
                    .filter(|p| visible(p) && !layer.contains_key(p))
                    .collect();
                next.sort();
                next.dedup();
                for p in &next {
                    layer.insert(p.clone(), direction * depth);
                    order.push((p.clone(), direction * depth));
                }
                frontier = next;
            }
        }
        let mut elided = BTreeMap::new();
        let mut nodes = Vec::new();
        let mut per_layer: HashMap<i32, usize> = HashMap::new();
        for (p, l) in order {
            let n = per_layer.entry(l).or_default();
            if *n < MAX_PER_LAYER {
                *n += 1;
                nodes.push((p, l));
            } else {
                *elided.entry(l).or_default() += 1;
            }
        }
        let placed = |p: &ProductId| nodes.iter().any(|(n, _)| n == p);
        let mut shown: Vec<(ProductId, ProductId)> =
            edges.iter().filter(|e| placed(&e.upstream) && placed(&e.downstream)).map(|e| (e.upstream.clone(), e.downstream.clone())).collect();
        shown.sort();
        shown.dedup();
        LineageGraph { nodes, edges: shown, elided }
    }

    /// The products upstream (negative layers) and downstream (positive), nearest first.
    pub(crate) fn side(&self, downstream: bool) -> Vec<&ProductId> {
        let mut side: Vec<&(ProductId, i32)> = self.nodes.iter().filter(|(_, l)| if downstream { *l > 0 } else { *l < 0 }).collect();
        side.sort_by_key(|(p, l)| (l.abs(), p.clone()));
        side.into_iter().map(|(p, _)| p).collect()
    }

    /// The graph as an SVG: columns by layer, boxes as links to product pages, the product
    /// itself highlighted and not linked.
    pub(crate) fn render(&self) -> Markup {
        let first = self.nodes.iter().map(|(_, l)| *l).min().unwrap_or(0);
        let last = self.nodes.iter().map(|(_, l)| *l).max().unwrap_or(0);
        let mut rows: BTreeMap<i32, usize> = BTreeMap::new();
        let mut at: HashMap<&ProductId, (f64, f64)> = HashMap::new();
        for (p, l) in &self.nodes {
            let row = rows.entry(*l).or_default();
            at.insert(p, (f64::from(l - first) * (BOX_W + GAP_X), *row as f64 * (BOX_H + GAP_Y)));
            *row += 1;
        }
        for (l, n) in &self.elided {
            *rows.entry(*l).or_default() += usize::from(*n > 0);
        }
        let tallest = rows.values().copied().max().unwrap_or(1);
        let width = f64::from(last - first + 1) * (BOX_W + GAP_X) - GAP_X;
        let height = tallest as f64 * (BOX_H + GAP_Y) - GAP_Y;
        let label = format!("lineage: {} upstream and {} downstream products", self.side(false).len(), self.side(true).len());
        html! {
            svg.lineage-graph viewBox=(format!("0 0 {width} {height}")) width=(width) height=(height) role="img" aria-label=(label) {
                title { (label) }
                @for (from, to) in &self.edges {
                    @if let (Some((x1, y1)), Some((x2, y2))) = (at.get(from), at.get(to)) {
                        path.lineage-edge d=(edge_path((x1 + BOX_W, y1 + BOX_H / 2.0), (*x2, y2 + BOX_H / 2.0))) {}
                    }
                }
                @for (p, l) in &self.nodes {
                    @let (x, y) = at[p];
                    @if *l == 0 {
                        g.lineage-node.lineage-current {
                            title { (p) }
                            rect x=(x) y=(y) width=(BOX_W) height=(BOX_H) rx="4" {}
                            text x=(x + 10.0) y=(y + BOX_H / 2.0 + 5.0) { (short(p)) }
                        }
                    } @else {
                        a.lineage-node href=(format!("/products/{p}")) {
                            title { (p) }
                            rect x=(x) y=(y) width=(BOX_W) height=(BOX_H) rx="4" {}
                            text x=(x + 10.0) y=(y + BOX_H / 2.0 + 5.0) { (short(p)) }
                        }
                    }
                }
                @for (l, n) in &self.elided {
                    @let x = f64::from(l - first) * (BOX_W + GAP_X);
                    @let y = (rows[l] - 1) as f64 * (BOX_H + GAP_Y);
                    text.lineage-more x=(x + 10.0) y=(y + BOX_H / 2.0 + 5.0) { "and " (n) " more" }
                }
            }
        }
    }
}

/// A gentle S-curve from the right edge of one box to the left edge of another.
fn edge_path(from: (f64, f64), to: (f64, f64)) -> String {
    let mid = (from.0 + to.0) / 2.0;
    format!("M{} {} C{mid} {} {mid} {} {} {}", from.0, from.1, from.1, to.1, to.0, to.1)
}

/// A product address cut to fit its box.
fn short(p: &ProductId) -> String {
    let text = p.to_string();
    if text.chars().count() <= LABEL_CHARS {
        return text;
    }
    let mut cut: String = text.chars().take(LABEL_CHARS - 1).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(text: &str) -> ProductId {
        text.parse().unwrap()
    }

    fn edge(up: &str, down: &str) -> LineageEdge {
        LineageEdge { upstream: id(up), downstream: id(down) }
    }

    #[test]
    fn layers_follow_distance_and_stop_at_hidden_products() {
        let edges = [edge("a.raw", "a.clean"), edge("a.clean", "a.mart"), edge("h.secret", "a.clean"), edge("x.before", "h.secret"), edge("a.mart", "b.report")];
        let graph = LineageGraph::around(&id("a.mart"), &edges, |p| p.domain.as_str() != "h");
        assert_eq!(graph.nodes, vec![(id("a.mart"), 0), (id("a.clean"), -1), (id("a.raw"), -2), (id("b.report"), 1)]);
        assert_eq!(graph.edges, vec![(id("a.clean"), id("a.mart")), (id("a.mart"), id("b.report")), (id("a.raw"), id("a.clean"))]);
        let svg = graph.render().into_string();
        assert!(!svg.contains("secret") && !svg.contains("x.before"), "{svg}");
        assert!(svg.contains(r#"href="/products/a.raw""#), "{svg}");
        assert!(!svg.contains(r#"href="/products/a.mart""#), "the product itself is not a link: {svg}");
        assert!(!svg.contains("style="), "{svg}");
    }

    #[test]
    fn a_full_layer_counts_the_rest() {
        let edges: Vec<LineageEdge> = (0..13).map(|i| edge(&format!("a.in{i:02}"), "a.out")).collect();
        let graph = LineageGraph::around(&id("a.out"), &edges, |_| true);
        assert_eq!(graph.side(false).len(), MAX_PER_LAYER);
        assert_eq!(graph.elided, BTreeMap::from([(-1, 3)]));
        assert!(graph.render().into_string().contains("and 3 more"));
    }

    #[test]
    fn long_addresses_are_cut() {
        assert_eq!(short(&id("marketing.campaign_attribution_daily")), "marketing.campaign_attr…");
    }
}
