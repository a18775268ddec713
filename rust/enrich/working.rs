//! The current tokenization and its n-gram counts, updated in place as n-grams are merged.
//!
//! Positions are indices into the base corpus. A merge keeps its first position (which takes the
//! new token) and unlinks the others from a doubly linked list, so positions never move and the
//! per-token position lists stay valid up to lazily dropped stale entries.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use rustc_hash::{FxHashMap, FxHashSet};

use crate::corpus::Corpus;

/// An n-gram of current token ids, padded with [`PAD`] (never a token id).
pub type Key<const N: usize> = [u32; N];

const PAD: u32 = u32::MAX;
/// Link to nowhere (sequence edge) and the token of an unlinked position.
const NONE: u32 = u32::MAX;

/// The ids of an n-gram without its padding.
pub fn key_parts<const N: usize>(key: &Key<N>) -> &[u32] {
    let len = key.iter().position(|&t| t == PAD).unwrap_or(N);
    &key[..len]
}

/// `f_merge = count * (n - 1)`.
pub fn score(count: u32, n: usize) -> u64 {
    u64::from(count) * (n as u64 - 1)
}

/// A heap entry: a candidate and its score when pushed (possibly stale).
#[derive(PartialEq, Eq)]
struct Entry<const N: usize> {
    score: u64,
    key: Key<N>,
}

impl<const N: usize> Ord for Entry<N> {
    /// Higher score first; on ties the shorter n-gram, then the smaller ids, come first.
    fn cmp(&self, other: &Self) -> Ordering {
        self.score
            .cmp(&other.score)
            .then_with(|| key_parts(&other.key).len().cmp(&key_parts(&self.key).len()))
            .then_with(|| other.key.cmp(&self.key))
    }
}

impl<const N: usize> PartialOrd for Entry<N> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Up to `n_max - 1` positions on each side of a span plus the span: the positions whose
/// n-grams can change when the span is merged.
struct Neighbourhood {
    positions: Vec<u32>,
    /// Index in `positions` of the span's first position.
    span_start: usize,
    span_len: usize,
}

pub struct Working<const N: usize> {
    tokens: Vec<u32>,
    next: Vec<u32>,
    prev: Vec<u32>,
    /// Ascending positions per token id; entries whose token changed are dropped lazily.
    positions: Vec<Vec<u32>>,
    counts: FxHashMap<Key<N>, u32>,
    heap: BinaryHeap<Entry<N>>,
    /// Keys whose count grew during the current merge: pushed once when it ends.
    grown: FxHashSet<Key<N>>,
    offsets: Vec<usize>,
    n_max: usize,
    min_count: u32,
    live: u64,
}

impl<const N: usize> Working<N> {
    pub fn new(corpus: &Corpus, vocab_size: usize, n_max: usize, min_count: u32) -> Self {
        let tokens = corpus.tokens().to_vec();
        let total = tokens.len();
        let mut next = vec![NONE; total];
        let mut prev = vec![NONE; total];
        for w in corpus.offsets().windows(2) {
            for p in w[0]..w[1] {
                if p + 1 < w[1] {
                    next[p] = (p + 1) as u32;
                }
                if p > w[0] {
                    prev[p] = (p - 1) as u32;
                }
            }
        }
        let mut positions = vec![Vec::new(); vocab_size];
        for (p, &t) in tokens.iter().enumerate() {
            positions[t as usize].push(p as u32);
        }
        let mut working = Self {
            tokens,
            next,
            prev,
            positions,
            counts: FxHashMap::default(),
            heap: BinaryHeap::new(),
            grown: FxHashSet::default(),
            offsets: corpus.offsets().to_vec(),
            n_max,
            min_count,
            live: total as u64,
        };
        working.count_all(corpus);
        working
    }

    fn count_all(&mut self, corpus: &Corpus) {
        for seq in corpus.sequences() {
            for start in 0..seq.len() {
                for n in 2..=self.n_max.min(seq.len() - start) {
                    let mut key = [PAD; N];
                    key[..n].copy_from_slice(&seq[start..start + n]);
                    *self.counts.entry(key).or_insert(0) += 1;
                }
            }
        }
        let min_count = self.min_count;
        self.heap = self
            .counts
            .iter()
            .filter(|&(_, &c)| c >= min_count)
            .map(|(key, &c)| Entry {
                score: score(c, key_parts(key).len()),
                key: *key,
            })
            .collect();
    }

    /// True when base position `p` starts a token of the current tokenization.
    pub fn is_live(&self, p: usize) -> bool {
        self.tokens[p] != NONE
    }

    /// Tokens in the current tokenization.
    pub fn live_tokens(&self) -> u64 {
        self.live
    }

    /// The best candidate not in `rejected`, with its count; `None` when none is left.
    pub fn pop_best(&mut self, rejected: &FxHashSet<Key<N>>) -> Option<(Key<N>, u32)> {
        while let Some(entry) = self.heap.pop() {
            if rejected.contains(&entry.key) {
                continue;
            }
            let count = self.counts.get(&entry.key).copied().unwrap_or(0);
            if count < self.min_count {
                continue;
            }
            let current = score(count, key_parts(&entry.key).len());
            if current == entry.score {
                return Some((entry.key, count));
            }
            // Stale: its count fell since the push. Every live key keeps an entry scored at least
            // its current score, so re-queuing it at its true score keeps the heap exact.
            self.heap.push(Entry {
                score: current,
                key: entry.key,
            });
        }
        None
    }

