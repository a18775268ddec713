//! `enrich_vocabulary` and its result `Enrichment` (TASC-ft vocabulary enrichment).

use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often a long native loop runs Python's signal handlers.
const SIGNAL_CHECK: Duration = Duration::from_millis(50);

use numpy::{IntoPyArray, PyArray1};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use super::args;
use super::convert::token_ids;
use super::corpus::PyCorpusBuilder;
use super::errors::{config_error, dtype_error};
use crate::enrich::{apply_merges, enrich_interruptible, EnrichConfig, EnrichError, Enrichment};

/// Runs the enrichment loop (interpreter released) over the base-token sequences in `corpus`.
///
/// `token_bytes[i]` is what base token `i` decodes to. Each iteration adds the n-gram
/// (2 <= n <= n_max) with the largest `count * (n - 1)` whose prefix collision score is below
/// `alpha`; see the Rust `enrich` module docs for the exact definitions and tie-breaks. With
/// `strict`, running out of candidates before `budget` tokens raises `InvalidInputError`.
/// `byte_level` skips strings a byte-level BPE decoder would not give back as added tokens;
/// a new token may start with one of the `boundaries` bytes but never holds one later.
///
/// Example:
///     >>> b = CorpusBuilder(); b.add([0, 1, 2]); b.add([0, 1, 2])
///     >>> e = enrich_vocabulary(b, [b"a", b"b", b"c"], budget=1)
///     >>> e.strings(), e.tokens_after().tolist()
///     ([b'abc'], [2])
#[pyfunction]
#[allow(clippy::too_many_arguments)] // mirrors the Python signature: keyword arguments
#[pyo3(signature = (corpus, token_bytes, budget, n_max=4, alpha=0.05, min_count=2, strict=true, byte_level=false, boundaries=None))]
pub fn enrich_vocabulary(
    py: Python<'_>,
    corpus: PyRef<'_, PyCorpusBuilder>,
    token_bytes: &Bound<'_, PyAny>,
    #[pyo3(from_py_with = args::budget)] budget: i64,
    #[pyo3(from_py_with = args::n_max)] n_max: i64,
    #[pyo3(from_py_with = args::alpha)] alpha: f64,
    #[pyo3(from_py_with = args::min_count)] min_count: i64,
    #[pyo3(from_py_with = args::strict)] strict: bool,
    #[pyo3(from_py_with = args::byte_level)] byte_level: bool,
    boundaries: Option<Vec<u8>>,
) -> PyResult<PyEnrichment> {
    let config = EnrichConfig {
        budget: usize::try_from(budget).map_err(|_| py_err(EnrichError::Budget(budget)))?,
        n_max: usize::try_from(n_max).map_err(|_| py_err(EnrichError::NMax(n_max)))?,
        alpha,
        min_count: u32::try_from(min_count)
            .map_err(|_| py_err(EnrichError::MinCount(min_count)))?,
        strict,
        byte_level,
        boundaries: boundaries.unwrap_or_default(),
    };
    let vocab = vocab_bytes(token_bytes)?;
    let data = &corpus.corpus;
    // Runs detached; every 50 ms it attaches briefly to run Python's signal handlers, so Ctrl-C
    // (KeyboardInterrupt) stops it at the next candidate instead of when the loop ends.
    let mut pending: Option<PyErr> = None;
    let mut checked = Instant::now();
    let result = py.detach(|| {
        enrich_interruptible(data, &vocab, &config, &mut || {
            if checked.elapsed() < SIGNAL_CHECK {
                return false;
            }
            checked = Instant::now();
            match Python::attach(|py| py.check_signals()) {
                Ok(()) => false,
                Err(e) => {
                    pending = Some(e);
                    true
                }
            }
        })
    });
    if let Some(e) = pending {
        if let Err(EnrichError::Interrupted { added }) = &result {
            // Says where it stopped (Python >= 3.11 shows notes under the exception).
            let note = format!("enrichment stopped after adding {added} tokens");
            let _ = e.value(py).call_method1("add_note", (note,));
        }
        return Err(e);
    }
    let result = result.map_err(py_err)?;
    Ok(PyEnrichment {
        inner: Arc::new(result),
    })
}

fn py_err(e: EnrichError) -> PyErr {
    crate::Error::from(e).into()
}

fn vocab_bytes(token_bytes: &Bound<'_, PyAny>) -> PyResult<Vec<Vec<u8>>> {
    let not_bytes =
        |what: String| dtype_error(format!("token_bytes must be a sequence of bytes, {what}"));
    let iter = token_bytes.try_iter().map_err(|_| {
        not_bytes(format!(
            "got {}",
            token_bytes
                .get_type()
                .name()
                .map(|n| n.to_string())
                .unwrap_or_default()
        ))
    })?;
    let mut out = Vec::new();
    for (i, item) in iter.enumerate() {
        let item = item?;
        let bytes = item
            .cast::<PyBytes>()
            .map_err(|_| not_bytes(format!("item {i} is not bytes")))?;
        out.push(bytes.as_bytes().to_vec());
    }
    Ok(out)
}

/// `(parts, string, score, pcs, reason, step)` of a skipped candidate.
type SkippedTuple<'py> = (Vec<u32>, Bound<'py, PyBytes>, u64, f64, &'static str, usize);

/// The result of `enrich_vocabulary`: the new tokens in the order added (ids
/// `base_vocab_size`, `base_vocab_size + 1`, ...), the skipped candidates and the merged corpus.
///
/// Example:
///     >>> e.parts(), e.base_ids(), e.apply([0, 1, 2, 0]).tolist()
///     ([[0, 1, 2]], [[0, 1, 2]], [3, 0])
#[pyclass(frozen, module = "tasc_rs._core", name = "Enrichment")]
pub struct PyEnrichment {
    inner: Arc<Enrichment>,
}

