//! The copy pointer: where a task's answers copy a value of their request, learned from
//! (request, answer) pairs, and drafted from the live request.
//!
//! In structured tasks an answer copies spans of its request at predictable points: an e2e_nlg
//! description starts with the restaurant's name, which its request gives after `name[`; a
//! query names the tables its request lists. The task store cannot draft a value it has never
//! seen and the context index cannot tell which of the request's spans comes next. Building
//! from pairs, every maximal run of at least [`MIN_SPAN`] tokens an answer shares with its
//! request is found; the answer's context there (its last two tokens, or its start) is paired
//! with the request's *anchors*: the two tokens before the copied run (`name` `[`), and the one
//! token before it (`[`, or `at` in `wake me up at seven`). A context keeps up to
//! [`MAX_ANCHORS`] anchors that came before at least [`MIN_SHARE`] of its copies, two-token ones
//! first, each with the share of the context's occurrences that were such a copy. Drafting,
//! where the answer's context has anchors, the first one the request holds (within the last
//! tokens of the prompt, as long as the longest training request: the request, not the
//! examples before it) points at the value: its tokens are drafted up to a token that ended
//! copied runs in training (an *ender*, such as `]`), and drafting goes on from there.

use std::sync::RwLock;

use rustc_hash::{FxHashMap, FxHashSet};

/// Fewest tokens an answer must share with its request for a copy to count.
pub const MIN_SPAN: usize = 2;
/// Request tokens before a copied run that locate it.
pub const ANCHOR: usize = 2;
/// Copies a context must have been seen making before it keeps an anchor.
pub const MIN_SEEN: u32 = 3;
/// Share of a context's copies that must come after its kept anchor.
pub const MIN_SHARE: f64 = 0.4;
/// Occurrences of a token pair in a request tried as the start of a copy (the last ones), so
/// that a request repeating one pair thousands of times cannot make building quadratic.
const MAX_STARTS: usize = 64;
/// Weight, in finished responses, of a context's training share against what the served
/// model did there (see [`CopyStats`]): one, so that a model that never copies there stops
/// being drafted the value after a few responses.
pub const PRIOR: f64 = 1.0;
/// Anchors a context keeps.
pub const MAX_ANCHORS: usize = 4;
/// Most prompt tokens searched for anchors (the prompt's last ones).
pub const MAX_WINDOW: usize = 4096;
/// Tokens searched beyond the longest training request (the template around the request).
const WINDOW_SLACK: usize = 16;
/// Times a token must have ended a copied run to end one when drafting.
pub const MIN_ENDS: u32 = 2;
const NONE: u32 = u32::MAX;

#[inline]
fn pack(a: u32, b: u32) -> u64 {
    (u64::from(a) << 32) | u64::from(b)
}

/// A one-token anchor, packed as a two-token one whose first token is `NONE`.
#[inline]
fn single(t: u32) -> u64 {
    pack(NONE, t)
}

/// The key of an answer's context: its last two tokens, `NONE` for those before its start.
#[inline]
pub fn context_key(answer: &[u32]) -> u64 {
    match answer {
        [] => pack(NONE, NONE),
        [a] => pack(NONE, *a),
        [.., a, b] => pack(*a, *b),
    }
}

/// A context's anchor and how often the context was a copy after it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Anchor {
    /// The anchor's two tokens, packed (the first `u32::MAX` for a one-token anchor).
    pub tokens: u64,
    /// Copies after this anchor / occurrences of the context in the answers.
    pub share: f32,
}

/// Answer contexts -> anchors, and the tokens that end copied values (see the module docs).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CopyIndex {
    /// Each context's anchors, in the order drafting tries them.
    anchors: FxHashMap<u64, Vec<Anchor>>,
    enders: FxHashSet<u32>,
    /// Prompt tokens (the last ones) searched for anchors.
    window: usize,
}

