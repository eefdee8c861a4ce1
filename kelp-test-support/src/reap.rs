//! Cleaning up after test runs that died without unwinding (SIGKILL,
//! abort): their processes and temporary directories.

use std::sync::Once;

use crate::procs;

/// Kills every process started by this crate whose owning test process no
/// longer exists (e.g. a test binary killed with SIGKILL), and removes their
/// temporary directories. Processes carry a `KELP_TEST_OWNER` environment
/// marker; what belongs to live owners (other test binaries running at the
/// same time) is left alone.
///
/// Called automatically, once per process, before the first node or server
/// is started. Returns the number of processes killed.
pub fn reap_orphans() -> usize {
    procs::reap_orphan_processes()
}

static REAP_ONCE: Once = Once::new();

/// [`reap_orphans`], the first time it is called in this process.
pub(crate) fn reap_orphans_once() {
    REAP_ONCE.call_once(|| {
        reap_orphans();
    });
}
