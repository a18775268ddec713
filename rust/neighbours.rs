//! Similar past requests: the answers of the training requests most like the live one, a
//! drafting source beside the task store, the context and the copy pointer.
//!
//! The task store knows what answers say in general; at a branch of the task (which intent,
//! which slot comes next, how a description opens) the most frequent continuation is often not
//! this request's. Requests that share its rare words had answers of the same skeleton: a
//! request naming `alarm` and `seven` had `intent: alarm_set; slots: time=...`.
//!
//! Built from (request, answer) pairs, [`NeighbourIndex`] holds an inverted index of request
//! tokens, each weighted by its inverse document frequency `ln(N / df)`: a token every request
//! holds (the chat template, an instruction) weighs nothing by construction, and a prompt's
//! tokens that no training request holds (examples' answers, the template after the request)
//! are not looked up. A session's prompt (its last tokens, as long as the longest training
//! request and a margin: the request, not the examples before it) is scored against every pair
//! sharing one of its tokens, `2 * shared / (prompt's weight + pair's weight)` (weights summed
//! over distinct tokens, the rarest first, at most [`MAX_POSTINGS`] postings read), and its
//! [`Nearest`] are the best `m` whose score reaches [`MIN_RELATIVE`] of the best.
//!
//! Drafting, the history's last tokens are found in the neighbours' answers (wrapped as the task
//! store's corpus is, so an answer's start is found after the template's answer header): the
//! positions matching the longest suffix (up to [`MAX_DEPTH`] tokens) vote for the token after
//! them, each with its neighbour's score, and the winner's share of every neighbour's score is
//! its probability, moved toward how often the served model followed votes of that probability
//! ([`NeighbourStats`]). The chain (a token tree's node, a batch row) takes it where it is at
//! least as likely as the mixture's best. A request seen before (a neighbour of score
//! [`SAME`]) drafts from those neighbours alone.
//!
//! Serving, every finished (prompt, response) pair joins [`OnlinePairs`] (bounded by the
//! drafter's online capacity, oldest out first), ranked beside the training pairs: the model's
//! own answers to similar requests.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, RwLock};

use rustc_hash::FxHashMap;

/// Neighbours a session drafts from, by default.
pub const NEIGHBOURS: usize = 8;
/// Most neighbours a session may draft from.
pub const MAX_NEIGHBOURS: usize = 256;
/// Score, relative to the best neighbour's, that a neighbour must reach to be kept.
pub const MIN_RELATIVE: f32 = 0.5;
/// Score of a request the same as the live one (every token shared): when the best neighbour
/// reaches it, only such neighbours are kept.
pub const SAME: f32 = 0.999;
/// Postings read per query (the rarest tokens first): bounds a session's cost on large corpora.
pub const MAX_POSTINGS: usize = 1 << 13;
/// Longest suffix of the history matched in the neighbours' answers.
pub const MAX_DEPTH: usize = 8;
/// Most prompt tokens a query reads (the prompt's last ones).
pub const MAX_WINDOW: usize = 4096;
/// Tokens read beyond the longest training request (the template around the request).
const WINDOW_SLACK: usize = 16;
const NONE: u32 = u32::MAX;

#[inline]
fn pack(a: u32, b: u32) -> u64 {
    (u64::from(a) << 32) | u64::from(b)
}

/// Training pairs and the inverted index of their requests' tokens (see the module docs).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NeighbourIndex {
    /// Every pair's request tokens, flat; pair `i`'s are `requests[req_at[i]..req_at[i + 1]]`.
    requests: Vec<u32>,
    req_at: Vec<u32>,
    /// Every pair's answer tokens, flat, likewise.
    answers: Vec<u32>,
    ans_at: Vec<u32>,
    /// Request token -> the pairs whose request holds it (ascending, each once).
    postings: FxHashMap<u32, Vec<u32>>,
    /// Each pair's weight: its distinct request tokens' IDF, summed.
    norms: Vec<f32>,
    /// Prompt tokens (the last ones) a query reads.
    window: usize,
}

