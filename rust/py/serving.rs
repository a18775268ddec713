//! `BatchProposer`: drafts for a whole serving-engine batch in one call (see `crate::serving`).

use std::sync::{Arc, Mutex, MutexGuard};

use numpy::{
    PyArray2, PyArrayMethods, PyReadonlyArray1, PyReadonlyArray2, PyUntypedArray,
    PyUntypedArrayMethods,
};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use super::args;
use super::errors::{dtype_error, input_error};
use super::online::SharedOnline;
use crate::config::MAX_K;
use crate::serving::{RequestTable, Row, StepDrafts};
use crate::store::NgramStore;

/// Drafts for every row of a serving engine's batch in one call, keeping one incremental context
/// index per request (requests are recognised by their tokens: engines do not name them).
///
/// Create with `NgramDrafter.batch_proposer(...)`. `tasc_rs.vllm.TascProposer` drives one inside
/// vLLM. Safe to share between threads (calls take turns, waiting without the GIL).
///
/// Example:
///     >>> import numpy as np
///     >>> bp = drafter.batch_proposer(max_requests=64)
///     >>> buf = np.zeros((4, 128), dtype=np.int32); buf[0, :3] = [1, 2, 3]
///     >>> bp.propose([[3]], np.array([3], dtype=np.int32), buf, k=4)
///     [[4, ...]]
#[pyclass(frozen, module = "tasc_rs._core", name = "BatchProposer")]
pub struct PyBatchProposer {
    store: Arc<NgramStore>,
    online: SharedOnline,
    table: Mutex<RequestTable>,
}

impl PyBatchProposer {
    pub(crate) fn new(store: Arc<NgramStore>, online: SharedOnline, table: RequestTable) -> Self {
        Self {
            store,
            online,
            table: Mutex::new(table),
        }
    }
}

/// The table, also after a panic elsewhere (it is consistent after every call).
fn lock(table: &Mutex<RequestTable>) -> MutexGuard<'_, RequestTable> {
    table.lock().unwrap_or_else(|e| e.into_inner())
}

/// The rows' valid lengths: a 1-D int32 or int64 array, or a sequence of ints.
fn lengths(obj: &Bound<'_, PyAny>, rows: usize) -> PyResult<Vec<usize>> {
    let bad = |i: usize, v: i64| {
        input_error(format!(
            "num_tokens[{i}] = {v} is negative or does not fit the token buffer"
        ))
    };
    let values: Vec<i64> = if let Ok(a) = obj.cast::<PyUntypedArray>() {
        if a.ndim() != 1 {
            return Err(input_error(format!(
                "num_tokens must be a 1-D array, got {} dimensions",
                a.ndim()
            )));
        }
        if let Ok(a) = a.cast::<numpy::PyArray1<i32>>() {
            let ro: PyReadonlyArray1<'_, i32> = a.readonly();
            ro.as_array()
                .iter()
                .take(rows)
                .map(|&v| i64::from(v))
                .collect()
        } else if let Ok(a) = a.cast::<numpy::PyArray1<i64>>() {
            let ro: PyReadonlyArray1<'_, i64> = a.readonly();
            ro.as_array().iter().take(rows).copied().collect()
        } else {
            return Err(dtype_error(format!(
                "num_tokens must be an int32 or int64 array, got {}",
                a.dtype()
            )));
        }
    } else {
        let mut out = Vec::with_capacity(rows);
        for (i, item) in obj.try_iter()?.take(rows).enumerate() {
            let item = item?;
            if item.is_instance_of::<pyo3::types::PyBool>() {
                return Err(dtype_error(format!(
                    "num_tokens[{i}] must be an int, got bool"
                )));
            }
            out.push(
                item.extract::<i64>()
                    .map_err(|_| dtype_error(format!("num_tokens[{i}] must be an int")))?,
            );
        }
        out
    };
    if values.len() < rows {
        return Err(input_error(format!(
            "num_tokens has {} entries for a batch of {rows} rows",
            values.len()
        )));
    }
    values
        .iter()
        .enumerate()
        .map(|(i, &v)| usize::try_from(v).map_err(|_| bad(i, v)))
        .collect()
}

