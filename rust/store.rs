//! The task n-gram store: next-token counts for every context of length `0..n_max`, built from a
//! task's output corpus and pruned at `min_count`.
//!
//! Layout: a trie stored level by level (depth `d` holds the d-grams). The children of a node are
//! contiguous in the next level and sorted by token id, so a context is found with one binary
//! search per token and its next-token distribution is a pair of ranges. Every node stores its
//! token and count; a node with room for children adds its child start, total and best child.
//! Arrays are packed to 1, 2 or 4 bytes an element ([`Packed`]), so with a 16-bit vocabulary a
//! leaf costs 4 bytes and an inner node about 12.
//! Immutable after `build`, hence `Sync`: any number of threads may read it without locks.

use crate::build;
use crate::config::DrafterConfig;
pub use crate::level::Level;
use std::sync::Arc;

use crate::copy::CopyIndex;
use crate::corpus::{Corpus, InputError};
use crate::error::Error;
use crate::followers::Followers;
use crate::neighbours::NeighbourIndex;
use crate::packed::Packed;

/// Fills every parent level's `runner_up` counts from its children.
pub(crate) fn fill_runner_up(levels: &mut [Level]) {
    for d in 0..levels.len().saturating_sub(1) {
        let (parents, rest) = levels.split_at_mut(d + 1);
        let (level, next) = (&mut parents[d], &rest[0]);
        let values: Vec<u32> = (0..level.len())
            .map(|i| {
                let (start, end) = level.children(i);
                let best = start + level.best.get(i) as usize;
                let mut second = 0;
                next.counts.for_each_in(start, end, |j, c| {
                    if j != best {
                        second = second.max(c);
                    }
                });
                second
            })
            .collect();
        level.runner_up = Packed::new(&values);
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
    /// Where answers copy their request (built from pairs; `None`: answers only).
    pub(crate) copy: Option<Arc<CopyIndex>>,
    /// The training pairs, for similar past requests (built from pairs; `None`: answers only).
    pub(crate) neighbours: Option<Arc<NeighbourIndex>>,
}

/// Where a lookup matched in the store: the matched context's node and its length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreMatch {
    pub depth: usize,
    node: u32,
}

/// The next-token distribution of one context in the store.
#[derive(Debug, Clone, Copy)]
pub struct CorpusFollowers<'a> {
    level: &'a Level,
    start: usize,
    end: usize,
    total: u32,
    best: usize,
    second: u32,
}

