//! Mixing the task and context distributions and proposing greedy draft chains.
//!
//! `p_mixed(x) = w * p_corp(x | c) + (1 - w) * p_ctx(x | c)`, each side backing off to its own
//! longest matching context. The draft is the greedy chain: at each step the token with the highest
//! mixed probability (smallest id on ties), until `k` tokens, or until that probability is zero or
//! below `min_prob`. With a [`VerifyCost`] profile the draft is then cut to the length that
//! maximises the expected number of tokens per unit of verification cost.

use crate::config::{check_corpus_weight, check_k, check_min_prob, ConfigError, MAX_K};
use crate::context::{ContextFollowers, ContextIndex, ContextMatch};
use crate::copy::CopySource;
use crate::error::Error;
use crate::followers::Followers;
use crate::neighbours::NeighbourSource;
use crate::store::{CorpusFollowers, NgramStore, StoreMatch};

/// A proposed draft: tokens and each token's mixed probability (the `q` of speculative sampling).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Draft {
    pub tokens: Vec<u32>,
    pub probs: Vec<f64>,
}

fn ratio(count: u32, total: u32) -> f64 {
    if total == 0 {
        0.0
    } else {
        f64::from(count) / f64::from(total)
    }
}

/// The mixed probability of a token with `corp` = (count, total) and `ctx` = (count, total).
/// The Python reference computes exactly this expression, so results agree bit for bit.
fn mixed(w: f64, corp: (u32, u32), ctx: (u32, u32)) -> f64 {
    w * ratio(corp.0, corp.1) + (1.0 - w) * ratio(ctx.0, ctx.1)
}

/// The argmax of the mixture and its probability, or `None` if both sides are empty.
///
/// Only `{best of one side} ∪ support of the other side` can hold the argmax: a token outside the
/// scanned support scores at most what the other side's best token scores. Scanning the smaller
/// support keeps a step cheap even when one side is the unigram distribution.
pub fn best_mixed(
    w: f64,
    corp: Option<impl Followers>,
    ctx: Option<impl Followers>,
) -> Option<(u32, f64)> {
    best_mixed_above(w, corp, ctx, 0.0)
}

/// [`best_mixed`] restricted to tokens whose mixed probability is at least `floor`: `None` when
/// no token reaches it. The same token as [`best_mixed`] whenever that one reaches `floor`.
///
/// A token's probability is at most its own side's share plus the other side's best share, so
/// most tokens of a long context (and whole steps whose best cannot reach `floor`, such as the
/// step that ends a draft) are decided without looking their count up on the other side.
pub fn best_mixed_above(
    w: f64,
    corp: Option<impl Followers>,
    ctx: Option<impl Followers>,
    floor: f64,
) -> Option<(u32, f64)> {
    let (corp_total, ctx_total) = (
        corp.as_ref().map_or(0, |f| f.total()),
        ctx.as_ref().map_or(0, |f| f.total()),
    );
    let p = |corp_count: u32, ctx_count: u32| {
        mixed(w, (corp_count, corp_total), (ctx_count, ctx_total))
    };
    let mut best = Best(None);
    match (corp, ctx) {
        (None, None) => {}
        (Some(c), None) => {
            let (t, n) = c.best();
            best.consider(t, p(n, 0));
        }
        (None, Some(x)) => {
            let (t, n) = x.best();
            best.consider(t, p(0, n));
        }
        (Some(c), Some(x)) => {
            let ((corp_token, corp_best), (ctx_token, ctx_best)) = (c.best(), x.best());
            // No token can beat both sides' best shares together.
            if p(corp_best, ctx_best) < floor {
                return None;
            }
            best.consider(corp_token, p(corp_best, x.count(corp_token)));
            best.consider(ctx_token, p(c.count(ctx_token), ctx_best));
            // Any other token counts at most `second` on each side. `p` is monotone in each
            // count, so these bounds hold exactly in floating point.
            let (corp_other, ctx_other) = (c.second(), x.second());
            if p(corp_other, ctx_other) < best.at_least(floor) {
                // both sides' best tokens were scored; nothing else can beat them
            } else if c.len() <= x.len() {
                c.for_each(|t, n| {
                    let ctx_bound = if t == ctx_token { ctx_best } else { ctx_other };
                    if p(n, ctx_bound) >= best.at_least(floor) {
                        best.consider(t, p(n, x.count(t)));
                    }
                });
            } else {
                x.for_each(|t, n| {
                    let corp_bound = if t == corp_token {
                        corp_best
                    } else {
                        corp_other
                    };
                    if p(corp_bound, n) >= best.at_least(floor) {
                        best.consider(t, p(c.count(t), n));
                    }
                });
            }
        }
    }
    best.0.filter(|&(_, q)| q >= floor)
}

/// The running argmax: the highest probability, the smaller token id on ties.
struct Best(Option<(u32, f64)>);