/// A session's neighbours: their answers (copied: online pairs may leave meanwhile) and
/// scores, best first.
#[derive(Debug, Clone, Default)]
pub struct Nearest {
    answers: Vec<(Vec<u32>, f32)>,
    /// Answer positions after each token pair (and each token, keyed as a pair with `NONE`
    /// first): `(neighbour, position of the next token)`.
    after: FxHashMap<u64, Vec<(u16, u32)>>,
    total: f32,
}

impl Nearest {
    /// The neighbours `found` (answer, score), best first; those under [`MIN_RELATIVE`] of the
    /// best are left out, and all but those of the same request ([`SAME`]) when it has some.
    pub fn new(found: &[(&[u32], f32)]) -> Self {
        let best = found.first().map_or(0.0, |&(_, s)| s);
        // a request seen before: the answers it had alone
        let floor = if best >= SAME {
            SAME
        } else {
            MIN_RELATIVE * best
        };
        let answers: Vec<(Vec<u32>, f32)> = found
            .iter()
            .filter(|&&(_, s)| s > 0.0 && s >= floor)
            .take(MAX_NEIGHBOURS)
            .map(|&(a, s)| (a.to_vec(), s))
            .collect();
        let mut after: FxHashMap<u64, Vec<(u16, u32)>> = FxHashMap::default();
        after.reserve(2 * answers.iter().map(|(a, _)| a.len()).sum::<usize>());
        for (k, (answer, _)) in answers.iter().enumerate() {
            for p in 1..answer.len() {
                let at = (k as u16, p as u32);
                after.entry(pack(NONE, answer[p - 1])).or_default().push(at);
                if p >= 2 {
                    after
                        .entry(pack(answer[p - 2], answer[p - 1]))
                        .or_default()
                        .push(at);
                }
            }
        }
        let total = answers.iter().map(|&(_, s)| s).sum();
        Self {
            answers,
            after,
            total,
        }
    }

    /// Neighbours kept.
    pub fn len(&self) -> usize {
        self.answers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.answers.is_empty()
    }
}

