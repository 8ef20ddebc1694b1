//! Hooks through which the harness observes nodes: the trace sink. Observers never act.

use std::rc::Rc;

/// Where trace lines go.
pub type TraceSink = Rc<dyn Fn(&str)>;

/// Receives one line per event a node emits (the harness adds sim time and node name).
#[derive(Clone, Default)]
pub struct Tracer {
    sink: Option<TraceSink>,
}

impl Tracer {
    pub fn new(sink: TraceSink) -> Self {
        Tracer { sink: Some(sink) }
    }

    /// A tracer that drops everything (real-network mode without `--trace`).
    pub fn off() -> Self {
        Tracer { sink: None }
    }

    /// Emits an event; the line is only formatted when someone listens.
    pub fn emit(&self, line: impl FnOnce() -> String) {
        if let Some(sink) = &self.sink {
            sink(&line());
        }
    }
}
