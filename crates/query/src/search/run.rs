//! Running one search over an index: words matched and scored, facet filters, the access
//! decision for the candidates left, facet counts and the page.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use chrono::NaiveDate;
use meshwork_core::principal::Principal;

use super::facets::{Counter, Resolved, Values};
use super::facets::Facet;
use super::index::{CARD_FIELDS, ProductIndex, matched_fields, words};
use super::terms::expand;
use super::{Decided, ProductHealth, ProductState, QualityState, SearchHit, SearchRequest, SearchResults, SloState};
use crate::Governance;
use crate::access::{Visibility, visibility};

/// Query words beyond this many are ignored: a search is a few words, and each costs a pass
/// over its matching postings.
const MAX_WORDS: usize = 32;

/// Every facet, as a "count in" mask.
const ALL_FACETS: u8 = 0b11_1111;

/// The facets a public card shows (domain, tag, status): a card is counted in these only, and
/// a filter on any other facet leaves it out.
const CARD_FACETS: u8 = 1 << Facet::Domain as u8 | 1 << Facet::Tag as u8 | 1 << Facet::Status as u8;

/// What a product has gathered so far during one search, over some of its fields.
#[derive(Debug, Clone, Copy, Default)]
struct Gathered {
    /// Sum of the best score of each word matched so far.
    score: f32,
    /// The best score of the word being matched.
    best: f32,
    /// Fields any matching term was found in.
    fields: u16,
    /// How many words (in query order) it matched: it is a candidate for word `i` only if
    /// this is `i`.
    words: u8,
}

impl Gathered {
    /// Takes a posting worth `score` in `fields` for word `i`; whether it was the product's
    /// first for that word.
    fn take(&mut self, i: u8, score: f32, fields: u16) -> bool {
        if self.words == i {
            self.words = i + 1;
            self.best = score;
            self.fields |= fields;
            true
        } else if self.words == i + 1 {
            self.best = self.best.max(score);
            self.fields |= fields;
            false
        } else {
            false
        }
    }

    /// Closes word `i`: adds its best score if the word matched.
    fn close(&mut self, i: u8) {
        if self.words == i + 1 {
            self.score += self.best;
        }
    }
}

/// What a product gathered over all its fields (what a reader matches) and over its card's
/// fields alone (what a principal who may only discover it matches).
#[derive(Debug, Clone, Copy, Default)]
struct Accumulator {
    full: Gathered,
    card: Gathered,
}