impl NeighbourIndex {
    /// An index of `(request, answer)` pairs of token ids; pairs with an empty request or
    /// answer are skipped.
    pub fn build<'a>(pairs: impl IntoIterator<Item = (&'a [u32], &'a [u32])>) -> Self {
        let mut index = Self {
            req_at: vec![0],
            ans_at: vec![0],
            ..Self::default()
        };
        for (request, answer) in pairs {
            // offsets are u32: pairs past 4G tokens are left out (never wrapped)
            let full = |flat: &Vec<u32>, more: &[u32]| flat.len() + more.len() > u32::MAX as usize;
            if request.is_empty()
                || answer.is_empty()
                || full(&index.requests, request)
                || full(&index.answers, answer)
            {
                continue;
            }
            index.requests.extend_from_slice(request);
            index.answers.extend_from_slice(answer);
            index.req_at.push(index.requests.len() as u32);
            index.ans_at.push(index.answers.len() as u32);
        }
        index.reindex();
        index
    }

    /// Rebuilds the postings, weights and window from the pairs.
    fn reindex(&mut self) {
        let n = self.len();
        let mut postings: FxHashMap<u32, Vec<u32>> = FxHashMap::default();
        let mut distinct: Vec<u32> = Vec::new();
        let mut longest = 0usize;
        for i in 0..n {
            let request = self.request(i as u32);
            longest = longest.max(request.len());
            distinct.clear();
            distinct.extend_from_slice(request);
            distinct.sort_unstable();
            distinct.dedup();
            for &t in &distinct {
                postings.entry(t).or_default().push(i as u32);
            }
        }
        self.norms = vec![0.0; n];
        for (_, list) in postings.iter() {
            let w = idf(n, list.len());
            for &i in list {
                self.norms[i as usize] += w;
            }
        }
        self.postings = postings;
        self.window = (longest + WINDOW_SLACK).min(MAX_WINDOW);
    }

    /// Pairs held.
    pub fn len(&self) -> usize {
        self.req_at.len().saturating_sub(1)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Prompt tokens (the last ones) a query reads.
    pub fn window(&self) -> usize {
        self.window
    }

    /// Pair `i`'s request tokens.
    pub fn request(&self, i: u32) -> &[u32] {
        let i = i as usize;
        &self.requests[self.req_at[i] as usize..self.req_at[i + 1] as usize]
    }

    /// Pair `i`'s answer tokens.
    pub fn answer(&self, i: u32) -> &[u32] {
        let i = i as usize;
        &self.answers[self.ans_at[i] as usize..self.ans_at[i + 1] as usize]
    }

    /// The `m` pairs whose requests are most like `prompt`'s last [`window`](Self::window)
    /// tokens, best first, with their scores (see the module docs).
    pub fn nearest(&self, prompt: &[u32], m: usize) -> Vec<(u32, f32)> {
        self.nearest_within(prompt, m, self.window)
    }

    /// [`nearest`](Self::nearest) reading the prompt's last `window` tokens.
    pub fn nearest_within(&self, prompt: &[u32], m: usize, window: usize) -> Vec<(u32, f32)> {
        let from = prompt.len().saturating_sub(window);
        rank(
            self.len(),
            &prompt[from..],
            |t| self.postings.get(&t).map(|l| (l.len(), l.iter().copied())),
            |shared, query, d| 2.0 * shared / (query + self.norms[d as usize]),
            m,
        )
    }

    /// The `m` pairs whose requests the prompt's last [`window`](Self::window) tokens hold
    /// most of: each scored by the share of its own weight found there (1: every token of
    /// the request is in the prompt, whatever else the prompt holds: examples, instructions).
    pub fn contained(&self, prompt: &[u32], m: usize) -> Vec<(u32, f32)> {
        let from = prompt.len().saturating_sub(self.window);
        rank(
            self.len(),
            &prompt[from..],
            |t| self.postings.get(&t).map(|l| (l.len(), l.iter().copied())),
            |shared, _, d| shared / self.norms[d as usize].max(f32::MIN_POSITIVE),
            m,
        )
    }

    /// A session's [`Nearest`]: the `m` training pairs and `online` pairs most like `prompt`,
    /// those scoring under [`MIN_RELATIVE`] of the best left out.
    pub fn session(&self, prompt: &[u32], m: usize, online: Option<&OnlinePairs>) -> Nearest {
        let m = m.min(MAX_NEIGHBOURS);
        let mut found: Vec<(&[u32], f32)> = self
            .nearest(prompt, m)
            .into_iter()
            .map(|(i, s)| (self.answer(i), s))
            .collect();
        if let Some(online) = online {
            let from = prompt.len().saturating_sub(self.window);
            found.extend(
                online
                    .nearest(&prompt[from..], m)
                    .into_iter()
                    .filter_map(|(i, s)| Some((online.answer(i)?, s))),
            );
            // online pairs first on ties: the served model's own answers
            found.sort_by(|a, b| b.1.total_cmp(&a.1));
            found.truncate(m);
        }
        Nearest::new(&found)
    }

    /// `(requests, answers)` of every pair (for files).
    pub fn pairs(&self) -> impl Iterator<Item = (&[u32], &[u32])> {
        (0..self.len() as u32).map(|i| (self.request(i), self.answer(i)))
    }

    /// Bytes held (approximate).
    pub fn bytes(&self) -> usize {
        let postings: usize = self.postings.values().map(|v| v.capacity() * 4 + 32).sum();
        4 * (self.requests.capacity()
            + self.answers.capacity()
            + self.req_at.capacity()
            + self.ans_at.capacity()
            + self.norms.capacity())
            + postings
    }
}

thread_local! {
    /// A query's scores, one per document, and the documents it touched (reset after each).
    static SCRATCH: std::cell::RefCell<(Vec<f32>, Vec<u32>)> =
        const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
}