impl CopyIndex {
    /// Learns anchors and enders from `(request, answer)` pairs of token ids.
    pub fn build<'a>(pairs: impl IntoIterator<Item = (&'a [u32], &'a [u32])>) -> Self {
        let mut totals: FxHashMap<u64, u32> = FxHashMap::default();
        let mut seen: FxHashMap<u64, FxHashMap<u64, u32>> = FxHashMap::default();
        let mut copies: FxHashMap<u64, u32> = FxHashMap::default();
        let mut longest = 0usize;
        let mut ends: FxHashMap<u32, u32> = FxHashMap::default();
        let mut where_: FxHashMap<u64, Vec<u32>> = FxHashMap::default();
        for (request, answer) in pairs {
            longest = longest.max(request.len());
            for j in 0..answer.len() {
                *totals.entry(context_key(&answer[..j])).or_default() += 1;
            }
            where_.clear();
            for (i, w) in request.windows(2).enumerate() {
                where_.entry(pack(w[0], w[1])).or_default().push(i as u32);
            }
            let mut j = 0;
            while j + 1 < answer.len() {
                let (mut best_len, mut best_i) = (0usize, 0usize);
                let starts = where_.get(&pack(answer[j], answer[j + 1]));
                for &i in starts.into_iter().flatten().rev().take(MAX_STARTS) {
                    let i = i as usize;
                    let n = answer[j..]
                        .iter()
                        .zip(&request[i..])
                        .take_while(|(a, b)| a == b)
                        .count();
                    if n > best_len {
                        (best_len, best_i) = (n, i);
                    }
                }
                if best_len >= MIN_SPAN && best_i >= 1 {
                    let key = context_key(&answer[..j]);
                    *copies.entry(key).or_default() += 1;
                    let counts = seen.entry(key).or_default();
                    *counts.entry(single(request[best_i - 1])).or_default() += 1;
                    if best_i >= ANCHOR {
                        let two = pack(request[best_i - 2], request[best_i - 1]);
                        *counts.entry(two).or_default() += 1;
                    }
                    if let Some(&end) = request.get(best_i + best_len) {
                        *ends.entry(end).or_default() += 1;
                    }
                    j += best_len;
                } else {
                    j += 1;
                }
            }
        }
        let mut anchors = FxHashMap::default();
        for (key, counts) in seen {
            let made = copies.get(&key).copied().unwrap_or(0);
            let total = totals.get(&key).copied().unwrap_or(made).max(1);
            let mut kept: Vec<(u64, u32)> = counts
                .into_iter()
                .filter(|&(_, n)| n >= MIN_SEEN && f64::from(n) >= MIN_SHARE * f64::from(made))
                .collect();
            // two-token anchors first (a one-token one also matches other fields' anchors),
            // then the more frequent, then the smaller (deterministic)
            kept.sort_unstable_by_key(|&(a, n)| {
                ((a >> 32) as u32 == NONE, std::cmp::Reverse(n), a)
            });
            kept.truncate(MAX_ANCHORS);
            if !kept.is_empty() {
                let list = kept
                    .into_iter()
                    .map(|(tokens, n)| Anchor {
                        tokens,
                        share: (f64::from(n) / f64::from(total)).min(1.0) as f32,
                    })
                    .collect();
                anchors.insert(key, list);
            }
        }
        let enders = ends
            .into_iter()
            .filter(|&(_, n)| n >= MIN_ENDS)
            .map(|(t, _)| t)
            .collect();
        let window = (longest + WINDOW_SLACK).min(MAX_WINDOW);
        Self {
            anchors,
            enders,
            window,
        }
    }

    /// An index from its parts (a loaded file's): `(context key, anchor)` in the order each
    /// context tries them, the enders and the window.
    pub fn from_parts(anchors: Vec<(u64, Anchor)>, enders: Vec<u32>, window: usize) -> Self {
        let mut by_key: FxHashMap<u64, Vec<Anchor>> = FxHashMap::default();
        for (key, anchor) in anchors {
            by_key.entry(key).or_default().push(anchor);
        }
        Self {
            anchors: by_key,
            enders: enders.into_iter().collect(),
            window: window.min(MAX_WINDOW),
        }
    }

    /// `(context key, anchor)` for every kept anchor, by key, each context's in its order (for
    /// files).
    pub fn anchors(&self) -> Vec<(u64, Anchor)> {
        let mut keys: Vec<u64> = self.anchors.keys().copied().collect();
        keys.sort_unstable();
        keys.into_iter()
            .flat_map(|k| self.anchors[&k].iter().map(move |&a| (k, a)))
            .collect()
    }

    /// Prompt tokens (the last ones) searched for anchors.
    pub fn window(&self) -> usize {
        self.window
    }

    /// The enders, sorted (for files).
    pub fn enders(&self) -> Vec<u32> {
        let mut v: Vec<u32> = self.enders.iter().copied().collect();
        v.sort_unstable();
        v
    }

    pub fn is_empty(&self) -> bool {
        self.anchors.is_empty()
    }

    /// The anchors of the answer context `key`, in the order drafting tries them.
    #[inline]
    pub fn anchors_of(&self, key: u64) -> &[Anchor] {
        self.anchors.get(&key).map_or(&[], Vec::as_slice)
    }

    /// Whether `token` ends a copied value.
    #[inline]
    pub fn ends(&self, token: u32) -> bool {
        self.enders.contains(&token)
    }

    /// Bytes held (approximate).
    pub fn bytes(&self) -> usize {
        let lists: usize = self.anchors.values().map(|v| v.capacity() * 16).sum();
        self.anchors.capacity() * 32 + lists + self.enders.capacity() * 8
    }
}