impl ProductIndex {
    /// The products matching `request` that `principal` may read, and the cards of those it may
    /// only discover (when the request asks for cards), best first, with facet counts over
    /// exactly those (each facet ignoring its own filter). A product hidden from the principal
    /// is skipped as if it did not exist, in hits, total and counts. `governance` must be
    /// the one of the index's catalog generation (as [`crate::QueryEngine`] hands out): the
    /// decisions are remembered per principal for the life of the index. `health` gives the
    /// quality and SLO states; `today` decides which deprecated products are sunset.
    pub fn search(&self, governance: &Governance, principal: &Principal, health: &ProductHealth, request: &SearchRequest, today: NaiveDate) -> SearchResults {
        let mut query: Vec<String> = Vec::new();
        for word in words(&request.text) {
            if !query.contains(&word) && query.len() < MAX_WORDS {
                query.push(word);
            }
        }
        let filters = Resolved::new(&request.filters, self);
        let words = query.len() as u8;
        let decided = self.decided(principal);
        let mut counter = Counter::new(self);
        // (score, position, matched fields, readable, status) of every product listed.
        let mut found: Vec<(f32, u32, u16, bool, ProductState)> = Vec::new();
        let card_only = filters.set() & !CARD_FACETS;
        let mut consider = |position: u32, a: Accumulator| {
            let entry = &self.entries[position as usize];
            let read = Values {
                entry,
                status: entry.state(today),
                quality: health.quality.get(position as usize).copied().unwrap_or(QualityState::None),
                slo: health.slo.get(position as usize).copied().unwrap_or(SloState::Unknown),
            };
            // A card shows the declared status (deprecated stays deprecated past its sunset date,
            // which the card does not show) and fails every filter on a facet it does not show.
            let card = Values { status: entry.card_state(), ..read };
            let read_fails = filters.fails(&read);
            let card_fails = if card.status == read.status { read_fails } else { filters.fails(&card) } | card_only;
            // Failing two filters, a product is in no count: no need to decide access.
            if read_fails.count_ones() > 1 && card_fails.count_ones() > 1 {
                return;
            }
            let (values, fails, shown, matched, readable) = match self.visible(governance, principal, &decided, position) {
                Decided::Readable => (read, read_fails, ALL_FACETS, a.full, true),
                // A card matches by its own fields and is counted in its own facets only.
                Decided::Card if request.cards && a.card.words == words => (card, card_fails, CARD_FACETS, a.card, false),
                _ => return,
            };
            if fails == 0 {
                counter.count(&values, shown);
                found.push((matched.score, position, matched.fields, readable, values.status));
            } else if fails.count_ones() == 1 {
                counter.count(&values, fails & shown);
            }
        };
        if query.is_empty() {
            for position in 0..self.entries.len() as u32 {
                consider(position, Accumulator::default());
            }
        } else {
            let (candidates, gathered) = self.matching(&query);
            for position in candidates {
                consider(position, gathered[position as usize]);
            }
        }
        let facets = counter.finish(self);
        let total = found.len();
        let best_first = |a: &(f32, u32, u16, bool, ProductState), b: &(f32, u32, u16, bool, ProductState)| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1));
        let end = request.offset.saturating_add(request.limit).min(total);
        if end < total && end > 0 {
            found.select_nth_unstable_by(end - 1, best_first);
            found.truncate(end);
        }
        if end == 0 {
            found.clear();
        }
        found.sort_unstable_by(best_first);
        let hits = found
            .into_iter()
            .skip(request.offset)
            .map(|(score, position, fields, readable, status)| {
                let entry = &self.entries[position as usize];
                SearchHit {
                    record: entry.record.clone(),
                    visibility: if readable { Visibility::Readable } else { Visibility::Card },
                    status,
                    quality: readable.then(|| health.quality.get(position as usize).copied().unwrap_or(QualityState::None)),
                    slo: readable.then(|| health.slo.get(position as usize).copied().unwrap_or(SloState::Unknown)),
                    score,
                    matched: matched_fields(fields),
                }
            })
            .collect();
        SearchResults { total, hits, facets }
    }

    /// The products matching every word of `query` (positions, in no particular order) and
    /// what each gathered, by position.
    fn matching(&self, query: &[String]) -> (Vec<u32>, Vec<Accumulator>) {
        let mut gathered = vec![Accumulator::default(); self.entries.len()];
        let mut candidates = Vec::new();
        for (i, word) in query.iter().enumerate() {
            let i = i as u8;
            let mut touched = Vec::new();
            for (term, kind) in expand(&self.vocabulary, word) {
                let weight = kind.weight();
                for posting in &self.postings[term as usize] {
                    let a = &mut gathered[posting.position as usize];
                    if a.full.take(i, weight * posting.score, posting.fields) {
                        touched.push(posting.position);
                    }
                    if posting.card_score > 0.0 {
                        a.card.take(i, weight * posting.card_score, posting.fields & CARD_FIELDS);
                    }
                }
            }
            for position in &touched {
                let a = &mut gathered[*position as usize];
                a.full.close(i);
                a.card.close(i);
            }
            candidates = touched;
            if candidates.is_empty() {
                break;
            }
        }
        (candidates, gathered)
    }

    /// What `principal` may know of the product at `position`, decided once per index.
    fn visible(&self, governance: &Governance, principal: &Principal, decided: &[AtomicU8], position: u32) -> Decided {
        let slot = &decided[position as usize];
        match Decided::from_byte(slot.load(Ordering::Relaxed)) {
            Decided::Undecided => {
                let seen = match visibility(governance, principal, &self.entries[position as usize].record.descriptor) {
                    // Aggregate-only readers find a product like its readers: they may query it.
                    Visibility::Readable | Visibility::Aggregates => Decided::Readable,
                    Visibility::Card => Decided::Card,
                    Visibility::Hidden => Decided::Hidden,
                };
                slot.store(seen as u8, Ordering::Relaxed);
                seen
            }
            seen => seen,
        }
    }

    /// The decisions remembered for `principal`, all undecided for a principal not seen before
    /// (or changed since: groups, domains or attributes).
    fn decided(&self, principal: &Principal) -> Arc<Vec<AtomicU8>> {
        let mut visibility = self.visibility.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some((seen, decided)) = visibility.get(&principal.name)
            && seen == principal
        {
            return decided.clone();
        }
        let decided: Arc<Vec<AtomicU8>> = Arc::new(self.entries.iter().map(|_| AtomicU8::new(Decided::Undecided as u8)).collect());
        visibility.insert(principal.name.clone(), (principal.clone(), decided.clone()));
        decided
    }
}
