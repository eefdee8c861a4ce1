//! Running an async operation to completion from synchronous code, on
//! kelp's own runtime thread.

use std::future::Future;

use crate::error::{Error, Result};

/// Run `future` to completion on this thread, with kelp's runtime driving I/O.
pub(super) fn wait<F: Future>(future: F) -> Result<F::Output> {
    if tokio::runtime::Handle::try_current().is_ok() {
        return Err(Error::config(
            "kelp::blocking was called from inside an async runtime; use the async API there",
        ));
    }
    Ok(crate::patterns::runtime::handle()?.block_on(future))
}

pub(super) fn run<T>(future: impl Future<Output = Result<T>>) -> Result<T> {
    wait(future)?
}

#[cfg(test)]
mod tests {
    use super::super::Connection;

    #[tokio::test]
    async fn refuses_to_block_inside_a_runtime() {
        let err = Connection::new("memory://").unwrap().connect().unwrap_err();
        assert!(err.is_config(), "{err}");
    }
}

