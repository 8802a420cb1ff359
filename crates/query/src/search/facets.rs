//! Facet filters resolved against an index, and facet counts.

use meshwork_core::descriptor::Classification;

use super::index::{Entry, ProductIndex, classification_bit};
use super::{FacetFilters, ProductState, QualityState, SloState};

/// How many visible matching products have one facet value.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FacetCount<T> {
    /// The value.
    pub value: T,
    /// Products with it.
    pub count: usize,
}

/// Counts per facet value, most frequent first (ties in value order); values no visible
/// matching product has are left out.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Facets {
    /// Per domain.
    pub domain: Vec<FacetCount<String>>,
    /// Per tag.
    pub tag: Vec<FacetCount<String>>,
    /// Per classification present among a product's columns.
    pub classification: Vec<FacetCount<Classification>>,
    /// Per lifecycle state.
    pub status: Vec<FacetCount<ProductState>>,
    /// Per latest quality outcome.
    pub quality: Vec<FacetCount<QualityState>>,
    /// Per SLO state.
    pub slo: Vec<FacetCount<SloState>>,
}

/// The facets, as bit positions of a "fails" mask.
#[derive(Debug, Clone, Copy)]
pub(super) enum Facet {
    Domain = 0,
    Tag = 1,
    Classification = 2,
    Status = 3,
    Quality = 4,
    Slo = 5,
}

/// The values of one product on every facet.
pub(super) struct Values<'e> {
    pub entry: &'e Entry,
    pub status: ProductState,
    pub quality: QualityState,
    pub slo: SloState,
}

/// [`FacetFilters`] resolved against one index: sets of index numbers and bit masks.
pub(super) struct Resolved {
    /// `None`: no filter on the facet.
    domain: Option<Vec<u32>>,
    tag: Option<Vec<u32>>,
    classification: Option<u8>,
    status: Option<u8>,
    quality: Option<u8>,
    slo: Option<u8>,
}

/// A bit per value of a keyword set, by position in `all`.
fn bits<T: PartialEq>(chosen: &[T], all: &[T]) -> Option<u8> {
    (!chosen.is_empty()).then(|| all.iter().enumerate().filter(|(_, v)| chosen.contains(v)).fold(0, |b, (i, _)| b | 1 << i))
}

fn bit<T: PartialEq>(value: T, all: &[T]) -> u8 {
    1 << all.iter().position(|v| *v == value).expect("every value is listed")
}

impl Resolved {
    pub fn new(filters: &FacetFilters, index: &ProductIndex) -> Resolved {
        // A value the index does not know matches nothing (and still filters).
        let numbers = |chosen: &[String], known: &[String]| {
            (!chosen.is_empty()).then(|| chosen.iter().filter_map(|c| known.binary_search(c).ok()).map(|i| i as u32).collect::<Vec<_>>())
        };
        Resolved {
            domain: numbers(&filters.domain, &index.domains),
            tag: numbers(&filters.tag, &index.tags),
            classification: (!filters.classification.is_empty()).then(|| filters.classification.iter().fold(0, |b, c| b | classification_bit(*c))),
            status: bits(&filters.status, ProductState::ALL),
            quality: bits(&filters.quality, QualityState::ALL),
            slo: bits(&filters.slo, SloState::ALL),
        }
    }

    /// The facets that have a filter, one bit per [`Facet`].
    pub fn set(&self) -> u8 {
        let mut set = 0;
        for (facet, on) in [
            (Facet::Domain, self.domain.is_some()),
            (Facet::Tag, self.tag.is_some()),
            (Facet::Classification, self.classification.is_some()),
            (Facet::Status, self.status.is_some()),
            (Facet::Quality, self.quality.is_some()),
            (Facet::Slo, self.slo.is_some()),
        ] {
            if on {
                set |= 1 << facet as u8;
            }
        }
        set
    }

