//! Building the task store's levels from a corpus.
//!
//! Two builders produce the same [`RawLevels`]: [`sorted`] packs each position's n-gram into one
//! integer key, sorts and scans (fast; needs `n_max` ids to fit 128 bits), and [`grouped`] refines
//! groups depth by depth (any vocabulary). [`assemble`] turns either into packed trie levels.

mod grouped;
mod sorted;

use crate::corpus::Corpus;
use crate::level::Level;
use crate::packed::Packed;

/// Per depth (0 = root): kept tokens and counts in (parent, token) order, and each node's number
/// of kept children.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct RawLevels {
    pub tokens: Vec<Vec<u32>>,
    pub counts: Vec<Vec<u32>>,
    pub children: Vec<Vec<u32>>,
}

impl RawLevels {
    fn new(n_max: usize, corpus_tokens: usize) -> Self {
        let mut raw = Self {
            tokens: vec![Vec::new(); n_max + 1],
            counts: vec![Vec::new(); n_max + 1],
            children: vec![Vec::new(); n_max + 1],
        };
        raw.tokens[0].push(0);
        raw.counts[0].push(corpus_tokens as u32);
        raw
    }
}

/// The store levels for `corpus`: every n-gram (n = 1..=n_max) inside a sequence, kept if seen at
/// least `min_count` times.
pub(crate) fn build_levels(corpus: &Corpus, n_max: usize, min_count: u32) -> Vec<Level> {
    let raw = sorted::build(corpus, n_max, min_count)
        .unwrap_or_else(|| grouped::build(corpus, n_max, min_count));
    assemble(&raw)
}

fn assemble(raw: &RawLevels) -> Vec<Level> {
    let depths = raw.counts.len();
    (0..depths)
        .map(|d| {
            let mut level = Level {
                tokens: Packed::new(&raw.tokens[d]),
                counts: Packed::new(&raw.counts[d]),
                ..Level::default()
            };
            if d + 1 < depths {
                let mut child_start = Vec::with_capacity(raw.children[d].len() + 1);
                child_start.push(0u32);
                let mut end = 0u32;
                for &c in &raw.children[d] {
                    end += c;
                    child_start.push(end);
                }
                finish_parent(&mut level, child_start, &raw.counts[d + 1]);
            }
            level
        })
        .collect()
}

/// Fills a parent level's child ranges, totals and best children.
fn finish_parent(level: &mut Level, child_start: Vec<u32>, child_counts: &[u32]) {
    let n = level.len();
    let mut totals = Vec::with_capacity(n);
    let mut best = Vec::with_capacity(n);
    for i in 0..n {
        let (s, e) = (child_start[i] as usize, child_start[i + 1] as usize);
        let children = &child_counts[s..e];
        totals.push(children.iter().sum());
        // max_by_key keeps the last maximum; scanning reversed makes it the first (smallest token).
        let offset = children
            .iter()
            .enumerate()
            .rev()
            .max_by_key(|&(_, &c)| c)
            .map_or(0, |(j, _)| j as u32);
        best.push(offset);
    }
    level.totals = Packed::new(&totals);
    level.best = Packed::new(&best);
    level.child_start = child_start.into();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::draft::tests::xorshift;

    /// xorshift: deterministic corpora without a dev-dependency.
    fn corpus(seed: u64, vocab: u64, seqs: usize) -> Corpus {
        let mut next = xorshift(seed | 1);
        let seqs: Vec<Vec<u32>> = (0..seqs)
            .map(|_| (0..next(12)).map(|_| next(vocab) as u32).collect())
            .collect();
        Corpus::from_sequences(&seqs, None).unwrap()
    }

    #[test]
    fn both_builders_agree() {
        for seed in 1..40 {
            for (vocab, n_max, min_count) in [
                (5, 4, 1),
                (5, 3, 2),
                (300, 4, 1),
                (70_000, 4, 1),
                (9, 8, 3),
                (2, 1, 1),
            ] {
                let c = corpus(seed, vocab, 60);
                let fast = sorted::build(&c, n_max, min_count).expect("keys fit");
                let general = grouped::build(&c, n_max, min_count);
                assert_eq!(
                    fast, general,
                    "seed {seed} vocab {vocab} n_max {n_max} min_count {min_count}"
                );
            }
        }
    }

    #[test]
    fn two_core_sort_and_scan_agree_with_the_general_build() {
        // Above the 65,536-key threshold, so the sorted build splits work across two threads.
        for (vocab, n_max) in [(300, 4), (40_000, 4), (3, 6)] {
            let c = corpus(99, vocab, 20_000);
            assert!(c.num_tokens() > 1 << 16);
            assert_eq!(
                sorted::build(&c, n_max, 1),
                Some(grouped::build(&c, n_max, 1))
            );
            assert_eq!(
                sorted::build(&c, n_max, 3),
                Some(grouped::build(&c, n_max, 3))
            );
        }
    }

    #[test]
    fn wide_ids_fall_back_to_the_grouped_builder() {
        let c = Corpus::from_sequences(&[vec![u32::MAX - 1, 3, 4]], None).unwrap();
        assert!(sorted::build(&c, 5, 1).is_none());
        assert_eq!(build_levels(&c, 5, 1)[5].len(), 0);
        assert_eq!(build_levels(&c, 5, 1)[3].len(), 1);
    }
}
