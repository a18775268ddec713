//! Maps core errors onto the Python exception hierarchy defined in `tasc_rs/errors.py`
//! (rooted at `TascError`; input problems also subclass `ValueError`, I/O problems `OSError`).

use pyo3::exceptions::{PyOSError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyType;

use crate::error::Error;

static INVALID_CONFIG: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static INVALID_INPUT: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static FILE_FORMAT: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static IO_ERROR: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static DTYPE: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static ARGUMENT_TYPE: PyOnceLock<Py<PyType>> = PyOnceLock::new();

/// Builds an instance of `tasc_rs.errors.<name>`, falling back to `fallback` if the Python
/// package cannot be imported (the native module used on its own).
fn raise(
    cell: &'static PyOnceLock<Py<PyType>>,
    name: &str,
    msg: String,
    fallback: fn(String) -> PyErr,
) -> PyErr {
    Python::attach(|py| match cell.import(py, "tasc_rs.errors", name) {
        Ok(ty) => PyErr::from_type(ty.clone(), msg),
        Err(_) => fallback(msg),
    })
}

/// A `DtypeError` (subclass of `TypeError`): an array or value of the wrong type.
pub fn dtype_error(msg: String) -> PyErr {
    raise(&DTYPE, "DtypeError", msg, PyTypeError::new_err)
}

/// An `ArgumentTypeError` (subclass of `TypeError`): a setting of the wrong type.
pub fn argument_type_error(msg: String) -> PyErr {
    raise(
        &ARGUMENT_TYPE,
        "ArgumentTypeError",
        msg,
        PyTypeError::new_err,
    )
}

/// An `InvalidConfigError`: a setting outside its allowed range.
pub fn config_error(msg: String) -> PyErr {
    raise(
        &INVALID_CONFIG,
        "InvalidConfigError",
        msg,
        PyValueError::new_err,
    )
}

/// An `InvalidInputError` raised by the binding layer itself (shape, conversion).
pub fn input_error(msg: String) -> PyErr {
    raise(
        &INVALID_INPUT,
        "InvalidInputError",
        msg,
        PyValueError::new_err,
    )
}

/// A `TascIOError` carrying `errno`, `strerror` and `filename` like a built-in `OSError`.
fn io_error(path: String, source: std::io::Error) -> PyErr {
    let errno = source.raw_os_error().unwrap_or(0);
    let strerror = source.to_string();
    Python::attach(
        |py| match IO_ERROR.import(py, "tasc_rs.errors", "TascIOError") {
            Ok(ty) => PyErr::from_type(ty.clone(), (errno, strerror, path)),
            Err(_) => PyOSError::new_err((errno, strerror, path)),
        },
    )
}

impl From<Error> for PyErr {
    fn from(e: Error) -> PyErr {
        let msg = e.to_string();
        match e {
            Error::Config(_) => config_error(msg),
            Error::Input(_) => input_error(msg),
            Error::Enrich(e) if e.is_config() => config_error(msg),
            Error::Enrich(_) => input_error(msg),
            Error::Format(_) | Error::Snapshot(_) => {
                raise(&FILE_FORMAT, "DrafterFileError", msg, PyValueError::new_err)
            }
            Error::Io { path, source } => io_error(path, source),
        }
    }
}

macro_rules! via_core_error {
    ($($t:ty),*) => {
        $(impl From<$t> for PyErr {
            fn from(e: $t) -> PyErr {
                Error::from(e).into()
            }
        })*
    };
}

via_core_error!(
    crate::config::ConfigError,
    crate::corpus::InputError,
    crate::persist::FormatError
);
