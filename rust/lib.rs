//! tasc-rs core: the n-gram drafting engine of TASC-spec (Task-Adaptive Sequence Compression).
//!
//! The crate is pure Rust; the Python bindings live in `py` behind the `python` cargo feature.
//!
//! - [`corpus`]: task output corpora as one flat token buffer plus sequence offsets.
//! - [`followers`]: the next-token distribution interface both sides of the mixture implement.
//! - [`store`]: the immutable task n-gram store (a pruned, level-ordered trie), `p_corp`.
//! - [`context`]: the per-request context index, extended incrementally, `p_ctx`.
//! - [`aliases`]: token pairs spelling one word (with and without its space), read by the context.
//! - [`copy`]: the copy pointer, where answers copy their request (from (request, answer) pairs).
//! - [`neighbours`]: similar past requests, whose answers draft beside the task store.
//! - [`router`]: which task a request belongs to, for a drafter serving several.
//! - [`respell`]: the prompt's words re-encoded as an answer writes them (byte-level BPE).
//! - [`learned`]: what a drafter learned while serving, as a file that survives restarts.
//! - [`online`]: the bounded index of learned responses (online learning).
//! - [`draft`]: mixing `p_mixed = w * p_corp + (1 - w) * p_ctx` and greedy chain proposals.
//! - [`tree`]: token trees, several continuations drafted best first under a node budget.
//! - [`persist`]: the versioned, checksummed file format ([`mod@format`]: its version and errors).
//! - [`serving`]: drafting for a serving engine's batch (vLLM), requests followed by their tokens.
//! - [`enrich`]: TASC-ft vocabulary enrichment (score, PCS filter, incremental merges).
//!
//! ```
//! use tasc_rs::{Corpus, DrafterConfig, NgramStore, ContextIndex, propose};
//! let corpus = Corpus::from_sequences(&[vec![1, 2, 3, 4], vec![1, 2, 3, 5]], None).unwrap();
//! let config = DrafterConfig { min_count: 1, ..DrafterConfig::default() };
//! let store = NgramStore::build(&corpus, &config).unwrap();
//! let ctx = ContextIndex::new(config.n_max, &[9, 1, 2]);
//! let draft = propose(&store, &ctx, 4, config.corpus_weight, config.min_prob).unwrap();
//! assert_eq!(draft.tokens[0], 3);
//! ```

pub mod aliases;
mod build;
pub mod config;
pub mod context;
pub mod copy;
pub mod corpus;
pub mod draft;
pub mod enrich;
pub mod error;
pub mod followers;
pub mod format;
pub mod learned;
pub mod learner;
pub mod level;
pub mod neighbours;
pub mod online;
pub mod packed;
pub mod persist;
mod reader;
pub mod respell;
pub mod router;
pub mod serving;
pub mod slab;
pub mod store;
pub mod tree;

#[cfg(feature = "python")]
mod py;

pub use aliases::TokenAliases;
pub use config::{ConfigError, DrafterConfig};
pub use context::ContextIndex;
pub use corpus::{Corpus, InputError};
pub use draft::{propose, propose_with, Draft, Mixing, TaskFollowers, VerifyCost};
pub use error::Error;
pub use followers::Followers;
pub use format::FormatError;
pub use online::OnlineIndex;
pub use serving::{RequestTable, Row, ServingConfig, ServingStats};
pub use store::{NgramStore, StoreStats};
pub use tree::{propose_tree, DraftTree};