impl Best {
    fn consider(&mut self, token: u32, p: f64) {
        match self.0 {
            Some((t, q)) if q > p || (q == p && t < token) => {}
            _ => self.0 = Some((token, p)),
        }
    }

    /// What a token must reach to matter: the best so far, and at least `floor`.
    fn at_least(&self, floor: f64) -> f64 {
        self.0.map_or(floor, |(_, q)| q.max(floor))
    }
}

/// The task side of the mixture: the task store and the online index read as one corpus.
///
/// At each step the longer of the two matched contexts wins (the other corpus has never seen
/// that context followed by anything it kept); at equal lengths the counts add up. This is the
/// distribution a store rebuilt from the task corpus plus the learned responses would give,
/// without the rebuild.
#[derive(Debug, Clone, Copy)]
pub enum TaskFollowers<'a> {
    Corpus(CorpusFollowers<'a>),
    Online(ContextFollowers<'a>),
    Both(CorpusFollowers<'a>, ContextFollowers<'a>),
}

impl<'a> TaskFollowers<'a> {
    /// The task distribution after `history` and the length of its matched context, or `None`
    /// when both sides are empty.
    pub fn lookup(
        store: &'a NgramStore,
        online: Option<&'a ContextIndex>,
        history: &[u32],
    ) -> Option<(usize, Self)> {
        Self::lookup_after(store, online, history, &mut Cursor::default())
    }

    /// [`lookup`](Self::lookup) bounded by what the previous step matched (`at`), which it
    /// then updates to this step's matches.
    fn lookup_after(
        store: &'a NgramStore,
        online: Option<&'a ContextIndex>,
        history: &[u32],
        at: &mut Cursor,
    ) -> Option<(usize, Self)> {
        let known = at.store_now.take().and_then(|m| Some((m, store.at(m)?)));
        let corp = known.or_else(|| store.longest_match_after(history, at.store));
        at.store = corp.as_ref().map(|&(m, _)| m);
        let corp = corp.map(|(m, f)| (m.depth, f));
        let learned = online.and_then(|o| o.longest_match_next(history, at.online.take()));
        at.online = learned.as_ref().map(|&(m, _)| m);
        let learned = learned.map(|(m, f)| (m.depth, f));
        match (corp, learned) {
            (None, None) => None,
            (Some((dc, c)), None) => Some((dc, Self::Corpus(c))),
            (None, Some((dl, o))) => Some((dl, Self::Online(o))),
            (Some((dc, c)), Some((dl, o))) => Some(match dc.cmp(&dl) {
                std::cmp::Ordering::Greater => (dc, Self::Corpus(c)),
                std::cmp::Ordering::Less => (dl, Self::Online(o)),
                std::cmp::Ordering::Equal => (dc, Self::Both(c, o)),
            }),
        }
    }
}

impl Followers for TaskFollowers<'_> {
    fn total(&self) -> u32 {
        match self {
            Self::Corpus(c) => c.total(),
            Self::Online(o) => o.total(),
            Self::Both(c, o) => c.total().saturating_add(o.total()),
        }
    }
    fn best(&self) -> (u32, u32) {
        match self {
            Self::Corpus(c) => c.best(),
            Self::Online(o) => o.best(),
            Self::Both(c, o) => {
                // Only {best of one side} ∪ support of the other can hold the summed argmax.
                let (mut best_t, mut best_n) = (u32::MAX, 0u32);
                let mut consider = |t: u32, n: u32| {
                    if n > best_n || (n == best_n && t < best_t) {
                        (best_t, best_n) = (t, n);
                    }
                };
                if c.len() <= o.len() {
                    c.for_each(|t, n| consider(t, n.saturating_add(o.count(t))));
                    let (t, n) = o.best();
                    consider(t, n.saturating_add(c.count(t)));
                } else {
                    o.for_each(|t, n| consider(t, n.saturating_add(c.count(t))));
                    let (t, n) = c.best();
                    consider(t, n.saturating_add(o.count(t)));
                }
                (best_t, best_n)
            }
        }
    }
    fn second(&self) -> u32 {
        match self {
            Self::Corpus(c) => c.second(),
            Self::Online(o) => o.second(),
            // the best of the sum is at least either side's best
            Self::Both(c, o) => c.best().1.saturating_add(o.best().1),
        }
    }
    fn len(&self) -> usize {
        match self {
            Self::Corpus(c) => c.len(),
            Self::Online(o) => o.len(),
            // an upper bound: shared tokens are counted twice
            Self::Both(c, o) => c.len() + o.len(),
        }
    }
    fn count(&self, token: u32) -> u32 {
        match self {
            Self::Corpus(c) => c.count(token),
            Self::Online(o) => o.count(token),
            Self::Both(c, o) => c.count(token).saturating_add(o.count(token)),
        }
    }
    fn for_each(&self, mut f: impl FnMut(u32, u32)) {
        match self {
            Self::Corpus(c) => c.for_each(f),
            Self::Online(o) => o.for_each(f),
            Self::Both(c, o) => {
                c.for_each(|t, n| f(t, n.saturating_add(o.count(t))));
                o.for_each(|t, n| {
                    if c.count(t) == 0 {
                        f(t, n);
                    }
                });
            }
        }
    }
}