impl PyEnrichment {
    fn column<'py, T: numpy::Element>(
        &self,
        py: Python<'py>,
        f: impl Fn(&crate::enrich::NewToken) -> T,
    ) -> Bound<'py, PyArray1<T>> {
        self.inner
            .tokens
            .iter()
            .map(f)
            .collect::<Vec<T>>()
            .into_pyarray(py)
    }
}

#[pymethods]
impl PyEnrichment {
    /// Size of the base vocabulary: the first new id.
    #[getter]
    fn base_vocab_size(&self) -> u32 {
        self.inner.base_vocab_size
    }

    /// Corpus length in base tokens.
    #[getter]
    fn initial_tokens(&self) -> u64 {
        self.inner.initial_tokens
    }

    /// True when candidates ran out before the budget (only with `strict=False`).
    #[getter]
    fn exhausted(&self) -> bool {
        self.inner.exhausted
    }

    fn __len__(&self) -> usize {
        self.inner.tokens.len()
    }

    /// New token ids (int64).
    fn ids<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<i64>> {
        self.column(py, |t| i64::from(t.id))
    }

    /// Each new token as the n-gram of current tokens it replaced (may hold earlier new ids).
    fn parts(&self) -> Vec<Vec<u32>> {
        self.inner.tokens.iter().map(|t| t.parts.clone()).collect()
    }

    /// Each new token spelled in base ids.
    fn base_ids(&self) -> Vec<Vec<u32>> {
        self.inner
            .tokens
            .iter()
            .map(|t| t.base_ids.clone())
            .collect()
    }

    /// Each new token's string as bytes (valid UTF-8).
    fn strings<'py>(&self, py: Python<'py>) -> Vec<Bound<'py, PyBytes>> {
        self.inner
            .tokens
            .iter()
            .map(|t| PyBytes::new(py, &t.bytes))
            .collect()
    }

    /// Occurrences (overlapping included) of each new token's n-gram when chosen (int64).
    fn counts<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<i64>> {
        self.column(py, |t| i64::from(t.count))
    }

    /// `count * (n - 1)` of each new token (int64).
    fn scores<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<i64>> {
        self.column(py, |t| t.score as i64)
    }

    /// Occurrences actually replaced by each new token (int64).
    fn merged<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<i64>> {
        self.column(py, |t| i64::from(t.merged))
    }

    /// Prefix collision score of each new token (float64).
    fn pcs<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<f64>> {
        self.column(py, |t| t.pcs)
    }

    /// Corpus length in tokens after each step: the compression curve (int64).
    fn tokens_after<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<i64>> {
        self.column(py, |t| t.tokens_after as i64)
    }

    /// Skipped candidates as `(parts, string, score, pcs, reason, step)`; `pcs` is NaN when the
    /// candidate was skipped before it was computed, `step` counts the tokens added before.
    fn skipped<'py>(&self, py: Python<'py>) -> Vec<SkippedTuple<'py>> {
        self.inner
            .skipped
            .iter()
            .map(|s| {
                (
                    s.parts.clone(),
                    PyBytes::new(py, &s.bytes),
                    s.score,
                    s.pcs,
                    s.reason.as_str(),
                    s.step,
                )
            })
            .collect()
    }

    /// Re-tokenizes a base-token sequence with the new tokens, exactly as the loop would have
    /// (the first `limit` tokens only, when given). Returns int64 ids.
    #[pyo3(signature = (ids, limit=None))]
    fn apply<'py>(
        &self,
        py: Python<'py>,
        ids: &Bound<'_, PyAny>,
        #[pyo3(from_py_with = args::opt_limit)] limit: Option<i64>,
    ) -> PyResult<Bound<'py, PyArray1<i64>>> {
        let ids = token_ids(ids, "ids", self.inner.base_vocab_size)?;
        let limit = match limit {
            None => usize::MAX,
            Some(l) => usize::try_from(l)
                .map_err(|_| config_error(format!("limit must be >= 0, got {l}")))?,
        };
        let tokens = &self.inner.tokens[..limit.min(self.inner.tokens.len())];
        let merged = py.detach(|| apply_merges(tokens, &ids));
        Ok(merged
            .into_iter()
            .map(i64::from)
            .collect::<Vec<_>>()
            .into_pyarray(py))
    }

    /// The corpus re-tokenized with every new token, as `(tokens, offsets)` int64 arrays:
    /// sequence `i` is `tokens[offsets[i]:offsets[i + 1]]`.
    fn corpus<'py>(
        &self,
        py: Python<'py>,
    ) -> (Bound<'py, PyArray1<i64>>, Bound<'py, PyArray1<i64>>) {
        let c = &self.inner.corpus;
        let tokens: Vec<i64> = c.tokens().iter().map(|&t| i64::from(t)).collect();
        let offsets: Vec<i64> = c.offsets().iter().map(|&o| o as i64).collect();
        (tokens.into_pyarray(py), offsets.into_pyarray(py))
    }

    fn __repr__(&self) -> String {
        let last = self
            .inner
            .tokens
            .last()
            .map_or(self.inner.initial_tokens, |t| t.tokens_after);
        format!(
            "Enrichment(added={}, skipped={}, tokens {} -> {}{})",
            self.inner.tokens.len(),
            self.inner.skipped.len(),
            self.inner.initial_tokens,
            last,
            if self.inner.exhausted {
                ", exhausted"
            } else {
                ""
            }
        )
    }
}