/// The `m` best-scoring documents (ids `0..n`) for the distinct tokens of `query`:
/// `postings(t)` gives a token's document frequency and documents, `score(shared, query, d)`
/// document `d`'s score from the weight it shares with the query and the query's weight. Tokens are read rarest first, at most [`MAX_POSTINGS`] postings, into a per-thread
/// array of scores; best first (the smaller id on ties).
fn rank<P>(
    n: usize,
    query: &[u32],
    postings: impl Fn(u32) -> Option<(usize, P)>,
    score: impl Fn(f32, f32, u32) -> f32,
    m: usize,
) -> Vec<(u32, f32)>
where
    P: Iterator<Item = u32>,
{
    if m == 0 || n == 0 {
        return Vec::new();
    }
    let mut distinct = query.to_vec();
    distinct.sort_unstable();
    distinct.dedup();
    let mut terms: Vec<(usize, u32)> = distinct
        .into_iter()
        .filter_map(|t| postings(t).map(|(df, _)| (df, t)))
        .collect();
    terms.sort_unstable();
    let weight: f32 = terms.iter().map(|&(df, _)| idf(n, df)).sum();
    if weight <= 0.0 {
        return Vec::new();
    }
    SCRATCH.with(|cell| {
        let mut guard = cell.borrow_mut();
        let (scores, touched) = &mut *guard;
        if scores.len() < n {
            scores.resize(n, 0.0);
        }
        let mut read = 0usize;
        for &(df, t) in &terms {
            let w = idf(n, df);
            if w <= 0.0 || read + df > MAX_POSTINGS {
                break;
            }
            read += df;
            for d in postings(t).into_iter().flat_map(|(_, l)| l) {
                let Some(s) = scores.get_mut(d as usize) else {
                    continue;
                };
                if *s == 0.0 {
                    touched.push(d);
                }
                *s += w;
            }
        }
        let mut ranked: Vec<(u32, f32)> = touched
            .iter()
            .map(|&d| (d, score(scores[d as usize], weight, d)))
            .collect();
        for &d in touched.iter() {
            scores[d as usize] = 0.0;
        }
        touched.clear();
        let key = |&(d, s): &(u32, f32)| (std::cmp::Reverse(s.to_bits()), d);
        if ranked.len() > m {
            ranked.select_nth_unstable_by_key(m - 1, key);
            ranked.truncate(m);
        }
        ranked.sort_unstable_by_key(key);
        ranked
    })
}

/// What the served model answered, as (request, answer) pairs a later session's neighbours
/// come from: each finished response with its prompt's last tokens (the request, as
/// [`NeighbourIndex::window`] reads it) and the few tokens before its start (so that an
/// answer's start is found, as the training answers' wrapping does). Bounded: the oldest pairs
/// leave first once the pairs hold more than `capacity` tokens, each in time proportional to
/// its own length (no rebuild).
#[derive(Debug, Clone, Default)]
pub struct OnlinePairs {
    /// Pairs from sequence number `first` on: distinct request tokens, answer.
    pairs: std::collections::VecDeque<(Vec<u32>, Vec<u32>)>,
    first: u64,
    postings: FxHashMap<u32, std::collections::VecDeque<u64>>,
    tokens: usize,
    capacity: usize,
}

/// Tokens before a response kept with it (the end of the prompt: the answer's header).
const LEAD: usize = 3;

