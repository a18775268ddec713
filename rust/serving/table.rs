//! The request table: each row of an engine batch recognised as its request, drafted for, and
//! learned once it ends.

use rayon::prelude::*;
use rustc_hash::{FxHashMap, FxHasher};
use std::hash::Hasher;
use std::sync::{Arc, Mutex};

use crate::context::ContextIndex;
use crate::copy::{CopySource, PromptAnchors};
use crate::draft::{propose_until, Draft, PathFloor};
use crate::error::Error;
use crate::neighbours::{Nearest, NeighbourSource};
use crate::store::{NgramStore, StoreMatch};

use super::{cut_batch, Calibration, ServingConfig, StepCostFit, MAX_THREADS, PARALLEL_ROWS};

/// Tokens at the start of a row that key the request lookup.
pub const KEY_TOKENS: usize = 32;
/// Tokens compared at each end of a request's context to recognise it in a row.
pub const CHECK_TOKENS: usize = 32;

const NONE: u32 = u32::MAX;

/// One row of an engine batch: its valid tokens and how many of them arrived this step
/// (`new_tokens == 0` marks a row that wants no draft, such as a partial prefill).
#[derive(Debug, Clone, Copy)]
pub struct Row<'a> {
    pub tokens: &'a [i32],
    pub new_tokens: usize,
    /// Most tokens to draft for this row (the engine's k, cut at its maximum length).
    pub max_draft: usize,
}

/// One step's drafts: each row's whole draft and how many of its tokens go to the engine.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StepDrafts {
    pub full: Vec<Draft>,
    pub kept: Vec<usize>,
    /// Each row's store match after its tokens (see `Request::anchor`).
    anchors: Vec<Anchor>,
    /// The store drafted from ([`store_id`]).
    store: usize,
}

/// A request's store match after its first `.0` tokens.
type Anchor = Option<(usize, StoreMatch)>;

/// Most tokens a kept store match catches up over (one lookup each) before a fresh search is
/// cheaper.
const CATCH_UP: usize = 64;

/// Names the store a table's kept matches were made in: its address, which a
/// `BatchProposer` keeps for its lifetime. A match from another store is never trusted
/// ([`NgramStore::at`] checks it), only useless.
fn store_id(store: &NgramStore) -> usize {
    std::ptr::from_ref(store) as usize
}

impl StepDrafts {
    /// The tokens row `i` hands the engine.
    pub fn row(&self, i: usize) -> &[u32] {
        match (self.full.get(i), self.kept.get(i)) {
            (Some(d), Some(&k)) => &d.tokens[..k.min(d.tokens.len())],
            _ => &[],
        }
    }

    pub fn len(&self) -> usize {
        self.full.len()
    }

    pub fn is_empty(&self) -> bool {
        self.full.is_empty()
    }
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
    /// Last step's whole draft (before any cut) and how many of its tokens the engine got.
    pending: Option<(Draft, usize)>,
    /// The store's match after the request's first `.0` tokens, kept from the last draft so
    /// the next one catches up from there instead of searching.
    anchor: Anchor,
    /// The prompt's anchors for the store's copy pointer ([`ServingConfig::copy`]).
    copy: Option<PromptAnchors>,
    /// The request's most similar training pairs ([`ServingConfig::neighbours`]).
    nearest: Option<Nearest>,
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
    /// When the table was made (the clock of [`observe`](Self::observe)).
    origin: std::time::Instant,
    /// The previous call's time, and the positions its drafts make the engine verify next with
    /// the number of rows that will carry them (`None`: that step cannot be accounted for).
    last_call: Option<f64>,
    verifying: Option<(f64, usize)>,
    step_cost: StepCostFit,
    /// Built on the first batch of [`PARALLEL_ROWS`] rows when `config.threads > 1`, with the
    /// process that built it (a forked child has none of its threads: it builds its own);
    /// `Some((pid, None))` once building it failed (the table then drafts on the calling
    /// thread).
    pool: Mutex<Option<(u32, Option<Arc<rayon::ThreadPool>>)>>,
    /// The store the requests' `anchor`s were made in ([`store_id`]).
    anchor_store: usize,
}

