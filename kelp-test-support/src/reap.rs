//! Cleaning up after test runs that died without unwinding (SIGKILL,
//! abort): their processes, temporary directories, network namespaces and
//! links.

use std::sync::Once;

use crate::netns;
use crate::procs;

/// Kills every process started by this crate whose owning test process no
/// longer exists (e.g. a test binary killed with SIGKILL), removes their
/// temporary directories, and deletes the network namespaces, veths and
/// bridges such an owner left (see [`NetCluster`](crate::NetCluster)).
/// Processes carry a `KELP_TEST_OWNER` environment marker, namespaces and
/// links their owner in their names and interface aliases; what belongs to
/// live owners (other test binaries running at the same time) is left
/// alone.
///
/// Called automatically, once per process, before the first node, server
/// or cluster is started. Returns the number of processes killed plus
/// namespaces and links deleted.
pub fn reap_orphans() -> usize {
    procs::reap_orphan_processes() + netns::reap_orphan_networks()
}

static REAP_ONCE: Once = Once::new();

/// [`reap_orphans`], the first time it is called in this process.
pub(crate) fn reap_orphans_once() {
    REAP_ONCE.call_once(|| {
        reap_orphans();
    });
}
