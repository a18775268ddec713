//! Python bindings (`tasc_rs._core`). Only conversion and error mapping live here: every method
//! converts its inputs while attached, runs the core work detached where it can take long, and
//! maps core errors to the `tasc_rs.errors` hierarchy.

mod args;
mod convert;
mod corpus;
mod enrich;
mod errors;
mod online;
mod router;
mod serving;
mod session;
mod store;

use pyo3::prelude::*;

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("FORMAT_VERSION", crate::persist::FORMAT_VERSION)?;
    m.add("MAX_N", crate::config::MAX_N)?;
    m.add("MAX_K", crate::config::MAX_K)?;
    m.add("MAX_WIDTH", crate::config::MAX_WIDTH)?;
    m.add_class::<corpus::PyCorpusBuilder>()?;
    m.add_class::<store::PyNgramStore>()?;
    m.add_class::<session::PyDraftSession>()?;
    m.add_class::<serving::PyBatchProposer>()?;
    m.add_class::<router::PyTaskRouter>()?;
    m.add_function(wrap_pyfunction!(enrich::enrich_vocabulary, m)?)?;
    m.add_class::<enrich::PyEnrichment>()?;
    Ok(())
}
