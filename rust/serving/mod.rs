//! Drafting for a serving engine's batch: one call per engine step drafts for every row.
//!
//! An engine such as vLLM hands the drafter its whole batch each step: a token buffer with one
//! row per running request, each row's valid length, and how many tokens each row gained this
//! step. It names no requests, and rows move between requests from step to step (finished
//! requests leave holes that the engine fills by moving other rows). The [`RequestTable`] keeps
//! one incremental [`ContextIndex`](crate::context::ContextIndex) per request and recognises each row's request by its tokens:
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
//!
//! Where verified positions cost (a CPU backend), each step's drafts are cut together
//! ([`cut_batch`]) with two measurements the table takes from the engine itself: how often the
//! target agrees with a drafted token of a given probability ([`Calibration`]) and what a step
//! costs per verified position ([`StepCostFit`]).

mod calibration;
mod config;
mod cut;
mod step_cost;
mod table;

pub use calibration::Calibration;
pub use config::{default_threads, ServingConfig, MAX_THREADS, PARALLEL_ROWS};
pub use cut::cut_batch;
pub use step_cost::StepCostFit;
pub use table::{RequestTable, Row, ServingStats, StepDrafts, CHECK_TOKENS, KEY_TOKENS};
