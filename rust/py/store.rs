//! `NgramStore`: the immutable task n-gram model, shared by every session and thread.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, RwLock};

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

use super::args;
use super::convert::{draft_to_numpy, token_ids, DraftArrays};
use super::corpus::PyCorpusBuilder;
use super::errors::input_error;
use super::online::SharedOnline;
use super::serving::PyBatchProposer;
use super::session::PyDraftSession;
use crate::aliases::TokenAliases;
use crate::config::{check_corpus_weight, check_k, check_min_prob, ConfigError, DrafterConfig};
use crate::context::ContextIndex;
use crate::copy::{CopyIndex, CopyStats};
use crate::corpus::{to_token_ids, InputError};
use crate::draft::{propose_with, Mixing, VerifyCost};
use crate::learned::{Snapshot, MAGIC as LEARNED_MAGIC};
use crate::learner::Online;
use crate::neighbours::{NeighbourIndex, NeighbourLearning, MAX_NEIGHBOURS, NEIGHBOURS};
use crate::online::OnlineIndex;
use crate::respell::Respeller;
use crate::serving::{default_threads, RequestTable, ServingConfig, MAX_THREADS};
use crate::store::NgramStore;

/// `(a, b)` id pairs checked against `limit` (an error names the flat position of the id).
fn id_pairs(pairs: &[(i64, i64)], limit: u32) -> Result<Vec<(u32, u32)>, InputError> {
    let mut checked = Vec::with_capacity(2 * pairs.len());
    to_token_ids(
        pairs.iter().flat_map(|&(a, b)| [a, b]),
        limit,
        0,
        &mut checked,
    )?;
    Ok(checked.chunks_exact(2).map(|p| (p[0], p[1])).collect())
}

/// The task n-gram store (`p_corp`) with its drafting defaults. Immutable and thread-safe,
/// except for the optional online index of learned responses (off until `online_capacity` is
/// set), which is shared by all sessions behind a read-write lock.
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
    pub(crate) inner: Arc<NgramStore>,
    online: SharedOnline,
    /// The mixing rule new sessions start with: `Mixing::LongerMatch` when set.
    longer_match: AtomicBool,
    /// Token aliases new sessions and batch proposers read (`set_token_aliases`).
    aliases: RwLock<Option<Arc<TokenAliases>>>,
    /// What the served model did where the copy pointer had values (sessions and proposers).
    copy_stats: Arc<CopyStats>,
    /// Similar past requests new sessions draft from (0: none; see `neighbours`).
    neighbours: AtomicUsize,
    /// The served model's answers as pairs, and how it followed the neighbours' votes
    /// (sessions and proposers; bounded by `online_capacity` as the online index is).
    near_learning: NeighbourLearning,
    /// The drafter file's checksum, which a learned-state snapshot is tied to (computed once).
    fingerprint: OnceLock<u32>,
}

impl PyNgramStore {
    fn wrap(store: NgramStore) -> Self {
        let n_max = store.n_max();
        Self {
            inner: Arc::new(store),
            online: Online::shared(OnlineIndex::new(n_max, 0)),
            longer_match: AtomicBool::new(false),
            aliases: RwLock::new(None),
            copy_stats: Arc::new(CopyStats::default()),
            neighbours: AtomicUsize::new(NEIGHBOURS),
            near_learning: NeighbourLearning::new(0),
            fingerprint: OnceLock::new(),
        }
    }

