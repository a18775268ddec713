//! `DraftSession`: one request's context index plus a handle on the shared task store.

use std::sync::Arc;

use numpy::{IntoPyArray, PyArray1};
use pyo3::prelude::*;

use super::args;
use super::convert::{draft_to_numpy, token_ids, tree_to_numpy, DraftArrays, TreeArrays};
use super::errors::input_error;
use super::online::SharedOnline;
use crate::aliases::TokenAliases;
use crate::config::{check_corpus_weight, check_k, check_min_prob, check_width};
use crate::context::ContextIndex;
use crate::copy::{CopySource, CopyStats, PromptAnchors};
use crate::draft::{propose_until, Mixing, VerifyCost};
use crate::error::Error;
use crate::neighbours::{Nearest, NeighbourLearning, NeighbourSource};
use crate::store::NgramStore;
use crate::tree::propose_tree;

/// Inputs longer than this are indexed with the interpreter released.
const DETACH_TOKENS: usize = 512;

/// The per-request drafting state: the context index over the prompt and every accepted token.
///
/// Create with `NgramDrafter.session(prompt_ids)`; call `propose(k)` before each verification
/// step and `extend(accepted_ids)` after it. Not shared between threads: use one per request.
///
/// Example:
///     >>> s = drafter.session([1, 2, 3])
///     >>> ids, probs = s.propose(8)
///     >>> s.extend(ids[:2])
#[pyclass(module = "tasc_rs._core", name = "DraftSession")]
pub struct PyDraftSession {
    store: Arc<NgramStore>,
    online: SharedOnline,
    index: ContextIndex,
    /// Tokens of the prompt; what follows is the response `finish` learns.
    prompt_len: usize,
    finished: bool,
    corpus_weight: f64,
    min_prob: f64,
    verify_cost: Option<VerifyCost>,
    mixing: Mixing,
    /// The prompt's anchors, when the store has a copy pointer.
    copy: Option<PromptAnchors>,
    /// The drafter's copy-pointer outcomes (`finish` adds this response's).
    copy_stats: Arc<CopyStats>,
    /// The request's most similar training pairs, when the store has them.
    nearest: Option<Nearest>,
    /// What the drafter learns about neighbours (`finish` adds this request's).
    near_learning: NeighbourLearning,
}

impl PyDraftSession {
    pub(crate) fn new(
        py: Python<'_>,
        store: Arc<NgramStore>,
        online: SharedOnline,
        mixing: Mixing,
        aliases: Option<Arc<TokenAliases>>,
        // the copy pointer's outcomes, the neighbours drafted from, what they learn
        learned: (Arc<CopyStats>, usize, NeighbourLearning),
        prompt: Vec<u32>,
    ) -> Self {
        let n_max = store.n_max();
        let mut index = if prompt.len() > DETACH_TOKENS {
            py.detach(|| ContextIndex::new(n_max, &prompt))
        } else {
            ContextIndex::new(n_max, &prompt)
        };
        index.set_aliases(aliases);
        let copy = store
            .copy_index()
            .is_some()
            .then(|| PromptAnchors::new(&prompt));
        // detached: the search reads the learned pairs behind their lock, never waited for
        // with the GIL
        let nearest = store
            .neighbour_index()
            .filter(|_| learned.1 > 0)
            .map(|n| py.detach(|| learned.2.nearest(n, &prompt, learned.1)));
        let config = store.config();
        Self {
            copy,
            copy_stats: learned.0,
            nearest,
            near_learning: learned.2,
            corpus_weight: config.corpus_weight,
            min_prob: config.min_prob,
            store,
            online,
            prompt_len: prompt.len(),
            finished: false,
            index,
            verify_cost: None,
            mixing,
        }
    }
}

impl PyDraftSession {
    /// The request's copy pointer, when the store has one.
    fn copy_source(&self) -> Option<CopySource<'_>> {
        let index = self.store.copy_index()?;
        Some(CopySource {
            index,
            anchors: self.copy.as_ref()?,
            tokens: self.index.tokens(),
            stats: Some(&self.copy_stats),
        })
    }

    /// The request's neighbours, when the store has training pairs.
    fn neighbour_source(&self) -> Option<NeighbourSource<'_>> {
        Some(NeighbourSource {
            nearest: self.nearest.as_ref()?,
            stats: Some(&self.near_learning.stats),
        })
    }

    /// This call's `(corpus_weight, min_prob)`: the overrides given, else the session's.
    fn settings(&self, corpus_weight: Option<f64>, min_prob: Option<f64>) -> (f64, f64) {
        (
            corpus_weight.unwrap_or(self.corpus_weight),
            min_prob.unwrap_or(self.min_prob),
        )
    }
}