impl OnlinePairs {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            ..Self::default()
        }
    }

    /// Pairs held.
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// Tokens held (requests' distinct tokens and answers).
    pub fn tokens(&self) -> usize {
        self.tokens
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Every pair kept, oldest first: its distinct request tokens (sorted) and its answer (the
    /// tokens before the response, then the response), for snapshots.
    pub fn each_pair(&self) -> impl Iterator<Item = (&[u32], &[u32])> {
        self.pairs.iter().map(|(r, a)| (r.as_slice(), a.as_slice()))
    }

    /// Adds a pair: its request tokens (kept distinct) and its answer as
    /// [`each_pair`](Self::each_pair) gives them (a snapshot's); one larger than the capacity,
    /// or with an empty side, is not kept.
    pub fn insert(&mut self, request: &[u32], answer: &[u32]) {
        let mut request = request.to_vec();
        request.sort_unstable();
        request.dedup();
        let size = request.len() + answer.len();
        if request.is_empty() || answer.is_empty() || size > self.capacity {
            return;
        }
        let seq = self.first + self.pairs.len() as u64;
        for &t in &request {
            self.postings.entry(t).or_default().push_back(seq);
        }
        self.tokens += size;
        self.pairs.push_back((request, answer.to_vec()));
        self.evict();
    }

    /// Sets the capacity in tokens, dropping the oldest pairs that no longer fit (0: none kept).
    pub fn set_capacity(&mut self, capacity: usize) {
        self.capacity = capacity;
        self.evict();
    }

    /// Forgets every pair.
    pub fn clear(&mut self) {
        *self = Self::new(self.capacity);
    }

    /// Adds a finished response after `prompt` (its request: the last `window` tokens); a
    /// pair larger than the capacity, or with an empty response, is not kept.
    pub fn add(&mut self, prompt: &[u32], response: &[u32], window: usize) {
        if response.is_empty() {
            return;
        }
        let mut answer = prompt[prompt.len().saturating_sub(LEAD)..].to_vec();
        answer.extend_from_slice(response);
        self.insert(&prompt[prompt.len().saturating_sub(window)..], &answer);
    }

    fn evict(&mut self) {
        while self.tokens > self.capacity {
            let Some((request, answer)) = self.pairs.pop_front() else {
                break;
            };
            for t in &request {
                if let Some(list) = self.postings.get_mut(t) {
                    list.pop_front();
                    if list.is_empty() {
                        self.postings.remove(t);
                    }
                }
            }
            self.tokens -= request.len() + answer.len();
            self.first += 1;
        }
    }

    /// The `m` pairs whose requests are most like `request`, best first, by sequence number.
    /// The weights of requests change as pairs come and go: the best `4 m` by shared weight
    /// are scored with their weights as they are now.
    pub fn nearest(&self, request: &[u32], m: usize) -> Vec<(u64, f32)> {
        let n = self.pairs.len();
        let first = self.first;
        let postings = |t| {
            let l = self.postings.get(&t)?;
            Some((l.len(), l.iter().map(move |&seq| (seq - first) as u32)))
        };
        let shared = rank(
            n,
            request,
            postings,
            |shared, query, _| 2.0 * shared / query,
            m.saturating_mul(4),
        );
        if shared.is_empty() {
            return Vec::new();
        }
        // rank's score with no document weight is 2 * shared / query
        let mut distinct = request.to_vec();
        distinct.sort_unstable();
        distinct.dedup();
        let weight = |tokens: &[u32]| -> f32 {
            tokens
                .iter()
                .filter_map(|t| self.postings.get(t))
                .map(|l| idf(n, l.len()))
                .sum()
        };
        let query = weight(&distinct);
        let mut scored: Vec<(u64, f32)> = shared
            .into_iter()
            .filter_map(|(d, s)| {
                let pair = self.pairs.get(d as usize)?;
                let common = s * query / 2.0;
                Some((
                    first + u64::from(d),
                    2.0 * common / (query + weight(&pair.0)),
                ))
            })
            .collect();
        scored.sort_unstable_by_key(|&(d, s)| (std::cmp::Reverse(s.to_bits()), d));
        scored.truncate(m);
        scored
    }

    /// The answer of pair `seq` (`None` once it has left).
    pub fn answer(&self, seq: u64) -> Option<&[u32]> {
        let at = usize::try_from(seq.checked_sub(self.first)?).ok()?;
        self.pairs.get(at).map(|p| p.1.as_slice())
    }

    /// Bytes held (approximate).
    pub fn bytes(&self) -> usize {
        4 * self.tokens + 8 * self.tokens + 48 * self.pairs.len()
    }
}

/// A token's weight among `n` requests of which `df` hold it.
#[inline]
fn idf(n: usize, df: usize) -> f32 {
    if df == 0 {
        return 0.0;
    }
    ((n as f64 / df as f64).ln() as f32).max(0.0)
}

/// Buckets of vote probability that [`NeighbourStats`] counts outcomes in.
const BUCKETS: usize = 10;
/// Weight, in votes, of a bucket's own probability against what the served model did.
pub const PRIOR: f64 = 4.0;

/// How often the served model wrote what the neighbours voted for, per bucket of the vote's
/// probability, from finished responses. Training answers say what people wrote; a model
/// prompted with examples writes otherwise, and a vote it rarely follows stops being drafted
/// over the mixture: a vote of probability `p` in a bucket counts as
/// `(hits + p * PRIOR) / (tries + PRIOR)`. Shared by a drafter's sessions and batch proposers;
/// not saved.
#[derive(Debug, Default)]
pub struct NeighbourStats {
    tries: [AtomicU32; BUCKETS],
    hits: [AtomicU32; BUCKETS],
}

impl NeighbourStats {
    fn bucket(p: f64) -> usize {
        ((p * BUCKETS as f64) as usize).min(BUCKETS - 1)
    }

    /// Counts one vote of probability `p` and whether the model wrote its token.
    pub fn record(&self, p: f64, hit: bool) {
        let b = Self::bucket(p);
        let add = |c: &AtomicU32, n: u32| {
            let _ = c.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                Some(v.saturating_add(n))
            });
        };
        add(&self.tries[b], 1);
        add(&self.hits[b], u32::from(hit));
    }

    /// `p` moved toward how often the served model followed votes like it.
    pub fn adjusted(&self, p: f64) -> f64 {
        let b = Self::bucket(p);
        let tries = f64::from(self.tries[b].load(Ordering::Relaxed));
        let hits = f64::from(self.hits[b].load(Ordering::Relaxed));
        (hits + p * PRIOR) / (tries + PRIOR)
    }

    /// Every bucket's `(tries, hits)`, lowest probabilities first (for snapshots).
    pub fn buckets(&self) -> Vec<(u32, u32)> {
        (0..BUCKETS)
            .map(|b| {
                (
                    self.tries[b].load(Ordering::Relaxed),
                    self.hits[b].load(Ordering::Relaxed),
                )
            })
            .collect()
    }

    /// Replaces every bucket's outcomes with `buckets` (a snapshot's; extra ones are ignored).
    pub fn restore(&self, buckets: &[(u32, u32)]) {
        self.clear();
        for (b, &(t, h)) in buckets.iter().take(BUCKETS).enumerate() {
            self.tries[b].store(t, Ordering::Relaxed);
            self.hits[b].store(h.min(t), Ordering::Relaxed);
        }
    }

    /// Forgets every outcome.
    pub fn clear(&self) {
        for c in self.tries.iter().chain(&self.hits) {
            c.store(0, Ordering::Relaxed);
        }
    }

    /// `(tries, hits)` of the bucket of `p`.
    pub fn outcomes(&self, p: f64) -> (u32, u32) {
        let b = Self::bucket(p);
        (
            self.tries[b].load(Ordering::Relaxed),
            self.hits[b].load(Ordering::Relaxed),
        )
    }

    /// Counts every vote the neighbours made along a finished response (`tokens[prompt_len..]`
    /// after its prompt), against the token the response has there.
    pub fn learn(&self, nearest: &Nearest, tokens: &[u32], prompt_len: usize) {
        let src = NeighbourSource {
            nearest,
            stats: None,
        };
        for j in prompt_len.max(1)..tokens.len() {
            if let Some((token, p)) = src.vote(&tokens[j.saturating_sub(MAX_DEPTH)..j]) {
                self.record(p, token == tokens[j]);
            }
        }
    }
}