    fn current_aliases(&self) -> Option<Arc<TokenAliases>> {
        self.aliases
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn fingerprint(&self) -> u32 {
        // the content's checksum, the same whatever file format holds the drafter (learned
        // state saved with a version 3 file still loads once the drafter is saved as version 4)
        *self.fingerprint.get_or_init(|| self.inner.content_crc())
    }

    /// What every learner holds once the queued responses are learned (each read under its
    /// own lock).
    fn snapshot(&self) -> Snapshot {
        self.online.wait_learned(None);
        let online = self.online.read();
        let pairs = self
            .near_learning
            .pairs
            .read()
            .unwrap_or_else(|e| e.into_inner());
        Snapshot::take(&online, &self.copy_stats, &self.near_learning.stats, &pairs)
    }

    /// Replaces what the learners hold with `snapshot`. The online index is rebuilt outside
    /// its lock (seconds at a million tokens) and swapped in: drafting goes on meanwhile.
    fn restore(&self, snapshot: &Snapshot) {
        self.online.discard_pending();
        let (n_max, capacity) = {
            let online = self.online.read();
            (online.n_max(), online.capacity())
        };
        let mut fresh = OnlineIndex::new(n_max, capacity);
        let mut pairs = self
            .near_learning
            .pairs
            .write()
            .unwrap_or_else(|e| e.into_inner());
        snapshot.restore(
            &mut fresh,
            &self.copy_stats,
            &self.near_learning.stats,
            &mut pairs,
        );
        drop(pairs);
        let replaced = {
            let mut online = self.online.write();
            let now = online.capacity(); // changed meanwhile: the latest setting holds
            let replaced = online.replace(fresh);
            if now != capacity {
                online.set_capacity(now);
            }
            replaced
        };
        drop(replaced); // freed after the lock is released
    }

    fn session_mixing(&self) -> Mixing {
        if self.longer_match.load(Ordering::Relaxed) {
            Mixing::LongerMatch
        } else {
            Mixing::Fixed
        }
    }
}

#[pymethods]
impl PyNgramStore {
    /// Counts the n-grams of every sequence in `corpus` (the interpreter is released meanwhile).
    #[staticmethod]
    #[pyo3(signature = (corpus, n_max=4, min_count=5, corpus_weight=0.75, min_prob=0.0))]
    fn build(
        py: Python<'_>,
        corpus: PyRef<'_, PyCorpusBuilder>,
        #[pyo3(from_py_with = args::n_max)] n_max: i64,
        #[pyo3(from_py_with = args::min_count)] min_count: i64,
        #[pyo3(from_py_with = args::corpus_weight)] corpus_weight: f64,
        #[pyo3(from_py_with = args::min_prob)] min_prob: f64,
    ) -> PyResult<Self> {
        let config = DrafterConfig {
            n_max: usize::try_from(n_max).map_err(|_| ConfigError::NMax(n_max))?,
            min_count: u32::try_from(min_count).map_err(|_| ConfigError::MinCount(min_count))?,
            corpus_weight,
            min_prob,
            vocab_size: corpus.vocab_size,
        };
        config.validate()?;
        let (data, pairs) = (&corpus.corpus, &corpus.pairs);
        let store = py.detach(|| {
            let store = NgramStore::build(data, &config)?;
            Ok::<_, crate::error::Error>(if pairs.is_empty() {
                store
            } else {
                let pairs = || pairs.iter().map(|(r, a)| (r.as_slice(), a.as_slice()));
                store
                    .with_copy(CopyIndex::build(pairs()))
                    .with_neighbours(NeighbourIndex::build(pairs()))
            })
        })?;
        Ok(Self::wrap(store))
    }

    /// Starts a drafting session over `prompt` (sequence of ints or 1-D integer array).
    fn session(&self, py: Python<'_>, prompt: &Bound<'_, PyAny>) -> PyResult<PyDraftSession> {
        let prompt = token_ids(prompt, "prompt", self.inner.config().id_limit())?;
        Ok(PyDraftSession::new(
            py,
            Arc::clone(&self.inner),
            Arc::clone(&self.online),
            self.session_mixing(),
            self.current_aliases(),
            (
                Arc::clone(&self.copy_stats),
                self.neighbours.load(Ordering::Relaxed),
                self.near_learning.clone(),
            ),
            prompt,
        ))
    }

