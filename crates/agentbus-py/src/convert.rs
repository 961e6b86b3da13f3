//! Conversions between Python objects and the Rust event's parts: JSON
//! payloads (`dict` <-> `serde_json::Value`) and timestamps (`datetime` <->
//! `SystemTime`).
//!
//! A payload must be JSON: `dict` with `str` keys, `list`/`tuple`, `str`,
//! `int` (64-bit), finite `float`, `bool` and `None`, nested at most
//! [`MAX_DEPTH`] deep. Anything else is a `TypeError` (a `ValueError` for
//! out-of-range numbers and over-deep nesting) naming where in the payload it
//! is, raised when the `Event` is built; nothing is silently stringified.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{
    PyBool, PyDateTime, PyDelta, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple, PyTzInfo,
};
use serde_json::{Map, Number, Value};

/// How deep a payload may nest; deeper (or self-referencing) input is a
/// `ValueError` rather than a stack overflow.
pub(crate) const MAX_DEPTH: usize = 128;

/// `obj` as JSON, or a `TypeError`/`ValueError` naming the offending path.
pub(crate) fn to_json(obj: &Bound<'_, PyAny>) -> PyResult<Value> {
    to_json_at(obj, 0, &mut |path| path.push_str("data"))
}

fn to_json_at(
    obj: &Bound<'_, PyAny>,
    depth: usize,
    path: &mut dyn FnMut(&mut String),
) -> PyResult<Value> {
    let located = |path: &mut dyn FnMut(&mut String)| {
        let mut at = String::new();
        path(&mut at);
        at
    };
    if depth > MAX_DEPTH {
        return Err(PyValueError::new_err(format!(
            "event data nests deeper than {MAX_DEPTH} levels at {}",
            located(path)
        )));
    }
    if obj.is_none() {
        return Ok(Value::Null);
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(Value::String(s.to_cow()?.into_owned()));
    }
    // bool before int: `True` is an `int` in Python.
    if let Ok(b) = obj.cast::<PyBool>() {
        return Ok(Value::Bool(b.is_true()));
    }
    if obj.cast::<PyInt>().is_ok() {
        if let Ok(n) = obj.extract::<i64>() {
            return Ok(Value::Number(n.into()));
        }
        if let Ok(n) = obj.extract::<u64>() {
            return Ok(Value::Number(n.into()));
        }
        return Err(PyValueError::new_err(format!(
            "event data integer out of the 64-bit range at {}",
            located(path)
        )));
    }
    if let Ok(f) = obj.cast::<PyFloat>() {
        return Number::from_f64(f.value())
            .map(Value::Number)
            .ok_or_else(|| {
                PyValueError::new_err(format!(
                    "event data float is not finite at {}",
                    located(path)
                ))
            });
    }
    if let Ok(dict) = obj.cast::<PyDict>() {
        let mut map = Map::new();
        for (key, value) in dict.iter() {
            let Ok(key) = key.cast::<PyString>() else {
                return Err(PyTypeError::new_err(format!(
                    "event data keys must be str, got {} at {}",
                    type_name(&key),
                    located(path)
                )));
            };
            let key = key.to_cow()?;
            let item = to_json_at(&value, depth + 1, &mut |at: &mut String| {
                path(at);
                at.push('[');
                at.push_str(&format!("{key:?}"));
                at.push(']');
            })?;
            map.insert(key.into_owned(), item);
        }
        return Ok(Value::Object(map));
    }
    if obj.cast::<PyList>().is_ok() || obj.cast::<PyTuple>().is_ok() {
        let mut items = Vec::new();
        for (index, item) in obj.try_iter()?.enumerate() {
            items.push(to_json_at(&item?, depth + 1, &mut |at: &mut String| {
                path(at);
                at.push_str(&format!("[{index}]"));
            })?);
        }
        return Ok(Value::Array(items));
    }
    Err(PyTypeError::new_err(format!(
        "event data must be JSON-compatible (dict, list, str, int, float, bool, None), got {} at {}",
        type_name(obj),
        located(path)
    )))
}

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into())
}