/// What a drafter learns about neighbours while serving, shared by its sessions and batch
/// proposers: the served model's answers as pairs, and how often it followed the votes.
#[derive(Debug, Clone, Default)]
pub struct NeighbourLearning {
    pub stats: Arc<NeighbourStats>,
    pub pairs: Arc<RwLock<OnlinePairs>>,
}

impl NeighbourLearning {
    pub fn new(capacity: usize) -> Self {
        Self {
            stats: Arc::default(),
            pairs: Arc::new(RwLock::new(OnlinePairs::new(capacity))),
        }
    }

    /// A new request's neighbours: the `m` training and learned pairs most like `prompt`.
    pub fn nearest(&self, index: &NeighbourIndex, prompt: &[u32], m: usize) -> Nearest {
        let pairs = self.pairs.read().unwrap_or_else(|e| e.into_inner());
        index.session(prompt, m, Some(&pairs))
    }

    /// Learns a finished request (`tokens[..prompt_len]` its prompt, the rest its response):
    /// how the model followed its neighbours' votes, and the pair itself.
    pub fn finish(
        &self,
        index: &NeighbourIndex,
        nearest: &Nearest,
        tokens: &[u32],
        prompt_len: usize,
    ) {
        self.stats.learn(nearest, tokens, prompt_len);
        let (prompt, response) = tokens.split_at(prompt_len.min(tokens.len()));
        let mut pairs = self.pairs.write().unwrap_or_else(|e| e.into_inner());
        pairs.add(prompt, response, index.window());
    }

