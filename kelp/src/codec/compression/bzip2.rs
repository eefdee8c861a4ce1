//! bzip2, under `application/x-bz2`.

use std::io::{self, Write};

use bytes::Bytes;

use super::bounded::{Failure, read_bounded};

pub(super) fn compress(data: &[u8], level: u32) -> io::Result<Vec<u8>> {
    let level = bzip2::Compression::new(level.clamp(1, 9));
    let mut enc = bzip2::write::BzEncoder::new(Vec::with_capacity(data.len() / 2 + 64), level);
    enc.write_all(data)?;
    enc.finish()
}

/// One or more concatenated streams, as Python's `bz2.decompress`.
pub(super) fn decompress(data: &[u8], limit: usize, initial: usize) -> Result<Bytes, Failure> {
    // Python's bz2.decompress(b"") is b"", not an error.
    if data.is_empty() {
        return Ok(Bytes::new());
    }
    read_bounded(bzip2::bufread::MultiBzDecoder::new(data), limit, initial)
}