/// `value` as a fresh Python object (`dict`, `list`, `str`, ...).
pub(crate) fn to_python<'py>(py: Python<'py>, value: &Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match value {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                i.into_pyobject(py)?.into_any()
            } else if let Some(u) = n.as_u64() {
                u.into_pyobject(py)?.into_any()
            } else {
                n.as_f64().unwrap_or(f64::NAN).into_pyobject(py)?.into_any()
            }
        }
        Value::String(s) => PyString::new(py, s).into_any(),
        Value::Array(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(to_python(py, item)?)?;
            }
            list.into_any()
        }
        Value::Object(map) => {
            let dict = PyDict::new(py);
            for (key, item) in map {
                dict.set_item(key, to_python(py, item)?)?;
            }
            dict.into_any()
        }
    })
}

fn utc(py: Python<'_>) -> PyResult<&Bound<'_, PyTzInfo>> {
    static UTC: PyOnceLock<Py<PyTzInfo>> = PyOnceLock::new();
    Ok(UTC
        .get_or_try_init(py, || PyTzInfo::utc(py).map(|tz| tz.to_owned().unbind()))?
        .bind(py))
}

/// `time` as an aware UTC `datetime`, truncated to the microsecond (Python's
/// resolution), so it never sorts after a `datetime.now()` taken later.
pub(crate) fn to_datetime<'py>(py: Python<'py>, time: SystemTime) -> PyResult<Bound<'py, PyAny>> {
    let (secs, micros) = match time.duration_since(UNIX_EPOCH) {
        Ok(since) => (since.as_secs() as i64, since.subsec_micros()),
        Err(before) => {
            let before = before.duration();
            let micros = before.subsec_micros();
            if micros == 0 {
                (-(before.as_secs() as i64), 0)
            } else {
                (-(before.as_secs() as i64) - 1, 1_000_000 - micros)
            }
        }
    };
    let days = secs.div_euclid(86_400);
    let in_day = secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    let year = i32::try_from(year)
        .map_err(|_| PyValueError::new_err("event timestamp is out of datetime's range"))?;
    Ok(PyDateTime::new(
        py,
        year,
        month,
        day,
        (in_day / 3600) as u8,
        (in_day % 3600 / 60) as u8,
        (in_day % 60) as u8,
        micros,
        Some(utc(py)?),
    )?
    .into_any())
}

/// Howard Hinnant's `civil_from_days`: days since 1970-01-01 to a
/// proleptic Gregorian (year, month, day).
fn civil_from_days(days: i64) -> (i64, u8, u8) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// A `datetime` as a `SystemTime`; a naive one is taken as UTC.
pub(crate) fn from_datetime(value: &Bound<'_, PyAny>) -> PyResult<SystemTime> {
    let py = value.py();
    if value.cast::<PyDateTime>().is_err() {
        return Err(PyTypeError::new_err(format!(
            "timestamp must be a datetime, got {}",
            type_name(value)
        )));
    }
    static EPOCH: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    let epoch = EPOCH
        .get_or_try_init(py, || {
            PyDateTime::new(py, 1970, 1, 1, 0, 0, 0, 0, Some(utc(py)?))
                .map(|e| e.into_any().unbind())
        })?
        .bind(py);
    let aware = if value.getattr("tzinfo")?.is_none() {
        let kwargs = PyDict::new(py);
        kwargs.set_item("tzinfo", utc(py)?)?;
        value.call_method("replace", (), Some(&kwargs))?
    } else {
        value.clone()
    };
    let delta = aware.sub(epoch)?;
    let delta = delta.cast::<PyDelta>()?;
    let days: i64 = delta.getattr("days")?.extract()?;
    let seconds: i64 = delta.getattr("seconds")?.extract()?;
    let micros: i64 = delta.getattr("microseconds")?.extract()?;
    let total_micros = (days * 86_400 + seconds) * 1_000_000 + micros;
    let offset = Duration::from_micros(total_micros.unsigned_abs());
    Ok(if total_micros >= 0 {
        UNIX_EPOCH + offset
    } else {
        UNIX_EPOCH - offset
    })
}