/// What a drafting step matched on each side (the store, the learned responses, the context),
/// so that the next step, whose history is one token longer, looks no deeper than one token
/// more (see [`NgramStore::longest_match_after`]), and on the context indexes mostly follows
/// one link instead of walking ([`ContextIndex::longest_match_next`]). The default bounds
/// nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cursor {
    store: Option<StoreMatch>,
    /// The store's match for the very next lookup's history, when already known.
    store_now: Option<StoreMatch>,
    online: Option<ContextMatch>,
    local: Option<ContextMatch>,
    /// Whether the next lookup's history ends with every token of the request's context (a
    /// draft's first step: [`ContextIndex::tail_match`]).
    local_tail: bool,
}

impl Cursor {
    /// A cursor for a draft's first lookup, whose history ends with the request's tokens (read
    /// from where they end in its context index), and whose store match is already known (`at`,
    /// from [`NgramStore::match_after`]; `None`: searched).
    pub fn anchored(at: Option<StoreMatch>) -> Self {
        Self {
            store_now: at,
            local_tail: true,
            ..Self::default()
        }
    }
}

/// The two sides of the mixture after `suffix` and the task side's weight under `mixing`: the
/// task distribution (store plus learned responses) and the context's, each at its own longest
/// matched context (`None` when empty, or when its weight is 0).
///
/// `at` holds what the step before matched, for a `suffix` one token longer than that step's
/// (`Cursor::default()` for any other), and is updated to this step's matches.
pub fn mixed_step<'a>(
    store: &'a NgramStore,
    online: Option<&'a ContextIndex>,
    ctx: &'a ContextIndex,
    suffix: &[u32],
    corpus_weight: f64,
    mixing: Mixing,
    at: &mut Cursor,
) -> (f64, Option<TaskFollowers<'a>>, Option<ContextFollowers<'a>>) {
    let corp = if corpus_weight > 0.0 {
        TaskFollowers::lookup_after(store, online, suffix, at)
    } else {
        None
    };
    let local = if corpus_weight < 1.0 {
        let found = if std::mem::take(&mut at.local_tail) {
            ctx.tail_match(suffix)
        } else {
            ctx.longest_match_next(suffix, at.local.take())
        };
        at.local = found.as_ref().map(|&(m, _)| m);
        found.map(|(m, f)| (m.depth, f))
    } else {
        None
    };
    let weight = match (mixing, &corp, &local) {
        (Mixing::LongerMatch, Some((dt, _)), Some((dc, _))) => {
            let high = corpus_weight.max(1.0 - corpus_weight);
            if dc > dt {
                1.0 - high
            } else {
                high
            }
        }
        _ => corpus_weight,
    };
    (weight, corp.map(|(_, f)| f), local.map(|(_, f)| f))
}

/// The `m` most probable tokens of the mixture whose probability reaches `floor`, best first
/// (the smaller id on ties), written to `out`. For `m = 1` this is [`best_mixed_above`].
///
/// Exact: the tokens of each side are bounded by their own share plus the other side's best
/// share against the current `m`-th best, and a token both sides know is scored once.
pub fn top_mixed(
    w: f64,
    corp: Option<impl Followers>,
    ctx: Option<impl Followers>,
    m: usize,
    floor: f64,
    out: &mut Vec<(u32, f64)>,
) {
    out.clear();
    if m == 0 {
        return;
    }
    if m == 1 {
        out.extend(best_mixed_above(w, corp, ctx, floor));
        return;
    }
    let (corp_total, ctx_total) = (
        corp.as_ref().map_or(0, |f| f.total()),
        ctx.as_ref().map_or(0, |f| f.total()),
    );
    let p = |corp_count: u32, ctx_count: u32| {
        mixed(w, (corp_count, corp_total), (ctx_count, ctx_total))
    };
    let mut top = Top { m, floor, out };
    match (corp, ctx) {
        (None, None) => {}
        (Some(c), None) => c.for_each(|t, n| top.consider(t, p(n, 0))),
        (None, Some(x)) => x.for_each(|t, n| top.consider(t, p(0, n))),
        (Some(c), Some(x)) => {
            let (corp_best, ctx_best) = (c.best().1, x.best().1);
            if p(corp_best, ctx_best) < floor {
                return;
            }
            c.for_each(|t, n| {
                if p(n, ctx_best) >= top.threshold() {
                    top.consider(t, p(n, x.count(t)));
                }
            });
            x.for_each(|t, n| {
                // tokens the task side knows were scored above
                if p(0, n) >= top.threshold() && c.count(t) == 0 {
                    top.consider(t, p(0, n));
                }
            });
        }
    }
}

