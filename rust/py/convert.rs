//! Token ids in from Python (1-D integer numpy arrays of any width, or sequences of ints) and
//! numpy arrays out, without copies where numpy allows it.

use numpy::{IntoPyArray, PyArray1, PyArrayMethods, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::prelude::*;

use super::errors::{dtype_error, input_error};
use crate::corpus::to_token_ids;
use crate::draft::Draft;

/// Appends the ids in `obj` to `out`, checking each against the exclusive bound `limit`.
pub fn extend_ids(obj: &Bound<'_, PyAny>, limit: u32, out: &mut Vec<u32>) -> PyResult<()> {
    let base = out.len();
    let result = if let Ok(array) = obj.cast::<PyUntypedArray>() {
        extend_from_array(array, limit, out)
    } else {
        extend_from_sequence(obj, limit, out)
    };
    if result.is_err() {
        out.truncate(base);
    }
    result
}

/// Converts `obj` to a fresh vector of token ids.
pub fn token_ids(obj: &Bound<'_, PyAny>, limit: u32) -> PyResult<Vec<u32>> {
    let mut out = Vec::new();
    extend_ids(obj, limit, &mut out)?;
    Ok(out)
}

macro_rules! try_dtypes {
    ($array:expr, $limit:expr, $out:expr, $($t:ty),*) => {
        $(
            if let Ok(a) = $array.cast::<PyArray1<$t>>() {
                let ro = a.readonly();
                let res = match ro.as_slice() {
                    Ok(s) => to_token_ids(s.iter().map(|&v| v as i64), $limit, 0, $out),
                    Err(_) => to_token_ids(ro.as_array().iter().map(|&v| v as i64), $limit, 0, $out),
                };
                return res.map_err(PyErr::from);
            }
        )*
    };
}

fn extend_from_array(
    array: &Bound<'_, PyUntypedArray>,
    limit: u32,
    out: &mut Vec<u32>,
) -> PyResult<()> {
    if array.ndim() != 1 {
        return Err(input_error(format!(
            "token ids must be a 1-D array, got {} dimensions",
            array.ndim()
        )));
    }
    try_dtypes!(array, limit, out, i64, i32, u32, u16, i16, u8, i8);
    if let Ok(a) = array.cast::<PyArray1<u64>>() {
        // u64 beyond i64::MAX would wrap negative: saturate so it reports as out of range.
        let ro = a.readonly();
        let values = ro
            .as_array()
            .iter()
            .map(|&v| i64::try_from(v).unwrap_or(i64::MAX))
            .collect::<Vec<_>>();
        return to_token_ids(values, limit, 0, out).map_err(PyErr::from);
    }
    Err(dtype_error(format!(
        "token ids must have an integer dtype, got {}",
        array.dtype()
    )))
}

fn extend_from_sequence(obj: &Bound<'_, PyAny>, limit: u32, out: &mut Vec<u32>) -> PyResult<()> {
    if obj.is_instance_of::<pyo3::types::PyString>() || obj.is_instance_of::<pyo3::types::PyBytes>()
    {
        return Err(dtype_error(format!(
            "token ids must be a sequence of ints or an integer array, got {}",
            obj.get_type().name()?
        )));
    }
    let iter = obj.try_iter().map_err(|_| {
        dtype_error(format!(
            "token ids must be a sequence of ints or an integer array, got {}",
            obj.get_type()
                .name()
                .map(|n| n.to_string())
                .unwrap_or_default()
        ))
    })?;
    for (position, item) in iter.enumerate() {
        let item = item?;
        if item.is_instance_of::<pyo3::types::PyBool>() || !is_integer(&item) {
            return Err(dtype_error(format!(
                "token id at position {position} must be an int, got {}",
                item.get_type().name()?
            )));
        }
        // Python ints beyond i64 are out of range whatever the vocabulary.
        let id = item
            .extract::<i64>()
            .unwrap_or(if item.lt(0)? { i64::MIN } else { i64::MAX });
        to_token_ids([id], limit, position, out)?;
    }
    Ok(())
}

/// Python int or numpy integer scalar (anything with `__index__`, except floats).
fn is_integer(item: &Bound<'_, PyAny>) -> bool {
    item.is_instance_of::<pyo3::types::PyInt>()
        || (!item.is_instance_of::<pyo3::types::PyFloat>()
            && item.hasattr("__index__").unwrap_or(false))
}

/// What `propose` returns: draft ids (int64) and their mixed probabilities (float64).
pub type DraftArrays<'py> = (Bound<'py, PyArray1<i64>>, Bound<'py, PyArray1<f64>>);

/// `(ids as int64, probs as float64)`, both moved into numpy without copying.
pub fn draft_to_numpy<'py>(py: Python<'py>, draft: Draft) -> DraftArrays<'py> {
    let ids: Vec<i64> = draft.tokens.iter().map(|&t| i64::from(t)).collect();
    (ids.into_pyarray(py), draft.probs.into_pyarray(py))
}
