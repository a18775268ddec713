//! The fast store build: every position's n_max-gram packed into one integer key, one sort, one
//! scan. Used when `n_max` tokens of the corpus's id width fit 128 bits (a 16-bit vocabulary at
//! n_max <= 8, a 17..18-bit one at n_max <= 7); `store` falls back to its grouped build otherwise.
//!
//! A key holds tokens as `id + 1` in `bits` bits each, first token highest, with 0 marking the end
//! of the sequence, so sorting keys sorts every prefix lexicographically. Scanning the sorted keys,
//! the length of the common prefix with the previous key tells which runs (one per depth) end
//! here; a run of equal d-token prefixes is one d-gram with its count, and runs come out in
//! (parent, token) order, which is exactly the level layout.

use super::RawLevels;
use crate::corpus::Corpus;

trait Key: Copy + Ord + Send + Sync + Default {
    fn push(self, bits: u32, value: u32) -> Self;
    fn token(self, bits: u32, n_max: usize, j: usize) -> u32;
    fn common_tokens(self, other: Self, bits: u32, n_max: usize) -> usize;
}

macro_rules! impl_key {
    ($t:ty) => {
        impl Key for $t {
            #[inline]
            fn push(self, bits: u32, value: u32) -> Self {
                (self << bits) | <$t>::from(value)
            }
            #[inline]
            fn token(self, bits: u32, n_max: usize, j: usize) -> u32 {
                let shift = bits * (n_max - 1 - j) as u32;
                ((self >> shift) & ((1 << bits) - 1)) as u32
            }
            #[inline]
            fn common_tokens(self, other: Self, bits: u32, n_max: usize) -> usize {
                let used = bits * n_max as u32;
                let lz = (self ^ other).leading_zeros() - (<$t>::BITS - used);
                ((lz / bits) as usize).min(n_max)
            }
        }
    };
}
impl_key!(u64);
impl_key!(u128);

/// Builds the raw levels if the keys fit; `None` tells the caller to use the general build.
pub(crate) fn build(corpus: &Corpus, n_max: usize, min_count: u32) -> Option<RawLevels> {
    let max = corpus.tokens().iter().copied().max().unwrap_or(0);
    // ids are stored as id + 1, 0 is the end marker
    let bits = 64 - (u64::from(max) + 1).leading_zeros();
    let used = bits as usize * n_max;
    if used <= 64 {
        Some(scan_on_two_cores(
            &sorted_keys::<u64>(corpus, n_max, bits),
            n_max,
            bits,
            min_count,
        ))
    } else if used <= 128 {
        Some(scan_on_two_cores(
            &sorted_keys::<u128>(corpus, n_max, bits),
            n_max,
            bits,
            min_count,
        ))
    } else {
        None
    }
}

fn sorted_keys<K: Key>(corpus: &Corpus, n_max: usize, bits: u32) -> Vec<K> {
    let tokens = corpus.tokens();
    let mut keys = Vec::with_capacity(tokens.len());
    for w in corpus.offsets().windows(2) {
        let seq = &tokens[w[0]..w[1]];
        for start in 0..seq.len() {
            let mut key = K::default();
            for j in 0..n_max {
                key = key.push(bits, seq.get(start + j).map_or(0, |&t| t + 1));
            }
            keys.push(key);
        }
    }
    sort_on_two_cores(&mut keys);
    keys
}

/// Sorts the halves on two threads and merges: the build's only super-linear step.
fn sort_on_two_cores<K: Key>(keys: &mut Vec<K>) {
    if keys.len() < 1 << 16 {
        keys.sort_unstable();
        return;
    }
    let mid = keys.len() / 2;
    let (a, b) = keys.split_at_mut(mid);
    std::thread::scope(|s| {
        s.spawn(|| a.sort_unstable());
        b.sort_unstable();
    });
    let mut merged = Vec::with_capacity(keys.len());
    let (mut i, mut j) = (0, mid);
    while i < mid && j < keys.len() {
        if keys[i] <= keys[j] {
            merged.push(keys[i]);
            i += 1;
        } else {
            merged.push(keys[j]);
            j += 1;
        }
    }
    merged.extend_from_slice(&keys[i..mid]);
    merged.extend_from_slice(&keys[j..]);
    *keys = merged;
}

/// The open run at each depth while scanning, and what has been emitted.
struct Runs {
    min_count: u32,
    token: Vec<u32>,
    count: Vec<u32>,
    /// Kept children of the open run at each depth (index 0 = the root).
    kids: Vec<u32>,
    out: RawLevels,
}

impl Runs {
    fn close(&mut self, d: usize) {
        if self.count[d] >= self.min_count {
            self.out.tokens[d].push(self.token[d]);
            self.out.counts[d].push(self.count[d]);
            self.out.children[d].push(self.kids[d]);
            self.kids[d - 1] += 1;
        }
        self.count[d] = 0;
        self.kids[d] = 0;
    }
}

/// Scans the two halves of the sorted keys on two threads. The halves are split where the first
/// token changes, so no run crosses the split and the results simply concatenate.
fn scan_on_two_cores<K: Key>(keys: &[K], n_max: usize, bits: u32, min_count: u32) -> RawLevels {
    let first = |k: &K| k.token(bits, n_max, 0);
    let mut mid = keys.len() / 2;
    while mid > 0 && mid < keys.len() && first(&keys[mid - 1]) == first(&keys[mid]) {
        mid += 1;
    }
    if keys.len() < 1 << 16 || mid >= keys.len() {
        return scan(keys, n_max, bits, min_count);
    }
    let (a, b) = keys.split_at(mid);
    let (mut left, right) = std::thread::scope(|s| {
        let left = s.spawn(|| scan(a, n_max, bits, min_count));
        let right = scan(b, n_max, bits, min_count);
        // A panic in the scan is a bug: re-raise it here rather than lose it.
        (
            left.join().unwrap_or_else(|e| std::panic::resume_unwind(e)),
            right,
        )
    });
    left.counts[0][0] += right.counts[0][0];
    left.children[0][0] += right.children[0][0];
    for d in 1..=n_max {
        left.tokens[d].extend_from_slice(&right.tokens[d]);
        left.counts[d].extend_from_slice(&right.counts[d]);
        left.children[d].extend_from_slice(&right.children[d]);
    }
    left
}

fn scan<K: Key>(keys: &[K], n_max: usize, bits: u32, min_count: u32) -> RawLevels {
    let mut runs = Runs {
        min_count,
        token: vec![0; n_max + 1],
        count: vec![0; n_max + 1],
        kids: vec![0; n_max + 1],
        out: RawLevels::new(n_max, keys.len()),
    };
    let mut prev: Option<K> = None;
    for &key in keys {
        let common = prev.map_or(0, |p| p.common_tokens(key, bits, n_max));
        // Deepest first, so a run's children are counted before it is closed.
        for d in (common + 1..=n_max).rev() {
            runs.close(d);
        }
        for d in 1..=n_max {
            let token = key.token(bits, n_max, d - 1);
            if token == 0 {
                break;
            }
            if d > common {
                runs.token[d] = token - 1;
                runs.count[d] = 1;
            } else {
                runs.count[d] += 1;
            }
        }
        prev = Some(key);
    }
    for d in (1..=n_max).rev() {
        runs.close(d);
    }
    let mut out = runs.out;
    out.children[0].push(runs.kids[0]);
    out
}
