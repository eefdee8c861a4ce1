//! Reading a decoder with a bound on its output, so that a small body
//! that expands to gigabytes (a "zip bomb") costs at most the bound.

use std::io::{self, Read};

use bytes::Bytes;

use crate::error::Error;

/// Why a bounded read failed.
pub(super) enum Failure {
    /// The output would pass the limit.
    Limit,
    /// The body is corrupt or truncated.
    Io(io::Error),
    /// The decoder could not be set up.
    #[cfg_attr(not(any(feature = "lzma", feature = "zstd")), allow(dead_code))]
    Setup(Error),
}

/// Read a decoder to its end, keeping at most `limit` bytes.
///
/// The buffer grows geometrically but is capped at `limit`, so a bomb cannot
/// make it allocate more than the limit; one extra byte read into a probe
/// tells "exactly at the limit" from "over it".
pub(super) fn read_bounded<R: Read>(mut reader: R, limit: usize, initial: usize) -> Result<Bytes, Failure> {
    let mut buf: Vec<u8> = Vec::new();
    let first = initial.min(limit);
    buf.reserve_exact(first);
    buf.resize(first, 0);
    let mut filled = 0usize;
    loop {
        if filled == buf.len() {
            if filled >= limit {
                // Full: the stream must end here.
                let mut probe = [0u8; 1];
                loop {
                    match reader.read(&mut probe) {
                        Ok(0) => {
                            buf.truncate(filled);
                            return Ok(Bytes::from(buf));
                        }
                        Ok(_) => return Err(Failure::Limit),
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(Failure::Io(e)),
                    }
                }
            }
            let target = filled.saturating_mul(2).max(filled + 8192).min(limit);
            buf.reserve_exact(target - filled);
            buf.resize(target, 0);
        }
        let spare = match buf.get_mut(filled..) {
            Some(spare) => spare,
            None => return Err(Failure::Io(io::Error::other("buffer bookkeeping error"))),
        };
        match reader.read(spare) {
            Ok(0) => {
                buf.truncate(filled);
                return Ok(Bytes::from(buf));
            }
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Failure::Io(e)),
        }
    }
}
