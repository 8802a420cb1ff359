//! Catalog search: the published products a principal may read whose text matches some words.
//!
//! A [`ProductIndex`] is built once per catalog generation (descriptors parsed, an inverted
//! index from lowercased words to products) and shared by every request until something is
//! published or governance changes. A query word matches the start of a word of a product's
//! address, title, description, owner or tags (`ord` finds `sales.orders`); every query word
//! must match. Searching narrows by words and domain first, through the index, and asks the
//! authorizer only about those candidates, so a search over 100k products reads a few posting
//! lists and decides access for the few products it returns.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use meshwork_catalog::ProductRecord;
use meshwork_core::principal::Principal;

use crate::Governance;

/// One indexed product.
#[derive(Debug)]
struct Entry {
    record: ProductRecord,
}

/// The words of a text, as the index stores them: runs of letters and digits, lowercased.
fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase)
}

/// What to search for.
#[derive(Debug, Clone, Default)]
pub struct SearchQuery {
    /// Words that must all match (case-insensitively) the start of a word of a product's
    /// address, title, description, owner or tags. No words matches every product.
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
    /// Products in address order; postings refer to them by position.
    entries: Vec<Entry>,
    /// Every word to the positions of the products containing it, ascending.
    postings: BTreeMap<String, Vec<u32>>,
    /// Access decisions already made, per principal (compared in full): for each product
    /// `UNKNOWN`, `VISIBLE` or `HIDDEN`. Valid for the life of the index, which is one catalog
    /// generation, the same span a governance snapshot is valid for.
    visibility: Mutex<HashMap<String, (Principal, Arc<Vec<AtomicU8>>)>>,
}

const UNKNOWN: u8 = 0;
const VISIBLE: u8 = 1;
const HIDDEN: u8 = 2;

impl ProductIndex {
    /// Indexes `records` (as returned by the catalog, in address order) at `generation`.
    pub fn build(generation: i64, records: Vec<ProductRecord>) -> ProductIndex {
        let mut postings: BTreeMap<String, Vec<u32>> = BTreeMap::new();
        let mut entries = Vec::with_capacity(records.len());
        for (position, record) in records.into_iter().enumerate() {
            let position = u32::try_from(position).expect("fewer than 4 billion products");
            let text = [
                record.id.to_string().as_str(),
                record.title.as_deref().unwrap_or_default(),
                record.description.as_deref().unwrap_or_default(),
                record.owner.as_deref().unwrap_or_default(),
                &record.tags.join(" "),
            ]
            .join(" ");
            let mut seen = HashSet::new();
            for word in words(&text) {
                if seen.insert(word.clone()) {
                    postings.entry(word).or_default().push(position);
                }
            }
            entries.push(Entry { record });
        }
        ProductIndex { generation, entries, postings, visibility: Mutex::default() }
    }

    /// Positions of the products having a word that starts with `prefix`, ascending.
    fn matching(&self, prefix: &str) -> Vec<u32> {
        let mut found: Vec<u32> = self
            .postings
            .range(prefix.to_owned()..)
            .take_while(|(word, _)| word.starts_with(prefix))
            .flat_map(|(_, positions)| positions.iter().copied())
            .collect();
        found.sort_unstable();
        found.dedup();
        found
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
    /// principal may not read are skipped exactly as if they did not exist. `governance` must be
    /// the one of the index's catalog generation (as [`crate::QueryEngine`] hands out): the
    /// decisions are remembered per principal for the life of the index.
    pub fn search<'a>(&'a self, governance: &Governance, principal: &Principal, query: &SearchQuery) -> Vec<&'a ProductRecord> {
        let limit = query.limit.unwrap_or(usize::MAX);
        // Candidates: the intersection of each query word's matches, smallest lists first
        // narrowing the rest; `None` means every product.
        let mut lists: Vec<Vec<u32>> = query.words.iter().flat_map(|w| words(w).collect::<Vec<_>>()).map(|w| self.matching(&w)).collect();
        lists.sort_by_key(Vec::len);
        let candidates: Option<Vec<u32>> = lists.into_iter().reduce(|narrowed, next| {
            let next: HashSet<u32> = next.into_iter().collect();
            narrowed.into_iter().filter(|p| next.contains(p)).collect()
        });
        let positions: Box<dyn Iterator<Item = usize>> = match candidates {
            Some(list) => Box::new(list.into_iter().map(|p| p as usize)),
            None => Box::new(0..self.entries.len()),
        };
        let decided = self.decided(principal);
        let mut found = Vec::new();
        for position in positions {
            if found.len() >= limit {
                break;
            }
            let entry = &self.entries[position];
            if query.domain.as_deref().is_some_and(|d| entry.record.id.domain.as_str() != d) {
                continue;
            }
            let visible = match decided[position].load(Ordering::Relaxed) {
                VISIBLE => true,
                HIDDEN => false,
                _ => {
                    let allowed = governance.decide(principal, &entry.record.descriptor).allowed;
                    decided[position].store(if allowed { VISIBLE } else { HIDDEN }, Ordering::Relaxed);
                    allowed
                }
            };
            if visible {
                found.push(&entry.record);
            }
        }
        found
    }

    /// The decisions remembered for `principal`, empty for a principal not seen before (or
    /// changed since: groups, domains or attributes).
    fn decided(&self, principal: &Principal) -> Arc<Vec<AtomicU8>> {
        let mut visibility = self.visibility.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some((seen, decided)) = visibility.get(&principal.name)
            && seen == principal
        {
            return decided.clone();
        }
        let decided: Arc<Vec<AtomicU8>> = Arc::new(self.entries.iter().map(|_| AtomicU8::new(UNKNOWN)).collect());
        visibility.insert(principal.name.clone(), (principal.clone(), decided.clone()));
        decided
    }
}
