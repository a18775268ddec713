//! Token ids in from Python (1-D integer numpy arrays of any width and byte order, tensors and
//! other array-likes, or sequences of ints) and numpy arrays out, without copies where numpy
//! allows it. Every error names the argument the ids came from and, for a bad id, its exact
//! value and position (no id is ever converted or saturated before it is reported).

use numpy::{
    IntoPyArray, PyArray1, PyArrayDescrMethods, PyArrayMethods, PyUntypedArray,
    PyUntypedArrayMethods,
};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyInt, PyList, PyString, PyTuple};

use super::errors::{dtype_error, input_error};
use crate::corpus::{to_token_ids, InputError};
use crate::draft::Draft;
use crate::tree::DraftTree;

/// Appends the ids in `obj` (the argument called `name`) to `out`, checking each against the
/// exclusive bound `limit`. On error `out` is left as it was.
pub fn extend_ids(
    obj: &Bound<'_, PyAny>,
    name: &str,
    limit: u32,
    out: &mut Vec<u32>,
) -> PyResult<()> {
    let base = out.len();
    let result = if let Ok(array) = obj.cast::<PyUntypedArray>() {
        extend_from_array(array, name, limit, out)
    } else if is_array_like(obj) {
        extend_from_array_like(obj, name, limit, out)
    } else {
        extend_from_sequence(obj, name, limit, out)
    };
    if result.is_err() {
        out.truncate(base);
    }
    result
}

/// Converts `obj` (the argument called `name`) to a fresh vector of token ids.
pub fn token_ids(obj: &Bound<'_, PyAny>, name: &str, limit: u32) -> PyResult<Vec<u32>> {
    let mut out = Vec::new();
    extend_ids(obj, name, limit, &mut out)?;
    Ok(out)
}

/// `name: <message>` as the right `tasc_rs` error.
fn id_error(name: &str, e: InputError) -> PyErr {
    input_error(format!("{name}: {e}"))
}

/// The name of `obj`'s type, for error messages.
pub fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "an unknown type".into())
}

macro_rules! try_dtypes {
    ($array:expr, $name:expr, $limit:expr, $out:expr, $($t:ty),*) => {
        $(
            if let Ok(a) = $array.cast::<PyArray1<$t>>() {
                let ro = a.readonly();
                let res = match ro.as_slice() {
                    Ok(s) => to_token_ids(s.iter().copied(), $limit, 0, $out),
                    Err(_) => to_token_ids(ro.as_array().iter().copied(), $limit, 0, $out),
                };
                return res.map_err(|e| id_error($name, e));
            }
        )*
    };
}

fn extend_from_array(
    array: &Bound<'_, PyUntypedArray>,
    name: &str,
    limit: u32,
    out: &mut Vec<u32>,
) -> PyResult<()> {
    if array.ndim() != 1 {
        return Err(input_error(format!(
            "{name} must be a 1-D array of token ids, got {} dimensions (shape {:?}); \
             pass one sequence at a time",
            array.ndim(),
            array.shape()
        )));
    }
    let dtype = array.dtype();
    if !dtype.is_native_byteorder().unwrap_or(true) && matches!(dtype.kind(), b'i' | b'u') {
        // A byte-swapped integer array (e.g. '>i4' on a little-endian machine): one native copy.
        let native =
            array.call_method1("astype", (dtype.getattr("newbyteorder")?.call1(("=",))?,))?;
        let native = native.cast::<PyUntypedArray>()?;
        return extend_from_array(native, name, limit, out);
    }
    try_dtypes!(array, name, limit, out, i64, i32, u64, u32, u16, i16, u8, i8);
    Err(dtype_error(format!(
        "{name} must hold integer token ids, got an array of dtype {dtype}"
    )))
}

/// Tensors (torch, jax, ...) and other objects that convert to numpy: anything that is not a
/// plain Python container but defines `__array__` or `__dlpack__`.
fn is_array_like(obj: &Bound<'_, PyAny>) -> bool {
    !(obj.is_instance_of::<PyList>()
        || obj.is_instance_of::<PyTuple>()
        || obj.is_instance_of::<PyString>()
        || obj.is_instance_of::<PyBytes>()
        || obj.is_instance_of::<PyDict>())
        && (obj.hasattr("__array__").unwrap_or(false) || obj.hasattr("__dlpack__").unwrap_or(false))
}

