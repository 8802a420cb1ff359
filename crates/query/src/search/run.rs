//! Running one search over an index: words matched and scored, facet filters, the access
//! decision for the candidates left, facet counts and the page.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use chrono::NaiveDate;
use meshwork_core::principal::Principal;

use super::facets::{Counter, Resolved, Values};
use super::index::{ProductIndex, matched_fields, words};
use super::terms::expand;
use super::{ProductHealth, QualityState, SearchHit, SearchRequest, SearchResults, SloState, Visibility};
use crate::Governance;

/// Query words beyond this many are ignored: a search is a few words, and each costs a pass
/// over its matching postings.
const MAX_WORDS: usize = 32;

/// Every facet, as a "count in" mask.
const ALL_FACETS: u8 = 0b11_1111;

/// What a product has gathered so far during one search.
#[derive(Debug, Clone, Copy, Default)]
struct Accumulator {
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

impl ProductIndex {
    /// The products matching `request` that `principal` may read, best first, with facet counts
    /// over exactly those (each facet ignoring its own filter). A product the principal may not
    /// read is skipped as if it did not exist, in hits, total and counts. `governance` must be
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
        let decided = self.decided(principal);
        let mut counter = Counter::new(self);
        // (score, position, matched fields) of every visible product passing every filter.
        let mut found: Vec<(f32, u32, u16)> = Vec::new();
        let mut consider = |position: u32, score: f32, fields: u16| {
            let entry = &self.entries[position as usize];
            let values = Values {
                entry,
                status: entry.state(today),
                quality: health.quality.get(position as usize).copied().unwrap_or(QualityState::None),
                slo: health.slo.get(position as usize).copied().unwrap_or(SloState::Unknown),
            };
            // Failing two filters, a product is in no count: no need to decide access.
            let fails = filters.fails(&values);
            if fails.count_ones() > 1 || !self.visible(governance, principal, &decided, position) {
                return;
            }
            if fails == 0 {
                counter.count(&values, ALL_FACETS);
                found.push((score, position, fields));
            } else {
                counter.count(&values, fails);
            }
        };
        if query.is_empty() {
            for position in 0..self.entries.len() as u32 {
                consider(position, 0.0, 0);
            }
        } else {
            let (candidates, gathered) = self.matching(&query);
            for position in candidates {
                let a = gathered[position as usize];
                consider(position, a.score, a.fields);
            }
        }
        let facets = counter.finish(self);
        let total = found.len();
        let best_first = |a: &(f32, u32, u16), b: &(f32, u32, u16)| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1));
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
            .map(|(score, position, fields)| {
                let entry = &self.entries[position as usize];
                SearchHit {
                    record: entry.record.clone(),
                    status: entry.state(today),
                    quality: health.quality.get(position as usize).copied().unwrap_or(QualityState::None),
                    slo: health.slo.get(position as usize).copied().unwrap_or(SloState::Unknown),
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
                    let score = weight * posting.score;
                    if a.words == i {
                        a.words = i + 1;
                        a.best = score;
                        a.fields |= posting.fields;
                        touched.push(posting.position);
                    } else if a.words == i + 1 {
                        a.best = a.best.max(score);
                        a.fields |= posting.fields;
                    }
                }
            }
            for position in &touched {
                let a = &mut gathered[*position as usize];
                a.score += a.best;
            }
            candidates = touched;
            if candidates.is_empty() {
                break;
            }
        }
        (candidates, gathered)
    }

    /// Whether `principal` may read the product at `position`, decided once per index.
    fn visible(&self, governance: &Governance, principal: &Principal, decided: &[AtomicU8], position: u32) -> bool {
        let slot = &decided[position as usize];
        match Visibility::from_byte(slot.load(Ordering::Relaxed)) {
            Visibility::Readable => true,
            Visibility::Hidden => false,
            Visibility::Undecided => {
                let allowed = governance.decide(principal, &self.entries[position as usize].record.descriptor).allowed;
                let visibility = if allowed { Visibility::Readable } else { Visibility::Hidden };
                slot.store(visibility as u8, Ordering::Relaxed);
                allowed
            }
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
        let decided: Arc<Vec<AtomicU8>> = Arc::new(self.entries.iter().map(|_| AtomicU8::new(Visibility::Undecided as u8)).collect());
        visibility.insert(principal.name.clone(), (principal.clone(), decided.clone()));
        decided
    }
}
