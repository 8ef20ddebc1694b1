//! The one error type of scenario loading: which file, which key, what was expected.

use std::fmt;

/// A scenario file that cannot run. `key` is a dotted/indexed path such as
/// `producers[1].rate_per_sec` or `cluster.config."min.insync.replicas"`; it is empty only
/// when the problem is the file as a whole (unreadable, not TOML).
#[derive(Debug, Clone, PartialEq)]
pub struct ScenarioError {
    pub file: String,
    pub key: String,
    pub expected: String,
}

impl ScenarioError {
    pub fn new(file: &str, key: impl Into<String>, expected: impl Into<String>) -> Self {
        ScenarioError {
            file: file.to_string(),
            key: key.into(),
            expected: expected.into(),
        }
    }
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}: expected {}", self.file, self.expected)
        } else {
            write!(f, "{}: {}: expected {}", self.file, self.key, self.expected)
        }
    }
}

impl std::error::Error for ScenarioError {}

pub(crate) type Result<T> = std::result::Result<T, ScenarioError>;
