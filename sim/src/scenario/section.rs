//! A walker over one TOML table that knows its key path, so that every error names the
//! exact key (`producers[1].rate_per_sec`) and what was found there. Unknown keys are
//! rejected when a table is opened, before any of its values are read, so a typo is reported
//! as a typo rather than as the missing key it was meant to be.

use toml::{Table, Value};

use super::error::{Result, ScenarioError};

pub(crate) struct Section<'f> {
    file: &'f str,
    path: String,
    table: Table,
}

impl<'f> Section<'f> {
    pub fn root(file: &'f str, table: Table, known: &[&str]) -> Result<Self> {
        Self::open(file, String::new(), table, known)
    }

    fn open(file: &'f str, path: String, table: Table, known: &[&str]) -> Result<Self> {
        if let Some(key) = table.keys().find(|k| !known.contains(&k.as_str())) {
            let expected = format!("a known key, one of: {}", known.join(", "));
            return Err(ScenarioError::new(file, join(&path, key), expected));
        }
        Ok(Section { file, path, table })
    }

    pub fn file(&self) -> &'f str {
        self.file
    }

    /// The full path of `key` inside this table.
    pub fn path(&self, key: &str) -> String {
        join(&self.path, key)
    }

    pub fn error(&self, key: &str, expected: impl Into<String>) -> ScenarioError {
        ScenarioError::new(self.file, self.path(key), expected)
    }

    pub fn take(&mut self, key: &str) -> Option<Value> {
        self.table.remove(key)
    }

    /// Gives back a value taken to look at, so a typed reader can take it again.
    pub fn put(&mut self, key: &str, value: Value) {
        self.table.insert(key.to_string(), value);
    }

    pub fn has(&self, key: &str) -> bool {
        self.table.contains_key(key)
    }

    /// Reads `key` with `convert`; `None` from `convert` means the value has the wrong type or
    /// is out of range, and both are reported the same way: `expected X, found Y`.
    pub fn get<T>(
        &mut self,
        key: &str,
        expected: &str,
        convert: impl FnOnce(&Value) -> Option<T>,
    ) -> Result<Option<T>> {
        let Some(value) = self.table.remove(key) else {
            return Ok(None);
        };
        match convert(&value) {
            Some(v) => Ok(Some(v)),
            None => Err(self.error(key, format!("{expected}, found {}", describe(&value)))),
        }
    }

    /// Turns a missing required key into an error with the same expectation text.
    pub fn need<T>(&self, key: &str, expected: &str, value: Option<T>) -> Result<T> {
        value.ok_or_else(|| self.error(key, format!("{expected}, but the key is missing")))
    }

    pub fn uint(&mut self, key: &str, min: u64) -> Result<Option<u64>> {
        self.get(key, &int_expected(min), |v| {
            v.as_integer()
                .and_then(|i| u64::try_from(i).ok())
                .filter(|i| *i >= min)
        })
    }

    pub fn uint_req(&mut self, key: &str, min: u64) -> Result<u64> {
        let value = self.uint(key, min)?;
        self.need(key, &int_expected(min), value)
    }

    pub fn u32(&mut self, key: &str, min: u32) -> Result<Option<u32>> {
        self.get(key, &int_expected(min.into()), |v| {
            v.as_integer()
                .and_then(|i| u32::try_from(i).ok())
                .filter(|i| *i >= min)
        })
    }

    pub fn u32_req(&mut self, key: &str, min: u32) -> Result<u32> {
        let value = self.u32(key, min)?;
        self.need(key, &int_expected(min.into()), value)
    }

    pub fn string(&mut self, key: &str) -> Result<Option<String>> {
        self.get(key, "a string", |v| v.as_str().map(str::to_string))
    }

    pub fn boolean(&mut self, key: &str) -> Result<Option<bool>> {
        self.get(key, "a boolean", Value::as_bool)
    }

    /// A finite number for which `accept` holds; TOML integers count (`rate_per_sec = 100`).
    pub fn number(
        &mut self,
        key: &str,
        expected: &str,
        accept: impl Fn(f64) -> bool,
    ) -> Result<Option<f64>> {
        self.get(key, expected, |v| {
            number(v).filter(|x| x.is_finite() && accept(*x))
        })
    }

    pub fn strings(&mut self, key: &str) -> Result<Option<Vec<String>>> {
        self.get(key, "a list of strings", |v| {
            v.as_array()?
                .iter()
                .map(|s| s.as_str().map(str::to_string))
                .collect()
        })
    }

    /// `[lo, hi]` with `lo_min <= lo <= hi`.
    pub fn range(&mut self, key: &str, lo_min: u64) -> Result<Option<(u64, u64)>> {
        let expected = format!("a range [lo, hi] of integers with {lo_min} <= lo <= hi");
        self.get(key, &expected, |v| match v.as_array()?.as_slice() {
            [lo, hi] => {
                let lo = u64::try_from(lo.as_integer()?).ok()?;
                let hi = u64::try_from(hi.as_integer()?).ok()?;
                (lo_min <= lo && lo <= hi).then_some((lo, hi))
            }
            _ => None,
        })
    }

    /// A sub-table; a missing one reads as empty, so its required keys report themselves.
    pub fn section(&mut self, key: &str, known: &[&str]) -> Result<Section<'f>> {
        let table = self
            .get(key, "a table", |v| v.as_table().cloned())?
            .unwrap_or_default();
        Self::open(self.file, self.path(key), table, known)
    }

    /// A free-form sub-table (configs, switches): keys are checked by the caller.
    pub fn free_table(&mut self, key: &str) -> Result<Table> {
        Ok(self
            .get(key, "a table", |v| v.as_table().cloned())?
            .unwrap_or_default())
    }

    /// An array of tables (`[[topics]]`); missing reads as none.
    pub fn sections(&mut self, key: &str, known: &[&str]) -> Result<Vec<Section<'f>>> {
        let expected = "an array of tables ([[".to_string() + key + "]])";
        let items = self.get(key, &expected, |v| {
            let items = v.as_array()?;
            items.iter().all(Value::is_table).then(|| items.clone())
        })?;
        let items = items.unwrap_or_default().into_iter().enumerate();
        items
            .map(|(i, item)| {
                let Value::Table(table) = item else {
                    unreachable!("checked above")
                };
                Self::open(self.file, format!("{}[{i}]", self.path(key)), table, known)
            })
            .collect()
    }
}

/// `parent.key`, quoting keys that are not bare TOML keys: `cluster.config."min.insync.replicas"`.
pub(crate) fn join(parent: &str, key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    let key = if bare {
        key.to_string()
    } else {
        format!("{key:?}")
    };
    if parent.is_empty() {
        key
    } else {
        format!("{parent}.{key}")
    }
}

/// What was found, for `expected X, found Y`: `string "three"`, `integer 0`, ...
pub(crate) fn describe(value: &Value) -> String {
    match value {
        Value::String(s) => format!("string {s:?}"),
        Value::Integer(i) => format!("integer {i}"),
        Value::Float(x) => format!("float {x}"),
        Value::Boolean(b) => format!("boolean {b}"),
        Value::Datetime(d) => format!("datetime {d}"),
        Value::Array(_) => format!("array {value}"),
        Value::Table(_) => "a table".to_string(),
    }
}

fn number(value: &Value) -> Option<f64> {
    match value {
        Value::Integer(i) => Some(*i as f64),
        Value::Float(x) => Some(*x),
        _ => None,
    }
}

fn int_expected(min: u64) -> String {
    format!("an integer >= {min}")
}
