//! `NgramStore`: the immutable task n-gram model, shared by every session and thread.

use std::path::PathBuf;
use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

use super::convert::{draft_to_numpy, token_ids, DraftArrays};
use super::corpus::PyCorpusBuilder;
use super::session::PyDraftSession;
use crate::config::{check_corpus_weight, check_k, check_min_prob, ConfigError, DrafterConfig};
use crate::context::ContextIndex;
use crate::draft::propose;
use crate::store::NgramStore;

/// The task n-gram store (`p_corp`) with its drafting defaults. Immutable and thread-safe.
///
/// Built from a `CorpusBuilder`; most users go through `tasc_rs.NgramDrafter`, which wraps it.
///
/// Example:
///     >>> b = CorpusBuilder(); b.add([1, 2, 3, 4])
///     >>> store = NgramStore.build(b, min_count=1)
///     >>> store.propose([1, 2], 2)[0].tolist()
///     [3, 4]
#[pyclass(frozen, module = "tasc_rs._core", name = "NgramStore")]
pub struct PyNgramStore {
    inner: Arc<NgramStore>,
}

#[pymethods]
impl PyNgramStore {
    /// Counts the n-grams of every sequence in `corpus` (the interpreter is released meanwhile).
    #[staticmethod]
    #[pyo3(signature = (corpus, n_max=4, min_count=5, corpus_weight=0.75, min_prob=0.0))]
    fn build(
        py: Python<'_>,
        corpus: PyRef<'_, PyCorpusBuilder>,
        n_max: i64,
        min_count: i64,
        corpus_weight: f64,
        min_prob: f64,
    ) -> PyResult<Self> {
        let config = DrafterConfig {
            n_max: usize::try_from(n_max).map_err(|_| ConfigError::NMax(n_max))?,
            min_count: u32::try_from(min_count).map_err(|_| ConfigError::MinCount(min_count))?,
            corpus_weight,
            min_prob,
            vocab_size: corpus.vocab_size,
        };
        config.validate()?;
        let data = &corpus.corpus;
        let store = py.detach(|| NgramStore::build(data, &config))?;
        Ok(Self {
            inner: Arc::new(store),
        })
    }

    /// Starts a drafting session over `prompt` (sequence of ints or 1-D integer array).
    fn session(&self, py: Python<'_>, prompt: &Bound<'_, PyAny>) -> PyResult<PyDraftSession> {
        let prompt = token_ids(prompt, self.inner.config().id_limit())?;
        Ok(PyDraftSession::new(py, Arc::clone(&self.inner), prompt))
    }

    /// Drafts up to `k` tokens after `context` without keeping a session (indexes the whole
    /// context on every call: use `session` when drafting repeatedly for one request).
    #[pyo3(signature = (context, k, min_prob=None, corpus_weight=None))]
    fn propose<'py>(
        &self,
        py: Python<'py>,
        context: &Bound<'_, PyAny>,
        k: i64,
        min_prob: Option<f64>,
        corpus_weight: Option<f64>,
    ) -> PyResult<DraftArrays<'py>> {
        let store = &self.inner;
        let config = store.config();
        let context = token_ids(context, config.id_limit())?;
        let k = check_k(k)?;
        let weight = corpus_weight.unwrap_or(config.corpus_weight);
        let min_prob = min_prob.unwrap_or(config.min_prob);
        check_corpus_weight(weight)?;
        check_min_prob(min_prob)?;
        let draft = py.detach(|| {
            let index = ContextIndex::new(store.n_max(), &context);
            propose(store, &index, k, weight, min_prob)
        })?;
        Ok(draft_to_numpy(py, draft))
    }

    /// Writes the store atomically to `path` (versioned, checksummed).
    fn save(&self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
        let store = &self.inner;
        py.detach(|| store.save(&path))?;
        Ok(())
    }

    /// Reads a store written by `save`; a truncated, corrupted or foreign file raises
    /// `DrafterFileError`.
    #[staticmethod]
    fn load(py: Python<'_>, path: PathBuf) -> PyResult<Self> {
        let store = py.detach(|| NgramStore::load(&path))?;
        Ok(Self {
            inner: Arc::new(store),
        })
    }

    /// The file format as bytes (what `save` writes).
    fn to_bytes<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        let store = &self.inner;
        let bytes = py.detach(|| store.to_bytes());
        PyBytes::new(py, &bytes)
    }

    #[staticmethod]
    fn from_bytes(py: Python<'_>, data: &[u8]) -> PyResult<Self> {
        let store = py.detach(|| NgramStore::from_bytes(data))?;
        Ok(Self {
            inner: Arc::new(store),
        })
    }

    /// Sizes: `ngrams` and `contexts` per order, corpus tokens and sequences, bytes used.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = self.inner.stats();
        let d = PyDict::new(py);
        d.set_item("ngrams", s.ngrams)?;
        d.set_item("contexts", s.contexts)?;
        d.set_item("corpus_tokens", s.corpus_tokens)?;
        d.set_item("sequences", s.sequences)?;
        d.set_item("bytes", s.bytes)?;
        Ok(d)
    }

    #[getter]
    fn n_max(&self) -> usize {
        self.inner.config().n_max
    }

    #[getter]
    fn min_count(&self) -> u32 {
        self.inner.config().min_count
    }

    #[getter]
    fn corpus_weight(&self) -> f64 {
        self.inner.config().corpus_weight
    }

    #[getter]
    fn min_prob(&self) -> f64 {
        self.inner.config().min_prob
    }

    #[getter]
    fn vocab_size(&self) -> Option<u32> {
        self.inner.config().vocab_size
    }
}
