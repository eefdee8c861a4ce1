//! The faults injected during a drill, with their times: whoever breaks
//! the brokers (a test's nemesis, `--fault-cmd`, a person) marks them here,
//! and the report measures recovery from each mark.

use std::sync::{Arc, Mutex};
use std::time::Instant;

/// One fault (or its healing) and when it happened.
#[derive(Clone, Debug)]
pub struct Mark {
    /// What was done, e.g. "kill -9 node 1".
    pub what: String,
    /// When.
    pub at: Instant,
    /// A heal (the fault ended) rather than a fault.
    pub heal: bool,
}

/// The marks of one drill; cheap to clone and share.
#[derive(Clone, Debug, Default)]
pub struct FaultLog {
    marks: Arc<Mutex<Vec<Mark>>>,
}

impl FaultLog {
    /// A fault happens now.
    pub fn fault(&self, what: impl Into<String>) {
        self.push(what.into(), false);
    }

    /// A fault ends now.
    pub fn heal(&self, what: impl Into<String>) {
        self.push(what.into(), true);
    }

    fn push(&self, what: String, heal: bool) {
        tracing::info!(what = %what, heal, "drill: fault mark");
        self.marks.lock().unwrap_or_else(|e| e.into_inner()).push(Mark { what, at: Instant::now(), heal });
    }

    /// Every mark so far, in order.
    pub fn marks(&self) -> Vec<Mark> {
        self.marks.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}
