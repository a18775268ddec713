//! The prefix collision score (defined in the module docs of [`super`]).
//!
//! Every occurrence of `s` in the corpus text starts at some offset `j` inside some base token
//! `x` (`j = 0`: on a boundary). Either `x[j..]` is a non-empty prefix of `s` (then the tokens
//! after `x` decide whether the text goes on with `s`), or `s` is a proper prefix of `x[j..]`
//! (the occurrence ends inside `x`, at every occurrence of `x`). So a sorted table of all
//! vocabulary suffixes finds the few tokens to visit, and per-token position lists find them.
//!
//! Following each visited token costs up to `len(s)` steps, which is cheap on natural text but
//! quadratic on repetitive text (a long run of one token, where every position starts an
//! occurrence and the new strings grow fourfold per merge). When the visits could cost more
//! than reading the whole text, the occurrences are counted instead by one KMP scan of the
//! corpus text: linear in its size whatever the string.

use std::collections::VecDeque;

use crate::corpus::Corpus;

/// The index method is used while `visits * len(s)` stays below this many times the text size.
const SCAN_FACTOR: usize = 4;

pub struct PcsIndex<'a> {
    tokens: &'a [u32],
    strings: &'a [Vec<u8>],
    /// `last[p]`: position `p` ends its sequence.
    last: Vec<bool>,
    offsets: &'a [usize],
    /// Bytes of the whole corpus text.
    text_bytes: usize,
    /// Every `(token, j)` with `j < len(string)`, sorted by `string[j..]`.
    suffixes: Vec<(u32, u32)>,
    /// `positions[starts[t]..starts[t + 1]]` are the corpus positions of token `t`.
    starts: Vec<usize>,
    positions: Vec<u32>,
}

impl<'a> PcsIndex<'a> {
    pub fn new(corpus: &'a Corpus, strings: &'a [Vec<u8>]) -> Self {
        let tokens = corpus.tokens();
        let mut starts = vec![0usize; strings.len() + 1];
        for &t in tokens {
            starts[t as usize + 1] += 1;
        }
        for i in 1..starts.len() {
            starts[i] += starts[i - 1];
        }
        let mut fill = starts.clone();
        let mut positions = vec![0u32; tokens.len()];
        for (p, &t) in tokens.iter().enumerate() {
            positions[fill[t as usize]] = p as u32;
            fill[t as usize] += 1;
        }
        let mut last = vec![false; tokens.len()];
        for w in corpus.offsets().windows(2).filter(|w| w[0] < w[1]) {
            last[w[1] - 1] = true;
        }
        let mut suffixes: Vec<(u32, u32)> = strings
            .iter()
            .enumerate()
            .flat_map(|(id, s)| (0..s.len() as u32).map(move |j| (id as u32, j)))
            .collect();
        suffixes.sort_unstable_by(|&(a, i), &(b, j)| {
            strings[a as usize][i as usize..].cmp(&strings[b as usize][j as usize..])
        });
        let text_bytes = tokens.iter().map(|&t| strings[t as usize].len()).sum();
        Self {
            tokens,
            strings,
            last,
            offsets: corpus.offsets(),
            text_bytes,
            suffixes,
            starts,
            positions,
        }
    }

    /// `PCS(s) = (total - aligned) / total`, 0 when `s` does not occur. `live(p)` tells whether base
    /// position `p` starts a token of the current tokenization.
    pub fn score(&self, s: &[u8], live: impl Fn(usize) -> bool) -> f64 {
        let (aligned, total) = self.occurrences(s, live);
        if total == 0 {
            0.0
        } else {
            (total - aligned) as f64 / total as f64
        }
    }

    /// Counts the occurrences of `s` in the corpus text: (aligned on current boundaries, all).
    pub fn occurrences(&self, s: &[u8], live: impl Fn(usize) -> bool) -> (u64, u64) {
        if s.is_empty() {
            return (0, 0);
        }
        let ranges = self.ranges(s);
        let visits: usize = ranges
            .iter()
            .flat_map(|range| range.iter())
            .map(|&(id, _)| self.positions_of(id).len())
            .sum();
        if visits.saturating_mul(s.len()) > SCAN_FACTOR.saturating_mul(self.text_bytes.max(1)) {
            self.occurrences_by_scan(s, live)
        } else {
            self.occurrences_by_index(s, live, ranges)
        }
    }

    /// For each `k` in `1..=len(s)`, the suffix entries equal to `s[..k]`.
    fn ranges(&self, s: &[u8]) -> Vec<&[(u32, u32)]> {
        (1..=s.len())
            .map(|k| self.suffix_range(|t| t.cmp(&s[..k])))
            .collect()
    }

    /// [`Self::occurrences`] always by the index (the scan's reference in tests).
    #[cfg(test)]
    pub(super) fn occurrences_by_index_only(
        &self,
        s: &[u8],
        live: impl Fn(usize) -> bool,
    ) -> (u64, u64) {
        self.occurrences_by_index(s, live, self.ranges(s))
    }