/// The running top `m`, best first, keeping only tokens at or above `floor`.
struct Top<'a> {
    m: usize,
    floor: f64,
    out: &'a mut Vec<(u32, f64)>,
}

impl Top<'_> {
    /// What a token must reach to enter: the `m`-th best once there are `m`, else `floor`.
    fn threshold(&self) -> f64 {
        if self.out.len() == self.m {
            self.out[self.m - 1].1.max(self.floor)
        } else {
            self.floor
        }
    }

    fn consider(&mut self, token: u32, p: f64) {
        if p < self.floor {
            return;
        }
        let ahead = |&(t, q): &(u32, f64)| q > p || (q == p && t < token);
        let at = self.out.partition_point(ahead);
        if at < self.m {
            self.out.insert(at, (token, p));
            self.out.truncate(self.m);
        }
    }
}

/// How the task and context distributions are weighted at each drafting step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mixing {
    /// The paper's rule: the task side always gets `corpus_weight`.
    #[default]
    Fixed,
    /// The side whose matched context is longer gets the larger of `corpus_weight` and
    /// `1 - corpus_weight` (the task side on ties): a long match in the prompt (a copied name,
    /// a table, a column) outweighs a short generic match in the task corpus, and vice versa.
    LongerMatch,
}

impl Mixing {
    /// The rule named `name` (`"fixed"` or `"longer_match"`).
    pub fn from_name(name: &str) -> Result<Self, ConfigError> {
        match name {
            "fixed" => Ok(Self::Fixed),
            "longer_match" => Ok(Self::LongerMatch),
            other => Err(ConfigError::Mixing(other.to_owned())),
        }
    }

    /// The rule's name, as `from_name` reads it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Fixed => "fixed",
            Self::LongerMatch => "longer_match",
        }
    }
}

/// Drafts up to `k` tokens continuing the tokens of `ctx`.
///
/// Drafted tokens extend the history used to look up contexts but are not counted in `ctx`.
pub fn propose(
    store: &NgramStore,
    ctx: &ContextIndex,
    k: usize,
    corpus_weight: f64,
    min_prob: f64,
) -> Result<Draft, Error> {
    propose_with(store, None, ctx, k, corpus_weight, min_prob, Mixing::Fixed)
}

/// [`propose`] with learned responses (an [`crate::online::OnlineIndex`]) on the task side and a
/// choice of [`Mixing`] rule.
pub fn propose_with(
    store: &NgramStore,
    online: Option<&ContextIndex>,
    ctx: &ContextIndex,
    k: usize,
    corpus_weight: f64,
    min_prob: f64,
    mixing: Mixing,
) -> Result<Draft, Error> {
    propose_until(
        store,
        online,
        ctx,
        k,
        corpus_weight,
        min_prob,
        mixing,
        None,
        None,
        None,
        None,
    )
}

/// Where a chain may stop early: after the first token whose path value falls to `floor` or
/// below, the path value being the product of `rate(p)` over the draft's probabilities so far.
/// A batch cut that never keeps a position worth `floor` or less ([`crate::serving::cut_batch`])
/// loses nothing: the chain still holds the first position it cuts.
#[derive(Clone, Copy)]
pub struct PathFloor<'a> {
    pub floor: f64,
    pub rate: &'a (dyn Fn(f64) -> f64 + Sync),
}