/// What the served model did where the pointer had a value: per answer context, how often
/// (`tries`) and how often the model's token was the value's first (`hits`), from finished
/// responses. Training shares say how often human answers copied; a model fine-tuned to open
/// otherwise never does, and these counts move the pointer's probability to what the model
/// does: `(hits + share * PRIOR) / (tries + PRIOR)`. Shared by a drafter's sessions and batch
/// proposers; not saved.
#[derive(Debug, Default)]
pub struct CopyStats {
    counts: RwLock<FxHashMap<u64, (u32, u32)>>,
}

impl CopyStats {
    /// Counts one outcome at the answer context `key`.
    pub fn record(&self, key: u64, hit: bool) {
        let mut counts = self.counts.write().unwrap_or_else(|e| e.into_inner());
        let c = counts.entry(key).or_default();
        c.0 = c.0.saturating_add(1);
        c.1 = c.1.saturating_add(u32::from(hit));
    }

    /// `share` moved toward the served model's outcomes at `key`.
    pub fn adjusted(&self, key: u64, share: f64) -> f64 {
        let counts = self.counts.read().unwrap_or_else(|e| e.into_inner());
        match counts.get(&key) {
            None => share,
            Some(&(tries, hits)) => (f64::from(hits) + share * PRIOR) / (f64::from(tries) + PRIOR),
        }
    }

    /// Every `(context key, tries, hits)`, by key (for snapshots).
    pub fn entries(&self) -> Vec<(u64, u32, u32)> {
        let counts = self.counts.read().unwrap_or_else(|e| e.into_inner());
        let mut v: Vec<(u64, u32, u32)> = counts.iter().map(|(&k, &(t, h))| (k, t, h)).collect();
        v.sort_unstable();
        v
    }

    /// Replaces every outcome with `entries` (a snapshot's).
    pub fn restore(&self, entries: &[(u64, u32, u32)]) {
        let mut counts = self.counts.write().unwrap_or_else(|e| e.into_inner());
        counts.clear();
        counts.extend(entries.iter().map(|&(k, t, h)| (k, (t, h))));
    }

    /// `(tries, hits)` at `key`.
    pub fn outcomes(&self, key: u64) -> (u32, u32) {
        let counts = self.counts.read().unwrap_or_else(|e| e.into_inner());
        counts.get(&key).copied().unwrap_or_default()
    }

    /// Counts every point of a finished response (`tokens[prompt_len..]`, after its prompt
    /// `tokens[..prompt_len]`, whose anchors are `anchors`) where `index` had a value: whether
    /// the response went on with the value's first token.
    pub fn learn(
        &self,
        index: &CopyIndex,
        anchors: &PromptAnchors,
        tokens: &[u32],
        prompt_len: usize,
    ) {
        let src = CopySource {
            index,
            anchors,
            tokens,
            stats: None,
        };
        for j in prompt_len.max(1)..tokens.len() {
            if let Some((start, _, _, key)) = src.value_at(&tokens[..j], j - prompt_len, 1) {
                self.record(key, tokens[start] == tokens[j]);
            }
        }
    }
}

