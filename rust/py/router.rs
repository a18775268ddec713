//! `TaskRouter`: which of several drafters' tasks a request belongs to.

use pyo3::prelude::*;

use super::convert::token_ids;
use super::store::PyNgramStore;
use crate::router::{TaskRouter, MIN_SCORE};

/// Routes requests among the tasks of several drafters (`tasc_rs.MultiTaskDrafter` holds
/// one): each store's training requests (a store built from pairs; one built from answers alone
/// adds none), and a request's task is the one its most similar past requests vote for.
///
/// Example:
///     >>> r = TaskRouter.from_stores([slurp._store, spider._store])  # doctest: +SKIP
///     >>> r.route(prompt_ids)  # doctest: +SKIP
///     (0, 0.93, 0.41)
#[pyclass(frozen, module = "tasc_rs._core", name = "TaskRouter")]
pub struct PyTaskRouter {
    inner: TaskRouter,
}

#[pymethods]
impl PyTaskRouter {
    /// A router over the training requests of each store, task `i` being `stores[i]`'s.
    #[staticmethod]
    fn from_stores(py: Python<'_>, stores: Vec<PyRef<'_, PyNgramStore>>) -> Self {
        let inner: Vec<_> = stores.iter().map(|s| s.inner.clone()).collect();
        let router = py.detach(|| {
            let own: Vec<_> = inner.iter().map(|s| s.neighbours.clone()).collect();
            TaskRouter::build(&own)
        });
        Self { inner: router }
    }

    /// `(task, share, best)`: the task index whose requests the prompt holds most of (`None`
    /// when its best similarity among that task's own requests is under `min_score`: like no
    /// task), that task's share of the votes, and that best similarity (0 to 1).
    fn route(&self, prompt: &Bound<'_, PyAny>) -> PyResult<(Option<usize>, f32, f32)> {
        let prompt = token_ids(prompt, "prompt", u32::MAX)?;
        let r = self.inner.route(&prompt);
        Ok((r.task, r.share, r.best))
    }

    /// Tasks routed among.
    #[getter]
    fn tasks(&self) -> usize {
        self.inner.tasks()
    }

    /// Similarity a request's best neighbour must reach for it to have a task.
    #[classattr]
    fn min_score() -> f32 {
        MIN_SCORE
    }

    /// Training requests held.
    fn __len__(&self) -> usize {
        self.inner.len()
    }

    fn __repr__(&self) -> String {
        format!(
            "TaskRouter(tasks={}, requests={})",
            self.inner.tasks(),
            self.inner.len()
        )
    }
}