    /// Replaces every occurrence of `key`, left to right without overlap, by token `id`
    /// (which must be the next id); returns how many occurrences were replaced.
    pub fn merge(&mut self, key: &Key<N>, id: u32, rejected: &FxHashSet<Key<N>>) -> u32 {
        let parts = key_parts(key).to_vec();
        let first = parts[0] as usize;
        let candidates = std::mem::take(&mut self.positions[first]);
        let mut kept = Vec::with_capacity(candidates.len());
        let mut merged_at = Vec::new();
        let mut span = Vec::with_capacity(parts.len());
        for p in candidates {
            if self.tokens[p as usize] != parts[0] {
                continue; // merged into a later token or unlinked since it was listed
            }
            if self.match_at(p, &parts, &mut span) {
                self.merge_span(&span, id);
                merged_at.push(p);
            } else {
                kept.push(p);
            }
        }
        self.positions[first] = kept;
        debug_assert_eq!(self.positions.len(), id as usize);
        self.positions.push(merged_at);
        self.live -= (parts.len() as u64 - 1) * self.positions[id as usize].len() as u64;
        self.push_grown(rejected);
        self.positions[id as usize].len() as u32
    }

    /// Fills `span` with the positions of an occurrence of `parts` starting at `p`, if any.
    fn match_at(&self, p: u32, parts: &[u32], span: &mut Vec<u32>) -> bool {
        span.clear();
        let mut q = p;
        for (i, &want) in parts.iter().enumerate() {
            if i > 0 {
                q = self.next[q as usize];
                if q == NONE {
                    return false;
                }
            }
            if self.tokens[q as usize] != want {
                return false;
            }
            span.push(q);
        }
        true
    }

    fn merge_span(&mut self, span: &[u32], id: u32) {
        let hood = self.neighbourhood(span[0], span.len());
        self.update_windows(&hood, false);
        let first = span[0] as usize;
        let last = span[span.len() - 1] as usize;
        let after = self.next[last];
        for &q in &span[1..] {
            self.tokens[q as usize] = NONE;
        }
        self.tokens[first] = id;
        self.next[first] = after;
        if after != NONE {
            self.prev[after as usize] = span[0];
        }
        let hood = self.neighbourhood(span[0], 1);
        self.update_windows(&hood, true);
    }

    fn neighbourhood(&self, start: u32, span_len: usize) -> Neighbourhood {
        let mut before = Vec::with_capacity(self.n_max);
        let mut q = self.prev[start as usize];
        while q != NONE && before.len() + 1 < self.n_max {
            before.push(q);
            q = self.prev[q as usize];
        }
        before.reverse();
        let span_start = before.len();
        let mut positions = before;
        let mut q = start;
        for i in 0..span_len + self.n_max - 1 {
            if i > 0 {
                q = self.next[q as usize];
                if q == NONE {
                    break;
                }
            }
            positions.push(q);
        }
        Neighbourhood {
            positions,
            span_start,
            span_len,
        }
    }

    /// Adds (or removes) one count for every n-gram of `hood` that overlaps its span.
    fn update_windows(&mut self, hood: &Neighbourhood, add: bool) {
        let len = hood.positions.len();
        let span_end = hood.span_start + hood.span_len;
        for n in 2..=self.n_max.min(len) {
            let first = hood.span_start.saturating_sub(n - 1);
            let last = (span_end - 1).min(len - n);
            for start in first..=last {
                let mut key = [PAD; N];
                for (slot, &q) in key.iter_mut().zip(&hood.positions[start..start + n]) {
                    *slot = self.tokens[q as usize];
                }
                if add {
                    *self.counts.entry(key).or_insert(0) += 1;
                    self.grown.insert(key);
                } else if let Some(count) = self.counts.get_mut(&key) {
                    *count -= 1;
                    if *count == 0 {
                        self.counts.remove(&key);
                    }
                }
            }
        }
    }

    fn push_grown(&mut self, rejected: &FxHashSet<Key<N>>) {
        for key in std::mem::take(&mut self.grown) {
            match self.counts.get(&key) {
                Some(&count) if count >= self.min_count && !rejected.contains(&key) => {
                    self.heap.push(Entry {
                        score: score(count, key_parts(&key).len()),
                        key,
                    });
                }
                _ => {}
            }
        }
    }

    /// The current tokenization as a corpus (one sequence per input sequence).
    pub fn into_corpus(self) -> Corpus {
        let mut corpus = Corpus::new();
        let mut seq = Vec::new();
        for w in self.offsets.windows(2) {
            seq.clear();
            // A sequence's first position is never unlinked: merges keep their first position.
            let mut q = if w[0] < w[1] { w[0] as u32 } else { NONE };
            while q != NONE {
                seq.push(self.tokens[q as usize]);
                q = self.next[q as usize];
            }
            // Cannot fail: the corpus only shrinks.
            let _ = corpus.push_tokens(&seq);
        }
        corpus
    }
}
