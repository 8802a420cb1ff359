//! Catalog search: the published products a principal may see, ranked by how well their text
//! matches some words, with facet counts over exactly those products.
//!
//! **Index.** A [`ProductIndex`] is built once per catalog generation (every publication and
//! governance change bumps it) and shared by every request. Each product contributes the words
//! (runs of letters and digits, lowercased) of eight fields: its name, title, tags, domain (name
//! and the domain's title), owner, column names, description and column descriptions, all read
//! from the stored records, whose descriptors the store has already decoded. The vocabulary is
//! an `fst` set (term → term id) and each term has a posting list of the products holding it.
//!
//! **Ranking.** BM25F: a term's frequency in each field is weighted (name and title 3, tags 2,
//! domain and owner 1.5, column names 1, description 0.6, column descriptions 0.4) and
//! normalised by the field's length against a fixed typical length, then saturated (k1 = 1.2,
//! b = 0.75). No inverse document frequency and no catalog-wide averages: a product's score
//! depends on that product alone, so products a principal may not read never move the score or
//! rank of one it may read. The score of a posting does not depend on the query, so it is
//! computed at build time. A query word scores, per product, its best
//! matching term, times 1 for the exact word, 0.7 for a word it starts (`cust` → `customers`) and
//! 0.45 for a word within its edit distance (`custmer` → `customers`); so with equal text an
//! exact match ranks above a prefix, and a prefix above a typo. A product must match every query
//! word (in any field); its score is the sum over the words. Equal scores keep address order.
//!
//! **Typos.** A word of 4 to 7 characters matches terms within Levenshtein distance 1, of 8 or
//! more within distance 2, shorter words none; from 6 characters on, terms *starting with*
//! something within that distance match too, so a typo in a word typed so far still finds the
//! longer word (`custmer` → `customers`); for shorter words such a prefix would be 3–4 letters and
//! start far too many terms. Each word is also a prefix. Both go through `fst`'s automata over the
//! vocabulary: `Str::starts_with` and `Levenshtein` (with `starts_with`). fst builds a
//! Levenshtein DFA per query word, a cost that grows with the word and the distance; the
//! benchmark's typo queries (words of 4–12 letters, the long ones at distance 2, DFA built per
//! search) cost about what its exact-word queries cost at 100k products (p50 0.6 vs 0.8 ms, p99
//! 5.2 vs 4.4 ms in the dev profile, docs/benchmarks.md), well inside the 10 ms budget, so no
//! deletion-neighbourhood index is kept.
//! A DFA over fst's state limit (very long words) falls back to distance 1, then to no typo
//! matching for that word.
//!
//! **Facets.** Domain, tag, column classification, lifecycle status (`draft`, `active`,
//! `deprecated`, or `sunset` once past its sunset date), the latest quality run's outcome
//! (`passed`, `warned`, `failed`, `none`) and the SLO state (`met` while no objective's latest
//! evaluation is violated, `breached` when one is, `unknown` without evaluations). Filters are
//! ANDed across facets and ORed within one. A facet's counts are over the products that match the
//! text and every *other* facet's filter (so choosing a domain still shows the other domains'
//! counts), and only over products the principal may see: a hidden product is never counted.
//!
//! **Access.** Searching narrows by words and filters first, through the index, and asks the
//! authorizer only about the candidates left, the same `Governance::decide` a query asks, so a
//! product a principal cannot query is neither listed nor counted — unless its owners made it
//! `discoverable` (and the request asks for cards): then it is found as its public card, by the
//! card's fields alone (name, title, tags, domain, owner, description; never its columns or
//! their descriptions, so a search cannot probe a contract it may not read). A card is counted
//! only in the facets a card shows (domain, tag, status), is left out when the classification,
//! quality or SLO facet is filtered on, and its hit carries no quality or SLO state. Decisions are
//! remembered per principal ([`Decided`]) for the life of the index, the span a governance
//! snapshot is valid for. The first search of a principal after a publication therefore decides
//! up to every product once (an empty query at 100k products: about a second); later ones reuse
//! it.
//!
//! **Health.** Quality and SLO states live in a [`ProductHealth`] beside the index, not in it:
//! a failed quality run (recorded without a publication) and SLO evaluations do not bump the
//! catalog generation, so the engine keys the health on the catalog's [`OperationsMark`] (the
//! newest run and evaluation ids) and rebuilds only it, with one read of the latest state of every
//! product, when that mark moves.
//!
//! [`OperationsMark`]: meshwork_catalog::OperationsMark

mod facets;
mod health;
mod index;
mod run;
mod terms;
#[cfg(test)]
mod tests;

use meshwork_catalog::ProductRecord;
use meshwork_core::descriptor::Classification;

use crate::access::Visibility;

pub use facets::{FacetCount, Facets};
pub use health::ProductHealth;
pub use index::ProductIndex;

