//! `CorpusBuilder`: accumulates a task corpus in Rust memory (4 bytes a token), one sequence or
//! one flat batch at a time, so corpora need never exist as Python lists.

use pyo3::prelude::*;

use super::args;
use super::convert::{extend_ids, token_ids};
use super::errors::input_error;
use crate::config::ConfigError;
use crate::corpus::Corpus;

/// Accumulates token sequences for `NgramStore.build`.
///
/// Example:
///     >>> b = CorpusBuilder(vocab_size=100)
///     >>> b.add([1, 2, 3]); b.add(np.array([4, 5]))
///     >>> b.num_sequences, b.num_tokens
///     (2, 5)
#[pyclass(module = "tasc_rs._core", name = "CorpusBuilder")]
pub struct PyCorpusBuilder {
    pub(crate) corpus: Corpus,
    pub(crate) limit: u32,
    pub(crate) vocab_size: Option<u32>,
    /// (request, answer) pairs added with `add_pair`, for the store's copy pointer.
    pub(crate) pairs: Vec<(Vec<u32>, Vec<u32>)>,
}

#[pymethods]
impl PyCorpusBuilder {
    #[new]
    #[pyo3(signature = (vocab_size=None))]
    fn new(#[pyo3(from_py_with = args::opt_vocab_size)] vocab_size: Option<i64>) -> PyResult<Self> {
        let vocab_size = match vocab_size {
            None => None,
            Some(v) => Some(
                u32::try_from(v)
                    .ok()
                    .filter(|&v| v > 0)
                    .ok_or(ConfigError::VocabSize(v))?,
            ),
        };
        Ok(Self {
            corpus: Corpus::new(),
            limit: vocab_size.unwrap_or(u32::MAX),
            vocab_size,
            pairs: Vec::new(),
        })
    }

    /// Appends one sequence of token ids (list of ints or 1-D integer array). On error nothing is
    /// appended.
    fn add(&mut self, ids: &Bound<'_, PyAny>) -> PyResult<()> {
        let tokens = token_ids(ids, "ids", self.limit)?;
        self.corpus.push_tokens(&tokens)?;
        Ok(())
    }

    /// Appends one answer (to the corpus, as `add` does) with the request it answered: a store
    /// built from pairs also learns where answers copy their request (the copy pointer).
    /// On error nothing is appended.
    fn add_pair(&mut self, request: &Bound<'_, PyAny>, answer: &Bound<'_, PyAny>) -> PyResult<()> {
        let request = token_ids(request, "request", self.limit)?;
        let answer = token_ids(answer, "answer", self.limit)?;
        self.corpus.push_tokens(&answer)?;
        self.pairs.push((request, answer));
        Ok(())
    }

    /// Pairs added with `add_pair`.
    #[getter]
    fn num_pairs(&self) -> usize {
        self.pairs.len()
    }

    /// Appends many sequences given as one flat id array and `offsets` (len = sequences + 1,
    /// starting at 0, non-decreasing, ending at `len(tokens)`). On error nothing is appended.
    fn add_flat(&mut self, tokens: &Bound<'_, PyAny>, offsets: &Bound<'_, PyAny>) -> PyResult<()> {
        let tokens = token_ids(tokens, "tokens", self.limit)?;
        let mut raw = Vec::new();
        extend_ids(offsets, "offsets", u32::MAX, &mut raw)
            .map_err(|_| input_error("offsets must be non-negative integers".into()))?;
        let offsets: Vec<usize> = raw.into_iter().map(|o| o as usize).collect();
        let batch = Corpus::from_flat(tokens, offsets, self.vocab_size)?;
        for seq in batch.sequences() {
            self.corpus.push_tokens(seq)?;
        }
        Ok(())
    }

    #[getter]
    fn num_sequences(&self) -> usize {
        self.corpus.num_sequences()
    }

    #[getter]
    fn num_tokens(&self) -> usize {
        self.corpus.num_tokens()
    }

    #[getter]
    fn vocab_size(&self) -> Option<u32> {
        self.vocab_size
    }

    fn __len__(&self) -> usize {
        self.corpus.num_sequences()
    }

    fn __repr__(&self) -> String {
        format!(
            "CorpusBuilder(sequences={}, tokens={})",
            self.corpus.num_sequences(),
            self.corpus.num_tokens()
        )
    }
}