/// The error for a session that two threads use at once.
fn busy() -> PyErr {
    input_error(
        "this DraftSession is in use by another thread (extend, propose and finish ran at \
         once): use one session per request, or guard a shared one with a lock"
            .into(),
    )
}

#[pymethods]
impl PyDraftSession {
    /// Appends accepted token ids (list of ints or 1-D integer array) to the context.
    /// On error nothing is appended.
    fn extend(slf: &Bound<'_, Self>, py: Python<'_>, ids: &Bound<'_, PyAny>) -> PyResult<()> {
        let mut this = slf.try_borrow_mut().map_err(|_| busy())?;
        let tokens = token_ids(ids, "ids", this.store.config().id_limit())?;
        if tokens.len() > DETACH_TOKENS {
            let index = &mut this.index;
            py.detach(|| index.extend(&tokens));
        } else {
            this.index.extend(&tokens);
        }
        Ok(())
    }

    /// Drafts up to `k` tokens continuing the context.
    ///
    /// Returns `(ids, probs)`: int64 and float64 arrays of equal length (0..=k), `probs[i]` being
    /// the mixed probability of `ids[i]` given everything before it. `min_prob` and
    /// `corpus_weight` override the drafter's defaults for this call. With a `verify_cost`
    /// profile set, the draft is then cut to the length with the most expected tokens per unit
    /// of verification cost.
    #[pyo3(signature = (k, min_prob=None, corpus_weight=None))]
    fn propose<'py>(
        slf: &Bound<'py, Self>,
        py: Python<'py>,
        #[pyo3(from_py_with = args::k)] k: i64,
        #[pyo3(from_py_with = args::opt_min_prob)] min_prob: Option<f64>,
        #[pyo3(from_py_with = args::opt_corpus_weight)] corpus_weight: Option<f64>,
    ) -> PyResult<DraftArrays<'py>> {
        let this = slf.try_borrow().map_err(|_| busy())?;
        let k = check_k(k)?;
        let (store, online, index) = (&this.store, &this.online, &this.index);
        let (weight, min_prob) = this.settings(corpus_weight, min_prob);
        let (mixing, cost, copy) = (this.mixing, &this.verify_cost, this.copy_source());
        let near = this.neighbour_source();
        // Detached: waiting for the online index's lock must never hold the GIL.
        let draft = py.detach(|| {
            let learned = online.read();
            let mut draft = propose_until(
                store,
                learned.index(),
                index,
                k,
                weight,
                min_prob,
                mixing,
                None,
                None,
                copy,
                near,
            )?;
            if let Some(cost) = cost {
                cost.truncate(&mut draft);
            }
            Ok::<_, Error>(draft)
        })?;
        Ok(draft_to_numpy(py, draft))
    }

    /// Drafts a token tree of at most `max_nodes` nodes, each with at most `width` children.
    ///
    /// Returns `(ids, parents, probs)`: int64, int64 and float64 arrays of one entry per node,
    /// parents before children. `parents[i]` is the index of node `i`'s parent, or -1 for a
    /// node continuing the context directly; `probs[i]` is the mixed probability of `ids[i]`
    /// given the context and node `i`'s ancestors. Nodes are added best first by the product
    /// of `probs` along their path, each at least `min_prob`. With a `verify_cost` profile the
    /// tree is cut to the node count with the most expected tokens per unit of verification
    /// cost. `width=1` gives the chain `propose` drafts.
    #[pyo3(signature = (max_nodes, width=4, min_prob=None, corpus_weight=None))]
    fn propose_tree<'py>(
        slf: &Bound<'py, Self>,
        py: Python<'py>,
        #[pyo3(from_py_with = args::max_nodes)] max_nodes: i64,
        #[pyo3(from_py_with = args::width)] width: i64,
        #[pyo3(from_py_with = args::opt_min_prob)] min_prob: Option<f64>,
        #[pyo3(from_py_with = args::opt_corpus_weight)] corpus_weight: Option<f64>,
    ) -> PyResult<TreeArrays<'py>> {
        let this = slf.try_borrow().map_err(|_| busy())?;
        let max_nodes = check_k(max_nodes)?;
        let width = check_width(width)?;
        let (store, online, index) = (&this.store, &this.online, &this.index);
        let (weight, min_prob) = this.settings(corpus_weight, min_prob);
        let (mixing, cost, copy) = (this.mixing, this.verify_cost.as_ref(), this.copy_source());
        let near = this.neighbour_source();
        let tree = py.detach(|| {
            let learned = online.read();
            propose_tree(
                store,
                learned.index(),
                index,
                max_nodes,
                width,
                weight,
                min_prob,
                mixing,
                cost,
                copy,
                near,
            )
        })?;
        Ok(tree_to_numpy(py, tree))
    }

    /// Session defaults for `min_prob` and `corpus_weight` (validated, kept on error).
    #[setter]
    fn set_min_prob(&mut self, #[pyo3(from_py_with = args::min_prob)] value: f64) -> PyResult<()> {
        check_min_prob(value)?;
        self.min_prob = value;
        Ok(())
    }

    #[getter]
    fn min_prob(&self) -> f64 {
        self.min_prob
    }

    #[setter]
    fn set_corpus_weight(
        &mut self,
        #[pyo3(from_py_with = args::corpus_weight)] value: f64,
    ) -> PyResult<()> {
        check_corpus_weight(value)?;
        self.corpus_weight = value;
        Ok(())
    }

    #[getter]
    fn corpus_weight(&self) -> f64 {
        self.corpus_weight
    }

    /// How task and context are weighted: `"fixed"` (default, the paper: the task side always
    /// gets `corpus_weight`) or `"longer_match"` (at each step the side whose matched context is
    /// longer gets the larger of `corpus_weight` and `1 - corpus_weight`, the task side on ties).
    #[setter]
    fn set_mixing(&mut self, value: &str) -> PyResult<()> {
        self.mixing = Mixing::from_name(value).map_err(Error::from)?;
        Ok(())
    }

    #[getter]
    fn mixing(&self) -> &'static str {
        self.mixing.name()
    }

    /// The relative cost of verifying `d = 0, 1, ...` drafted tokens (one forward pass over
    /// `d + 1` positions), or `None` (the default) to keep every drafted token.
    ///
    /// When set, each draft is cut to the length `d` that maximises
    /// `(1 + sum_{i<d} prod_{j<=i} probs[j]) / cost[d]`: the expected tokens of one verification
    /// step per unit of its cost. `tasc_rs.hf.calibrate` measures this profile for a model.
    #[setter]
    fn set_verify_cost(&mut self, value: Option<Vec<f64>>) -> PyResult<()> {
        self.verify_cost = match value {
            None => None,
            Some(costs) => Some(VerifyCost::new(costs).map_err(Error::from)?),
        };
        Ok(())
    }

    #[getter]
    fn verify_cost(&self) -> Option<Vec<f64>> {
        self.verify_cost.as_ref().map(|c| c.costs().to_vec())
    }

    /// Ends the request: the tokens added by `extend` (the response) join the drafter's online
    /// index, so later requests draft from them (when the drafter's `online_capacity` > 0).
    ///
    /// Call it once the response is complete, after extending the session with its last tokens.
    /// Returns the number of tokens learned; later calls learn nothing and return 0.
    fn finish(slf: &Bound<'_, Self>, py: Python<'_>) -> PyResult<usize> {
        let mut this = slf.try_borrow_mut().map_err(|_| busy())?;
        if this.finished {
            return Ok(0);
        }
        this.finished = true;
        let this = &*this;
        let response = &this.index.tokens()[this.prompt_len..];
        Ok(py.detach(|| {
            if let (Some(index), Some(anchors)) = (this.store.copy_index(), &this.copy) {
                let tokens = this.index.tokens();
                this.copy_stats
                    .learn(index, anchors, tokens, this.prompt_len);
            }
            if let (Some(index), Some(nearest)) = (this.store.neighbour_index(), &this.nearest) {
                this.near_learning
                    .finish(index, nearest, this.index.tokens(), this.prompt_len);
            }
            this.online.learn(response)
        }))
    }

    /// The context so far (prompt and accepted tokens) as an int64 array (a copy).
    fn tokens<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<i64>> {
        let ids: Vec<i64> = self.index.tokens().iter().map(|&t| i64::from(t)).collect();
        ids.into_pyarray(py)
    }

    fn __len__(&self) -> usize {
        self.index.len()
    }

    fn __repr__(&self) -> String {
        format!(
            "DraftSession(context_tokens={}, corpus_weight={}, min_prob={})",
            self.index.len(),
            self.corpus_weight,
            self.min_prob
        )
    }
}
