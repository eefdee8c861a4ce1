//! xz (and legacy `.lzma`), under `application/x-lzma`.

use std::io::{self, Write};

use bytes::Bytes;

use super::bounded::{Failure, read_bounded};
use crate::error::Error;

/// Memory the xz/lzma decoder may use for its dictionary and state. Python's
/// strongest preset (9) needs about 65 MiB; the cap keeps a forged header that
/// announces a 4 GiB dictionary from allocating it.
const LZMA_MEMLIMIT: u64 = 128 * 1024 * 1024;

pub(super) fn compress(data: &[u8], level: u32) -> io::Result<Vec<u8>> {
    let mut enc = liblzma::write::XzEncoder::new(Vec::with_capacity(data.len() / 2 + 64), level.min(9));
    enc.write_all(data)?;
    enc.finish()
}

/// xz streams (one or more, with padding) or the legacy `.lzma` format, as
/// Python's `lzma.decompress` with its automatic format detection.
pub(super) fn decompress(data: &[u8], limit: usize, initial: usize) -> Result<Bytes, Failure> {
    let stream = liblzma::stream::Stream::new_auto_decoder(LZMA_MEMLIMIT, liblzma::stream::CONCATENATED)
        .map_err(|e| Failure::Setup(Error::decode("cannot set up the lzma decoder").with_source(e)))?;
    read_bounded(liblzma::bufread::XzDecoder::new_stream(data, stream), limit, initial)
}