    /// Sets the learned pairs' capacity in tokens (0: none kept).
    pub fn set_capacity(&self, capacity: usize) {
        let mut pairs = self.pairs.write().unwrap_or_else(|e| e.into_inner());
        pairs.set_capacity(capacity);
    }

    /// Forgets what was learned.
    pub fn clear(&self) {
        self.pairs
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        self.stats.clear();
    }
}

/// A request's neighbours as a drafting source.
#[derive(Debug, Clone, Copy)]
pub struct NeighbourSource<'a> {
    pub nearest: &'a Nearest,
    /// What the served model did after votes (`None`: the votes' own shares).
    pub stats: Option<&'a NeighbourStats>,
}

impl NeighbourSource<'_> {
    /// The neighbours' vote after `history`: the token after the longest suffix of `history`
    /// their answers hold (two tokens at least, or one where no pair matches), and its share of
    /// all neighbours' scores; `None` where no answer holds the history's last token.
    pub fn vote(&self, history: &[u32]) -> Option<(u32, f64)> {
        let near = self.nearest;
        if near.total <= 0.0 {
            return None;
        }
        let (list, min_depth) = match history {
            [.., a, b] => near
                .after
                .get(&pack(*a, *b))
                .map(|l| (l, 2))
                .or_else(|| near.after.get(&pack(NONE, *b)).map(|l| (l, 1)))?,
            [b] => (near.after.get(&pack(NONE, *b))?, 1),
            [] => return None,
        };
        let mut best_depth = 0usize;
        let mut votes: Vec<(u32, f32)> = Vec::new();
        for &(k, p) in list {
            let (answer, score) = &near.answers[usize::from(k)];
            let score = *score;
            let p = p as usize;
            let Some(&next) = answer.get(p) else { continue };
            let depth = (min_depth..MAX_DEPTH.min(p).min(history.len()))
                .take_while(|&d| answer[p - 1 - d] == history[history.len() - 1 - d])
                .count()
                + min_depth;
            if depth < best_depth {
                continue;
            }
            if depth > best_depth {
                best_depth = depth;
                votes.clear();
            }
            match votes.iter_mut().find(|(t, _)| *t == next) {
                Some(v) => v.1 += score,
                None => votes.push((next, score)),
            }
        }
        let &(token, weight) = votes
            .iter()
            .max_by(|a, b| a.1.total_cmp(&b.1).then(b.0.cmp(&a.0)))?;
        let p = f64::from(weight / near.total).min(1.0);
        Some((token, self.stats.map_or(p, |s| s.adjusted(p))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // three kinds of request (words 10/11/12 decide the answer's second token), with a shared
    // template token 1 in every request
    fn pairs() -> Vec<(Vec<u32>, Vec<u32>)> {
        (0..30u32)
            .map(|i| {
                let kind = i % 3;
                (
                    vec![1, 10 + kind, 100 + i],
                    vec![50, 60 + kind, 70, 100 + i],
                )
            })
            .collect()
    }

    fn index() -> NeighbourIndex {
        let p = pairs();
        NeighbourIndex::build(p.iter().map(|(r, a)| (r.as_slice(), a.as_slice())))
    }

    #[test]
    fn shared_tokens_weigh_nothing_and_rare_ones_decide() {
        let idx = index();
        assert_eq!(idx.len(), 30);
        assert_eq!(idf(30, 30), 0.0);
        // a prompt with the template token, kind 1's word and an unseen token
        let near = idx.nearest(&[7, 7, 1, 11, 999], 4);
        assert!(!near.is_empty() && near.len() <= 4);
        assert!(near.iter().all(|&(i, _)| i % 3 == 1), "{near:?}");
        // the template token alone matches nothing
        assert!(idx.nearest(&[1, 999], 4).is_empty());
        // a pair's own request is its best match
        let near = idx.nearest(&[1, 12, 105], 3);
        assert_eq!(near[0].0, 5);
        assert!(near[0].1 > near.last().unwrap().1 || near.len() == 1);
    }

    #[test]
    fn neighbours_vote_for_their_answers_next_token() {
        let idx = index();
        let near = idx.session(&[1, 11, 999], 8, None);
        let src = NeighbourSource {
            nearest: &near,
            stats: None,
        };
        // after the answer's first token: kind 1's second token, every neighbour agreeing
        let (token, p) = src.vote(&[1, 11, 999, 50]).unwrap();
        assert_eq!(token, 61);
        assert!((p - 1.0).abs() < 1e-6);
        assert_eq!(src.vote(&[5, 61]).unwrap().0, 70);
        // nothing holds the last token
        assert!(src.vote(&[50, 61, 4242]).is_none());
        // ties and splits: neighbours of two kinds share the vote
        let near = idx.session(&[10, 11], 8, None);
        let src = NeighbourSource {
            nearest: &near,
            stats: None,
        };
        let (token, p) = src.vote(&[50]).unwrap();
        assert!(token == 60 || token == 61);
        assert!(p < 0.75, "{p}");
    }

    #[test]
    fn votes_the_model_does_not_follow_lose_their_weight() {
        let idx = index();
        let prompt = [1, 11, 999];
        let near = idx.session(&prompt, 8, None);
        let stats = NeighbourStats::default();
        let src = NeighbourSource {
            nearest: &near,
            stats: Some(&stats),
        };
        let history = [1, 11, 999, 50];
        assert!(src.vote(&history).unwrap().1 > 0.99);
        // responses that go on otherwise than the neighbours' answers
        for _ in 0..10 {
            stats.learn(&near, &[1, 11, 999, 50, 62, 71], prompt.len());
        }
        let (tries, hits) = stats.outcomes(1.0);
        assert!(tries >= 10 && hits == 0, "{tries} {hits}");
        assert!(src.vote(&history).unwrap().1 < 0.3);
    }

    #[test]
    fn learned_pairs_are_neighbours_and_leave_oldest_first() {
        let idx = index();
        let mut online = OnlinePairs::new(1000);
        // the served model answers kind 2 requests otherwise: 50 65 ...
        for i in 0..6u32 {
            online.add(&[1, 12, 300 + i, 7, 8, 9], &[50, 65, 70], idx.window());
        }
        assert_eq!(online.len(), 6);
        let near = idx.session(&[1, 12, 300, 7, 8, 9], 8, Some(&online));
        // the same request was answered before: that answer alone
        assert_eq!(near.len(), 1);
        let src = NeighbourSource {
            nearest: &near,
            stats: None,
        };
        // the learned pair with the same rare token ranks first; the model's answers win the vote
        assert_eq!(src.vote(&[8, 9, 50]).unwrap().0, 65);
        // a learned pair keeps the prompt's last tokens before its answer: the start is found
        assert_eq!(src.vote(&[7, 8, 9]).unwrap().0, 50);
        // bounded: pairs of 6 distinct request tokens (the window reaches the prompt's start)
        // + 3 lead + 3 answer
        online.set_capacity(25);
        assert_eq!(online.len(), 2);
        assert_eq!(online.tokens(), 24);
        assert!(online.answer(0).is_none() && online.answer(5).is_some());
        // postings of the evicted pairs are gone: nothing finds them
        assert!(online.nearest(&[300], 8).iter().all(|&(d, _)| d >= 4));
        online.set_capacity(0);
        assert!(online.is_empty() && online.nearest(&[12, 305], 8).is_empty());
    }

    #[test]
    fn empty_pairs_are_skipped_and_an_empty_index_finds_nothing() {
        let idx = NeighbourIndex::build([(&[][..], &[1u32][..]), (&[2u32][..], &[][..])]);
        assert!(idx.is_empty());
        assert!(idx.nearest(&[1, 2], 8).is_empty());
        let near = idx.session(&[1, 2], 8, None);
        let src = NeighbourSource {
            nearest: &near,
            stats: None,
        };
        assert!(src.vote(&[1, 2]).is_none());
    }
}