/// [`propose_with`], stopping where `until` says the rest of the chain would be cut; `anchor`
/// is the store's match after `ctx`'s tokens when the caller keeps it
/// ([`NgramStore::match_after`]), saving the first step's store search. With `copy`, where the
/// request's copy pointer has a value at least as likely as the mixture's best token, the
/// value is drafted (its first token at the pointer's probability, the rest at 1) and the
/// chain goes on after it. With `near`, where the request's neighbours vote for a token at
/// least as likely as the mixture's best, it is drafted ([`crate::neighbours`]).
#[allow(clippy::too_many_arguments)]
pub fn propose_until(
    store: &NgramStore,
    online: Option<&ContextIndex>,
    ctx: &ContextIndex,
    k: usize,
    corpus_weight: f64,
    min_prob: f64,
    mixing: Mixing,
    until: Option<PathFloor<'_>>,
    anchor: Option<StoreMatch>,
    copy: Option<CopySource<'_>>,
    near: Option<NeighbourSource<'_>>,
) -> Result<Draft, Error> {
    check_k(k as i64)?;
    check_corpus_weight(corpus_weight)?;
    check_min_prob(min_prob)?;
    let order = store.n_max() - 1;
    // the neighbours match longer suffixes than the mixture reads
    let keep = order
        .max(2)
        .max(near.map_or(0, |_| crate::neighbours::MAX_DEPTH));
    let tail = &ctx.tokens()[ctx.len().saturating_sub(keep)..];
    let mut history: Vec<u32> = Vec::with_capacity(tail.len() + k);
    history.extend_from_slice(tail);
    let mut draft = Draft {
        tokens: Vec::with_capacity(k),
        probs: Vec::with_capacity(k),
    };
    let mut path = 1.0;
    let mut at = Cursor::anchored(anchor);
    // answer tokens before the draft: what the copy pointer's context is read from
    let answered = copy.map_or(0, |c| ctx.len().saturating_sub(c.anchors.len()));
    let mut push = |draft: &mut Draft, history: &mut Vec<u32>, token: u32, p: f64| {
        draft.tokens.push(token);
        draft.probs.push(p);
        history.push(token);
        until.is_some_and(|u| {
            path *= (u.rate)(p).clamp(0.0, 1.0);
            path <= u.floor
        })
    };
    'steps: while draft.tokens.len() < k {
        let suffix = &history[history.len().saturating_sub(order)..];
        let (weight, corp, local) =
            mixed_step(store, online, ctx, suffix, corpus_weight, mixing, &mut at);
        let mut found = best_mixed_above(weight, corp, local, min_prob);
        if let Some((token, p)) = near.and_then(|n| n.vote(&history)) {
            if p >= min_prob && p > 0.0 && found.is_none_or(|(_, q)| p >= q) {
                found = Some((token, p));
            }
        }
        if let Some(src) = copy {
            let room = k - draft.tokens.len();
            let answer = answered + draft.tokens.len();
            if let Some((value, share)) = src.value(&history, answer, room) {
                if share >= min_prob && found.is_none_or(|(_, p)| share >= p) {
                    for (i, &token) in value.iter().enumerate() {
                        let p = if i == 0 { share } else { 1.0 };
                        if push(&mut draft, &mut history, token, p) {
                            break 'steps;
                        }
                    }
                    // the history jumped: the next lookups are unbounded
                    at = Cursor::default();
                    continue;
                }
            }
        }
        match found {
            Some((token, p)) if p > 0.0 && p >= min_prob => {
                if push(&mut draft, &mut history, token, p) {
                    break;
                }
            }
            _ => break,
        }
    }
    Ok(draft)
}

/// A chain's path probabilities: `prod_{j<=i} probs[j]` for each position `i`, the chance that
/// position `i` is accepted if each drafted token is accepted with its own probability.
pub fn path_probs(probs: &[f64]) -> impl Iterator<Item = f64> + '_ {
    probs.iter().scan(1.0, |path, &p| {
        *path *= p;
        Some(*path)
    })
}

/// The relative cost of one verification forward pass, by the number of drafted tokens it checks.
///
/// `cost(d)` is the time to verify `d` drafted tokens (a forward pass over `d + 1` positions)
/// in any unit; only ratios matter. Past the end of the profile the last step's slope continues
/// (never decreasing). On a GPU the profile is nearly flat and long drafts cost nothing; on a CPU
/// each extra position costs real time, so a draft should only be as long as it is likely to be
/// accepted.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifyCost {
    costs: Vec<f64>,
}

impl VerifyCost {
    /// A profile from `costs[d]` for `d = 0, 1, ...`: at least one value, each finite and
    /// positive, at most `MAX_K + 1` values.
    pub fn new(costs: Vec<f64>) -> Result<Self, ConfigError> {
        if costs.is_empty() || costs.len() > MAX_K + 1 {
            return Err(ConfigError::VerifyCost(format!(
                "needs 1..={} values (the cost of verifying 0, 1, ... drafted tokens), got {}",
                MAX_K + 1,
                costs.len()
            )));
        }
        if let Some((d, c)) = costs
            .iter()
            .enumerate()
            .find(|(_, c)| !(c.is_finite() && **c > 0.0))
        {
            return Err(ConfigError::VerifyCost(format!(
                "cost of verifying {d} drafted tokens must be finite and positive, got {c}"
            )));
        }
        Ok(Self { costs })
    }

    /// The profile as given.
    pub fn costs(&self) -> &[f64] {
        &self.costs
    }

    /// The cost of verifying `d` drafted tokens.
    pub fn at(&self, d: usize) -> f64 {
        let n = self.costs.len();
        match self.costs.get(d) {
            Some(&c) => c,
            None => {
                let last = self.costs[n - 1];
                let slope = if n >= 2 {
                    (last - self.costs[n - 2]).max(0.0)
                } else {
                    0.0
                };
                last + slope * (d - (n - 1)) as f64
            }
        }
    }