/// Where each token and each pair of adjacent tokens last occurs in the prompt's last
/// [`MAX_WINDOW`] tokens: the position after it.
#[derive(Debug, Clone, Default)]
pub struct PromptAnchors {
    after: FxHashMap<u64, u32>,
    len: usize,
}

impl PromptAnchors {
    /// The anchors of `prompt` (the last occurrence wins: a request sits at the prompt's end,
    /// after any examples).
    pub fn new(prompt: &[u32]) -> Self {
        let from = prompt.len().saturating_sub(MAX_WINDOW);
        let mut after = FxHashMap::default();
        after.reserve(2 * (prompt.len() - from));
        for (i, &t) in prompt.iter().enumerate().skip(from) {
            after.insert(single(t), (i + 1) as u32);
            if i > from {
                after.insert(pack(prompt[i - 1], t), (i + 1) as u32);
            }
        }
        Self {
            after,
            len: prompt.len(),
        }
    }

    /// Prompt tokens this was built over.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// A copy pointer for one request: the task's index, the request's anchors, its tokens.
#[derive(Debug, Clone, Copy)]
pub struct CopySource<'a> {
    pub index: &'a CopyIndex,
    pub anchors: &'a PromptAnchors,
    /// The request's tokens (at least `anchors.len()` of them: the prompt comes first).
    pub tokens: &'a [u32],
    /// What the served model did where the pointer had values (`None`: training shares).
    pub stats: Option<&'a CopyStats>,
}