meshwork_core::keyword_enum! {
    /// Where a product stands in its lifecycle, as search shows and filters it.
    pub enum ProductState ("product status") {
        /// Being built; not promised to consumers.
        Draft => "draft",
        /// Served and supported.
        Active => "active",
        /// Served with a warning until its sunset date.
        Deprecated => "deprecated",
        /// Past its sunset date: no longer served.
        Sunset => "sunset",
    }
}

meshwork_core::keyword_enum! {
    /// The outcome of a product's latest quality run.
    pub enum QualityState ("quality state") {
        /// Every rule passed.
        Passed => "passed",
        /// Only `warn` rules failed.
        Warned => "warned",
        /// An `error` rule failed; the run published nothing.
        Failed => "failed",
        /// The product was never built with its rules checked.
        None => "none",
    }
}

meshwork_core::keyword_enum! {
    /// Whether a product meets its service level objectives, from their latest evaluations.
    pub enum SloState ("slo state") {
        /// Every evaluated objective is met (possibly at risk).
        Met => "met",
        /// At least one objective is violated.
        Breached => "breached",
        /// No objective was evaluated (or none could be measured).
        Unknown => "unknown",
    }
}

meshwork_core::keyword_enum! {
    /// A field of a product that a query word matched.
    pub enum MatchedField ("field") {
        /// The product's name (`orders` of `sales.orders`).
        Name => "name",
        /// The title.
        Title => "title",
        /// A tag.
        Tags => "tags",
        /// The domain's name or title.
        Domain => "domain",
        /// The owner.
        Owner => "owner",
        /// A column name of the contract.
        Column => "column",
        /// The description.
        Description => "description",
        /// A column description of the contract.
        ColumnDescription => "column_description",
    }
}

/// What search has decided about a product for one principal, kept as a byte so the
/// per-principal tables can be shared between concurrent searches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(super) enum Decided {
    /// Not decided yet.
    Undecided = 0,
    /// Readable: listed, counted and shown in full.
    Readable = 1,
    /// Not readable: never listed nor counted, exactly as if it did not exist.
    Hidden = 2,
    /// Not readable but discoverable: listed and counted as its public card (card fields only).
    Card = 3,
}

impl Decided {
    fn from_byte(byte: u8) -> Decided {
        match byte {
            1 => Decided::Readable,
            2 => Decided::Hidden,
            3 => Decided::Card,
            _ => Decided::Undecided,
        }
    }
}

/// What to search for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchRequest {
    /// Free text; every word must match a product (exactly, as a prefix or with a typo). Empty
    /// text matches every product, in address order.
    pub text: String,
    /// Facet filters.
    pub filters: FacetFilters,
    /// At most this many hits.
    pub limit: usize,
    /// Hits skipped before the first returned (pagination).
    pub offset: usize,
    /// Whether products the principal cannot read but may discover (`access.discoverable`) are
    /// listed as their public cards. Searching for something to use says yes; listing what one
    /// can query says no.
    pub cards: bool,
}

impl Default for SearchRequest {
    fn default() -> Self {
        SearchRequest { text: String::new(), filters: FacetFilters::default(), limit: DEFAULT_LIMIT, offset: 0, cards: true }
    }
}

/// Hits per page when a request does not say.
pub const DEFAULT_LIMIT: usize = 20;

impl SearchRequest {
    /// A request for `text`, first page, no filters.
    pub fn text(text: &str) -> SearchRequest {
        SearchRequest { text: text.to_owned(), ..SearchRequest::default() }
    }
}

/// Facet filters: a product must match at least one value of every facet that has values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FacetFilters {
    /// Domains (names).
    pub domain: Vec<String>,
    /// Tags, as written.
    pub tag: Vec<String>,
    /// Classifications present among the product's columns.
    pub classification: Vec<Classification>,
    /// Lifecycle states.
    pub status: Vec<ProductState>,
    /// Latest quality outcomes.
    pub quality: Vec<QualityState>,
    /// SLO states.
    pub slo: Vec<SloState>,
}

/// One product found.
#[derive(Debug, Clone)]
pub struct SearchHit {
    /// The product as the catalog stores it. For a [`Visibility::Card`] hit, show only what
    /// [`crate::ProductCard`] holds: the record also carries its contract.
    pub record: ProductRecord,
    /// Whether the principal reads it or sees only its public card.
    pub visibility: Visibility,
    /// Its lifecycle state today.
    pub status: ProductState,
    /// Its latest quality outcome; `None` on a card.
    pub quality: Option<QualityState>,
    /// Its SLO state; `None` on a card.
    pub slo: Option<SloState>,
    /// Relevance; 0 for an empty query. Only comparable within one result.
    pub score: f32,
    /// The fields a query word matched, in [`MatchedField`] order.
    pub matched: Vec<MatchedField>,
}

/// A page of results.
#[derive(Debug, Clone)]
pub struct SearchResults {
    /// How many products match in all (readable, or cards when asked for), across every page.
    pub total: usize,
    /// This page, best first.
    pub hits: Vec<SearchHit>,
    /// Counts per facet value.
    pub facets: Facets,
}