    /// The draft length in `0..=probs.len()` with the most expected tokens per unit of cost.
    ///
    /// Treating `probs[i]` as the chance that draft token `i` is accepted given that all before
    /// it were, a draft of length `d` yields `1 + sum_{i<d} prod_{j<=i} probs[j]` tokens (the
    /// accepted prefix plus the target's own token) for `cost(d)`. The shortest best length wins
    /// ties.
    pub fn best_length(&self, probs: &[f64]) -> usize {
        let paths: Vec<f64> = path_probs(probs).collect();
        self.best_count(&paths)
    }

    /// The number of positions in `0..=paths.len()` with the most expected tokens per unit of
    /// cost, `paths[i]` being the chance that position `i` is accepted (a chain's running
    /// product, a tree's path probabilities in the order its nodes are kept): `n` positions
    /// yield `1 + sum_{i<n} paths[i]` tokens for `cost(n)`. The smallest best count wins ties.
    pub fn best_count(&self, paths: &[f64]) -> usize {
        let (mut best, mut best_len) = (1.0 / self.at(0), 0);
        let mut expected = 1.0;
        for (i, &path) in paths.iter().enumerate() {
            expected += path;
            let value = expected / self.at(i + 1);
            if value > best {
                best = value;
                best_len = i + 1;
            }
        }
        best_len
    }

    /// Cuts `draft` to [`best_length`](Self::best_length).
    pub fn truncate(&self, draft: &mut Draft) {
        let n = self.best_length(&draft.probs);
        draft.tokens.truncate(n);
        draft.probs.truncate(n);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::config::DrafterConfig;
    use crate::context::ContextFollowers;
    use crate::corpus::Corpus;

    /// A seeded xorshift generator: `next(n)` is a pseudo-random number below `n`.
    pub(crate) fn xorshift(mut state: u64) -> impl FnMut(u64) -> u64 {
        move |n| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % n
        }
    }

    /// A store keeping every n-gram (min_count 1) of `seqs`, for tests.
    pub(crate) fn store(seqs: &[Vec<u32>], n_max: usize) -> NgramStore {
        let corpus = Corpus::from_sequences(seqs, None).unwrap();
        let config = DrafterConfig {
            n_max,
            min_count: 1,
            ..DrafterConfig::default()
        };
        NgramStore::build(&corpus, &config).unwrap()
    }

    #[test]
    fn follows_the_corpus_chain() {
        let s = store(&[vec![1, 2, 3, 4, 5]], 3);
        let ctx = ContextIndex::new(3, &[1, 2]);
        let d = propose(&s, &ctx, 3, 1.0, 0.0).unwrap();
        assert_eq!(d.tokens, vec![3, 4, 5]);
        assert_eq!(d.probs, vec![1.0, 1.0, 1.0]);
        // the chain ends: 5 was never followed, so back off to the unigram (all 0.2)
        let d = propose(&s, &ctx, 5, 1.0, 0.0).unwrap();
        assert_eq!(d.tokens[3], 1);
        assert_eq!(d.probs[3], 0.2);
    }

    #[test]
    fn mixing_weights_both_sides() {
        let s = store(&[vec![1, 2, 3]], 2);
        // context says 1 -> 9, corpus says 1 -> 2
        let ctx = ContextIndex::new(2, &[1, 9, 1]);
        let d = propose(&s, &ctx, 1, 0.75, 0.0).unwrap();
        assert_eq!((d.tokens[0], d.probs[0]), (2, 0.75));
        let d = propose(&s, &ctx, 1, 0.25, 0.0).unwrap();
        assert_eq!((d.tokens[0], d.probs[0]), (9, 0.75));
        // equal weights: tie at 0.5, smallest token id wins
        let d = propose(&s, &ctx, 1, 0.5, 0.0).unwrap();
        assert_eq!((d.tokens[0], d.probs[0]), (2, 0.5));
    }

    #[test]
    fn stops_below_min_prob() {
        let s = store(&[vec![1, 2], vec![1, 3], vec![1, 3]], 2);
        let ctx = ContextIndex::new(2, &[1]);
        assert_eq!(
            propose(&s, &ctx, 4, 1.0, 0.7).unwrap().tokens,
            Vec::<u32>::new()
        );
        let d = propose(&s, &ctx, 1, 1.0, 0.6).unwrap();
        assert_eq!(d.tokens, vec![3]);
    }

    #[test]
    fn verify_cost_validates_and_extrapolates() {
        assert!(VerifyCost::new(vec![]).is_err());
        assert!(VerifyCost::new(vec![1.0, 0.0]).is_err());
        assert!(VerifyCost::new(vec![1.0, f64::NAN]).is_err());
        assert!(VerifyCost::new(vec![1.0; MAX_K + 2]).is_err());
        let c = VerifyCost::new(vec![1.0, 1.5, 1.75]).unwrap();
        assert_eq!(c.at(1), 1.5);
        assert_eq!(c.at(4), 2.25); // slope 0.25 continues
        let flat = VerifyCost::new(vec![2.0]).unwrap();
        assert_eq!(flat.at(100), 2.0);
        let falling = VerifyCost::new(vec![1.0, 0.9]).unwrap();
        assert_eq!(falling.at(5), 0.9); // never decreasing past the end
    }