    /// A proposer for a serving engine's batch (see `BatchProposer`), drafting with this
    /// store's defaults unless overridden. `max_requests` request states are kept (the least
    /// recently seen go first); a request unseen for `stale_steps` engine steps, or whose last
    /// token is in `stop_tokens`, is finished and learned (online learning). Batches of 96 rows
    /// or more are drafted by `threads` threads (default: the machine's cores, at most 8;
    /// 1: the calling thread only). With `measure_step_cost`, the time between calls refines
    /// `step_overhead` (see `BatchProposer.stats`).
    #[pyo3(signature = (*, max_requests=256, stale_steps=64, stop_tokens=None,
        corpus_weight=None, min_prob=None, mixing=None, verify_cost=None, step_overhead=None,
        measure_step_cost=false, threads=None))]
    #[allow(clippy::too_many_arguments)]
    fn batch_proposer(
        &self,
        #[pyo3(from_py_with = args::max_requests)] max_requests: i64,
        #[pyo3(from_py_with = args::stale_steps)] stale_steps: i64,
        stop_tokens: Option<&Bound<'_, PyAny>>,
        #[pyo3(from_py_with = args::opt_corpus_weight)] corpus_weight: Option<f64>,
        #[pyo3(from_py_with = args::opt_min_prob)] min_prob: Option<f64>,
        mixing: Option<&str>,
        verify_cost: Option<Vec<f64>>,
        #[pyo3(from_py_with = args::opt_step_overhead)] step_overhead: Option<f64>,
        #[pyo3(from_py_with = args::measure_step_cost)] measure_step_cost: bool,
        #[pyo3(from_py_with = args::opt_threads)] threads: Option<i64>,
    ) -> PyResult<PyBatchProposer> {
        if let Some(o) = step_overhead.filter(|o| !(o.is_finite() && *o >= 0.0)) {
            return Err(ConfigError::Setting(format!(
                "step_overhead must be a finite number >= 0, got {o}"
            ))
            .into());
        }
        let config = self.inner.config();
        let positive = |name: &str, v: i64| {
            usize::try_from(v).ok().filter(|&v| v > 0).ok_or_else(|| {
                ConfigError::Setting(format!("{name} must be a positive int, got {v}"))
            })
        };
        let max_requests = positive("max_requests", max_requests)?;
        let threads = match threads {
            None => default_threads(),
            Some(t) => positive("threads", t)
                .ok()
                .filter(|&t| t <= MAX_THREADS)
                .ok_or_else(|| {
                    ConfigError::Setting(format!(
                        "threads must be an int in 1..={MAX_THREADS}, got {t}"
                    ))
                })?,
        };
        let stale_steps = positive("stale_steps", stale_steps)? as u64;
        let stop_tokens = match stop_tokens {
            Some(ids) => token_ids(ids, "stop_tokens", config.id_limit())
                .map_err(|e| args::as_setting(ids.py(), e))?,
            None => Vec::new(),
        };
        let corpus_weight = corpus_weight.unwrap_or(config.corpus_weight);
        let min_prob = min_prob.unwrap_or(config.min_prob);
        check_corpus_weight(corpus_weight)?;
        check_min_prob(min_prob)?;
        let mixing = match mixing {
            Some(name) => Mixing::from_name(name)?,
            None => self.session_mixing(),
        };
        let verify_cost = verify_cost.map(VerifyCost::new).transpose()?;
        let table = RequestTable::new(
            self.inner.n_max(),
            ServingConfig {
                max_requests,
                stale_steps,
                stop_tokens,
                corpus_weight,
                min_prob,
                mixing,
                verify_cost,
                step_overhead,
                measure_step_cost,
                threads,
                aliases: self.current_aliases(),
                id_limit: self.inner.config().id_limit(),
                copy: self.inner.copy_shared(),
                copy_stats: Some(Arc::clone(&self.copy_stats)),
                neighbours: self.inner.neighbours.clone(),
                neighbour_count: self.neighbours.load(Ordering::Relaxed),
                neighbour_learning: Some(self.near_learning.clone()),
            },
        );
        Ok(PyBatchProposer::new(
            Arc::clone(&self.inner),
            Arc::clone(&self.online),
            table,
        ))
    }

    /// Drafts up to `k` tokens after `context` without keeping a session (indexes the whole
    /// context on every call: use `session` when drafting repeatedly for one request).
    #[pyo3(signature = (context, k, min_prob=None, corpus_weight=None))]
    fn propose<'py>(
        &self,
        py: Python<'py>,
        context: &Bound<'_, PyAny>,
        #[pyo3(from_py_with = args::k)] k: i64,
        #[pyo3(from_py_with = args::opt_min_prob)] min_prob: Option<f64>,
        #[pyo3(from_py_with = args::opt_corpus_weight)] corpus_weight: Option<f64>,
    ) -> PyResult<DraftArrays<'py>> {
        let store = &self.inner;
        let config = store.config();
        let context = token_ids(context, "context", config.id_limit())?;
        let k = check_k(k)?;
        let weight = corpus_weight.unwrap_or(config.corpus_weight);
        let min_prob = min_prob.unwrap_or(config.min_prob);
        check_corpus_weight(weight)?;
        check_min_prob(min_prob)?;
        let online = &self.online;
        let draft = py.detach(|| {
            let index = ContextIndex::new(store.n_max(), &context);
            let learned = online.read();
            propose_with(
                store,
                learned.index(),
                &index,
                k,
                weight,
                min_prob,
                Mixing::Fixed,
            )
        })?;
        Ok(draft_to_numpy(py, draft))
    }

    /// Writes the store atomically to `path` (versioned, checksummed).
    fn save(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = args::path)] path: PathBuf,
    ) -> PyResult<()> {
        let store = &self.inner;
        py.detach(|| store.save(&path))?;
        Ok(())
    }

    /// Reads a store written by `save`; a truncated, corrupted or foreign file raises
    /// `DrafterFileError`. With `mmap`, the file is memory-mapped and the trie read in place
    /// (one copy shared by every process that maps it; version 4 files only).
    #[staticmethod]
    #[pyo3(signature = (path, mmap = false))]
    fn load(
        py: Python<'_>,
        #[pyo3(from_py_with = args::path)] path: PathBuf,
        mmap: bool,
    ) -> PyResult<Self> {
        let store = py.detach(|| {
            if mmap {
                NgramStore::load_mapped(&path)
            } else {
                NgramStore::load(&path)
            }
        })?;
        Ok(Self::wrap(store))
    }

    /// The file format as bytes (what `save` writes).
    fn to_bytes<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        let store = &self.inner;
        let bytes = py.detach(|| store.to_bytes());
        PyBytes::new(py, &bytes)
    }

    #[staticmethod]
    fn from_bytes(
        py: Python<'_>,
        #[pyo3(from_py_with = args::data)] data: Vec<u8>,
    ) -> PyResult<Self> {
        let store = py.detach(|| NgramStore::from_bytes(&data))?;
        Ok(Self::wrap(store))
    }

    /// Sizes: `ngrams` and `contexts` per order, corpus tokens and sequences, bytes used (in
    /// the mapped file's pages when `mapped`), and the copy pointer's `copy_anchors` and the
    /// training `pairs` kept for neighbours (0 for a store built from answers only).
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = self.inner.stats();
        let d = PyDict::new(py);
        let anchors = self.inner.copy_index().map_or(0, |c| c.anchors().len());
        d.set_item("copy_anchors", anchors)?;
        let pairs = self.inner.neighbour_index().map_or(0, |n| n.len());
        d.set_item("pairs", pairs)?;
        d.set_item("ngrams", s.ngrams)?;
        d.set_item("contexts", s.contexts)?;
        d.set_item("corpus_tokens", s.corpus_tokens)?;
        d.set_item("sequences", s.sequences)?;
        d.set_item("bytes", s.bytes)?;
        d.set_item("mapped", self.inner.is_mapped())?;
        Ok(d)
    }

    /// Adds one finished response (the target's output ids) to the online index.
    ///
    /// A no-op while `online_capacity` is 0. Sessions do this themselves in `finish()`.
    fn learn(&self, py: Python<'_>, ids: &Bound<'_, PyAny>) -> PyResult<()> {
        let tokens = token_ids(ids, "ids", self.inner.config().id_limit())?;
        let online = &self.online;
        py.detach(|| online.learn(&tokens));
        Ok(())
    }

    /// What the drafter learned while serving (learned responses, copy-pointer and neighbour
    /// outcomes, served pairs) as bytes tied to this drafter (see `save_learned`).
    fn learned_state<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        let bytes = py.detach(|| self.snapshot().to_bytes(self.fingerprint()));
        PyBytes::new(py, &bytes)
    }

    /// Replaces what the drafter learned with `learned_state` output; state of another
    /// drafter, or damaged, raises `DrafterFileError` and changes nothing.
    fn restore_learned(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let data = args::data(data)?;
        let limit = self.inner.config().id_limit();
        py.detach(|| {
            let snap = Snapshot::from_bytes(&data, self.fingerprint(), limit)
                .map_err(crate::error::Error::from)?;
            self.restore(&snap);
            Ok::<_, crate::error::Error>(())
        })?;
        Ok(())
    }

    /// Writes what the drafter learned to `path` atomically (a temporary file renamed over
    /// it: a process killed meanwhile leaves the previous file whole).
    fn save_learned(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = args::path)] path: PathBuf,
    ) -> PyResult<()> {
        py.detach(|| {
            let bytes = self.snapshot().to_bytes(self.fingerprint());
            crate::persist::write_atomically(&path, &bytes)
        })?;
        Ok(())
    }

    /// Replaces what the drafter learned with the state `save_learned` wrote to `path`; a
    /// damaged file or one of another drafter raises `DrafterFileError` and changes nothing.
    fn load_learned(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = args::path)] path: PathBuf,
    ) -> PyResult<()> {
        let limit = self.inner.config().id_limit();
        py.detach(|| {
            let bytes = crate::persist::read_file(&path, LEARNED_MAGIC)?;
            let snap = Snapshot::from_bytes(&bytes, self.fingerprint(), limit)?;
            self.restore(&snap);
            Ok::<_, crate::error::Error>(())
        })?;
        Ok(())
    }

    /// Forgets every learned response (the capacity stays).
    fn forget(&self, py: Python<'_>) {
        let online = &self.online;
        py.detach(|| {
            online.discard_pending();
            online.write().clear();
            self.near_learning.clear();
        });
    }

    /// Waits until the responses queued for the background learner are learned (at most
    /// `timeout` seconds; `None`: no limit). Returns false if it timed out.
    ///
    /// Learning is immediate except when it evicts at a large `online_capacity`: then the
    /// rebuild runs on a background thread so that no `finish()` or engine step waits for it,
    /// and drafts use the new response once it is in.
    #[pyo3(signature = (timeout=None))]
    fn wait_learned(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        let timeout = match timeout {
            None => None,
            Some(t) if t.is_finite() && t >= 0.0 => {
                Some(std::time::Duration::from_secs_f64(t.min(1e9)))
            }
            Some(t) => {
                return Err(ConfigError::Setting(format!(
                    "timeout must be a finite number of seconds >= 0, got {t}"
                ))
                .into())
            }
        };
        let online = &self.online;
        Ok(py.detach(|| online.wait_learned(timeout)))
    }

    /// Most tokens of learned responses kept (the oldest responses go first); 0 turns online
    /// learning off. Not saved with the store.
    #[getter]
    fn online_capacity(&self, py: Python<'_>) -> usize {
        let online = &self.online;
        py.detach(|| online.read().capacity())
    }

    #[setter]
    fn set_online_capacity(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = args::online_capacity)] capacity: i64,
    ) -> PyResult<()> {
        let capacity = usize::try_from(capacity).map_err(|_| {
            ConfigError::Setting(format!("online_capacity must be >= 0, got {capacity}"))
        })?;
        let online = &self.online;
        py.detach(|| {
            online.write().set_capacity(capacity);
            self.near_learning.set_capacity(capacity);
        });
        Ok(())
    }

    /// `capacity`, `tokens` and `responses` currently indexed, `learned` responses and
    /// `learned_tokens` (ever added), the `pairs` of prompt and response kept for neighbours
    /// (by a drafter built from pairs), responses `pending` for the background learner (see
    /// `wait_learned`) and queued responses it `dropped` (a queue longer than the capacity).
    fn online_stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let online = &self.online;
        let (capacity, tokens, responses, learned, learned_tokens, pairs, queue) =
            py.detach(|| {
                let queue = online.pending();
                let o = online.read();
                let pairs = self.near_learning.pairs.read().map_or(0, |p| p.len());
                let (c, t, r) = (o.capacity(), o.tokens(), o.responses());
                (c, t, r, o.learned(), o.learned_tokens(), pairs, queue)
            });
        let d = PyDict::new(py);
        d.set_item("capacity", capacity)?;
        d.set_item("tokens", tokens)?;
        d.set_item("responses", responses)?;
        d.set_item("learned", learned)?;
        d.set_item("learned_tokens", learned_tokens)?;
        d.set_item("pairs", pairs)?;
        d.set_item("pending", queue.0)?;
        d.set_item("dropped", queue.1)?;
        Ok(d)
    }

    /// Pairs of token ids that spell the same word, such as ``mon`` and `` mon`` (with and
    /// without the leading space), read both ways by every session and batch proposer made
    /// afterwards: where the context has no match by a token, its partner's is read (see
    /// `tasc_rs.space_aliases`). `None` or no pairs: exact tokens only. Not saved with the
    /// store.
    #[pyo3(signature = (pairs))]
    fn set_token_aliases(&self, pairs: Option<Vec<(i64, i64)>>) -> PyResult<()> {
        let limit = self.inner.config().id_limit();
        let ids = id_pairs(pairs.as_deref().unwrap_or_default(), limit)?;
        let mut current = self.aliases.write().unwrap_or_else(|e| e.into_inner());
        let respeller = current.as_ref().and_then(|a| a.respeller().cloned());
        let aliases = TokenAliases::from_pairs(&ids, limit)?.with_respeller(respeller);
        *current = (!aliases.is_empty()).then(|| Arc::new(aliases));
        Ok(())
    }

    /// A byte-level BPE vocabulary (each token id's bytes, and the merges as id pairs in rank
    /// order) with which every session and batch proposer made afterwards also counts the
    /// prompt's words in their other spelling, with or without the leading space, as the
    /// tokenizer would split them (see `tasc_rs.bpe_respelling`). `None`: off. Not saved with
    /// the store.
    #[pyo3(signature = (token_bytes, merges=Vec::new()))]
    fn set_respelling(
        &self,
        py: Python<'_>,
        token_bytes: Option<Vec<Vec<u8>>>,
        merges: Vec<(i64, i64)>,
    ) -> PyResult<()> {
        let respeller = match token_bytes {
            None => None,
            Some(bytes) => {
                let limit = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
                let ids = id_pairs(&merges, limit)
                    .map_err(|e| input_error(format!("respelling merges: {e}")))?;
                Some(Arc::new(py.detach(|| Respeller::new(bytes, &ids))?))
            }
        };
        let mut current = self.aliases.write().unwrap_or_else(|e| e.into_inner());
        let aliases = current
            .as_deref()
            .cloned()
            .unwrap_or_default()
            .with_respeller(respeller);
        *current = (!aliases.is_empty()).then(|| Arc::new(aliases));
        Ok(())
    }

    /// The side sequences a session opened on `prompt` would count (each respelled word and
    /// the tokens after it in the prompt); `[]` without a respelling vocabulary. For
    /// inspection and tests: sessions compute them themselves.
    #[pyo3(signature = (prompt))]
    fn respelled(&self, prompt: &Bound<'_, PyAny>) -> PyResult<Vec<Vec<u32>>> {
        let tokens = token_ids(prompt, "prompt", self.inner.config().id_limit())?;
        let mut out = Vec::new();
        if let Some(respeller) = self.current_aliases().and_then(|a| a.respeller().cloned()) {
            respeller.side_sequences(&tokens, |seq| out.push(seq.to_vec()));
        }
        Ok(out)
    }

    /// Whether a respelling vocabulary is set (`set_respelling`).
    #[getter]
    fn has_respelling(&self) -> bool {
        self.current_aliases()
            .is_some_and(|a| a.respeller().is_some())
    }

    /// The alias pairs set by `set_token_aliases` (pairs of a token with itself left out).
    #[getter]
    fn token_aliases(&self) -> Vec<(u32, u32)> {
        self.current_aliases()
            .map_or_else(Vec::new, |a| a.pairs().to_vec())
    }

    /// The mixing rule new sessions start with (`"fixed"` or `"longer_match"`, see
    /// `DraftSession.mixing`); stateless `propose` uses `"fixed"`. Not saved with the store.
    #[getter(mixing)]
    fn mixing_name(&self) -> &'static str {
        self.session_mixing().name()
    }

    #[setter(mixing)]
    fn set_mixing_name(&self, value: &str) -> PyResult<()> {
        let mixing = Mixing::from_name(value).map_err(crate::error::Error::from)?;
        self.longer_match
            .store(mixing == Mixing::LongerMatch, Ordering::Relaxed);
        Ok(())
    }

    /// How many similar past requests (training pairs) a new session drafts from: their
    /// answers vote for the next token where they agree more than the mixture (default 8;
    /// 0: none). A store built from answers alone has none to draft from. Not saved with the
    /// store.
    #[getter]
    fn neighbours(&self) -> usize {
        self.neighbours.load(Ordering::Relaxed)
    }

    #[setter]
    fn set_neighbours(&self, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let n = args::int(value, "neighbours")?;
        let n = usize::try_from(n)
            .ok()
            .filter(|&n| n <= MAX_NEIGHBOURS)
            .ok_or_else(|| {
                ConfigError::Setting(format!(
                    "neighbours must be an int in 0..={MAX_NEIGHBOURS}, got {n}"
                ))
            })
            .map_err(crate::error::Error::from)?;
        self.neighbours.store(n, Ordering::Relaxed);
        Ok(())
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