fn extend_from_array_like(
    obj: &Bound<'_, PyAny>,
    name: &str,
    limit: u32,
    out: &mut Vec<u32>,
) -> PyResult<()> {
    let py = obj.py();
    // A tensor on an accelerator comes to host memory first (`.cpu()`, duck-typed).
    let host = match obj.getattr("cpu") {
        Ok(cpu) if cpu.is_callable() => cpu.call0().unwrap_or_else(|_| obj.clone()),
        _ => obj.clone(),
    };
    let array = py
        .import("numpy")?
        .call_method1("asarray", (&host,))
        .map_err(|e| {
            dtype_error(format!(
                "{name} must be token ids, got a {} that numpy cannot read ({e})",
                type_name(obj)
            ))
        })?;
    match array.cast::<PyUntypedArray>() {
        Ok(array) => extend_from_array(array, name, limit, out),
        Err(_) => Err(dtype_error(format!(
            "{name} must be token ids, got a {}",
            type_name(obj)
        ))),
    }
}

fn extend_from_sequence(
    obj: &Bound<'_, PyAny>,
    name: &str,
    limit: u32,
    out: &mut Vec<u32>,
) -> PyResult<()> {
    let expected = "a sequence of ints or a 1-D integer array";
    if obj.is_instance_of::<PyString>() || obj.is_instance_of::<PyBytes>() {
        return Err(dtype_error(format!(
            "{name} must be {expected}, got {}",
            type_name(obj)
        )));
    }
    let iter = obj
        .try_iter()
        .map_err(|_| dtype_error(format!("{name} must be {expected}, got {}", type_name(obj))))?;
    for (position, item) in iter.enumerate() {
        let item = item?;
        let id = item_id(&item).ok_or_else(|| {
            let nested = !(item.is_instance_of::<PyString>() || item.is_instance_of::<PyBytes>())
                && item.hasattr("__len__").unwrap_or(false);
            let hint = if nested {
                " (a nested sequence or array: pass one flat sequence of ids)"
            } else {
                ""
            };
            dtype_error(format!(
                "{name}: token id at position {position} must be an int, got {}{hint}",
                type_name(&item)
            ))
        })?;
        let id = id.extract::<i128>().map_err(|_| {
            input_error(format!(
                "{name}: token id {id} at position {position} is out of range"
            ))
        })?;
        to_token_ids([id], limit, position, out).map_err(|e| id_error(name, e))?;
    }
    Ok(())
}

/// An item's exact value as a Python int: ints and integer scalars (numpy integers, one-element
/// integer tensors, anything with an exact `__index__`); `None` for bools, floats and the rest.
fn item_id<'py>(item: &Bound<'py, PyAny>) -> Option<Bound<'py, PyInt>> {
    if item.is_instance_of::<PyBool>() {
        return None;
    }
    if let Ok(int) = item.cast::<PyInt>() {
        return Some(int.clone());
    }
    // operator.index: what numpy scalars and integer tensors define for exact conversion;
    // floats, float tensors and multi-element arrays refuse it.
    let index = item.call_method0("__index__").ok()?;
    index.cast_into::<PyInt>().ok()
}

/// What `propose` returns: draft ids (int64) and their mixed probabilities (float64).
pub type DraftArrays<'py> = (Bound<'py, PyArray1<i64>>, Bound<'py, PyArray1<f64>>);

/// A draft tree: `(ids as int64, parents as int64, probs as float64)`.
pub type TreeArrays<'py> = (
    Bound<'py, PyArray1<i64>>,
    Bound<'py, PyArray1<i64>>,
    Bound<'py, PyArray1<f64>>,
);

/// A [`DraftTree`] as numpy arrays, moved without copying where the types allow.
pub fn tree_to_numpy<'py>(py: Python<'py>, tree: DraftTree) -> TreeArrays<'py> {
    let ids: Vec<i64> = tree.tokens.iter().map(|&t| i64::from(t)).collect();
    (
        ids.into_pyarray(py),
        tree.parents.into_pyarray(py),
        tree.probs.into_pyarray(py),
    )
}

/// `(ids as int64, probs as float64)`, both moved into numpy without copying.
pub fn draft_to_numpy<'py>(py: Python<'py>, draft: Draft) -> DraftArrays<'py> {
    let ids: Vec<i64> = draft.tokens.iter().map(|&t| i64::from(t)).collect();
    (ids.into_pyarray(py), draft.probs.into_pyarray(py))
}