    #[test]
    fn best_length_weighs_acceptance_against_cost() {
        // free verification: every token with a chance of acceptance is worth drafting
        let free = VerifyCost::new(vec![1.0]).unwrap();
        assert_eq!(free.best_length(&[0.9, 0.5, 0.1]), 3);
        assert_eq!(free.best_length(&[0.9, 0.0, 0.9]), 1);
        // each drafted token costs 0.2 of a forward pass
        let cpu = VerifyCost::new((0..10).map(|d| 1.0 + 0.2 * d as f64).collect()).unwrap();
        // 1 token: (1 + .9) / 1.2 = 1.58; 2: (1.9 + .45) / 1.4 = 1.68; 3: 2.395 / 1.6 = 1.50
        assert_eq!(cpu.best_length(&[0.9, 0.5, 0.1]), 2);
        assert_eq!(cpu.best_length(&[0.1, 1.0, 1.0]), 0);
        assert_eq!(cpu.best_length(&[]), 0);
        // certain drafts are always worth their cost while the cost grows sublinearly
        assert_eq!(cpu.best_length(&[1.0; 8]), 8);
        let mut d = Draft {
            tokens: vec![4, 5, 6],
            probs: vec![0.9, 0.5, 0.1],
        };
        cpu.truncate(&mut d);
        assert_eq!((d.tokens, d.probs), (vec![4, 5], vec![0.9, 0.5]));
    }

    #[test]
    fn learned_responses_join_the_task_corpus() {
        let s = store(&[vec![1, 2, 3, 4]], 3);
        let mut online = ContextIndex::new(3, &[]);
        online.start_sequence();
        online.extend(&[1, 2, 5, 6]);
        let ctx = ContextIndex::new(3, &[1, 2]);
        // (1, 2) is followed by 3 in the corpus and by 5 in the learned response: tie, 3 < 5
        let d = propose_with(&s, Some(&online), &ctx, 1, 1.0, 0.0, Mixing::Fixed).unwrap();
        assert_eq!((d.tokens[0], d.probs[0]), (3, 0.5));
        online.start_sequence();
        online.extend(&[1, 2, 5]);
        let d = propose_with(&s, Some(&online), &ctx, 3, 1.0, 0.0, Mixing::Fixed).unwrap();
        // (2, 5) -> 6 is only known online; nothing follows 6, so both back off to the summed
        // unigram, where 1 and 2 lead with 1 + 2 each
        assert_eq!(d.tokens, vec![5, 6, 1]);
        assert_eq!(d.probs[0], 2.0 / 3.0);
        // the longer match wins outright: (5, 6) is only known online, (3, 4) only in the corpus
        let ctx = ContextIndex::new(3, &[2, 3]);
        let d = propose_with(&s, Some(&online), &ctx, 1, 1.0, 0.0, Mixing::Fixed).unwrap();
        assert_eq!((d.tokens[0], d.probs[0]), (4, 1.0));
    }

    #[test]
    fn longer_match_mixing_follows_the_better_evidence() {
        let s = store(&[vec![1, 2], vec![1, 2], vec![4, 1, 2]], 3);
        // the prompt has seen (3, 1) -> 9: a longer match than the corpus's (1) -> 2
        let ctx = ContextIndex::new(3, &[3, 1, 9, 3, 1]);
        let fixed = propose_with(&s, None, &ctx, 1, 0.75, 0.0, Mixing::Fixed).unwrap();
        assert_eq!((fixed.tokens[0], fixed.probs[0]), (2, 0.75));
        let longer = propose_with(&s, None, &ctx, 1, 0.75, 0.0, Mixing::LongerMatch).unwrap();
        assert_eq!((longer.tokens[0], longer.probs[0]), (9, 0.75));
        // equal lengths: the task side keeps the larger weight
        let ctx = ContextIndex::new(3, &[4, 1, 9, 4, 1]);
        let tie = propose_with(&s, None, &ctx, 1, 0.75, 0.0, Mixing::LongerMatch).unwrap();
        assert_eq!(tie.tokens[0], 2);
    }

    #[test]
    fn mixing_names_round_trip() {
        for m in [Mixing::Fixed, Mixing::LongerMatch] {
            assert_eq!(Mixing::from_name(m.name()), Ok(m));
        }
        assert!(Mixing::from_name("longest").is_err());
    }

