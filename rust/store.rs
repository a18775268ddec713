//! The task n-gram store: next-token counts for every context of length `0..n_max`, built from a
//! task's output corpus and pruned at `min_count`.
//!
//! Layout: a trie stored level by level (depth `d` holds the d-grams). The children of a node are
//! contiguous in the next level and sorted by token id, so a context is found with one binary
//! search per token and its next-token distribution is a pair of slices. Every node costs 8 bytes
//! (token, count); a node with room for children adds 12 (child start, total, best child).
//! Immutable after `build`, hence `Sync`: any number of threads may read it without locks.

use rustc_hash::FxHashMap;

use crate::config::DrafterConfig;
use crate::corpus::{Corpus, InputError};
use crate::draft::Followers;
use crate::error::Error;

/// Marks "no node" in index arrays.
pub(crate) const NONE: u32 = u32::MAX;

/// One depth of the trie. Level 0 is the root (the empty context) and has no token.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Level {
    pub tokens: Vec<u32>,
    pub counts: Vec<u32>,
    /// For levels that can have children: `child_start[i]..child_start[i + 1]` are node i's
    /// children in the next level. Empty for the deepest level.
    pub child_start: Vec<u32>,
    /// Sum of the kept children's counts (the normaliser of the next-token distribution).
    pub totals: Vec<u32>,
    /// Absolute index (next level) of the most frequent child, smallest token on ties; NONE if none.
    pub best: Vec<u32>,
}

impl Level {
    pub(crate) fn len(&self) -> usize {
        self.counts.len()
    }

    fn bytes(&self) -> usize {
        4 * (self.tokens.len()
            + self.counts.len()
            + self.child_start.len()
            + self.totals.len()
            + self.best.len())
    }
}

/// Sizes of a built store, as reported by `stats()`.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreStats {
    /// `ngrams[n - 1]` = number of distinct kept n-grams (n = 1..=n_max).
    pub ngrams: Vec<u64>,
    /// `contexts[m]` = number of contexts of length m with at least one kept next token.
    pub contexts: Vec<u64>,
    pub corpus_tokens: u64,
    pub sequences: u64,
    pub bytes: u64,
}

/// The immutable task n-gram model (`p_corp` in the paper).
#[derive(Debug, Clone, PartialEq)]
pub struct NgramStore {
    pub(crate) config: DrafterConfig,
    pub(crate) levels: Vec<Level>,
    pub(crate) corpus_tokens: u64,
    pub(crate) sequences: u64,
}

/// The next-token distribution of one context in the store.
#[derive(Debug, Clone, Copy)]
pub struct CorpusFollowers<'a> {
    tokens: &'a [u32],
    counts: &'a [u32],
    total: u32,
    best: usize,
}

impl Followers for CorpusFollowers<'_> {
    fn total(&self) -> u32 {
        self.total
    }
    fn best(&self) -> (u32, u32) {
        (self.tokens[self.best], self.counts[self.best])
    }
    fn len(&self) -> usize {
        self.tokens.len()
    }
    fn count(&self, token: u32) -> u32 {
        self.tokens
            .binary_search(&token)
            .map_or(0, |i| self.counts[i])
    }
    fn for_each(&self, mut f: impl FnMut(u32, u32)) {
        for (&t, &c) in self.tokens.iter().zip(self.counts) {
            f(t, c);
        }
    }
}

impl NgramStore {
    /// Counts every n-gram (n = 1..=n_max) inside each sequence of `corpus` and keeps those seen
    /// at least `config.min_count` times.
    pub fn build(corpus: &Corpus, config: &DrafterConfig) -> Result<Self, Error> {
        config.validate()?;
        if corpus.num_tokens() == 0 {
            return Err(InputError::EmptyCorpus.into());
        }
        let limit = config.id_limit();
        if let Some(position) = corpus.tokens().iter().position(|&t| t >= limit) {
            let id = i64::from(corpus.tokens()[position]);
            return Err(InputError::TokenOutOfRange {
                id,
                position,
                limit,
            }
            .into());
        }
        let levels = build_levels(corpus, config.n_max, config.min_count);
        Ok(Self {
            config: config.clone(),
            levels,
            corpus_tokens: corpus.num_tokens() as u64,
            sequences: corpus.num_sequences() as u64,
        })
    }

    pub fn config(&self) -> &DrafterConfig {
        &self.config
    }

    pub fn n_max(&self) -> usize {
        self.config.n_max
    }

