//! The general store build, for any id width: depth by depth without hashing.
//!
//! The live n-grams of depth d are kept grouped by their parent node; sorting a group by next
//! token turns runs of equal tokens into child nodes, already in (parent, token) order, which is
//! the level layout. The runs that survive pruning, extended by one token, are the groups of the
//! next depth, in node order.

use super::RawLevels;
use crate::config::MAX_N;
use crate::corpus::Corpus;

pub(crate) fn build(corpus: &Corpus, n_max: usize, min_count: u32) -> RawLevels {
    let tokens = corpus.tokens();
    // room[pos] = tokens left in pos's sequence (capped): an n-gram of length d starts at pos
    // only if room[pos] >= d, so n-grams never cross a sequence boundary.
    let mut room = vec![0u8; tokens.len()];
    for w in corpus.offsets().windows(2) {
        for (i, r) in room[w[0]..w[1]].iter_mut().enumerate() {
            *r = (w[1] - w[0] - i).min(MAX_N) as u8;
        }
    }
    let mut raw = RawLevels::new(n_max, tokens.len());
    // (next token << 32 | start position) of every live n-gram, grouped by its node at the
    // previous depth: `groups[p]..groups[p + 1]` belong to node p.
    let mut items: Vec<u64> = (0..tokens.len())
        .map(|pos| (u64::from(tokens[pos]) << 32) | pos as u64)
        .collect();
    let mut groups = vec![0, items.len()];
    let mut runs: Vec<usize> = Vec::new();
    for depth in 1..=n_max {
        let parents = raw.counts[depth - 1].len();
        let mut next_groups = vec![0usize];
        let mut write = 0;
        for p in 0..parents {
            let group = &mut items[groups[p]..groups[p + 1]];
            group.sort_unstable();
            runs.clear();
            runs.extend(group.chunk_by(|a, b| a >> 32 == b >> 32).map(<[u64]>::len));
            let mut read = groups[p];
            let kept_before = raw.counts[depth].len();
            for &run_len in &runs {
                let run = read..read + run_len;
                read += run_len;
                if (run_len as u32) < min_count {
                    continue;
                }
                raw.tokens[depth].push((items[run.start] >> 32) as u32);
                raw.counts[depth].push(run_len as u32);
                if depth == n_max {
                    continue;
                }
                // Compact in place: the write cursor never passes the read cursor.
                for i in run {
                    let pos = (items[i] & 0xffff_ffff) as usize;
                    if usize::from(room[pos]) > depth {
                        items[write] = (u64::from(tokens[pos + depth]) << 32) | pos as u64;
                        write += 1;
                    }
                }
                next_groups.push(write);
            }
            raw.children[depth - 1].push((raw.counts[depth].len() - kept_before) as u32);
        }
        items.truncate(write);
        groups = next_groups;
    }
    raw.children[n_max] = vec![0; raw.counts[n_max].len()];
    raw
}
