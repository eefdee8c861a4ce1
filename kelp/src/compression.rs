//! Compression with Kombu's names. (Contract stub.)

use bytes::Bytes;

use crate::Result;

/// The default bound on a decompressed body: 128 MiB.
pub const DEFAULT_DECOMPRESSION_LIMIT: usize = 128 * 1024 * 1024;

/// A compression method, named in the `compression` header by its MIME type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Compression {
    /// `application/x-gzip` (a zlib stream, as Kombu writes it); aliases `gzip`, `zlib`.
    Zlib,
    /// `application/x-bz2`; aliases `bzip2`, `bzip`.
    Bzip2,
    /// `application/x-lzma` (xz container); aliases `lzma`, `xz`.
    Lzma,
    /// `application/zstd`; aliases `zstd`, `zstandard`.
    Zstd,
    /// `application/x-brotli`; alias `brotli`.
    Brotli,
}

impl Compression {
    /// Look a method up by alias or MIME type.
    pub fn from_name(_name: &str) -> Result<Compression> { todo!() }
    /// The MIME type written in the `compression` header.
    pub fn mime_type(self) -> &'static str { todo!() }
    /// The canonical short name.
    pub fn name(self) -> &'static str { todo!() }
    /// Compress a body.
    pub fn compress(self, _data: &[u8]) -> Result<Bytes> { todo!() }
    /// Decompress a body, failing with `LimitExceeded` past `limit` bytes.
    pub fn decompress(self, _data: &[u8], _limit: usize) -> Result<Bytes> { todo!() }
}
