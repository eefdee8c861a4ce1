//! Brotli, under `application/x-brotli`.

use std::io;

use bytes::Bytes;

use super::bounded::{Failure, read_bounded};

pub(super) fn compress(data: &[u8], level: u32) -> io::Result<Vec<u8>> {
    let params = brotli::enc::BrotliEncoderParams {
        quality: i32::try_from(level.min(11)).unwrap_or(11),
        // Python's brotli.compress default window: 2^22.
        lgwin: 22,
        size_hint: data.len(),
        ..Default::default()
    };
    let mut out = Vec::with_capacity(data.len() / 2 + 64);
    let mut input = data;
    brotli::BrotliCompress(&mut input, &mut out, &params)?;
    Ok(out)
}

/// A single brotli stream.
pub(super) fn decompress(data: &[u8], limit: usize, initial: usize) -> Result<Bytes, Failure> {
    read_bounded(brotli::Decompressor::new(data, 4096), limit, initial)
}