fn hash_prefix(tokens: impl Iterator<Item = u32>) -> u64 {
    let mut h = FxHasher::default();
    for t in tokens.take(KEY_TOKENS) {
        h.write_u32(t);
    }
    h.finish()
}

/// Teaches the copy pointer's and the neighbours' statistics what a finished request's
/// response did.
fn learn_copies(config: &ServingConfig, req: &Request) {
    if let (Some(index), Some(stats), Some(anchors)) = (&config.copy, &config.copy_stats, &req.copy)
    {
        stats.learn(index, anchors, req.index.tokens(), req.prompt_len);
    }
    if let (Some(index), Some(learning), Some(nearest)) =
        (&config.neighbours, &config.neighbour_learning, &req.nearest)
    {
        learning.finish(index, nearest, req.index.tokens(), req.prompt_len);
    }
}

/// `tokens` as ids, `None` if one is negative or at or above `limit`.
fn to_ids(tokens: &[i32], limit: u32) -> Option<Vec<u32>> {
    tokens
        .iter()
        .map(|&t| u32::try_from(t).ok().filter(|&t| t < limit))
        .collect()
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
            threads: config.threads.min(MAX_THREADS),
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
            origin: std::time::Instant::now(),
            last_call: None,
            verifying: None,
            step_cost: StepCostFit::default(),
            pool: Mutex::new(None),
            anchor_store: 0,
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

    /// The measured step cost (filled when `measure_step_cost` is on).
    pub fn step_cost(&self) -> &StepCostFit {
        &self.step_cost
    }

    /// The step overhead the batch cut uses now: the measured one when `measure_step_cost` is
    /// on and the fit can tell, else the configured one (`None`: no cut).
    pub fn step_overhead(&self) -> Option<f64> {
        let configured = self.config.step_overhead?;
        match self.config.measure_step_cost {
            true => Some(self.step_cost.overhead().unwrap_or(configured)),
            false => Some(configured),
        }
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
        let now = self.origin.elapsed().as_secs_f64();
        self.observe_at(rows, now)
    }

    /// [`observe`](Self::observe) at `now` seconds on the table's clock.
    ///
    /// The time since the previous call is one engine step: verifying the drafts handed out
    /// then, sampling, and the engine's own work. With `measure_step_cost`, it is fitted
    /// against the positions that step verified ([`StepCostFit`]), but only for a step the
    /// table can account for: every row that was to be verified is back, no request is new
    /// (its prefill ran in that step) and no row is mid-prefill.
    pub fn observe_at(&mut self, rows: &[Row<'_>], now: f64) -> Vec<Vec<u32>> {
        let (mut matched, mut created, mut waiting) = (0usize, 0usize, 0usize);
        self.step += 1;
        self.stats.steps += 1;
        self.calibration.step();
        let mut ended = Vec::new();
        let mut owners = vec![NONE; rows.len()];
        for (i, row) in rows.iter().enumerate() {
            if row.new_tokens == 0 || row.tokens.is_empty() {
                waiting += usize::from(!row.tokens.is_empty());
                continue;
            }
            self.stats.rows += 1;
            match self.find(i, row.tokens) {
                Some(slot) => {
                    matched += 1;
                    let before = self.slots[slot as usize]
                        .as_ref()
                        .map_or(0, |r| r.index.len());
                    if !self.advance(slot, row.tokens) {
                        self.stats.invalid_rows += 1;
                        self.remove(slot);
                        continue;
                    }
                    owners[i] = slot;
                    let pending = self.slots[slot as usize]
                        .as_mut()
                        .and_then(|r| r.pending.take());
                    if let Some((draft, kept)) = pending {
                        // the tokens the row gained are the target's: compare the whole draft
                        let gained = &row.tokens[before.min(row.tokens.len())..];
                        let agreed = draft
                            .tokens
                            .iter()
                            .zip(gained)
                            .take_while(|&(&d, &t)| i64::from(d) == i64::from(t))
                            .count();
                        self.calibration.observe(&draft.probs, agreed, gained.len());
                        self.calibration.count(kept, agreed.min(kept));
                    }
                }
                None => match self.create(row) {
                    Some(slot) => {
                        created += 1;
                        owners[i] = slot;
                    }
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
                        learn_copies(&self.config, req);
                        ended.push(req.index.tokens()[req.prompt_len..].to_vec());
                    }
                }
            }
        }
        self.by_row = owners;
        self.expire(&mut ended);
        if let (Some(last), Some((positions, expected))) = (self.last_call, self.verifying) {
            let clean = created == 0 && waiting == 0 && matched == expected;
            if self.config.measure_step_cost && clean {
                self.step_cost.add(positions, now - last);
            }
        }
        self.last_call = Some(now);
        self.verifying = None;
        ended
    }

    /// Drafts for every row that [`observe`](Self::observe) matched this step: one entry per
    /// row, empty where the row wants no draft. Each row's whole draft, and how much of it to
    /// hand the engine once the step's cuts (`verify_cost`, `step_overhead`) are made.
    pub fn propose(
        &self,
        store: &NgramStore,
        online: Option<&ContextIndex>,
        rows: &[Row<'_>],
    ) -> Result<StepDrafts, Error> {
        let c = &self.config;
        let active = rows.iter().filter(|r| r.new_tokens > 0).count();
        let overhead = self.step_overhead();
        let cal = &self.calibration;
        let rate = |p: f64| cal.rate(p);
        // The batch cut keeps a position only while its path value beats the step's ratio of
        // expected tokens to cost, which starts at `active / (overhead + active)` and only
        // grows: a chain can stop at its first position below that. (A per-row verify-cost
        // cut may pick its length from the whole chain, so it gets the whole chain.)
        let until = match (overhead, &c.verify_cost) {
            (Some(o), None) if active > 0 => Some(PathFloor {
                floor: active as f64 / (o + active as f64) * (1.0 - 1e-9),
                rate: &rate,
            }),
            _ => None,
        };
        let same_store = self.anchor_store == store_id(store);
        let draft_row = |(i, row): (usize, &Row<'_>)| -> Result<(Draft, Anchor), Error> {
            let slot = self.by_row.get(i).copied().unwrap_or(NONE);
            let req = self.slots.get(slot as usize).and_then(Option::as_ref);
            match (req, row.max_draft > 0) {
                (Some(req), true) => {
                    let tokens = req.index.tokens();
                    let anchor = if c.corpus_weight > 0.0 {
                        let (known, m) = match req.anchor {
                            Some((n, m))
                                if same_store
                                    && n <= tokens.len()
                                    && tokens.len() - n <= CATCH_UP =>
                            {
                                (n, Some(m))
                            }
                            _ => (0, None),
                        };
                        store.match_after(tokens, known, m)
                    } else {
                        None
                    };
                    let draft = propose_until(
                        store,
                        online,
                        &req.index,
                        row.max_draft,
                        c.corpus_weight,
                        c.min_prob,
                        c.mixing,
                        until,
                        anchor,
                        store
                            .copy_index()
                            .zip(req.copy.as_ref())
                            .map(|(index, anchors)| CopySource {
                                index,
                                anchors,
                                tokens,
                                stats: c.copy_stats.as_deref(),
                            }),
                        req.nearest.as_ref().map(|nearest| NeighbourSource {
                            nearest,
                            stats: c.neighbour_learning.as_ref().map(|l| &*l.stats),
                        }),
                    )?;
                    Ok((draft, anchor.map(|m| (tokens.len(), m))))
                }
                _ => Ok((Draft::default(), None)),
            }
        };
        let pool = match self.config.threads {
            t if t > 1 && rows.len() >= PARALLEL_ROWS => self.pool(t),
            _ => None,
        };
        let drafted: Vec<(Draft, Anchor)> = match pool {
            // each row's draft is independent; collect keeps the rows' order
            Some(pool) => pool.install(|| {
                rows.par_iter()
                    .enumerate()
                    .map(draft_row)
                    .collect::<Result<_, _>>()
            })?,
            None => rows
                .iter()
                .enumerate()
                .map(draft_row)
                .collect::<Result<_, _>>()?,
        };
        let (mut full, anchors): (Vec<Draft>, Vec<Anchor>) = drafted.into_iter().unzip();
        // The engine ends a response at its stop token and drops what follows: a draft that
        // runs past one only spends verified positions (and the batch cut's budget) on them.
        if !c.stop_tokens.is_empty() {
            for d in &mut full {
                if let Some(at) = d.tokens.iter().position(|t| c.stop_tokens.contains(t)) {
                    d.tokens.truncate(at + 1);
                    d.probs.truncate(at + 1);
                }
            }
        }
        let mut kept: Vec<usize> = match &c.verify_cost {
            Some(cost) => full.iter().map(|d| cost.best_length(&d.probs)).collect(),
            None => full.iter().map(|d| d.tokens.len()).collect(),
        };
        if let Some(overhead) = overhead {
            let cut = cut_batch(&full, active, overhead, rate);
            for (k, cut) in kept.iter_mut().zip(cut) {
                *k = (*k).min(cut);
            }
        }
        Ok(StepDrafts {
            full,
            kept,
            anchors,
            store: store_id(store),
        })
    }

    /// Counts what [`propose`](Self::propose) returned and remembers each row's draft, so the
    /// next step's rows tell how much of it the target agreed with.
    pub fn record_drafts(&mut self, drafts: &StepDrafts) {
        let (mut positions, mut continuing) = (0usize, 0usize);
        if drafts.store != self.anchor_store {
            self.anchor_store = drafts.store;
            for req in self.slots.iter_mut().flatten() {
                req.anchor = None;
            }
        }
        for (i, (d, &kept)) in drafts.full.iter().zip(&drafts.kept).enumerate() {
            let slot = self.by_row.get(i).copied().unwrap_or(NONE);
            let req = self.slots.get_mut(slot as usize).and_then(Option::as_mut);
            if let Some(req) = req {
                if let Some(anchor) = drafts.anchors.get(i).copied().flatten() {
                    req.anchor = Some(anchor);
                }
                req.pending = (!d.tokens.is_empty()).then(|| (d.clone(), kept));
                if !req.learned {
                    // still running: the engine verifies its token and its draft next
                    continuing += 1;
                    positions += 1 + kept;
                }
            }
            if kept > 0 {
                self.stats.drafts += 1;
                self.stats.drafted_tokens += kept as u64;
            }
        }
        self.verifying = Some((positions as f64, continuing));
    }

    /// The drafting pool, built on first use in each process; `None` if the system refused
    /// its threads. After a fork the parent's pool has no threads in the child (a batch sent to
    /// it would wait forever): the child builds its own and leaks the parent's, whose state
    /// its threads may have held locked at the fork.
    fn pool(&self, threads: usize) -> Option<Arc<rayon::ThreadPool>> {
        let pid = std::process::id();
        let mut slot = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        match slot.as_ref() {
            Some((owner, pool)) if *owner == pid => return pool.clone(),
            Some(_) => std::mem::forget(slot.take()),
            None => {}
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("tasc-draft-{i}"))
            .build()
            .ok()
            .map(Arc::new);
        *slot = Some((pid, pool.clone()));
        pool
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
        let Some(new) = to_ids(&row[req.index.len()..], self.config.id_limit) else {
            return false;
        };
        req.index.extend(&new);
        if !req.full_key && req.index.len() >= KEY_TOKENS {
            self.rekey(slot);
        }
        true
    }

    fn create(&mut self, row: &Row<'_>) -> Option<u32> {
        let ids = to_ids(row.tokens, self.config.id_limit)?;
        if self.live >= self.config.max_requests {
            self.drop_oldest();
        }
        let full_key = ids.len() >= KEY_TOKENS;
        let prompt = &ids[..ids.len().saturating_sub(row.new_tokens)];
        let req = Request {
            key: hash_prefix(ids.iter().copied()),
            full_key,
            prompt_len: ids.len().saturating_sub(row.new_tokens),
            index: {
                let mut index = ContextIndex::new(self.n_max, &ids);
                index.set_aliases(self.config.aliases.clone());
                index
            },
            last_step: self.step,
            learned: false,
            pending: None,
            anchor: None,
            copy: self
                .config
                .copy
                .as_ref()
                .map(|_| PromptAnchors::new(prompt)),
            nearest: self
                .config
                .neighbours
                .as_ref()
                .filter(|_| self.config.neighbour_count > 0)
                .map(|n| match &self.config.neighbour_learning {
                    Some(l) => l.nearest(n, prompt, self.config.neighbour_count),
                    None => n.session(prompt, self.config.neighbour_count, None),
                }),
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
                    learn_copies(&self.config, &req);
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
    use crate::draft::propose_with;
    use crate::draft::tests::xorshift;
    use crate::draft::Mixing;
    use crate::followers::Followers;

    /// A store that keeps every n-gram of `seqs` (min_count 1).
    fn store_of(seqs: &[Vec<u32>]) -> NgramStore {
        let corpus = Corpus::from_sequences(seqs, None).unwrap();
        let config = DrafterConfig {
            min_count: 1,
            ..DrafterConfig::default()
        };
        NgramStore::build(&corpus, &config).unwrap()
    }

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
                measure_step_cost: false,
                threads: 1,
                aliases: None,
                id_limit: u32::MAX,
                copy: None,
                copy_stats: None,
                neighbours: None,
                neighbour_count: 0,
                neighbour_learning: None,
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
    fn rows_with_ids_past_the_vocabulary_get_no_draft() {
        let store = store_of(&[vec![1, 2, 3, 4, 5, 6]]);
        let config = ServingConfig {
            id_limit: 10,
            ..table(8, 100).config().clone()
        };
        let mut t = RequestTable::new(store.n_max(), config);
        // 12 follows 2 in the row: without the limit it would be drafted after 2
        let (bad, good) = (vec![1, 2, 12, 1, 2], vec![7, 1, 2]);
        let rows = [row(&bad, 1), row(&good, 1)];
        t.observe(&rows);
        let drafts = t.propose(&store, None, &rows).unwrap();
        assert!(drafts.row(0).is_empty());
        assert_eq!(drafts.row(1)[0], 3);
        assert_eq!(t.stats().invalid_rows, 1);
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
    fn drafts_end_at_a_stop_token() {
        // the store continues 1 2 with 3 0 5 6: the engine would drop what follows the stop
        // token (0), so the draft ends with it
        let store = store_of(&[vec![1, 2, 3, 0, 5, 6]]);
        let mut t = table(8, 100);
        let a: Vec<i32> = vec![9, 9, 1, 2];
        let rows = [row(&a, 1)];
        t.observe(&rows);
        let drafts = t.propose(&store, None, &rows).unwrap();
        assert_eq!(drafts.row(0), &[3, 0]);
        assert_eq!(drafts.full[0].probs.len(), 2);
        // without stop tokens the same draft runs on
        let mut open = table(8, 100);
        open.config.stop_tokens.clear();
        open.observe(&rows);
        assert_eq!(
            open.propose(&store, None, &rows).unwrap().row(0),
            &[3, 0, 5, 6]
        );
    }

    #[test]
    fn drafts_match_a_fresh_session() {
        let store = store_of(&[vec![1, 2, 3, 4, 5, 6], vec![1, 2, 3, 4, 7, 8]]);
        let mut t = table(8, 100);
        let mut a: Vec<i32> = vec![9, 9, 1, 2];
        for step in 0..4 {
            let rows = [row(&a, 1), row(&[], 0)];
            t.observe(&rows);
            let drafts = t.propose(&store, None, &rows).unwrap();
            let ids: Vec<u32> = a.iter().map(|&x| x as u32).collect();
            let fresh = ContextIndex::new(store.n_max(), &ids);
            let want = propose_with(&store, None, &fresh, 4, 0.75, 0.0, Mixing::Fixed).unwrap();
            assert_eq!(drafts.full[0], want, "step {step}");
            assert_eq!(drafts.row(0), &want.tokens[..], "no cut is configured");
            assert!(drafts.row(1).is_empty());
            a.push(3 + step);
        }
        assert!(store.longest_match(&[1]).is_some_and(|f| f.total() > 0));
    }

    #[test]
    fn kept_store_matches_draft_what_a_fresh_search_drafts() {
        let seqs: Vec<Vec<u32>> = (0..12u32)
            .map(|i| (0..14).map(|j| 1 + (i * j + j * j) % 5).collect())
            .collect();
        // another vocabulary, so that node numbers mean other contexts
        let other: Vec<Vec<u32>> = seqs
            .iter()
            .map(|s| s.iter().rev().map(|&t| t % 3 + 6 + t / 4).collect())
            .collect();
        let stores = [store_of(&seqs), store_of(&other[..7])];
        let mut t = table(8, 100);
        let mut rows: Vec<Vec<i32>> = vec![vec![1, 2], vec![3, 1, 4, 1, 5], vec![2; 40]];
        let mut gained = vec![2usize, 5, 40];
        let mut next = xorshift(17);
        for step in 0..60 {
            // the second store from step 40 on: matches kept from the first are dropped
            let store = &stores[usize::from(step >= 40)];
            let views: Vec<Row<'_>> = rows
                .iter()
                .zip(&gained)
                .map(|(r, &g)| Row {
                    tokens: r,
                    new_tokens: g,
                    max_draft: 6,
                })
                .collect();
            t.observe(&views);
            let drafts = t.propose(store, None, &views).unwrap();
            t.record_drafts(&drafts);
            for (i, r) in rows.iter().enumerate() {
                let ids: Vec<u32> = r.iter().map(|&v| v as u32).collect();
                let fresh = ContextIndex::new(store.n_max(), &ids);
                let c = t.config();
                let want = propose_with(store, None, &fresh, 6, c.corpus_weight, 0.0, c.mixing);
                assert_eq!(drafts.full[i], want.unwrap(), "step {step}, row {i}");
            }
            // each row gains part of its draft and a token of its own (1-3 tokens)
            for (i, r) in rows.iter_mut().enumerate() {
                let v = next(27);
                let take = (v % 3) as usize;
                let before = r.len();
                r.extend(drafts.full[i].tokens.iter().take(take).map(|&v| v as i32));
                r.push(1 + (v / 3) as i32);
                gained[i] = r.len() - before;
            }
        }
    }

    #[test]
    fn chains_stop_where_the_batch_cut_would_end_them() {
        // branching corpus: drafts carry probabilities well below 1
        let seqs: Vec<Vec<u32>> = (0..12u32)
            .map(|i| (0..10).map(|j| 1 + (i * j + j * j) % 7).collect())
            .collect();
        let store = store_of(&seqs);
        for (overhead, n_rows) in [(1.0, 2usize), (4.0, 5), (22.0, 16), (22.0, 3)] {
            let config = ServingConfig {
                step_overhead: Some(overhead),
                ..table(64, 64).config().clone()
            };
            let mut t = RequestTable::new(store.n_max(), config);
            let rows_tokens: Vec<Vec<i32>> = (0..n_rows)
                .map(|r| {
                    seqs[r % seqs.len()][..3 + r % 4]
                        .iter()
                        .map(|&x| x as i32)
                        .collect()
                })
                .collect();
            let views: Vec<Row<'_>> = rows_tokens
                .iter()
                .map(|r| Row {
                    tokens: r,
                    new_tokens: r.len(),
                    max_draft: 8,
                })
                .collect();
            t.observe(&views);
            let drafts = t.propose(&store, None, &views).unwrap();
            // the same step from every row's whole chain
            let full: Vec<Draft> = rows_tokens
                .iter()
                .map(|r| {
                    let ids: Vec<u32> = r.iter().map(|&x| x as u32).collect();
                    let ctx = ContextIndex::new(store.n_max(), &ids);
                    let c = t.config();
                    propose_with(&store, None, &ctx, 8, c.corpus_weight, c.min_prob, c.mixing)
                        .unwrap()
                })
                .collect();
            let cal = t.calibration();
            let want = cut_batch(&full, n_rows, overhead, |p| cal.rate(p));
            assert_eq!(drafts.kept, want, "overhead {overhead}, {n_rows} rows");
            let floor = n_rows as f64 / (overhead + n_rows as f64);
            let mut shorter = 0;
            for (i, (got, whole)) in drafts.full.iter().zip(&full).enumerate() {
                assert!(whole.tokens.starts_with(&got.tokens), "row {i}: a prefix");
                assert!(got.tokens.len() > drafts.kept[i] || got.tokens == whole.tokens);
                let paths: Vec<f64> = got
                    .probs
                    .iter()
                    .scan(1.0, |a, &p| {
                        *a *= cal.rate(p);
                        Some(*a)
                    })
                    .collect();
                // only the last position may be at or below the floor
                let n = paths.len();
                assert!(paths
                    .iter()
                    .take(n.saturating_sub(1))
                    .all(|&v| v > floor * (1.0 - 1e-9)));
                shorter += usize::from(got.tokens.len() < whole.tokens.len());
            }
            if floor > 0.3 {
                assert!(shorter > 0, "a heavy step overhead ends some chains early");
            }
        }
    }

    /// Runs one request for `steps` engine steps through a table with the batch cut; the engine
    /// accepts every draft (`accept_all`) or none (it then adds a token other than the drafted
    /// one). Returns the calibration, how many tokens each step handed the engine, and the
    /// drafter's probability for the first token of the last draft.
    fn run_engine(accept_all: bool, steps: usize) -> (Calibration, Vec<usize>, f64) {
        let s = store_of(&[vec![1, 2, 3, 4, 5, 6, 7, 8, 9]]);
        let config = ServingConfig {
            step_overhead: Some(4.0),
            ..table(8, 64).config().clone()
        };
        let mut t = RequestTable::new(4, config);
        let mut row = vec![1, 2];
        let mut gained = row.len();
        let mut kept = Vec::new();
        let mut first = f64::NAN;
        for _ in 0..steps {
            let views = [Row {
                tokens: &row,
                new_tokens: gained,
                max_draft: 4,
            }];
            t.observe(&views);
            let drafts = t.propose(&s, None, &views).unwrap();
            t.record_drafts(&drafts);
            let handed = drafts.row(0).to_vec();
            kept.push(handed.len());
            first = drafts.full[0].probs.first().copied().unwrap_or(f64::NAN);
            let before = row.len();
            if accept_all {
                row.extend(handed.iter().map(|&x| x as i32));
                let next = *row.last().unwrap() % 9 + 1;
                row.push(next);
            } else {
                // a token the corpus knows, but never the one the drafter wanted first
                let wanted = drafts.full[0].tokens.first().map_or(0, |&x| x as i32);
                let next = *row.last().unwrap() % 9 + 1;
                row.push(if next == wanted { next % 9 + 1 } else { next });
            }
            gained = row.len() - before;
        }
        (t.calibration().clone(), kept, first)
    }

    #[test]
    fn acceptance_is_measured_from_the_rows_and_drives_the_cut() {
        // the row follows the corpus: every drafted token has probability 1 (the top bin)
        let (good, kept_good, p) = run_engine(true, 60);
        assert_eq!(p, 1.0);
        assert!(good.rate(p) > 0.95, "{good:?}");
        assert!(good.accepted_tokens > 0 && good.accepted_tokens == good.drafted_tokens);
        assert_eq!(kept_good.last(), Some(&4));
        let (bad, kept_bad, p) = run_engine(false, 60);
        assert!(bad.rate(p) < 0.2, "{bad:?}");
        assert_eq!(bad.accepted_tokens, 0);
        assert!(bad.drafted_tokens > 0);
        // once the drafts are known to fail, the cut stops drafting
        assert_eq!(kept_bad.last(), Some(&0));
        // without feedback a bin drifts back toward its prior
        let mut c = bad.clone();
        for _ in 0..5000 {
            c.step();
        }
        assert!(
            (c.rate(p) - Calibration::centre(Calibration::bin(p))).abs() < 0.05,
            "{c:?}"
        );
    }

    #[test]
    fn positions_the_cut_removed_are_still_measured() {
        // the cut hands the engine nothing, yet the token each row gains shows whether the
        // drafter's first token was right: the rate stays low, where without those
        // observations it would drift back toward the prior once drafting stopped
        let (bad, kept, p) = run_engine(false, 2000);
        assert!(kept[1500..].iter().all(|&k| k == 0));
        assert!(bad.rate(p) < 0.05, "{bad:?}");
        let (mut blind, kept, _) = run_engine(false, 60);
        assert_eq!(kept.last(), Some(&0));
        for _ in 60..2000 {
            blind.step();
        }
        assert!(blind.rate(p) > 0.2, "{blind:?}");
    }

    #[test]
    fn the_table_times_the_steps_it_can_account_for() {
        let s = store_of(&[vec![1, 2, 3, 4, 5, 6, 7, 8, 9]]);
        let config = ServingConfig {
            step_overhead: Some(1000.0), // the prior: keep every draft
            measure_step_cost: true,
            ..table(8, 64).config().clone()
        };
        let mut t = RequestTable::new(4, config);
        let (a, b) = (0.030, 0.002); // the engine: 15 positions of overhead
        let mut rows = [vec![1, 2], vec![4, 5]];
        let mut gained = [2usize, 2];
        let (mut now, mut verifying) = (0.0, 0.0);
        let mut overheads = Vec::new();
        for step in 0..120usize {
            if step == 60 {
                // a new request joins: its prefill makes this step long, and it is not timed
                rows[1] = vec![1, 2, 3];
                gained[1] = 3;
                now += 5.0;
            }
            now += a + b * verifying;
            let views: Vec<Row<'_>> = rows
                .iter()
                .zip(gained)
                .map(|(r, g)| Row {
                    tokens: r,
                    new_tokens: g,
                    max_draft: step % 4 + 1,
                })
                .collect();
            t.observe_at(&views, now);
            let drafts = t.propose(&s, None, &views).unwrap();
            t.record_drafts(&drafts);
            verifying = (0..2).map(|i| 1 + drafts.row(i).len()).sum::<usize>() as f64;
            for (i, row) in rows.iter_mut().enumerate() {
                // the engine accepts the whole draft, then adds the corpus's next token
                let before = row.len();
                row.extend(drafts.row(i).iter().map(|&x| x as i32));
                let next = *row.last().unwrap() % 9 + 1;
                row.push(next);
                gained[i] = row.len() - before;
            }
            overheads.push(t.step_overhead().unwrap());
        }
        // the prior until the fit can tell, then the engine's 15 positions
        assert_eq!(overheads[10], 1000.0);
        let last = *overheads.last().unwrap();
        assert!((last - 15.0).abs() < 0.5, "{last}");
        // the step with the new request's prefill was left out (it would add 5 s)
        assert_eq!(t.step_cost().samples, 118);
    }
}
