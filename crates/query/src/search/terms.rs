//! What a query word matches in the vocabulary: the word itself, the terms it starts, and the
//! terms within its edit distance (or starting with something within it).

use std::collections::HashMap;

use fst::automaton::{Automaton, Levenshtein, Str};
use fst::{IntoStreamer, Streamer};

/// How a term matched a query word; the discount applied to the term's score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum MatchKind {
    /// The word itself.
    Exact,
    /// A term the word starts.
    Prefix,
    /// A term within the word's edit distance, or starting with something within it.
    Typo,
}

impl MatchKind {
    pub fn weight(self) -> f32 {
        match self {
            MatchKind::Exact => 1.0,
            MatchKind::Prefix => 0.7,
            MatchKind::Typo => 0.45,
        }
    }
}

/// Edit distance allowed for a word of `chars` characters: none below 4, 1 up to 7, 2 from 8.
pub(super) fn typo_distance(chars: usize) -> u32 {
    match chars {
        0..=3 => 0,
        4..=7 => 1,
        _ => 2,
    }
}

/// The term ids `word` matches in `vocabulary`, each with its best match kind.
pub(super) fn expand(vocabulary: &fst::Map<Vec<u8>>, word: &str) -> HashMap<u32, MatchKind> {
    let mut found: HashMap<u32, MatchKind> = HashMap::new();
    let mut add = |id: u64, kind: MatchKind| {
        let id = u32::try_from(id).expect("term ids are u32");
        found.entry(id).and_modify(|k| *k = (*k).min(kind)).or_insert(kind);
    };
    if let Some(id) = vocabulary.get(word) {
        add(id, MatchKind::Exact);
    }
    let mut prefixed = vocabulary.search(Str::new(word).starts_with()).into_stream();
    while let Some((term, id)) = prefixed.next() {
        if term != word.as_bytes() {
            add(id, MatchKind::Prefix);
        }
    }
    if let Some(automaton) = typo_automaton(word) {
        // A typo in a word typed so far (`custmer` → `customers`) only from 6 letters: for a
        // shorter word, a prefix one edit away is 3–4 letters long and starts far too many terms.
        if word.chars().count() >= TYPO_PREFIX_LETTERS {
            let mut near = vocabulary.search(automaton.starts_with()).into_stream();
            while let Some((_, id)) = near.next() {
                add(id, MatchKind::Typo);
            }
        } else {
            let mut near = vocabulary.search(automaton).into_stream();
            while let Some((_, id)) = near.next() {
                add(id, MatchKind::Typo);
            }
        }
    }
    found
}

/// The shortest word whose typos also match as prefixes.
const TYPO_PREFIX_LETTERS: usize = 6;

/// The Levenshtein automaton of `word` at its distance; a smaller distance if the automaton
/// would exceed fst's state limit (very long words), none if even that does.
fn typo_automaton(word: &str) -> Option<Levenshtein> {
    (1..=typo_distance(word.chars().count())).rev().find_map(|distance| Levenshtein::new(word, distance).ok())
}
