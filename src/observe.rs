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

/// Coverage marks: `sometimes!` with a mark name, at a point in system code, records that a
/// run reached it (FoundationDB's `TEST()`, Antithesis' `sometimes`). A scenario can require marks
/// (`[expect] marks`), so that a chaos run that never got to the interesting state fails
/// loudly instead of passing as clean. Marks only observe; outside the simulator the set just
/// fills up and nobody reads it.
pub mod marks {
    use std::cell::RefCell;
    use std::collections::BTreeSet;

    /// Every mark in the code, so that a scenario naming another is an error, not a silent miss.
    pub const ALL: &[&str] = &[
        "isr_shrunk",
        "isr_expanded",
        "unclean_election",
        "epoch_truncation",
        "duplicate_batch",
        "txn_epoch_fence",
        "txn_timeout_abort",
        "txn_verification_failed",
    ];

    thread_local! {
        static HIT: RefCell<BTreeSet<&'static str>> = const { RefCell::new(BTreeSet::new()) };
    }

    /// Records that `name` was reached (one simulation runs per thread).
    pub fn hit(name: &'static str) {
        debug_assert!(ALL.contains(&name), "mark {name} is missing from observe::marks::ALL");
        HIT.with(|h| {
            h.borrow_mut().insert(name);
        });
    }

    /// The marks reached since the last call, and forgets them.
    pub fn take() -> BTreeSet<&'static str> {
        HIT.with(|h| std::mem::take(&mut *h.borrow_mut()))
    }
}

/// Records that this point was reached (see [`marks`]).
#[macro_export]
macro_rules! sometimes {
    ($name:literal) => {
        $crate::observe::marks::hit($name)
    };
}