impl Followers for CorpusFollowers<'_> {
    fn total(&self) -> u32 {
        self.total
    }
    fn second(&self) -> u32 {
        self.second
    }
    fn best(&self) -> (u32, u32) {
        (
            self.level.tokens.get(self.best),
            self.level.counts.get(self.best),
        )
    }
    fn len(&self) -> usize {
        self.end - self.start
    }
    fn count(&self, token: u32) -> u32 {
        self.level
            .tokens
            .search(self.start, self.end, token)
            .map_or(0, |i| self.level.counts.get(i))
    }
    fn for_each(&self, mut f: impl FnMut(u32, u32)) {
        let counts = &self.level.counts;
        self.level
            .tokens
            .for_each_in(self.start, self.end, |i, t| f(t, counts.get(i)));
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
            let id = i128::from(corpus.tokens()[position]);
            return Err(InputError::TokenOutOfRange {
                id,
                position,
                limit,
            }
            .into());
        }
        let mut levels = build::build_levels(corpus, config.n_max, config.min_count);
        fill_runner_up(&mut levels);
        Ok(Self {
            config: config.clone(),
            levels,
            corpus_tokens: corpus.num_tokens() as u64,
            sequences: corpus.num_sequences() as u64,
            copy: None,
            neighbours: None,
        })
    }

    /// This store with a copy pointer ([`crate::copy`]); an empty index is dropped.
    pub fn with_copy(mut self, copy: CopyIndex) -> Self {
        self.copy = (!copy.is_empty()).then(|| Arc::new(copy));
        self
    }

    /// This store with its training pairs for similar past requests ([`crate::neighbours`]);
    /// an empty index is dropped.
    pub fn with_neighbours(mut self, neighbours: NeighbourIndex) -> Self {
        self.neighbours = (!neighbours.is_empty()).then(|| Arc::new(neighbours));
        self
    }

    /// The training pairs' index, when the store was built from (request, answer) pairs.
    pub fn neighbour_index(&self) -> Option<&NeighbourIndex> {
        self.neighbours.as_deref()
    }

    /// The copy pointer, when the store was built from (request, answer) pairs.
    pub fn copy_index(&self) -> Option<&CopyIndex> {
        self.copy.as_deref()
    }

    /// The copy pointer, shared (see [`copy_index`](Self::copy_index)).
    pub fn copy_shared(&self) -> Option<Arc<CopyIndex>> {
        self.copy.clone()
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
        self.longest_match_depth(history).map(|(_, f)| f)
    }

    /// Like [`longest_match`](Self::longest_match), with the length of the matched context.
    pub fn longest_match_depth(&self, history: &[u32]) -> Option<(usize, CorpusFollowers<'_>)> {
        self.longest_match_after(history, None)
            .map(|(at, f)| (at.depth, f))
    }

    /// [`longest_match_depth`](Self::longest_match_depth) for a history one token longer than
    /// the one `prev` matched (the previous drafting step's lookup), with the same bound on
    /// its length. The new match is at most one deeper than `prev` (a context of `d + 1`
    /// tokens has a follower only if its first `d` tokens are a context followed by its last):
    /// it is either `prev`'s child by the new token, one binary search, or no deeper than
    /// `prev`. `None` for `prev` searches every order.
    pub fn longest_match_after(
        &self,
        history: &[u32],
        prev: Option<StoreMatch>,
    ) -> Option<(StoreMatch, CorpusFollowers<'_>)> {
        let max_order = history.len().min(self.config.n_max - 1);
        let mut top = max_order;
        let prev = prev.filter(|p| self.holds(*p));
        if let (Some(p), Some(&last)) = (prev, history.last()) {
            let deeper = p.depth + 1;
            if deeper <= max_order {
                let (start, end) = self.levels[p.depth].children(p.node as usize);
                if let Some(c) = self.levels[deeper].tokens.search(start, end, last) {
                    let node = c as u32;
                    if let Some(f) = self.followers(deeper, node) {
                        return Some((
                            StoreMatch {
                                depth: deeper,
                                node,
                            },
                            f,
                        ));
                    }
                }
                top = p.depth;
            }
        }
        (0..=top).rev().find_map(|m| {
            let node = self.find(&history[history.len() - m..])?;
            self.followers(m, node)
                .map(|f| (StoreMatch { depth: m, node }, f))
        })
    }

    /// Whether `m` names a node of this store with room for children (a match from another
    /// store may not; it is then ignored rather than trusted).
    fn holds(&self, m: StoreMatch) -> bool {
        m.depth + 1 < self.levels.len() && (m.node as usize) < self.levels[m.depth].len()
    }

    /// The next-token distribution at a match this store made, `None` if `m` is not one.
    pub fn at(&self, m: StoreMatch) -> Option<CorpusFollowers<'_>> {
        if self.holds(m) {
            self.followers(m.depth, m.node)
        } else {
            None
        }
    }

    /// The match after `tokens`, given `m`, the match after their first `known` tokens
    /// (`None`: unknown): one [`longest_match_after`](Self::longest_match_after) per token
    /// past `known`, so a request's match follows its tokens as they arrive.
    pub fn match_after(
        &self,
        tokens: &[u32],
        known: usize,
        m: Option<StoreMatch>,
    ) -> Option<StoreMatch> {
        let order = self.config.n_max - 1;
        if m.is_none() || known > tokens.len() {
            let tail = &tokens[tokens.len().saturating_sub(order)..];
            return self.longest_match_after(tail, None).map(|(m, _)| m);
        }
        (known..tokens.len()).fold(m, |m, i| {
            let suffix = &tokens[(i + 1).saturating_sub(order)..=i];
            self.longest_match_after(suffix, m).map(|(m, _)| m)
        })
    }

    /// The node of `context` at depth `context.len()`, if it is in the store.
    fn find(&self, context: &[u32]) -> Option<u32> {
        let mut node = 0usize;
        for (depth, &token) in context.iter().enumerate() {
            let (start, end) = self.levels[depth].children(node);
            node = self.levels[depth + 1].tokens.search(start, end, token)?;
        }
        Some(node as u32)
    }

    fn followers(&self, depth: usize, node: u32) -> Option<CorpusFollowers<'_>> {
        let level = &self.levels[depth];
        let node = node as usize;
        let (start, end) = level.children(node);
        if start == end {
            return None;
        }
        Some(CorpusFollowers {
            level: &self.levels[depth + 1],
            start,
            end,
            total: level.totals.get(node),
            best: start + level.best.get(node) as usize,
            second: level.runner_up.get(node),
        })
    }

    /// Counts per order and memory used.
    pub fn stats(&self) -> StoreStats {
        let n = self.config.n_max;
        StoreStats {
            ngrams: (1..=n).map(|d| self.levels[d].len() as u64).collect(),
            contexts: (0..n)
                .map(|d| {
                    (0..self.levels[d].len())
                        .filter(|&i| {
                            let (s, e) = self.levels[d].children(i);
                            s < e
                        })
                        .count() as u64
                })
                .collect(),
            corpus_tokens: self.corpus_tokens,
            sequences: self.sequences,
            bytes: self.bytes() as u64,
        }
    }

    /// Heap bytes held by the store.
    pub fn bytes(&self) -> usize {
        self.levels.iter().map(Level::bytes).sum::<usize>()
            + self.copy.as_deref().map_or(0, CopyIndex::bytes)
            + self.neighbours.as_deref().map_or(0, NeighbourIndex::bytes)
            + std::mem::size_of::<Self>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::draft::tests::xorshift;

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

    /// Histories drawn from a small alphabet so that matches of every depth occur.
    fn histories(seed: u64, count: usize, alphabet: u64) -> Vec<Vec<u32>> {
        let mut next = xorshift(seed);
        (0..count)
            .map(|_| (0..12).map(|_| next(alphabet) as u32).collect())
            .collect()
    }

    #[test]
    fn lookups_after_the_previous_match_equal_full_lookups() {
        let corpus = histories(7, 40, 4);
        for (n_max, min_count) in [(3, 1), (5, 1), (8, 2)] {
            let s = store(&corpus, n_max, min_count);
            for h in histories(99, 200, 5) {
                let mut prev = None;
                for end in 0..=h.len() {
                    // the drafting loop's suffix: at most n_max - 1 tokens
                    let suffix = &h[end.saturating_sub(n_max - 1)..end];
                    let full = s.longest_match_depth(suffix);
                    let after = s.longest_match_after(suffix, prev);
                    assert_eq!(
                        full.map(|(d, f)| (d, dist(&f))),
                        after.map(|(m, f)| (m.depth, dist(&f))),
                        "n_max {n_max}, history {suffix:?}"
                    );
                    if let Some((_, f)) = after {
                        let best = f.best().0;
                        let all = dist(&f);
                        let others = all.iter().filter(|&&(t, _)| t != best);
                        let second = others.map(|&(_, c)| c).max().unwrap_or(0);
                        assert_eq!(f.second(), second, "runner-up");
                    }
                    prev = after.map(|(m, _)| m);
                }
            }
        }
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
