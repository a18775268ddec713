//! Scalar arguments from Python, checked by type with the argument's name in every error.
//!
//! pyo3's own conversions accept `True` as 1, raise a bare `TypeError`/`OverflowError` that does
//! not say which argument was wrong, and truncate nothing but also name nothing. Every numeric
//! argument of `tasc_rs._core` goes through one of the extractors below instead (used with
//! `#[pyo3(from_py_with = args::<name>)]`): ints are `int` or a numpy integer, never a bool or a
//! float; floats are any real number except a bool. Wrong types raise `ArgumentTypeError`
//! (a `TypeError`), ints beyond 64 bits `InvalidConfigError` with the value as given; ranges are
//! checked where the setting is used, with messages that already name it.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use std::path::PathBuf;

use pyo3::types::{PyBool, PyByteArray, PyBytes, PyFloat, PyInt, PyMemoryView, PyString, PyType};

use super::convert::type_name;
use super::errors::{argument_type_error, config_error};

static INTEGRAL: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static REAL: PyOnceLock<Py<PyType>> = PyOnceLock::new();

fn is_instance(
    obj: &Bound<'_, PyAny>,
    cell: &'static PyOnceLock<Py<PyType>>,
    name: &str,
) -> PyResult<bool> {
    let ty = cell.import(obj.py(), "numbers", name)?;
    obj.is_instance(ty)
}

/// `int(obj)` for an `int` or `numbers.Integral` (numpy integers), with `name` in every error.
pub fn int(obj: &Bound<'_, PyAny>, name: &str) -> PyResult<i64> {
    let value = if obj.is_instance_of::<PyBool>() {
        return Err(wrong_type(obj, name, "an int"));
    } else if obj.is_instance_of::<PyInt>() {
        obj.clone()
    } else if is_instance(obj, &INTEGRAL, "Integral")? {
        // numpy integers and other registered integrals: their exact value as a Python int
        obj.call_method0("__index__")?
    } else {
        return Err(wrong_type(obj, name, "an int"));
    };
    value.extract::<i64>().map_err(|_| {
        config_error(format!(
            "{name} {value} is out of range (it does not fit in 64 bits)"
        ))
    })
}

/// `float(obj)` for any real number but a bool, with `name` in every error.
pub fn float(obj: &Bound<'_, PyAny>, name: &str) -> PyResult<f64> {
    if obj.is_instance_of::<PyBool>() {
        return Err(wrong_type(obj, name, "a number"));
    }
    if !(obj.is_instance_of::<PyFloat>()
        || obj.is_instance_of::<PyInt>()
        || is_instance(obj, &REAL, "Real")?)
    {
        return Err(wrong_type(obj, name, "a number"));
    }
    obj.extract::<f64>()
        .map_err(|_| config_error(format!("{name} {obj} is out of range for a float")))
}

/// The error for `obj` of the wrong type: names the argument, what was expected and what came.
pub fn wrong_type(obj: &Bound<'_, PyAny>, name: &str, expected: &str) -> PyErr {
    let got = type_name(obj);
    let shown = obj
        .repr()
        .map(|r| r.to_string())
        .unwrap_or_default()
        .chars()
        .take(40)
        .collect::<String>();
    argument_type_error(format!("{name} must be {expected}, got {got} {shown}"))
}

/// `True` or `False` (also numpy's bools), never an int or a truthy object.
pub fn boolean(obj: &Bound<'_, PyAny>, name: &str) -> PyResult<bool> {
    if let Ok(b) = obj.cast::<PyBool>() {
        return Ok(b.is_true());
    }
    let numpy_bool = obj.get_type().name().map(|n| n == "bool").unwrap_or(false)
        && obj
            .get_type()
            .module()
            .map(|m| m == "numpy")
            .unwrap_or(false);
    if numpy_bool {
        return obj.is_truthy();
    }
    Err(wrong_type(obj, name, "True or False"))
}

/// A file path: `str`, `bytes` or `os.PathLike` (what `open` takes), as `path` in errors.
pub fn path(obj: &Bound<'_, PyAny>) -> PyResult<PathBuf> {
    if obj.is_instance_of::<PyString>()
        || obj.is_instance_of::<PyBytes>()
        || obj.hasattr("__fspath__")?
    {
        if let Ok(path) = obj.extract::<PathBuf>() {
            return Ok(path);
        }
    }
    Err(wrong_type(obj, "path", "a str or os.PathLike"))
}

/// Bytes-like data (`bytes`, `bytearray`, `memoryview`), as `data` in errors.
pub fn data(obj: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    if let Ok(bytes) = obj.cast::<PyBytes>() {
        return Ok(bytes.as_bytes().to_vec());
    }
    if obj.is_instance_of::<PyByteArray>() || obj.is_instance_of::<PyMemoryView>() {
        let bytes = obj.py().get_type::<PyBytes>().call1((obj,))?;
        if let Ok(bytes) = bytes.cast::<PyBytes>() {
            return Ok(bytes.as_bytes().to_vec());
        }
    }
    Err(wrong_type(obj, "data", "bytes"))
}

/// Re-raises a token-id error for ids that are a setting (`stop_tokens`): `InvalidConfigError`,
/// or `ArgumentTypeError` for a wrong type, with the same message.
pub fn as_setting(py: Python<'_>, err: PyErr) -> PyErr {
    let msg = err.value(py).to_string();
    if err.is_instance_of::<pyo3::exceptions::PyTypeError>(py) {
        argument_type_error(msg)
    } else {
        config_error(msg)
    }
}

/// One `from_py_with` extractor per argument name, so the name reaches the message.
macro_rules! named {
    ($conv:ident -> $t:ty: $($f:ident),* $(,)?) => {
        $(
            pub fn $f(obj: &Bound<'_, PyAny>) -> PyResult<$t> {
                $conv(obj, stringify!($f))
            }
        )*
    };
}

/// Like [`named`], for arguments whose default is `None`.
macro_rules! named_optional {
    ($conv:ident -> $t:ty: $($f:ident => $name:literal),* $(,)?) => {
        $(
            pub fn $f(obj: &Bound<'_, PyAny>) -> PyResult<Option<$t>> {
                if obj.is_none() {
                    Ok(None)
                } else {
                    $conv(obj, $name).map(Some)
                }
            }
        )*
    };
}

named!(int -> i64: k, n_max, min_count, budget, max_requests, stale_steps, online_capacity,
    max_nodes, width);
named!(float -> f64: corpus_weight, min_prob, alpha);
named!(boolean -> bool: strict, byte_level, measure_step_cost);
named_optional!(int -> i64:
    opt_vocab_size => "vocab_size",
    opt_max_len => "max_len",
    opt_limit => "limit",
    opt_threads => "threads",
);
named_optional!(float -> f64:
    opt_corpus_weight => "corpus_weight",
    opt_min_prob => "min_prob",
    opt_step_overhead => "step_overhead",
);
