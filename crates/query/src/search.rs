//! Catalog search: the published products a principal may read whose text matches some words.
//!
//! A [`ProductIndex`] is built once per catalog generation (descriptors parsed, search text
//! lowercased) and shared by every request until something is published or governance changes.
//! Searching filters by text and domain first, which is cheap, and asks the authorizer only
//! about the matches, so a search over 100k products decides access for the few it returns
//! rather than for the whole catalog.

use std::sync::Arc;

use meshwork_catalog::ProductRecord;
use meshwork_core::descriptor::ProductDescriptor;
use meshwork_core::principal::Principal;

use crate::Governance;

/// One indexed product.
#[derive(Debug)]
struct Entry {
    record: ProductRecord,
    /// `None` when the stored descriptor does not parse: such a product is never visible.
    descriptor: Option<Arc<ProductDescriptor>>,
    /// Address, title, description, owner and tags, lowercased, space separated.
    text: String,
}

/// What to search for.
#[derive(Debug, Clone, Default)]
pub struct SearchQuery {
    /// Words that must all appear (case-insensitive substrings) in a product's address, title,
    /// description, owner or tags. No words matches every product.
    pub words: Vec<String>,
    /// Only products of this domain.
    pub domain: Option<String>,
    /// At most this many results (in address order).
    pub limit: Option<usize>,
}

impl SearchQuery {
    /// A query from free text, split on whitespace.
    pub fn text(text: &str) -> SearchQuery {
        SearchQuery { words: text.split_whitespace().map(str::to_lowercase).collect(), ..SearchQuery::default() }
    }
}

/// The searchable catalog at one generation.
#[derive(Debug)]
pub struct ProductIndex {
    generation: i64,
    entries: Vec<Entry>,
}

impl ProductIndex {
    /// Indexes `records` (as returned by the catalog, in address order) at `generation`.
    pub fn build(generation: i64, records: Vec<ProductRecord>) -> ProductIndex {
        let entries = records
            .into_iter()
            .map(|record| {
                let descriptor = serde_json::from_str::<ProductDescriptor>(&record.descriptor_json).ok().map(Arc::new);
                let text = format!(
                    "{} {} {} {} {}",
                    record.id,
                    record.title.as_deref().unwrap_or_default(),
                    record.description.as_deref().unwrap_or_default(),
                    record.owner.as_deref().unwrap_or_default(),
                    record.tags.join(" ")
                )
                .to_lowercase();
                Entry { record, descriptor, text }
            })
            .collect();
        ProductIndex { generation, entries }
    }

    /// The catalog generation this index reflects.
    pub fn generation(&self) -> i64 {
        self.generation
    }

    /// Number of products indexed (readable or not).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the catalog has no products.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The products matching `query` that `principal` may read, in address order. Products the
    /// principal may not read are skipped exactly as if they did not exist.
    pub fn search<'a>(&'a self, governance: &Governance, principal: &Principal, query: &SearchQuery) -> Vec<&'a ProductRecord> {
        let limit = query.limit.unwrap_or(usize::MAX);
        let words: Vec<String> = query.words.iter().map(|w| w.to_lowercase()).collect();
        let mut found = Vec::new();
        for entry in &self.entries {
            if found.len() >= limit {
                break;
            }
            if query.domain.as_deref().is_some_and(|d| entry.record.id.domain.as_str() != d) {
                continue;
            }
            if !words.iter().all(|w| entry.text.contains(w.as_str())) {
                continue;
            }
            let Some(descriptor) = &entry.descriptor else { continue };
            if governance.decide(principal, descriptor).allowed {
                found.push(&entry.record);
            }
        }
        found
    }
}
