//! zlib, under `application/x-gzip` (Kombu writes a zlib stream there).

use std::io::{self, Write};

use bytes::Bytes;

use super::bounded::{Failure, read_bounded};

pub(super) fn compress(data: &[u8], level: u32) -> io::Result<Vec<u8>> {
    let level = flate2::Compression::new(level.min(9));
    let mut enc = flate2::write::ZlibEncoder::new(Vec::with_capacity(data.len() / 2 + 64), level);
    enc.write_all(data)?;
    enc.finish()
}

/// A single zlib stream (bytes after its end are ignored, as Python's
/// `zlib.decompress` does), or a real gzip member, which some non-Python
/// producers send under `application/x-gzip`.
pub(super) fn decompress(data: &[u8], limit: usize, initial: usize) -> Result<Bytes, Failure> {
    if data.starts_with(&[0x1f, 0x8b]) {
        read_bounded(flate2::bufread::MultiGzDecoder::new(data), limit, initial)
    } else {
        read_bounded(flate2::bufread::ZlibDecoder::new(data), limit, initial)
    }
}
