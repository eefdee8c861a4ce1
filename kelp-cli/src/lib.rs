//! The library behind the `kelp` command line, shared with the benchmarks
//! in `benches/`.

pub mod bare_redis;
pub mod bench;
pub mod commands;
pub mod drill;
#[cfg(feature = "bench")]
pub mod failover;
pub mod measure;

use std::fmt;

/// Why a command failed; printed on stderr by `main`.
#[derive(Debug)]
pub enum CliError {
    /// A kelp error.
    Kelp(kelp::Error),
    /// Bad command-line input.
    Usage(String),
    /// The command could not do its job.
    Failure(String),
}

impl CliError {
    /// Bad input.
    pub fn usage(message: impl Into<String>) -> CliError {
        CliError::Usage(message.into())
    }

    /// A failed command.
    pub fn failure(message: impl Into<String>) -> CliError {
        CliError::Failure(message.into())
    }
}

impl From<kelp::Error> for CliError {
    fn from(e: kelp::Error) -> CliError {
        CliError::Kelp(e)
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::Kelp(e) => write!(f, "{e}"),
            CliError::Usage(m) => write!(f, "usage: {m}"),
            CliError::Failure(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for CliError {}