    /// The next-token distribution of the longest suffix of `history` (at most n_max - 1 tokens)
    /// that has a kept next token, or `None` if not even the empty context has one.
    pub fn longest_match(&self, history: &[u32]) -> Option<CorpusFollowers<'_>> {
        let max_order = history.len().min(self.config.n_max - 1);
        (0..=max_order).rev().find_map(|m| {
            let node = self.find(&history[history.len() - m..])?;
            self.followers(m, node)
        })
    }

    /// The node of `context` at depth `context.len()`, if it is in the store.
    fn find(&self, context: &[u32]) -> Option<u32> {
        let mut node = 0u32;
        for (depth, &token) in context.iter().enumerate() {
            let start = self.levels[depth].child_start[node as usize] as usize;
            let end = self.levels[depth].child_start[node as usize + 1] as usize;
            let pos = self.levels[depth + 1].tokens[start..end]
                .binary_search(&token)
                .ok()?;
            node = (start + pos) as u32;
        }
        Some(node)
    }

    fn followers(&self, depth: usize, node: u32) -> Option<CorpusFollowers<'_>> {
        let level = &self.levels[depth];
        let node = node as usize;
        let best = level.best[node];
        if best == NONE {
            return None;
        }
        let start = level.child_start[node] as usize;
        let end = level.child_start[node + 1] as usize;
        let next = &self.levels[depth + 1];
        Some(CorpusFollowers {
            tokens: &next.tokens[start..end],
            counts: &next.counts[start..end],
            total: level.totals[node],
            best: best as usize - start,
        })
    }

    /// Counts per order and memory used.
    pub fn stats(&self) -> StoreStats {
        let n = self.config.n_max;
        StoreStats {
            ngrams: (1..=n).map(|d| self.levels[d].len() as u64).collect(),
            contexts: (0..n)
                .map(|d| self.levels[d].best.iter().filter(|&&b| b != NONE).count() as u64)
                .collect(),
            corpus_tokens: self.corpus_tokens,
            sequences: self.sequences,
            bytes: self.bytes() as u64,
        }
    }

    /// Heap bytes held by the store.
    pub fn bytes(&self) -> usize {
        self.levels.iter().map(Level::bytes).sum::<usize>() + std::mem::size_of::<Self>()
    }
}

/// Builds the trie one depth at a time: depth d counts (parent node, next token) pairs for every
/// position whose (d-1)-gram survived pruning, so pruned prefixes are never extended.
fn build_levels(corpus: &Corpus, n_max: usize, min_count: u32) -> Vec<Level> {
    let tokens = corpus.tokens();
    let offsets = corpus.offsets();
    // parent[pos] = node (at the previous depth) of the n-gram starting at pos, NONE if pruned.
    let mut parent = vec![0u32; tokens.len()];
    let mut root = Level {
        counts: vec![tokens.len() as u32],
        ..Level::default()
    };
    root.tokens.push(NONE);
    let mut levels = vec![root];
    let mut counts: FxHashMap<u64, u32> = FxHashMap::default();
    for depth in 1..=n_max {
        counts.clear();
        for_each_position(offsets, depth, |pos| {
            let p = parent[pos];
            if p != NONE {
                *counts.entry(key(p, tokens[pos + depth - 1])).or_insert(0) += 1;
            }
        });
        let mut entries: Vec<(u64, u32)> = counts.iter().map(|(&k, &c)| (k, c)).collect();
        entries.sort_unstable_by_key(|&(k, _)| k);
        let mut level = Level::default();
        let parents = levels[depth - 1].len();
        let mut child_start = vec![0u32; parents + 1];
        for &(k, c) in &entries {
            let id = if c >= min_count {
                child_start[(k >> 32) as usize + 1] += 1;
                level.tokens.push(k as u32);
                level.counts.push(c);
                (level.len() - 1) as u32
            } else {
                NONE
            };
            if depth < n_max {
                counts.insert(k, id);
            }
        }
        for i in 0..parents {
            child_start[i + 1] += child_start[i];
        }
        finish_parent(&mut levels[depth - 1], child_start, &level.counts);
        if depth < n_max {
            for_each_position(offsets, depth, |pos| {
                let p = parent[pos];
                if p != NONE {
                    parent[pos] = counts[&key(p, tokens[pos + depth - 1])];
                }
            });
        }
        level.tokens.shrink_to_fit();
        level.counts.shrink_to_fit();
        levels.push(level);
    }
    levels
}

fn key(parent: u32, token: u32) -> u64 {
    (u64::from(parent) << 32) | u64::from(token)
}

/// Calls `f(pos)` for every position that starts a full `depth`-gram inside its sequence.
fn for_each_position(offsets: &[usize], depth: usize, mut f: impl FnMut(usize)) {
    for w in offsets.windows(2) {
        let end = w[1].saturating_sub(depth - 1);
        for pos in w[0]..end.max(w[0]) {
            f(pos);
        }
    }
}

