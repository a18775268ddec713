//! Drafting for a serving engine's batch: one call per engine step drafts for every row.
//!
//! An engine such as vLLM hands the drafter its whole batch each step: a token buffer with one
//! row per running request, each row's valid length, and how many tokens each row gained this
//! step. It names no requests, and rows move between requests from step to step (finished
//! requests leave holes that the engine fills by moving other rows). The [`RequestTable`] keeps
//! one incremental [`ContextIndex`] per request and recognises each row's request by its tokens:
//!
//! 1. the request the row held last step, if its tokens still fit (the common case, O(1));
//! 2. otherwise a hash of the row's first [`KEY_TOKENS`] tokens names the candidates (requests
//!    with shorter contexts sit on a short list), and the longest one that fits wins.
//!
//! A request "fits" a row when the row is at least as long as the request's indexed tokens and
//! agrees with them on their first and last [`CHECK_TOKENS`] tokens. The check is a fingerprint,
//! not a proof: two requests that agree on both windows are interchangeable for drafting anyway,
//! and a wrong draft only costs speed, never correctness (the engine verifies every draft).
//!
//! A request ends for the drafter when its last token is a stop token (its response is learned
//! at once when online learning is on) or when it has not been seen for `stale_steps` steps
//! (learned then, its state dropped). At most `max_requests` states are kept; beyond that the
//! least recently seen go first, unlearned (they may still be running).

use rustc_hash::{FxHashMap, FxHasher};
use std::hash::Hasher;

use crate::context::ContextIndex;
use crate::draft::{path_probs, propose_with, Draft, Mixing, VerifyCost};
use crate::error::Error;
use crate::store::NgramStore;

/// Tokens at the start of a row that key the request lookup.
pub const KEY_TOKENS: usize = 32;
/// Tokens compared at each end of a request's context to recognise it in a row.
pub const CHECK_TOKENS: usize = 32;

const NONE: u32 = u32::MAX;

/// How a [`RequestTable`] drafts and when it forgets requests.
#[derive(Debug, Clone)]
pub struct ServingConfig {
    /// Most request states kept at once (at least 1).
    pub max_requests: usize,
    /// A request unseen for this many steps is finished: learned and dropped (at least 1).
    pub stale_steps: u64,
    /// Token ids that end a response (EOS and friends): a row ending in one is learned at once.
    pub stop_tokens: Vec<u32>,
    pub corpus_weight: f64,
    pub min_prob: f64,
    pub mixing: Mixing,
    pub verify_cost: Option<VerifyCost>,
    /// The fixed cost of one engine step in units of one verified position, or `None` (verify
    /// cost independent of the batch's draft tokens, as on a GPU). When set, the step's drafts
    /// are cut together: draft positions are kept in order of their path probability while
    /// they raise the expected tokens of the step per unit of its cost (see [`cut_batch`]).
    pub step_overhead: Option<f64>,
}

/// Cuts a batch's drafts to maximise expected tokens per unit of step cost, when every verified
/// position costs one unit and the step `overhead` units more.
///
/// A row with a draft yields its own next token plus the accepted prefix of its draft: the
/// expected tokens are `1 + sum_j min(1, gain * prod_{l<=j} probs[l])`, `gain` being the
/// measured ratio of accepted to predicted draft tokens ([`Calibration`]). Positions are added
/// in decreasing path probability (each row's are decreasing along the draft, so the order
/// keeps prefixes) while the next one's probability exceeds the current ratio of expected
/// tokens to cost.
pub fn cut_batch(drafts: &mut [Draft], rows: usize, overhead: f64, gain: f64) {
    let mut paths: Vec<Vec<f64>> = drafts
        .iter()
        .map(|d| path_probs(&d.probs).map(|p| (gain * p).min(1.0)).collect())
        .collect();
    let mut keep = vec![0usize; drafts.len()];
    let (mut value, mut cost) = (rows as f64, overhead + rows as f64);
    loop {
        let best = paths
            .iter()
            .enumerate()
            .filter_map(|(i, p)| p.get(keep[i]).map(|&v| (v, i)))
            .max_by(|a, b| a.0.total_cmp(&b.0));
        match best {
            Some((p, i)) if p * cost > value => {
                keep[i] += 1;
                value += p;
                cost += 1.0;
            }
            _ => break,
        }
    }
    for (d, (&k, path)) in drafts.iter_mut().zip(keep.iter().zip(paths.iter_mut())) {
        d.tokens.truncate(k);
        d.probs.truncate(k);
        path.clear();
    }
}