    /// [`Self::occurrences`] by following, for every `k`, the tokens whose suffix is `s[..k]`.
    fn occurrences_by_index(
        &self,
        s: &[u8],
        live: impl Fn(usize) -> bool,
        ranges: Vec<&[(u32, u32)]>,
    ) -> (u64, u64) {
        let mut aligned = 0u64;
        let mut total = 0u64;
        let boundary = |q: usize| q >= self.tokens.len() || live(q);
        for (k, range) in (1..=s.len()).zip(ranges) {
            for &(id, j) in range {
                for &p in self.positions_of(id) {
                    let Some(end) = self.walk(p as usize, s, k) else {
                        continue;
                    };
                    total += 1;
                    if j == 0 && live(p as usize) && end.is_some_and(boundary) {
                        aligned += 1;
                    }
                }
            }
        }
        // Suffixes that go on past `s`: the occurrence ends inside the token.
        let longer = self.suffix_range(|t| {
            if t.len() > s.len() && t.starts_with(s) {
                std::cmp::Ordering::Equal
            } else if t == s {
                std::cmp::Ordering::Less
            } else {
                t.cmp(s)
            }
        });
        for &(id, _) in longer {
            total += self.positions_of(id).len() as u64;
        }
        (aligned, total)
    }

    /// [`Self::occurrences`] by one KMP pass over each sequence's text: every occurrence of `s`
    /// (overlapping ones included) is found once; it is aligned when it starts a live token and
    /// ends on a token boundary that is live (or ends the corpus).
    pub(super) fn occurrences_by_scan(&self, s: &[u8], live: impl Fn(usize) -> bool) -> (u64, u64) {
        if s.is_empty() {
            return (0, 0);
        }
        let fail = kmp_failure(s);
        let boundary = |q: usize| q >= self.tokens.len() || live(q);
        let (mut aligned, mut total) = (0u64, 0u64);
        // (byte offset, position) of the non-empty tokens that may start a match still open
        let mut starts: VecDeque<(usize, usize)> = VecDeque::new();
        for w in self.offsets.windows(2) {
            let (mut state, mut byte) = (0usize, 0usize);
            starts.clear();
            for p in w[0]..w[1] {
                let text = self.strings[self.tokens[p] as usize].as_slice();
                if !text.is_empty() {
                    starts.push_back((byte, p));
                }
                for (i, &c) in text.iter().enumerate() {
                    while state > 0 && s[state] != c {
                        state = fail[state - 1];
                    }
                    if s[state] == c {
                        state += 1;
                    }
                    if state < s.len() {
                        continue;
                    }
                    total += 1;
                    state = fail[state - 1];
                    if i + 1 != text.len() || !boundary(p + 1) {
                        continue;
                    }
                    let start = byte + i + 1 - s.len();
                    while starts.front().is_some_and(|&(b, _)| b < start) {
                        starts.pop_front();
                    }
                    if starts.front().is_some_and(|&(b, q)| b == start && live(q)) {
                        aligned += 1;
                    }
                }
                byte += text.len();
            }
        }
        (aligned, total)
    }

    /// Suffix entries that compare `Equal` under `order` (a contiguous run of the sorted table).
    fn suffix_range(&self, order: impl Fn(&[u8]) -> std::cmp::Ordering) -> &[(u32, u32)] {
        let text = |&(id, j): &(u32, u32)| &self.strings[id as usize][j as usize..];
        let lo = self
            .suffixes
            .partition_point(|e| order(text(e)) == std::cmp::Ordering::Less);
        let hi = self
            .suffixes
            .partition_point(|e| order(text(e)) != std::cmp::Ordering::Greater);
        &self.suffixes[lo..hi.max(lo)]
    }

    fn positions_of(&self, id: u32) -> &[u32] {
        &self.positions[self.starts[id as usize]..self.starts[id as usize + 1]]
    }

    /// Follows the tokens after position `p`, whose text ends with `s[..matched]`. `None`: the
    /// text differs from `s` or the sequence ends first; `Some(None)`: `s` ends inside a token;
    /// `Some(Some(q))`: `s` ends on the boundary before position `q`.
    fn walk(&self, p: usize, s: &[u8], mut matched: usize) -> Option<Option<usize>> {
        let mut q = p;
        while matched < s.len() {
            if self.last[q] {
                return None;
            }
            q += 1;
            let rest = &s[matched..];
            let t = self.strings[self.tokens[q] as usize].as_slice();
            if t.len() <= rest.len() {
                if !rest.starts_with(t) {
                    return None;
                }
                matched += t.len();
            } else {
                return t.starts_with(rest).then_some(None);
            }
        }
        Some(Some(q + 1))
    }
}

/// KMP failure table: `fail[i]` is the length of the longest proper border of `s[..=i]`.
fn kmp_failure(s: &[u8]) -> Vec<usize> {
    let mut fail = vec![0usize; s.len()];
    let mut k = 0usize;
    for i in 1..s.len() {
        while k > 0 && s[i] != s[k] {
            k = fail[k - 1];
        }
        if s[i] == s[k] {
            k += 1;
        }
        fail[i] = k;
    }
    fail
}