    /// The facets whose filter `values` fails, one bit per [`Facet`].
    pub fn fails(&self, values: &Values) -> u8 {
        let entry = values.entry;
        let mut fails = 0;
        let mut check = |facet: Facet, passes: bool| {
            if !passes {
                fails |= 1 << facet as u8;
            }
        };
        check(Facet::Domain, self.domain.as_ref().is_none_or(|d| d.contains(&entry.domain)));
        check(Facet::Tag, self.tag.as_ref().is_none_or(|t| entry.tags.iter().any(|e| t.contains(e))));
        check(Facet::Classification, self.classification.is_none_or(|c| entry.classifications & c != 0));
        check(Facet::Status, self.status.is_none_or(|s| s & bit(values.status, ProductState::ALL) != 0));
        check(Facet::Quality, self.quality.is_none_or(|q| q & bit(values.quality, QualityState::ALL) != 0));
        check(Facet::Slo, self.slo.is_none_or(|s| s & bit(values.slo, SloState::ALL) != 0));
        fails
    }
}

/// Counts being gathered, dense by index number.
pub(super) struct Counter {
    domain: Vec<usize>,
    tag: Vec<usize>,
    classification: [usize; 4],
    status: [usize; 4],
    quality: [usize; 4],
    slo: [usize; 3],
}

impl Counter {
    pub fn new(index: &ProductIndex) -> Counter {
        Counter {
            domain: vec![0; index.domains.len()],
            tag: vec![0; index.tags.len()],
            classification: [0; 4],
            status: [0; 4],
            quality: [0; 4],
            slo: [0; 3],
        }
    }

    /// Counts `values` in the facets of `only` (one bit per [`Facet`]).
    pub fn count(&mut self, values: &Values, only: u8) {
        let entry = values.entry;
        let on = |facet: Facet| only & (1 << facet as u8) != 0;
        if on(Facet::Domain) {
            self.domain[entry.domain as usize] += 1;
        }
        if on(Facet::Tag) {
            for tag in &entry.tags {
                self.tag[*tag as usize] += 1;
            }
        }
        if on(Facet::Classification) {
            for (i, count) in self.classification.iter_mut().enumerate() {
                if entry.classifications & (1 << i) != 0 {
                    *count += 1;
                }
            }
        }
        if on(Facet::Status) {
            self.status[ProductState::ALL.iter().position(|s| *s == values.status).expect("listed")] += 1;
        }
        if on(Facet::Quality) {
            self.quality[QualityState::ALL.iter().position(|s| *s == values.quality).expect("listed")] += 1;
        }
        if on(Facet::Slo) {
            self.slo[SloState::ALL.iter().position(|s| *s == values.slo).expect("listed")] += 1;
        }
    }

    pub fn finish(self, index: &ProductIndex) -> Facets {
        Facets {
            domain: owned(ranked(index.domains.iter().zip(self.domain))),
            tag: owned(ranked(index.tags.iter().zip(self.tag))),
            classification: ranked(Classification::ALL.into_iter().zip(self.classification)),
            status: ranked(ProductState::ALL.iter().copied().zip(self.status)),
            quality: ranked(QualityState::ALL.iter().copied().zip(self.quality)),
            slo: ranked(SloState::ALL.iter().copied().zip(self.slo)),
        }
    }
}

/// Non-zero counts, most frequent first; ties keep the order given.
fn ranked<T>(counts: impl Iterator<Item = (T, usize)>) -> Vec<FacetCount<T>> {
    let mut list: Vec<FacetCount<T>> = counts.filter(|(_, n)| *n > 0).map(|(value, count)| FacetCount { value, count }).collect();
    list.sort_by(|a, b| b.count.cmp(&a.count));
    list
}

/// Names cloned only for the values shown.
fn owned(counts: Vec<FacetCount<&String>>) -> Vec<FacetCount<String>> {
    counts.into_iter().map(|c| FacetCount { value: c.value.clone(), count: c.count }).collect()
}
