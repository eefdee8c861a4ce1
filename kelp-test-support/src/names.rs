//! Unique names for queues, exchanges and keys.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

static NAME_COUNTER: AtomicU64 = AtomicU64::new(0);

pub(crate) fn nanos_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// A name unique to this call: `<prefix>-<pid>-<counter>-<time>`, e.g.
/// `orders-4242-7-18c2f9a1b3`. Safe for queues, exchanges and Redis keys
/// (only the prefix may bring other characters than `[0-9a-z-]`).
pub fn unique_name(prefix: &str) -> String {
    let n = NAME_COUNTER.fetch_add(1, Ordering::Relaxed);
    // The low 40 bits of the wall clock in microseconds: changes between runs,
    // short enough to read.
    let t = (nanos_now() / 1_000) & 0xff_ffff_ffff;
    format!("{prefix}-{}-{n}-{t:x}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_names_differ() {
        let a = unique_name("q");
        let b = unique_name("q");
        assert_ne!(a, b);
        assert!(a.starts_with(&format!("q-{}-", std::process::id())));
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
    }
}