/// How many drafted tokens the engine accepts against how many the drafter's probabilities
/// predict, measured from the rows themselves: a row that had a draft of `d` tokens and gains
/// `g` tokens the next step accepted `min(g - 1, d)` of them.
///
/// The drafter's mixed probabilities are not calibrated acceptance rates: a fine-tuned model
/// accepts more than they predict, a base model prompted few-shot often fewer. The batch cut
/// scales path probabilities by [`gain`](Self::gain), a decayed ratio over recent drafts that
/// starts at 1 (a prior of [`Calibration::PRIOR`] predicted tokens).
#[derive(Debug, Clone, PartialEq)]
pub struct Calibration {
    accepted: f64,
    predicted: f64,
    /// Undecayed totals, for the statistics.
    pub accepted_tokens: u64,
    pub drafted_tokens: u64,
}

impl Default for Calibration {
    fn default() -> Self {
        Self {
            accepted: Self::PRIOR,
            predicted: Self::PRIOR,
            accepted_tokens: 0,
            drafted_tokens: 0,
        }
    }
}

impl Calibration {
    /// Weight of the starting ratio of 1, in predicted tokens.
    pub const PRIOR: f64 = 8.0;
    /// Each observed draft keeps this share of the evidence before it (about the last 200
    /// drafts count).
    pub const DECAY: f64 = 0.995;
    const RANGE: (f64, f64) = (0.1, 10.0);

    /// Records one verified draft: `drafted` tokens whose path probabilities summed to
    /// `predicted`, of which `accepted` were accepted.
    pub fn observe(&mut self, drafted: usize, predicted: f64, accepted: usize) {
        self.accepted = self.accepted * Self::DECAY + accepted as f64;
        self.predicted = self.predicted * Self::DECAY + predicted;
        self.accepted_tokens += accepted as u64;
        self.drafted_tokens += drafted as u64;
    }

    /// Each engine step moves the evidence this much toward the prior, so a gain low enough to
    /// cut every draft (and so stop all feedback) recovers over a few thousand steps.
    pub const RELAX: f64 = 0.999;

    /// One engine step passed (called once per step, drafts or not).
    pub fn step(&mut self) {
        self.accepted = self.accepted * Self::RELAX + Self::PRIOR * (1.0 - Self::RELAX);
        self.predicted = self.predicted * Self::RELAX + Self::PRIOR * (1.0 - Self::RELAX);
    }

    /// Accepted per predicted token, within `[0.1, 10]`.
    pub fn gain(&self) -> f64 {
        (self.accepted / self.predicted.max(1e-9)).clamp(Self::RANGE.0, Self::RANGE.1)
    }
}

/// One row of an engine batch: its valid tokens and how many of them arrived this step
/// (`new_tokens == 0` marks a row that wants no draft, such as a partial prefill).
#[derive(Debug, Clone, Copy)]
pub struct Row<'a> {
    pub tokens: &'a [i32],
    pub new_tokens: usize,
    /// Most tokens to draft for this row (the engine's k, cut at its maximum length).
    pub max_draft: usize,
}

/// Counters since the table was made.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServingStats {
    pub steps: u64,
    pub rows: u64,
    /// Rows whose request was found where it was last step / through the key lookup.
    pub same_row: u64,
    pub moved: u64,
    /// Requests first seen (a new state indexed from the row's tokens).
    pub created: u64,
    /// Requests ended by a stop token, by going stale, or dropped for room.
    pub stopped: u64,
    pub stale: u64,
    pub dropped: u64,
    /// Rows skipped because they hold a negative token id.
    pub invalid_rows: u64,
    pub drafts: u64,
    pub drafted_tokens: u64,
}

#[derive(Debug)]
struct Request {
    index: ContextIndex,
    prompt_len: usize,
    last_step: u64,
    key: u64,
    /// Whether `key` covers [`KEY_TOKENS`] tokens (else the request is on the short list).
    full_key: bool,
    learned: bool,
    /// The draft handed out last step: its length and its summed path probabilities.
    pending: Option<(usize, f64)>,
}

