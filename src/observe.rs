//! Hooks through which the harness observes nodes: the trace sink. Observers never act.

use std::rc::Rc;

/// Receives one line per event a node emits (the harness adds sim time and node name).
#[derive(Clone, Default)]
pub struct Tracer {
    sink: Option<Rc<dyn Fn(&str)>>,
}

impl Tracer {
    pub fn new(sink: Rc<dyn Fn(&str)>) -> Self {
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