    #[test]
    fn summed_best_is_the_true_argmax() {
        let s = store(&[vec![1, 7], vec![1, 8], vec![1, 8], vec![1, 9]], 2);
        let mut online = ContextIndex::new(2, &[]);
        for r in [[1, 7], [1, 7], [1, 9]] {
            online.start_sequence();
            online.extend(&r);
        }
        let (_, f) = TaskFollowers::lookup(&s, Some(&online), &[1]).unwrap();
        // corpus {7: 1, 8: 2, 9: 1} + online {7: 2, 9: 1} = {7: 3, 8: 2, 9: 2}
        assert_eq!(f.best(), (7, 3));
        assert_eq!(f.total(), 7);
        let mut seen = Vec::new();
        f.for_each(|t, n| seen.push((t, n)));
        seen.sort_unstable();
        assert_eq!(seen, vec![(7, 3), (8, 2), (9, 2)]);
    }

    #[test]
    fn bounded_argmax_is_the_argmax_when_it_reaches_the_floor() {
        let mut next = xorshift(0x9E37_79B9_7F4A_7C15);
        for _ in 0..2000 {
            let vocab = 2 + next(12);
            let a: Vec<u32> = (0..1 + next(60)).map(|_| next(vocab) as u32).collect();
            let b: Vec<u32> = (0..1 + next(60)).map(|_| next(vocab) as u32).collect();
            let (ia, ib) = (ContextIndex::new(2, &a), ContextIndex::new(2, &b));
            let history = [next(vocab) as u32];
            let (fa, fb) = (ia.longest_match(&history), ib.longest_match(&history));
            let w = [0.0, 0.25, 0.5, 0.75, 1.0][next(5) as usize];
            let floor = [0.0, 0.1, 0.3, 0.5, 0.9][next(5) as usize];
            // brute force over the whole vocabulary: highest probability, smaller id on ties
            let total = |f: Option<ContextFollowers<'_>>| f.map_or(0, |f| f.total());
            let count = |f: Option<ContextFollowers<'_>>, t: u32| f.map_or(0, |f| f.count(t));
            let mut want: Option<(u32, f64)> = None;
            for t in 0..vocab as u32 {
                let (ca, cb) = (count(fa, t), count(fb, t));
                if ca == 0 && cb == 0 {
                    continue;
                }
                let p = mixed(w, (ca, total(fa)), (cb, total(fb)));
                if want.is_none_or(|(_, q)| p > q) {
                    want = Some((t, p));
                }
            }
            let want = want.filter(|&(_, p)| p >= floor);
            assert_eq!(
                best_mixed_above(w, fa, fb, floor),
                want,
                "{a:?} {b:?} {history:?}"
            );
        }
    }

    #[test]
    fn top_m_is_the_brute_force_ranking() {
        let mut next = xorshift(0x2545_F491_4F6C_DD1D);
        let mut got = Vec::new();
        for _ in 0..2000 {
            let vocab = 2 + next(12);
            let a: Vec<u32> = (0..1 + next(60)).map(|_| next(vocab) as u32).collect();
            let b: Vec<u32> = (0..1 + next(60)).map(|_| next(vocab) as u32).collect();
            let (ia, ib) = (ContextIndex::new(2, &a), ContextIndex::new(2, &b));
            let history = [next(vocab) as u32];
            let (fa, fb) = (ia.longest_match(&history), ib.longest_match(&history));
            let w = [0.0, 0.25, 0.5, 0.75, 1.0][next(5) as usize];
            let floor = [0.0, 0.1, 0.3, 0.5, 0.9][next(5) as usize];
            let m = 1 + next(5) as usize;
            let total = |f: Option<ContextFollowers<'_>>| f.map_or(0, |f| f.total());
            let count = |f: Option<ContextFollowers<'_>>, t: u32| f.map_or(0, |f| f.count(t));
            let mut want: Vec<(u32, f64)> = (0..vocab as u32)
                .filter(|&t| count(fa, t) > 0 || count(fb, t) > 0)
                .map(|t| {
                    (
                        t,
                        mixed(w, (count(fa, t), total(fa)), (count(fb, t), total(fb))),
                    )
                })
                .filter(|&(_, p)| p >= floor)
                .collect();
            want.sort_by(|x, y| y.1.total_cmp(&x.1).then(x.0.cmp(&y.0)));
            want.truncate(m);
            top_mixed(w, fa, fb, m, floor, &mut got);
            assert_eq!(got, want, "{a:?} {b:?} {history:?} m={m}");
        }
    }

    #[test]
    fn rejects_bad_arguments() {
        let s = store(&[vec![1, 2]], 2);
        let ctx = ContextIndex::new(2, &[1]);
        assert!(propose(&s, &ctx, 0, 0.5, 0.0).is_err());
        assert!(propose(&s, &ctx, 2, 1.5, 0.0).is_err());
        assert!(propose(&s, &ctx, 2, 0.5, -1.0).is_err());
    }
}