/// Per-request drafting state for an engine batch, keyed by the rows' tokens.
#[derive(Debug)]
pub struct RequestTable {
    config: ServingConfig,
    n_max: usize,
    slots: Vec<Option<Request>>,
    free: Vec<u32>,
    /// The slot each row held last step.
    by_row: Vec<u32>,
    by_key: FxHashMap<u64, Vec<u32>>,
    short: Vec<u32>,
    live: usize,
    step: u64,
    stats: ServingStats,
    calibration: Calibration,
}

fn hash_prefix(tokens: impl Iterator<Item = u32>) -> u64 {
    let mut h = FxHasher::default();
    for t in tokens.take(KEY_TOKENS) {
        h.write_u32(t);
    }
    h.finish()
}

/// The row's tokens as ids, or `None` if one is negative.
fn to_ids(tokens: &[i32]) -> Option<Vec<u32>> {
    tokens.iter().map(|&t| u32::try_from(t).ok()).collect()
}

impl Request {
    /// Whether `row` continues this request's tokens (see the module docs).
    fn fits(&self, row: &[i32]) -> bool {
        let own = self.index.tokens();
        let n = own.len();
        if n > row.len() {
            return false;
        }
        let head = n.min(CHECK_TOKENS);
        let tail = n.saturating_sub(CHECK_TOKENS).max(head);
        same(&own[..head], &row[..head]) && same(&own[tail..], &row[tail..n])
    }
}

fn same(own: &[u32], row: &[i32]) -> bool {
    own.iter()
        .zip(row)
        .all(|(&a, &b)| i64::from(a) == i64::from(b))
}

impl RequestTable {
    /// An empty table for a store of order `n_max`.
    pub fn new(n_max: usize, config: ServingConfig) -> Self {
        let config = ServingConfig {
            max_requests: config.max_requests.max(1),
            stale_steps: config.stale_steps.max(1),
            ..config
        };
        Self {
            config,
            n_max,
            slots: Vec::new(),
            free: Vec::new(),
            by_row: Vec::new(),
            by_key: FxHashMap::default(),
            short: Vec::new(),
            live: 0,
            step: 0,
            stats: ServingStats::default(),
            calibration: Calibration::default(),
        }
    }

    pub fn config(&self) -> &ServingConfig {
        &self.config
    }

    pub fn stats(&self) -> &ServingStats {
        &self.stats
    }

    /// Measured acceptance against the drafter's predictions.
    pub fn calibration(&self) -> &Calibration {
        &self.calibration
    }

    /// Request states currently kept.
    pub fn live(&self) -> usize {
        self.live
    }

    /// Tokens indexed across all kept states.
    pub fn indexed_tokens(&self) -> usize {
        self.slots.iter().flatten().map(|r| r.index.len()).sum()
    }

    /// Forgets every request (nothing is learned).
    pub fn clear(&mut self) {
        self.slots.clear();
        self.free.clear();
        self.by_row.clear();
        self.by_key.clear();
        self.short.clear();
        self.live = 0;
    }

