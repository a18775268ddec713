//! How a request table drafts, forgets requests and spreads a batch over threads.

use std::sync::Arc;

use crate::aliases::TokenAliases;
use crate::copy::{CopyIndex, CopyStats};
use crate::draft::{Mixing, VerifyCost};
use crate::neighbours::{NeighbourIndex, NeighbourLearning};

/// How a [`RequestTable`](super::RequestTable) drafts and when it forgets requests.
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
    /// they raise the expected tokens of the step per unit of its cost (see [`cut_batch`](super::cut_batch)).
    pub step_overhead: Option<f64>,
    /// Whether the table measures the step overhead itself: the time between calls is one
    /// engine step, fitted against the positions that step verified ([`StepCostFit`](super::StepCostFit)); once
    /// the fit can tell, it replaces `step_overhead` (then only the prior).
    pub measure_step_cost: bool,
    /// Threads that draft a large batch's rows in parallel (at most [`MAX_THREADS`]; 0 or 1:
    /// the calling thread alone). Batches under [`PARALLEL_ROWS`] rows always draft on the
    /// calling thread: waking the pool would cost more than it saves.
    pub threads: usize,
    /// Token aliases every request's context index reads (see [`TokenAliases`]).
    pub aliases: Option<Arc<TokenAliases>>,
    /// The drafter's vocabulary size (`u32::MAX`: unbounded): a row holding an id at or above
    /// it is invalid and gets no draft, as a session refuses such ids.
    pub id_limit: u32,
    /// The store's copy pointer ([`crate::copy`]): requests index their prompt for it, and
    /// finished responses teach `copy_stats` what the served model did where it had values.
    pub copy: Option<Arc<CopyIndex>>,
    /// The drafter's copy-pointer outcomes, shared with its sessions.
    pub copy_stats: Option<Arc<CopyStats>>,
    /// The store's training pairs ([`crate::neighbours`]) and how many of them each request
    /// drafts from (its most similar, found when the request is first seen; 0: none).
    pub neighbours: Option<Arc<NeighbourIndex>>,
    pub neighbour_count: usize,
    /// What the drafter learns about neighbours (its served answers, how the model followed
    /// votes), shared with its sessions.
    pub neighbour_learning: Option<NeighbourLearning>,
}

/// Most drafting threads a table uses.
pub const MAX_THREADS: usize = 64;
/// Fewest rows that make a step draft on the pool (when the table has one). Measured on 2
/// cores (`BatchProposer.propose` alone, full chains): 64 rows drafted no faster on 2 threads
/// than on one, 128 rows 1.6x faster, 256 rows 1.4-2.2x.
pub const PARALLEL_ROWS: usize = 96;

/// The default drafting threads: the machine's parallelism, at most 8 (the pool works only
/// while the engine waits for the proposer, so it takes no cores from the model).
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(8))
}
