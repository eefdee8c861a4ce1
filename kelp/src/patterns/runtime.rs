//! kelp's own runtime thread (`kelp-blocking-runtime`), for work that must
//! go on when the caller has no async runtime: the blocking facade's calls,
//! and a pooled channel closed from synchronous code.

use std::future::Future;
use std::sync::OnceLock;

use crate::error::{Error, Result};

/// The runtime, started on first use.
pub(crate) fn handle() -> Result<&'static tokio::runtime::Handle> {
    static RUNTIME: OnceLock<std::result::Result<tokio::runtime::Runtime, String>> = OnceLock::new();
    static HANDLE: OnceLock<tokio::runtime::Handle> = OnceLock::new();
    if let Some(handle) = HANDLE.get() {
        return Ok(handle);
    }
    let runtime = RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("kelp-blocking-runtime")
            .enable_all()
            .build()
            .map_err(|e| e.to_string())
    });
    match runtime {
        Ok(rt) => Ok(HANDLE.get_or_init(|| rt.handle().clone())),
        Err(e) => Err(Error::config(format!("cannot start kelp's blocking runtime: {e}"))),
    }
}

/// Run `future` on the current runtime, or on kelp's own when there is none.
pub(crate) fn in_background(future: impl Future<Output = ()> + Send + 'static) {
    match tokio::runtime::Handle::try_current() {
        Ok(current) => {
            current.spawn(future);
        }
        Err(_) => {
            if let Ok(own) = handle() {
                own.spawn(future);
            }
        }
    }
}