    /// Brings every row's request up to date and returns the responses that ended this step
    /// (stop token or stale), for online learning. Call [`propose`](Self::propose) next.
    pub fn observe(&mut self, rows: &[Row<'_>]) -> Vec<Vec<u32>> {
        self.step += 1;
        self.stats.steps += 1;
        self.calibration.step();
        let mut ended = Vec::new();
        let mut owners = vec![NONE; rows.len()];
        for (i, row) in rows.iter().enumerate() {
            if row.new_tokens == 0 || row.tokens.is_empty() {
                continue;
            }
            self.stats.rows += 1;
            match self.find(i, row.tokens) {
                Some(slot) => {
                    if !self.advance(slot, row.tokens) {
                        self.stats.invalid_rows += 1;
                        self.remove(slot);
                        continue;
                    }
                    owners[i] = slot;
                    let pending = self.slots[slot as usize]
                        .as_mut()
                        .and_then(|r| r.pending.take());
                    if let Some((drafted, predicted)) = pending {
                        let accepted = row.new_tokens.saturating_sub(1).min(drafted);
                        self.calibration.observe(drafted, predicted, accepted);
                    }
                }
                None => match self.create(row) {
                    Some(slot) => owners[i] = slot,
                    None => {
                        self.stats.invalid_rows += 1;
                        continue;
                    }
                },
            }
            let slot = owners[i];
            let last = row.tokens[row.tokens.len() - 1];
            let stop = u32::try_from(last).is_ok_and(|t| self.config.stop_tokens.contains(&t));
            if stop {
                if let Some(req) = self.slots[slot as usize].as_mut() {
                    if !req.learned {
                        req.learned = true;
                        self.stats.stopped += 1;
                        ended.push(req.index.tokens()[req.prompt_len..].to_vec());
                    }
                }
            }
        }
        self.by_row = owners;
        self.expire(&mut ended);
        ended
    }

    /// Drafts for every row that [`observe`](Self::observe) matched this step: one entry per
    /// row, empty where the row wants no draft.
    pub fn propose(
        &self,
        store: &NgramStore,
        online: Option<&ContextIndex>,
        rows: &[Row<'_>],
    ) -> Result<Vec<Draft>, Error> {
        let c = &self.config;
        let draft_row = |(i, row): (usize, &Row<'_>)| -> Result<Draft, Error> {
            let slot = self.by_row.get(i).copied().unwrap_or(NONE);
            let req = self.slots.get(slot as usize).and_then(Option::as_ref);
            let mut draft = Draft::default();
            if let (Some(req), true) = (req, row.max_draft > 0) {
                draft = propose_with(
                    store,
                    online,
                    &req.index,
                    row.max_draft,
                    c.corpus_weight,
                    c.min_prob,
                    c.mixing,
                )?;
                if let Some(cost) = &c.verify_cost {
                    cost.truncate(&mut draft);
                }
            }
            Ok(draft)
        };
        let mut drafts: Vec<Draft> = rows
            .iter()
            .enumerate()
            .map(draft_row)
            .collect::<Result<_, _>>()?;
        if let Some(overhead) = c.step_overhead {
            let active = rows.iter().filter(|r| r.new_tokens > 0).count();
            cut_batch(&mut drafts, active, overhead, self.calibration.gain());
        }
        Ok(drafts)
    }

    /// Counts what [`propose`](Self::propose) returned and remembers each row's draft, so the
    /// next step's rows tell how much of it was accepted.
    pub fn record_drafts(&mut self, drafts: &[Draft]) {
        for (i, d) in drafts.iter().enumerate() {
            let slot = self.by_row.get(i).copied().unwrap_or(NONE);
            let req = self.slots.get_mut(slot as usize).and_then(Option::as_mut);
            if let Some(req) = req {
                req.pending =
                    (!d.tokens.is_empty()).then(|| (d.tokens.len(), path_probs(&d.probs).sum()));
            }
            if !d.tokens.is_empty() {
                self.stats.drafts += 1;
                self.stats.drafted_tokens += d.tokens.len() as u64;
            }
        }
    }

    fn claimable(&self, slot: u32, row: &[i32]) -> Option<usize> {
        let req = self.slots.get(slot as usize)?.as_ref()?;
        (req.last_step != self.step && req.fits(row)).then(|| req.index.len())
    }

    fn find(&mut self, i: usize, row: &[i32]) -> Option<u32> {
        if let Some(&slot) = self.by_row.get(i) {
            if slot != NONE && self.claimable(slot, row).is_some() {
                self.stats.same_row += 1;
                return Some(slot);
            }
        }
        let mut best: Option<(usize, u32)> = None;
        let key = hash_prefix(row.iter().map(|&t| t as u32));
        let candidates = self.by_key.get(&key).into_iter().flatten();
        for &slot in candidates.chain(&self.short) {
            if let Some(len) = self.claimable(slot, row) {
                if best.is_none_or(|(l, _)| len > l) {
                    best = Some((len, slot));
                }
            }
        }
        if best.is_some() {
            self.stats.moved += 1;
        }
        best.map(|(_, slot)| slot)
    }

    /// Extends the request in `slot` with the row's tokens past its own; false if one of them
    /// is not a valid id.
    fn advance(&mut self, slot: u32, row: &[i32]) -> bool {
        let step = self.step;
        let Some(req) = self.slots[slot as usize].as_mut() else {
            return false;
        };
        req.last_step = step;
        let Some(new) = to_ids(&row[req.index.len()..]) else {
            return false;
        };
        req.index.extend(&new);
        if !req.full_key && req.index.len() >= KEY_TOKENS {
            self.rekey(slot);
        }
        true
    }

    fn create(&mut self, row: &Row<'_>) -> Option<u32> {
        let ids = to_ids(row.tokens)?;
        if self.live >= self.config.max_requests {
            self.drop_oldest();
        }
        let full_key = ids.len() >= KEY_TOKENS;
        let req = Request {
            key: hash_prefix(ids.iter().copied()),
            full_key,
            prompt_len: ids.len().saturating_sub(row.new_tokens),
            index: ContextIndex::new(self.n_max, &ids),
            last_step: self.step,
            learned: false,
            pending: None,
        };
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot as usize] = Some(req);
                slot
            }
            None => {
                self.slots.push(Some(req));
                (self.slots.len() - 1) as u32
            }
        };
        self.file(slot);
        self.live += 1;
        self.stats.created += 1;
        Some(slot)
    }

    /// Adds `slot` to the lookup structures under its current key.
    fn file(&mut self, slot: u32) {
        let Some(req) = self.slots[slot as usize].as_ref() else {
            return;
        };
        if req.full_key {
            self.by_key.entry(req.key).or_default().push(slot);
        } else {
            self.short.push(slot);
        }
    }

    fn unfile(&mut self, slot: u32) {
        let Some(req) = self.slots[slot as usize].as_ref() else {
            return;
        };
        if req.full_key {
            if let Some(list) = self.by_key.get_mut(&req.key) {
                list.retain(|&s| s != slot);
                if list.is_empty() {
                    self.by_key.remove(&req.key);
                }
            }
        } else {
            self.short.retain(|&s| s != slot);
        }
    }

    fn rekey(&mut self, slot: u32) {
        self.unfile(slot);
        if let Some(req) = self.slots[slot as usize].as_mut() {
            req.key = hash_prefix(req.index.tokens().iter().copied());
            req.full_key = true;
        }
        self.file(slot);
    }

    fn remove(&mut self, slot: u32) -> Option<Request> {
        self.unfile(slot);
        let req = self.slots.get_mut(slot as usize)?.take()?;
        self.free.push(slot);
        self.live -= 1;
        for owner in &mut self.by_row {
            if *owner == slot {
                *owner = NONE;
            }
        }
        Some(req)
    }

    /// Drops the least recently seen request, unlearned (it may still be running).
    fn drop_oldest(&mut self) {
        let oldest = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(s, r)| r.as_ref().map(|r| (r.last_step, s as u32)))
            .min();
        if let Some((_, slot)) = oldest {
            self.remove(slot);
            self.stats.dropped += 1;
        }
    }

    /// Ends the requests unseen for `stale_steps` steps, learning those not yet learned. Runs
    /// every few steps (a scan of the table) and whenever the table is full.
    fn expire(&mut self, ended: &mut Vec<Vec<u32>>) {
        let period = self.config.stale_steps.clamp(1, 16);
        if self.step % period != 0 && self.live < self.config.max_requests {
            return;
        }
        let horizon = self.step.saturating_sub(self.config.stale_steps);
        let stale: Vec<u32> = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(s, r)| {
                r.as_ref()
                    .filter(|r| r.last_step <= horizon)
                    .map(|_| s as u32)
            })
            .collect();
        for slot in stale {
            if let Some(req) = self.remove(slot) {
                self.stats.stale += 1;
                if !req.learned && req.index.len() > req.prompt_len {
                    ended.push(req.index.tokens()[req.prompt_len..].to_vec());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DrafterConfig;
    use crate::corpus::Corpus;
    use crate::followers::Followers;

    fn table(max_requests: usize, stale_steps: u64) -> RequestTable {
        RequestTable::new(
            4,
            ServingConfig {
                max_requests,
                stale_steps,
                stop_tokens: vec![0],
                corpus_weight: 0.75,
                min_prob: 0.0,
                mixing: Mixing::Fixed,
                verify_cost: None,
                step_overhead: None,
            },
        )
    }

    fn row(tokens: &[i32], new_tokens: usize) -> Row<'_> {
        Row {
            tokens,
            new_tokens,
            max_draft: 4,
        }
    }

    fn seq(start: i32, len: usize) -> Vec<i32> {
        (0..len as i32).map(|i| start + i).collect()
    }

    #[test]
    fn follows_requests_that_change_rows() {
        let mut t = table(8, 100);
        let (mut a, mut b) = (seq(100, 40), seq(200, 5));
        t.observe(&[row(&a, 1), row(&b, 1)]);
        assert_eq!((t.stats().created, t.live()), (2, 2));
        a.push(7);
        b.push(8);
        // the rows swap places: both requests are found again, nothing is created
        t.observe(&[row(&b, 1), row(&a, 1)]);
        assert_eq!(t.stats().created, 2);
        assert_eq!(t.stats().moved, 2);
        // the indexes followed their own requests
        for (i, r) in [&b, &a].iter().enumerate() {
            let slot = t.by_row[i] as usize;
            let own = t.slots[slot].as_ref().unwrap().index.tokens();
            assert_eq!(own.iter().map(|&x| x as i32).collect::<Vec<_>>(), **r);
        }
        // same rows again: found in place
        a.push(9);
        b.push(9);
        t.observe(&[row(&b, 1), row(&a, 1)]);
        assert_eq!(t.stats().same_row, 2);
    }

    #[test]
    fn identical_requests_get_their_own_states() {
        let mut t = table(8, 100);
        let p = seq(1, 50);
        t.observe(&[row(&p, 1), row(&p, 1)]);
        assert_eq!(t.live(), 2);
        assert_ne!(t.by_row[0], t.by_row[1]);
        t.observe(&[row(&p, 1), row(&p, 1)]);
        assert_eq!(t.live(), 2);
    }

    #[test]
    fn a_new_request_in_an_old_row_is_not_taken_for_the_old_one() {
        let mut t = table(8, 100);
        let a = seq(100, 40);
        t.observe(&[row(&a, 1)]);
        let b = seq(300, 45);
        t.observe(&[row(&b, 1)]);
        assert_eq!(t.stats().created, 2);
        // a shorter row can never continue a longer request
        let short = seq(100, 10);
        t.observe(&[row(&short, 1)]);
        assert_eq!(t.stats().created, 3);
    }

    #[test]
    fn stop_tokens_and_staleness_end_requests_once() {
        let mut t = table(8, 3);
        let mut a = seq(10, 6);
        t.observe(&[row(&a, 1)]);
        a.extend([20, 21, 0]);
        let ended = t.observe(&[row(&a, 3)]);
        // the response is everything after the prompt (5 tokens), stop token included
        assert_eq!(ended, vec![vec![15, 20, 21, 0]]);
        a.push(0);
        assert!(t.observe(&[row(&a, 1)]).is_empty(), "learned only once");
        let b = seq(50, 4);
        let mut all = Vec::new();
        for _ in 0..20 {
            all.extend(t.observe(&[row(&b, 1)]));
        }
        // `a` went stale (already learned: nothing more); `b` is still seen every step
        assert!(all.is_empty());
        assert_eq!(t.live(), 1);
        // `b` goes stale with its response
        let mut b2 = b.clone();
        b2.push(99);
        t.observe(&[row(&b2, 1)]);
        let mut all = Vec::new();
        for _ in 0..20 {
            all.extend(t.observe(&[]));
        }
        assert_eq!(all, vec![vec![53, 99]]);
        assert_eq!(t.live(), 0);
    }

    #[test]
    fn capacity_drops_the_oldest_and_rows_without_new_tokens_are_skipped() {
        let mut t = table(2, 1000);
        let rows: Vec<Vec<i32>> = (0..5).map(|r| seq(1000 * (r + 1), 40)).collect();
        for r in &rows {
            t.observe(&[row(r, 1)]);
            assert!(t.live() <= 2);
        }
        assert_eq!(t.stats().dropped, 3);
        let before = t.stats().created;
        t.observe(&[row(&rows[0], 0), row(&[], 1)]);
        assert_eq!(t.stats().created, before);
        let bad = vec![1, -5, 3];
        t.observe(&[row(&bad, 1)]);
        assert_eq!(t.stats().invalid_rows, 1);
    }

    #[test]
    fn drafts_match_a_fresh_session() {
        let seqs = vec![vec![1, 2, 3, 4, 5, 6], vec![1, 2, 3, 4, 7, 8]];
        let corpus = Corpus::from_sequences(&seqs, None).unwrap();
        let config = DrafterConfig {
            min_count: 1,
            ..DrafterConfig::default()
        };
        let store = NgramStore::build(&corpus, &config).unwrap();
        let mut t = table(8, 100);
        let mut a: Vec<i32> = vec![9, 9, 1, 2];
        for step in 0..4 {
            let rows = [row(&a, 1), row(&[], 0)];
            t.observe(&rows);
            let drafts = t.propose(&store, None, &rows).unwrap();
            let ids: Vec<u32> = a.iter().map(|&x| x as u32).collect();
            let fresh = ContextIndex::new(store.n_max(), &ids);
            let want = propose_with(&store, None, &fresh, 4, 0.75, 0.0, Mixing::Fixed).unwrap();
            assert_eq!(drafts[0], want, "step {step}");
            assert!(drafts[1].tokens.is_empty());
            a.push(3 + step);
        }
        assert!(store.longest_match(&[1]).is_some_and(|f| f.total() > 0));
    }

    #[test]
    fn acceptance_is_measured_from_the_rows_and_scales_the_cut() {
        let corpus = Corpus::from_sequences(&[vec![1, 2, 3, 4, 5, 6, 7, 8, 9]], None).unwrap();
        let built = DrafterConfig {
            min_count: 1,
            ..DrafterConfig::default()
        };
        let s = NgramStore::build(&corpus, &built).unwrap();
        let config = ServingConfig {
            step_overhead: Some(4.0),
            ..table(8, 64).config().clone()
        };
        let run = |accept_all: bool| {
            let mut t = RequestTable::new(4, config.clone());
            let mut row = vec![1, 2];
            let mut gained = row.len();
            let mut kept = Vec::new();
            for _ in 0..60 {
                let views = [Row {
                    tokens: &row,
                    new_tokens: gained,
                    max_draft: 4,
                }];
                t.observe(&views);
                let drafts = t.propose(&s, None, &views).unwrap();
                t.record_drafts(&drafts);
                kept.push(drafts[0].tokens.len());
                // the engine accepts the whole draft, or none of it, then adds its own token
                let before = row.len();
                if accept_all {
                    row.extend(drafts[0].tokens.iter().map(|&x| x as i32));
                    let next = *row.last().unwrap() % 9 + 1;
                    row.push(next);
                } else {
                    // a token the corpus knows, but never the drafted one
                    let drafted = drafts[0].tokens.first().map_or(0, |&x| x as i32);
                    let next = *row.last().unwrap() % 9 + 1;
                    row.push(if next == drafted { next % 9 + 1 } else { next });
                }
                gained = row.len() - before;
            }
            (t.calibration().clone(), kept)
        };
        let (good, _) = run(true);
        let (bad, kept_bad) = run(false);
        assert!(good.gain() >= 1.0, "{good:?}");
        assert!(bad.gain() < 0.5, "{bad:?}");
        assert_eq!(bad.accepted_tokens, 0);
        assert!(bad.drafted_tokens > 0);
        // once the drafts are known to fail, the cut stops drafting
        assert_eq!(kept_bad.last(), Some(&0));
        // without feedback the gain drifts back toward 1
        let mut c = bad.clone();
        for _ in 0..5000 {
            c.step();
        }
        assert!(c.gain() > 0.9, "{c:?}");
    }

    #[test]
    fn batch_cut_keeps_likely_positions_and_prefixes() {
        let draft = |probs: &[f64]| Draft {
            tokens: (0..probs.len() as u32).collect(),
            probs: probs.to_vec(),
        };
        // one row, cheap positions next to a large overhead: everything likely is kept
        let mut one = vec![draft(&[0.9, 0.9, 0.9, 0.2])];
        cut_batch(&mut one, 1, 8.0, 1.0);
        assert_eq!(one[0].tokens.len(), 3);
        // a big batch: only near-certain positions pay for themselves
        let mut many: Vec<Draft> = (0..16).map(|_| draft(&[0.99, 0.9, 0.6, 0.5])).collect();
        cut_batch(&mut many, 16, 8.0, 1.0);
        for d in &many {
            assert!(
                !d.tokens.is_empty() && d.tokens.len() <= 2,
                "{:?}",
                d.tokens
            );
        }
        // no overhead at all and unlikely drafts: nothing is worth verifying
        let mut weak = vec![draft(&[0.3, 0.2])];
        cut_batch(&mut weak, 1, 0.0, 1.0);
        assert!(weak[0].tokens.is_empty());
    }
}
