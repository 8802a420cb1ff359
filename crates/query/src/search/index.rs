//! Building the search index of one catalog generation: vocabulary, BM25F postings and the
//! static facet values of every product.

use std::collections::HashMap;
use std::sync::atomic::AtomicU8;
use std::sync::{Arc, Mutex};

use chrono::NaiveDate;
use meshwork_catalog::{DomainRecord, ProductRecord};
use meshwork_core::descriptor::{Classification, ProductStatus};
use meshwork_core::principal::Principal;

use super::{MatchedField, ProductState};

/// Number of indexed fields, one per [`MatchedField`].
pub(super) const FIELDS: usize = 8;

/// Weight of a word in each field, in [`MatchedField`] order: name and title count most, then
/// tags, domain and owner, then column names, then descriptions.
const WEIGHTS: [f32; FIELDS] = [3.0, 3.0, 2.0, 1.5, 1.5, 1.0, 0.6, 0.4];
/// BM25 term-frequency saturation.
const K1: f32 = 1.2;
/// BM25 length normalisation.
const B: f32 = 0.75;
/// The length each field is normalised against, in [`MatchedField`] order, in words. Fixed
/// rather than averaged over the catalog, and no inverse document frequency either: a product's
/// score depends on that product alone, so products a principal may not read can never move the
/// score or the rank of one it may read (catalog-wide statistics would let a reader count hidden
/// products holding a word). With every query word required, the missing IDF changes little.
const TYPICAL: [f32; FIELDS] = [2.0, 4.0, 3.0, 2.0, 2.0, 10.0, 20.0, 40.0];

/// The fields a product's public card shows (name, title, tags, domain, owner, description),
/// one bit per [`MatchedField`]: all a principal who may only discover a product can match.
pub(super) const CARD_FIELDS: u16 = 0b0101_1111;

/// One product's entry in a posting list: its position and what the term is worth in it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Posting {
    pub position: u32,
    /// The BM25F score of the term in this product, from this product's fields alone.
    pub score: f32,
    /// The same from the fields of its public card only ([`CARD_FIELDS`]); 0 when the term is
    /// in none of them.
    pub card_score: f32,
    /// The fields holding the term, one bit per [`MatchedField`].
    pub fields: u16,
}

/// One indexed product with its static facet values.
#[derive(Debug)]
pub(super) struct Entry {
    pub record: ProductRecord,
    /// Index into [`ProductIndex::domains`].
    pub domain: u32,
    /// Indexes into [`ProductIndex::tags`], ascending, without repeats.
    pub tags: Vec<u32>,
    /// The classifications among its columns, one bit per [`Classification::ALL`] entry.
    pub classifications: u8,
    pub status: ProductStatus,
    pub sunset: Option<NaiveDate>,
}

impl Entry {
    /// The lifecycle state a public card shows: the declared one, without the sunset date
    /// (a card does not show it, so search must not reveal whether it has passed).
    pub fn card_state(&self) -> ProductState {
        match self.status {
            ProductStatus::Draft => ProductState::Draft,
            ProductStatus::Active => ProductState::Active,
            ProductStatus::Deprecated => ProductState::Deprecated,
        }
    }

    /// The lifecycle state on `today`.
    pub fn state(&self, today: NaiveDate) -> ProductState {
        match self.status {
            ProductStatus::Draft => ProductState::Draft,
            ProductStatus::Active => ProductState::Active,
            ProductStatus::Deprecated if self.sunset.is_some_and(|s| today >= s) => ProductState::Sunset,
            ProductStatus::Deprecated => ProductState::Deprecated,
        }
    }
}

/// The searchable catalog at one generation.
pub struct ProductIndex {
    pub(super) generation: i64,
    /// Products in address order; everything else refers to them by position.
    pub(super) entries: Vec<Entry>,
    /// Every term to its id, which indexes `postings`.
    pub(super) vocabulary: fst::Map<Vec<u8>>,
    /// Per term, the products holding it, by ascending position.
    pub(super) postings: Vec<Vec<Posting>>,
    /// Distinct domain names, sorted.
    pub(super) domains: Vec<String>,
    /// Distinct tags, sorted.
    pub(super) tags: Vec<String>,
    /// Access decided so far, per principal (compared in full, so a principal whose groups,
    /// domains or attributes changed starts afresh): one [`super::Decided`] byte per product.
    /// Valid for the life of the index, one catalog generation, the span a governance snapshot
    /// is valid for.
    pub(super) visibility: Mutex<HashMap<String, (Principal, Arc<Vec<AtomicU8>>)>>,
}

impl std::fmt::Debug for ProductIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProductIndex").field("generation", &self.generation).field("products", &self.entries.len()).finish_non_exhaustive()
    }
}

/// The words of a text, as the index stores them: runs of letters and digits, lowercased.
pub(super) fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase)
}

/// The text of each field of `record`, in [`MatchedField`] order.
fn field_texts<'a>(record: &'a ProductRecord, domain_title: Option<&'a str>) -> [Vec<&'a str>; FIELDS] {
    let columns = &record.descriptor.contract.columns;
    [
        vec![record.id.name.as_str()],
        record.title.as_deref().into_iter().collect(),
        record.tags.iter().map(String::as_str).collect(),
        [Some(record.id.domain.as_str()), domain_title].into_iter().flatten().collect(),
        record.owner.as_deref().into_iter().collect(),
        columns.iter().map(|c| c.name.as_str()).collect(),
        record.description.as_deref().into_iter().collect(),
        columns.iter().filter_map(|c| c.description.as_deref()).collect(),
    ]
}

