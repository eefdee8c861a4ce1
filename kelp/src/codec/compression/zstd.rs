//! Zstandard, under `application/zstd`.

use std::io;

use bytes::Bytes;

use super::bounded::{Failure, read_bounded};
use crate::error::Error;

/// The bulk API writes the content size into the frame header, as Python's
/// one-shot `zstd.compress` does.
pub(super) fn compress(data: &[u8], level: u32) -> io::Result<Vec<u8>> {
    let level = i32::try_from(level.clamp(1, 22)).unwrap_or(3);
    zstd::bulk::compress(data, level)
}

/// One or more frames, with or without the content size in the header;
/// skippable frames are skipped.
pub(super) fn decompress(data: &[u8], limit: usize, initial: usize) -> Result<Bytes, Failure> {
    let decoder = zstd::stream::read::Decoder::with_buffer(data)
        .map_err(|e| Failure::Setup(Error::decode("cannot set up the zstd decoder").with_source(e)))?;
    read_bounded(decoder, limit, initial)
}