impl CopySource<'_> {
    /// The value to copy after `history` (the request and the answer so far, drafted tokens
    /// included, of which the last `answered` are the answer's), at most `max` tokens, and its
    /// first token's probability; `None` where the pointer has nothing. The context is the
    /// history's last two tokens (an answer corpus wrapped in the chat template's header has
    /// the header there); failing that, the answer's start when the answer has under two.
    pub fn value(&self, history: &[u32], answered: usize, max: usize) -> Option<(&[u32], f64)> {
        let (start, n, share, _) = self.value_at(history, answered, max)?;
        Some((&self.tokens[start..start + n], share))
    }

    /// [`value`](Self::value) as the value's start in `tokens`, its length, its probability
    /// and the answer context it was found at.
    pub fn value_at(
        &self,
        history: &[u32],
        answered: usize,
        max: usize,
    ) -> Option<(usize, usize, f64, u64)> {
        if max == 0 {
            return None;
        }
        let answer = &history[history.len() - answered.min(2).min(history.len())..];
        let mut key = match history {
            [.., a, b] => pack(*a, *b),
            _ => context_key(answer),
        };
        let mut list = self.index.anchors_of(key);
        if list.is_empty() && answered < 2 {
            key = context_key(answer);
            list = self.index.anchors_of(key);
        }
        // the first anchor the request holds: within the window at the prompt's end
        let first = self.anchors.len.saturating_sub(self.index.window);
        let (anchor, start) = list.iter().find_map(|a| {
            let at = *self.anchors.after.get(&a.tokens)? as usize;
            (at > first).then_some((a, at))
        })?;
        let prompt = &self.tokens[..self.anchors.len.min(self.tokens.len())];
        let rest = prompt.get(start..)?;
        let n = rest
            .iter()
            .enumerate()
            .take(max)
            .take_while(|&(i, &t)| i == 0 || !self.index.ends(t))
            .count();
        let share = f64::from(anchor.share);
        let share = self.stats.map_or(share, |s| s.adjusted(key, share));
        (n > 0).then_some((start, n, share, key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // requests: 1 2 [name] 3 ...; answers start with the name
    fn pairs() -> Vec<(Vec<u32>, Vec<u32>)> {
        (0..6u32)
            .map(|i| {
                let name = [100 + i, 200 + i];
                (
                    vec![1, 2, name[0], name[1], 3, 9, 9],
                    vec![name[0], name[1], 50, 51, 52],
                )
            })
            .collect()
    }

    /// The copy pointer of `tokens` (whose anchors are `anchors`), with training shares.
    fn pointer<'a>(
        index: &'a CopyIndex,
        anchors: &'a PromptAnchors,
        tokens: &'a [u32],
    ) -> CopySource<'a> {
        CopySource {
            index,
            anchors,
            tokens,
            stats: None,
        }
    }

    fn index() -> CopyIndex {
        let p = pairs();
        CopyIndex::build(p.iter().map(|(r, a)| (r.as_slice(), a.as_slice())))
    }

    #[test]
    fn learns_the_anchor_of_the_answer_start_and_the_ender() {
        let idx = index();
        let list = idx.anchors_of(context_key(&[]));
        // the two-token anchor first, then its last token alone
        assert_eq!(list[0].tokens, pack(1, 2));
        assert_eq!(list[1].tokens, single(2));
        assert!((list[0].share - 1.0).abs() < 1e-6);
        assert!(idx.ends(3) && !idx.ends(9));
        assert!(idx.anchors_of(context_key(&[50, 51])).is_empty());
        assert_eq!(idx.window(), 7 + WINDOW_SLACK);
    }

    #[test]
    fn drafts_the_new_requests_value_up_to_an_ender() {
        let idx = index();
        let prompt = [7, 1, 2, 8, 8, 1, 2, 77, 78, 79, 3, 4];
        let anchors = PromptAnchors::new(&prompt);
        let src = pointer(&idx, &anchors, &prompt);
        // the last occurrence of the anchor: the request's
        let (value, p) = src.value(&prompt, 0, 8).unwrap();
        assert_eq!(value, &[77, 78, 79]);
        assert!(p > 0.99);
        assert_eq!(src.value(&prompt, 0, 2).unwrap().0, &[77, 78]);
        assert!(src.value(&[3, 4, 60], 1, 8).is_none());
        // a request without the anchor: nothing
        let other = [5, 6, 7];
        let anchors = PromptAnchors::new(&other);
        let src = pointer(&idx, &anchors, &other);
        assert!(src.value(&other, 0, 8).is_none());
    }

    #[test]
    fn anchors_are_found_in_the_request_not_in_examples_before_it() {
        let idx = index();
        // the anchor 1 2 only in an "example" far before the request: not within the window
        let mut prompt = vec![1, 2, 77, 78, 3];
        prompt.extend(std::iter::repeat_n(9, 40));
        let anchors = PromptAnchors::new(&prompt);
        let src = pointer(&idx, &anchors, &prompt);
        assert!(src.value(&prompt, 0, 8).is_none());
        // only the last token of the anchor in the request: the one-token anchor points there
        let mut prompt = vec![9; 40];
        prompt.extend([5, 2, 66, 67, 3, 9]);
        let anchors = PromptAnchors::new(&prompt);
        let src = pointer(&idx, &anchors, &prompt);
        assert_eq!(src.value(&prompt, 0, 8).unwrap().0, &[66, 67]);
    }

    #[test]
    fn what_the_model_did_moves_the_probability() {
        let idx = index();
        let prompt = [7, 1, 2, 77, 78, 3, 4];
        let anchors = PromptAnchors::new(&prompt);
        let stats = CopyStats::default();
        let src = CopySource {
            index: &idx,
            anchors: &anchors,
            tokens: &prompt,
            stats: Some(&stats),
        };
        assert!(src.value(&prompt, 0, 8).unwrap().1 > 0.99);
        // responses that never open with the value: the pointer's probability falls
        for _ in 0..12 {
            let mut tokens = prompt.to_vec();
            tokens.extend([50, 51, 52]);
            stats.learn(&idx, &anchors, &tokens, prompt.len());
        }
        // the answer's start (this index learned from unwrapped answers), not the prompt's tail
        assert_eq!(stats.outcomes(context_key(&[])), (12, 0));
        assert_eq!(stats.outcomes(pack(3, 4)), (0, 0));
        assert!(src.value(&prompt, 0, 8).unwrap().1 < 0.3);
    }

    #[test]
    fn rare_or_scattered_copies_keep_no_anchor() {
        let p: Vec<(Vec<u32>, Vec<u32>)> = pairs().into_iter().take(2).collect();
        let idx = CopyIndex::build(p.iter().map(|(r, a)| (r.as_slice(), a.as_slice())));
        assert!(idx.is_empty(), "two copies are under MIN_SEEN");
        let full = index();
        assert_eq!(
            CopyIndex::from_parts(full.anchors(), full.enders(), full.window()),
            full
        );
    }
}