impl ProductIndex {
    /// Indexes `records` (as returned by the catalog, in address order) at `generation`, with
    /// the titles of `domains`.
    pub fn build(generation: i64, records: Vec<ProductRecord>, domains: &[DomainRecord]) -> ProductIndex {
        let titles: HashMap<&str, &str> = domains.iter().filter_map(|d| Some((d.name.as_str(), d.title.as_deref()?))).collect();
        // First pass: term frequencies per field and field lengths, terms numbered as met.
        let mut term_ids: HashMap<String, u32> = HashMap::new();
        let mut documents: Vec<(Vec<(u32, [u8; FIELDS])>, [u32; FIELDS])> = Vec::with_capacity(records.len());
        for record in &records {
            let mut frequencies: HashMap<u32, [u8; FIELDS]> = HashMap::new();
            let mut lengths = [0u32; FIELDS];
            for (field, texts) in field_texts(record, titles.get(record.id.domain.as_str()).copied()).iter().enumerate() {
                for word in texts.iter().flat_map(|t| words(t)) {
                    let next = u32::try_from(term_ids.len()).expect("fewer than 4 billion terms");
                    let id = *term_ids.entry(word).or_insert(next);
                    let tf = &mut frequencies.entry(id).or_default()[field];
                    *tf = tf.saturating_add(1);
                    lengths[field] += 1;
                }
            }
            documents.push((frequencies.into_iter().collect(), lengths));
        }
        let mut frequency = vec![0u32; term_ids.len()];
        for (terms, _) in &documents {
            for (id, _) in terms {
                frequency[*id as usize] += 1;
            }
        }
        // Second pass: the postings with their query-independent scores.
        let mut postings: Vec<Vec<Posting>> = frequency.iter().map(|&n| Vec::with_capacity(n as usize)).collect();
        for (position, (terms, lengths)) in documents.into_iter().enumerate() {
            let position = u32::try_from(position).expect("fewer than 4 billion products");
            for (id, tfs) in terms {
                let mut fields = 0u16;
                for (field, tf) in tfs.iter().enumerate() {
                    if *tf > 0 {
                        fields |= 1 << field;
                    }
                }
                let score = bm25f(&tfs, &lengths, u16::MAX);
                let card_score = if fields & CARD_FIELDS != 0 { bm25f(&tfs, &lengths, CARD_FIELDS) } else { 0.0 };
                postings[id as usize].push(Posting { position, score, card_score, fields });
            }
        }
        let mut sorted: Vec<(String, u32)> = term_ids.into_iter().collect();
        sorted.sort_unstable();
        let vocabulary = fst::Map::from_iter(sorted.into_iter().map(|(term, id)| (term, u64::from(id)))).expect("terms are inserted sorted and unique");

        let mut domain_names: Vec<String> = records.iter().map(|r| r.id.domain.to_string()).collect();
        domain_names.sort_unstable();
        domain_names.dedup();
        let mut tag_names: Vec<String> = records.iter().flat_map(|r| r.tags.iter().cloned()).collect();
        tag_names.sort_unstable();
        tag_names.dedup();
        let entries = records
            .into_iter()
            .map(|record| {
                let domain = domain_names.binary_search_by(|d| d.as_str().cmp(record.id.domain.as_str())).expect("every domain is listed") as u32;
                let mut tags: Vec<u32> = record.tags.iter().map(|t| tag_names.binary_search(t).expect("every tag is listed") as u32).collect();
                tags.sort_unstable();
                tags.dedup();
                let classifications = record
                    .descriptor
                    .contract
                    .columns
                    .iter()
                    .filter_map(|c| c.classification)
                    .fold(0u8, |bits, c| bits | classification_bit(c));
                let (status, sunset) = (record.descriptor.status, record.descriptor.sunset);
                Entry { record, domain, tags, classifications, status, sunset }
            })
            .collect();
        ProductIndex { generation, entries, vocabulary, postings, domains: domain_names, tags: tag_names, visibility: Mutex::default() }
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

    /// Every indexed product, in position order.
    pub(super) fn records(&self) -> impl Iterator<Item = &ProductRecord> {
        self.entries.iter().map(|e| &e.record)
    }
}

/// The BM25F score of a term with frequencies `tfs` in fields of `lengths` words, counting only
/// the fields of `only` (one bit per [`MatchedField`]).
fn bm25f(tfs: &[u8; FIELDS], lengths: &[u32; FIELDS], only: u16) -> f32 {
    let mut weighted = 0.0;
    for field in 0..FIELDS {
        if tfs[field] > 0 && only & (1 << field) != 0 {
            let norm = 1.0 - B + B * lengths[field] as f32 / TYPICAL[field];
            weighted += WEIGHTS[field] * f32::from(tfs[field]) / norm;
        }
    }
    weighted * (K1 + 1.0) / (weighted + K1)
}

/// The bit of `class` in [`Entry::classifications`].
pub(super) fn classification_bit(class: Classification) -> u8 {
    1 << Classification::ALL.iter().position(|c| *c == class).expect("every class is listed")
}

/// The fields of `mask`, in order.
pub(super) fn matched_fields(mask: u16) -> Vec<MatchedField> {
    MatchedField::ALL.iter().enumerate().filter(|(bit, _)| mask & (1 << bit) != 0).map(|(_, f)| *f).collect()
}