/// Fills a parent level's child ranges, totals and best children.
fn finish_parent(level: &mut Level, child_start: Vec<u32>, child_counts: &[u32]) {
    let n = level.len();
    level.totals = Vec::with_capacity(n);
    level.best = Vec::with_capacity(n);
    for i in 0..n {
        let (s, e) = (child_start[i] as usize, child_start[i + 1] as usize);
        let children = &child_counts[s..e];
        level.totals.push(children.iter().sum());
        // max_by_key keeps the last maximum; scanning reversed makes it the first (smallest token).
        let best = children
            .iter()
            .enumerate()
            .rev()
            .max_by_key(|&(_, &c)| c)
            .map_or(NONE, |(j, _)| (s + j) as u32);
        level.best.push(best);
    }
    level.child_start = child_start;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(seqs: &[Vec<u32>], n_max: usize, min_count: u32) -> NgramStore {
        let corpus = Corpus::from_sequences(seqs, None).unwrap();
        let config = DrafterConfig {
            n_max,
            min_count,
            ..DrafterConfig::default()
        };
        NgramStore::build(&corpus, &config).unwrap()
    }

    fn dist(f: &CorpusFollowers<'_>) -> Vec<(u32, u32)> {
        let mut v = Vec::new();
        f.for_each(|t, c| v.push((t, c)));
        v
    }

    #[test]
    fn counts_every_order_within_sequences() {
        let s = store(&[vec![1, 2, 3], vec![1, 2, 4]], 3, 1);
        assert_eq!(s.stats().ngrams, vec![4, 3, 2]);
        let f = s.longest_match(&[7, 1, 2]).unwrap();
        assert_eq!(dist(&f), vec![(3, 1), (4, 1)]);
        assert_eq!(f.best(), (3, 1));
        // No bigram crosses the boundary between the two sequences: 3 is never followed.
        let f = s.longest_match(&[3]).unwrap();
        assert_eq!(f.total(), 6, "backs off to the unigram distribution");
    }

    #[test]
    fn backoff_prefers_the_longest_matching_context() {
        let s = store(&[vec![5, 6, 7, 5, 6, 8, 9, 6, 8]], 3, 1);
        // context (5, 6) -> {7: 1, 8: 1}; context (6) -> {7: 1, 8: 2}
        assert_eq!(
            dist(&s.longest_match(&[5, 6]).unwrap()),
            vec![(7, 1), (8, 1)]
        );
        assert_eq!(
            dist(&s.longest_match(&[4, 6]).unwrap()),
            vec![(7, 1), (8, 2)]
        );
    }

    #[test]
    fn pruning_removes_rare_entries_and_their_extensions() {
        let s = store(&[vec![1, 2, 3], vec![1, 2, 3], vec![1, 2, 4]], 3, 2);
        assert_eq!(s.stats().ngrams, vec![3, 2, 1]);
        let f = s.longest_match(&[1, 2]).unwrap();
        assert_eq!(dist(&f), vec![(3, 2)]);
        assert_eq!(f.total(), 2, "totals count kept entries only");
    }

    #[test]
    fn fully_pruned_context_backs_off() {
        let s = store(&[vec![1, 2, 3], vec![1, 2, 4]], 3, 2);
        // (1, 2) is kept but none of its followers are: the bigram context (2) is used instead,
        // which is also empty, so the unigram distribution answers.
        let f = s.longest_match(&[1, 2]).unwrap();
        assert_eq!(dist(&f), vec![(1, 2), (2, 2)]);
    }

    #[test]
    fn empty_corpus_and_bad_ids_are_errors() {
        let config = DrafterConfig::default();
        let empty = Corpus::from_sequences(&[vec![], vec![]], None).unwrap();
        assert!(matches!(
            NgramStore::build(&empty, &config),
            Err(Error::Input(InputError::EmptyCorpus))
        ));
        let corpus = Corpus::from_sequences(&[vec![1, 50]], None).unwrap();
        let small = DrafterConfig {
            vocab_size: Some(10),
            ..config
        };
        assert!(matches!(
            NgramStore::build(&corpus, &small),
            Err(Error::Input(InputError::TokenOutOfRange { id: 50, .. }))
        ));
    }

    #[test]
    fn best_child_is_smallest_token_on_ties() {
        let s = store(&[vec![1, 9], vec![1, 4], vec![1, 7]], 2, 1);
        assert_eq!(s.longest_match(&[1]).unwrap().best(), (4, 1));
    }
}