/// How many tokens each row gained this step: the length of each entry of `sampled`.
fn new_counts(sampled: &Bound<'_, PyAny>) -> PyResult<Vec<usize>> {
    if let Ok(list) = sampled.cast::<PyList>() {
        return list.iter().map(|item| item.len()).collect();
    }
    let mut out = Vec::new();
    for item in sampled.try_iter().map_err(|_| {
        dtype_error("sampled_token_ids must be a sequence of per-row token lists".into())
    })? {
        out.push(item?.len()?);
    }
    Ok(out)
}

fn drafts_to_lists<'py>(py: Python<'py>, drafts: &StepDrafts) -> PyResult<Bound<'py, PyList>> {
    let out = PyList::empty(py);
    for i in 0..drafts.len() {
        out.append(PyList::new(py, drafts.row(i))?)?;
    }
    Ok(out)
}

#[pymethods]
impl PyBatchProposer {
    /// Drafts for one engine step.
    ///
    /// - `sampled_token_ids`: one entry per batch row, the tokens the row gained this step
    ///   (an empty entry: the row wants no draft, e.g. a partial prefill).
    /// - `num_tokens`: each row's valid length in `token_ids` (1-D int32/int64 array or list;
    ///   entries past the batch are ignored).
    /// - `token_ids`: the engine's token buffer, a C-contiguous 2-D int32 array (rows x max_len),
    ///   read in place.
    /// - `k`: most tokens per draft; `max_len`: no draft runs a row past this many tokens
    ///   (default: the buffer's width).
    ///
    /// Returns one list of draft ids per row (`[]`: no draft). Finished responses are learned
    /// (when the drafter's `online_capacity` > 0). Runs without the GIL.
    #[pyo3(signature = (sampled_token_ids, num_tokens, token_ids, k, max_len=None))]
    fn propose<'py>(
        &self,
        py: Python<'py>,
        sampled_token_ids: &Bound<'py, PyAny>,
        num_tokens: &Bound<'py, PyAny>,
        token_ids: &Bound<'py, PyAny>,
        #[pyo3(from_py_with = args::k)] k: i64,
        #[pyo3(from_py_with = args::opt_max_len)] max_len: Option<i64>,
    ) -> PyResult<Bound<'py, PyList>> {
        let k = match usize::try_from(k) {
            Ok(k) if k <= MAX_K => k,
            _ => {
                return Err(crate::config::ConfigError::DraftLength(k).into());
            }
        };
        let counts = new_counts(sampled_token_ids)?;
        let rows = counts.len();
        let lens = lengths(num_tokens, rows)?;
        let buffer = token_ids.cast::<PyArray2<i32>>().map_err(|_| {
            let what = token_ids
                .cast::<PyUntypedArray>()
                .map(|a| format!("a {}-D {} array", a.ndim(), a.dtype()))
                .unwrap_or_else(|_| {
                    token_ids
                        .get_type()
                        .name()
                        .map(|n| n.to_string())
                        .unwrap_or_default()
                });
            dtype_error(format!(
                "token_ids must be a 2-D int32 array (rows x max_len), got {what}"
            ))
        })?;
        let ro: PyReadonlyArray2<'_, i32> = buffer.readonly();
        let [height, width] = [ro.shape()[0], ro.shape()[1]];
        // as_slice also takes a Fortran-ordered array, which it would read transposed
        let c_order = ro.is_c_contiguous();
        let flat =
            ro.as_slice().ok().filter(|_| c_order).ok_or_else(|| {
                input_error("token_ids must be C-contiguous (rows x max_len)".into())
            })?;
        if rows > height {
            return Err(input_error(format!(
                "a batch of {rows} rows does not fit token_ids with {height} rows"
            )));
        }
        let max_len = match max_len {
            None => width,
            Some(m) => usize::try_from(m)
                .map_err(|_| input_error(format!("max_len must be >= 0, got {m}")))?,
        };
        let mut views = Vec::with_capacity(rows);
        for (i, (&n, &new)) in lens.iter().zip(&counts).enumerate() {
            if n > width {
                return Err(input_error(format!(
                    "num_tokens[{i}] = {n} exceeds the token buffer's width {width}"
                )));
            }
            views.push(Row {
                tokens: &flat[i * width..i * width + n],
                new_tokens: new,
                max_draft: k.min(max_len.saturating_sub(n)),
            });
        }
        let (store, online, table) = (&self.store, &self.online, &self.table);
        let drafts = py.detach(|| -> Result<StepDrafts, crate::error::Error> {
            let mut table = lock(table);
            let ended = table.observe(&views);
            for response in &ended {
                online.learn(response);
            }
            let drafts = {
                let learned = online.read();
                table.propose(store, learned.index(), &views)?
            };
            table.record_drafts(&drafts);
            Ok(drafts)
        })?;
        drafts_to_lists(py, &drafts)
    }

    /// Forgets every request state (learned responses stay in the drafter).
    fn reset(&self, py: Python<'_>) {
        let table = &self.table;
        py.detach(|| lock(table).clear());
    }

    /// Counters: `steps`, `rows`, `same_row` / `moved` (how rows found their request),
    /// `created`, `stopped` / `stale` / `dropped` (how requests ended), `invalid_rows`,
    /// `drafts`, `drafted_tokens`, the current `live` requests and `indexed_tokens`, and the
    /// acceptance the rows showed: `verified_drafted_tokens` (drafted tokens whose outcome
    /// was seen), `accepted_tokens`, and `acceptance_by_prob` (the recent share of drafted
    /// tokens the target agreed with, in 10 bins of the drafter's probability, lowest first;
    /// the batch cut uses it as each token's chance of acceptance), the `step_overhead` the
    /// cut uses now (`None`: no cut) and `step_cost_samples` (engine steps timed for it).
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let table = &self.table;
        let (s, live, indexed, cal, overhead, samples) = py.detach(|| {
            let t = lock(table);
            (
                t.stats().clone(),
                t.live(),
                t.indexed_tokens(),
                t.calibration().clone(),
                t.step_overhead(),
                t.step_cost().samples,
            )
        });
        let d = PyDict::new(py);
        d.set_item("steps", s.steps)?;
        d.set_item("rows", s.rows)?;
        d.set_item("same_row", s.same_row)?;
        d.set_item("moved", s.moved)?;
        d.set_item("created", s.created)?;
        d.set_item("stopped", s.stopped)?;
        d.set_item("stale", s.stale)?;
        d.set_item("dropped", s.dropped)?;
        d.set_item("invalid_rows", s.invalid_rows)?;
        d.set_item("drafts", s.drafts)?;
        d.set_item("drafted_tokens", s.drafted_tokens)?;
        d.set_item("live", live)?;
        d.set_item("indexed_tokens", indexed)?;
        d.set_item("verified_drafted_tokens", cal.drafted_tokens)?;
        d.set_item("accepted_tokens", cal.accepted_tokens)?;
        d.set_item("acceptance_by_prob", cal.rates().to_vec())?;
        d.set_item("step_overhead", overhead)?;
        d.set_item("step_cost_samples", samples)?;
        Ok(d)
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        let table = &self.table;
        py.detach(|| {
            let t = lock(table);
            let c = t.config();
            format!(
                "BatchProposer(live={}, max_requests={}, stale_steps={}, corpus_weight={}, \
                 min_prob={}, mixing={:?}, threads={})",
                t.live(),
                c.max_requests,
                c.stale_steps,
                c.corpus_weight,
                c.min_prob,
                c.mixing.name(),
                c.threads.max(1)
            )
        })
    }
}
