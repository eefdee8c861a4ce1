//! The crate's error: a human-readable message.

use std::fmt;

/// The error type of this crate: a human-readable message.
///
/// `Debug` prints the message verbatim (with its newlines), so
/// `.unwrap()`/`.expect()` in a test shows e.g. the tail of a node's log
/// readably.
#[derive(Clone, PartialEq, Eq)]
pub struct Error {
    msg: String,
    pub(crate) port_conflict: bool,
}

impl Error {
    pub(crate) fn new(msg: impl Into<String>) -> Self {
        Error {
            msg: msg.into(),
            port_conflict: false,
        }
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.msg
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)
    }
}

impl std::error::Error for Error {}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
