//! Compression with Kombu's names.
//!
//! The `compression` message header carries a MIME type; [`Compression`]
//! maps it (or one of Kombu's aliases) to a codec. The formats are the ones
//! Python's Kombu writes, so bodies compressed here decompress there and the
//! other way round:
//!
//! | method | header | format | level used by [`Compression::compress`] |
//! | --- | --- | --- | --- |
//! | [`Zlib`](Compression::Zlib) | `application/x-gzip` | zlib stream (`zlib.compress`) | 6 |
//! | [`Bzip2`](Compression::Bzip2) | `application/x-bz2` | bzip2 (`bz2.compress`) | 9 |
//! | [`Lzma`](Compression::Lzma) | `application/x-lzma` | xz container (`lzma.compress`) | 6 |
//! | [`Zstd`](Compression::Zstd) | `application/zstd` | zstd frame (`zstd.compress`) | 3 |
//! | [`Brotli`](Compression::Brotli) | `application/x-brotli` | brotli (`brotli.compress`) | 11 |
//!
//! The levels are Python's defaults, so the sizes match what a Kombu peer
//! produces; [`Compression::compress_with_level`] trades size for speed.
//!
//! Decompression is always bounded: [`Compression::decompress`] stops as soon
//! as the output would exceed the caller's limit, so a small body that
//! expands to gigabytes (a "zip bomb") costs at most `limit` bytes of memory.

use std::fmt;
use std::io::{self, Read, Write};
use std::str::FromStr;

use bytes::Bytes;

use crate::error::{Error, ErrorKind, Result};

/// The default bound on a decompressed body: 128 MiB.
///
/// # Examples
///
/// ```
/// use kelp::compression::DEFAULT_DECOMPRESSION_LIMIT;
///
/// assert_eq!(DEFAULT_DECOMPRESSION_LIMIT, 128 << 20);
/// ```
pub const DEFAULT_DECOMPRESSION_LIMIT: usize = 128 * 1024 * 1024;

/// Memory the xz/lzma decoder may use for its dictionary and state. Python's
/// strongest preset (9) needs about 65 MiB; the cap keeps a forged header that
/// announces a 4 GiB dictionary from allocating it.
const LZMA_MEMLIMIT: u64 = 128 * 1024 * 1024;

/// A compression method, named in the `compression` header by its MIME type.
///
/// Producers compress with [`ProducerBuilder::compression`] or
/// [`Publish::compression`]; consumers decompress by the header without
/// being told. The methods can also be used on their own.
///
/// [`ProducerBuilder::compression`]: crate::ProducerBuilder::compression
/// [`Publish::compression`]: crate::Publish::compression
///
/// # Examples
///
/// ```
/// use kelp::Compression;
///
/// let method: Compression = "gzip".parse()?;
/// assert_eq!(method, Compression::Zlib);
/// let packed = method.compress(b"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")?;
/// let unpacked = method.decompress(&packed, 1024)?;
/// assert_eq!(unpacked.as_ref(), b"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
/// # Ok::<(), kelp::Error>(())
/// ```
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
    /// Every supported method, in the order used in messages and listings.
    ///
    /// # Examples
    ///
    /// ```
    /// let names: Vec<&str> = kelp::Compression::ALL.iter().map(|c| c.name()).collect();
    /// assert_eq!(names, ["zlib", "bzip2", "lzma", "zstd", "brotli"]);
    /// ```
    pub const ALL: [Compression; 5] = [
        Compression::Zlib,
        Compression::Bzip2,
        Compression::Lzma,
        Compression::Zstd,
        Compression::Brotli,
    ];

    /// Look a method up by alias or MIME type.
    ///
    /// Matching ignores ASCII case and surrounding whitespace. Accepted:
    /// `gzip`, `zlib`, `application/x-gzip`; `bzip2`, `bzip`,
    /// `application/x-bz2`; `lzma`, `xz`, `application/x-lzma`; `zstd`,
    /// `zstandard`, `application/zstd`; `brotli`, `application/x-brotli`.
    /// Anything else is a [`Config`](ErrorKind::Config) error that lists them.
    ///
    /// # Examples
    ///
    /// ```
    /// use kelp::Compression;
    ///
    /// assert_eq!(Compression::from_name("xz")?, Compression::Lzma);
    /// assert_eq!(Compression::from_name("application/zstd")?, Compression::Zstd);
    /// assert!(Compression::from_name("rar").unwrap_err().is_config());
    /// # Ok::<(), kelp::Error>(())
    /// ```
    pub fn from_name(name: &str) -> Result<Compression> {
        let key = name.trim();
        const TABLE: [(&str, Compression); 13] = [
            ("application/x-gzip", Compression::Zlib),
            ("gzip", Compression::Zlib),
            ("zlib", Compression::Zlib),
            ("application/x-bz2", Compression::Bzip2),
            ("bzip2", Compression::Bzip2),
            ("bzip", Compression::Bzip2),
            ("application/x-lzma", Compression::Lzma),
            ("lzma", Compression::Lzma),
            ("xz", Compression::Lzma),
            ("application/zstd", Compression::Zstd),
            ("zstd", Compression::Zstd),
            ("zstandard", Compression::Zstd),
            ("application/x-brotli", Compression::Brotli),
        ];
        if key.eq_ignore_ascii_case("brotli") {
            return Ok(Compression::Brotli);
        }
        TABLE
            .iter()
            .find(|(alias, _)| alias.eq_ignore_ascii_case(key))
            .map(|&(_, method)| method)
            .ok_or_else(|| {
                Error::config(format!(
                    "unknown compression {name:?}; known: gzip, zlib, bzip2, bzip, lzma, xz, \
                     zstd, zstandard, brotli, or their MIME types application/x-gzip, \
                     application/x-bz2, application/x-lzma, application/zstd, \
                     application/x-brotli"
                ))
            })
    }

    /// The MIME type written in the `compression` header.
    ///
    /// # Examples
    ///
    /// ```
    /// // Kombu's name for zlib data, kept for compatibility.
    /// assert_eq!(kelp::Compression::Zlib.mime_type(), "application/x-gzip");
    /// ```
    pub fn mime_type(self) -> &'static str {
        match self {
            Compression::Zlib => "application/x-gzip",
            Compression::Bzip2 => "application/x-bz2",
            Compression::Lzma => "application/x-lzma",
            Compression::Zstd => "application/zstd",
            Compression::Brotli => "application/x-brotli",
        }
    }

    /// The canonical short name.
    ///
    /// # Examples
    ///
    /// ```
    /// use kelp::Compression;
    ///
    /// assert_eq!(Compression::Bzip2.name(), "bzip2");
    /// assert_eq!(Compression::Bzip2.to_string(), "bzip2");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            Compression::Zlib => "zlib",
            Compression::Bzip2 => "bzip2",
            Compression::Lzma => "lzma",
            Compression::Zstd => "zstd",
            Compression::Brotli => "brotli",
        }
    }

    /// The level [`compress`](Compression::compress) uses: Python's default
    /// for the same codec, so output sizes match a Kombu peer's.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(kelp::Compression::Zstd.default_level(), 3);
    /// ```
    pub fn default_level(self) -> u32 {
        match self {
            Compression::Zlib => 6,
            Compression::Bzip2 => 9,
            Compression::Lzma => 6,
            Compression::Zstd => 3,
            Compression::Brotli => 11,
        }
    }

    /// Compress a body.
    ///
    /// Uses [`default_level`](Compression::default_level). Note that brotli's
    /// default (11, as in Python) is slow for large bodies; pick a lower level
    /// with [`compress_with_level`](Compression::compress_with_level) when
    /// throughput matters more than size.
    ///
    /// # Examples
    ///
    /// ```
    /// use kelp::Compression;
    ///
    /// let log = "GET /index.html 200\n".repeat(500);
    /// let packed = Compression::Zstd.compress(log.as_bytes())?;
    /// assert!(packed.len() < log.len() / 20);
    /// # Ok::<(), kelp::Error>(())
    /// ```
    pub fn compress(self, data: &[u8]) -> Result<Bytes> {
        self.compress_with_level(data, self.default_level())
    }

    /// Compress a body at a given level.
    ///
    /// The level is clamped to the codec's range: zlib 0–9, bzip2 1–9,
    /// lzma 0–9, zstd 1–22, brotli 0–11. The output format does not depend
    /// on the level, so any peer decompresses it.
    ///
    /// # Examples
    ///
    /// ```
    /// use kelp::Compression;
    ///
    /// let page = "<p>hello</p>".repeat(1000);
    /// let quick = Compression::Brotli.compress_with_level(page.as_bytes(), 4)?;
    /// let back = Compression::Brotli.decompress(&quick, page.len())?;
    /// assert_eq!(back, page.as_bytes());
    /// # Ok::<(), kelp::Error>(())
    /// ```
    pub fn compress_with_level(self, data: &[u8], level: u32) -> Result<Bytes> {
        let fail = |e: io::Error| {
            Error::encode(format!("{} compression failed", self.name())).with_source(e)
        };
        let out = match self {
            Compression::Zlib => {
                let level = flate2::Compression::new(level.min(9));
                let mut enc =
                    flate2::write::ZlibEncoder::new(Vec::with_capacity(data.len() / 2 + 64), level);
                enc.write_all(data).map_err(fail)?;
                enc.finish().map_err(fail)?
            }
            Compression::Bzip2 => {
                let level = bzip2::Compression::new(level.clamp(1, 9));
                let mut enc =
                    bzip2::write::BzEncoder::new(Vec::with_capacity(data.len() / 2 + 64), level);
                enc.write_all(data).map_err(fail)?;
                enc.finish().map_err(fail)?
            }
            Compression::Lzma => {
                let mut enc = liblzma::write::XzEncoder::new(
                    Vec::with_capacity(data.len() / 2 + 64),
                    level.min(9),
                );
                enc.write_all(data).map_err(fail)?;
                enc.finish().map_err(fail)?
            }
            Compression::Zstd => {
                // The bulk API writes the content size into the frame header,
                // as Python's one-shot `zstd.compress` does.
                let level = i32::try_from(level.clamp(1, 22)).unwrap_or(3);
                zstd::bulk::compress(data, level).map_err(fail)?
            }
            Compression::Brotli => {
                let params = brotli::enc::BrotliEncoderParams {
                    quality: i32::try_from(level.min(11)).unwrap_or(11),
                    // Python's brotli.compress default window: 2^22.
                    lgwin: 22,
                    size_hint: data.len(),
                    ..Default::default()
                };
                let mut out = Vec::with_capacity(data.len() / 2 + 64);
                let mut input = data;
                brotli::BrotliCompress(&mut input, &mut out, &params).map_err(fail)?;
                out
            }
        };
        Ok(Bytes::from(out))
    }

    /// Decompress a body, failing with `LimitExceeded` past `limit` bytes.
    ///
    /// Output is produced incrementally and never grows past `limit` bytes,
    /// so memory use is bounded by the limit whatever the input claims.
    /// A body that is corrupt or truncated is a [`Decode`](ErrorKind::Decode)
    /// error. What is accepted follows Python's decompressors where that is
    /// harmless:
    ///
    /// - zlib: a single zlib stream; bytes after its end are ignored, as
    ///   `zlib.decompress` does. A real gzip member (magic `1f 8b`), which
    ///   some non-Python producers send under `application/x-gzip`, is
    ///   recognised and decompressed too.
    /// - bzip2: one or more concatenated streams, as `bz2.decompress`.
    /// - lzma: xz streams (one or more, with padding) or the legacy `.lzma`
    ///   format, as `lzma.decompress` with its automatic format detection.
    /// - zstd: one or more frames, with or without the content size in the
    ///   header; skippable frames are skipped.
    /// - brotli: a single brotli stream.
    ///
    /// # Examples
    ///
    /// ```
    /// use kelp::Compression;
    /// use kelp::compression::DEFAULT_DECOMPRESSION_LIMIT;
    ///
    /// let zeros = vec![0u8; 1 << 20];
    /// let bomb = Compression::Zlib.compress(&zeros)?; // about a kilobyte
    /// assert_eq!(Compression::Zlib.decompress(&bomb, DEFAULT_DECOMPRESSION_LIMIT)?.len(), 1 << 20);
    /// // With a tighter bound, decompression stops early.
    /// let refused = Compression::Zlib.decompress(&bomb, 64 * 1024).unwrap_err();
    /// assert!(refused.is_limit_exceeded());
    /// assert!(Compression::Zlib.decompress(b"not zlib", 1024).unwrap_err().is_decode());
    /// # Ok::<(), kelp::Error>(())
    /// ```
    pub fn decompress(self, data: &[u8], limit: usize) -> Result<Bytes> {
        // A first allocation sized for typical ratios; it grows as needed but
        // never past the limit.
        let initial = data.len().saturating_mul(4).max(4096);
        let out = match self {
            Compression::Zlib => {
                if data.starts_with(&[0x1f, 0x8b]) {
                    read_bounded(flate2::bufread::MultiGzDecoder::new(data), limit, initial)
                } else {
                    read_bounded(flate2::bufread::ZlibDecoder::new(data), limit, initial)
                }
            }
            // Python's bz2.decompress(b"") is b"", not an error.
            Compression::Bzip2 if data.is_empty() => Ok(Bytes::new()),
            Compression::Bzip2 => {
                read_bounded(bzip2::bufread::MultiBzDecoder::new(data), limit, initial)
            }
            Compression::Lzma => {
                let stream = liblzma::stream::Stream::new_auto_decoder(
                    LZMA_MEMLIMIT,
                    liblzma::stream::CONCATENATED,
                )
                .map_err(|e| Error::decode("cannot set up the lzma decoder").with_source(e))?;
                read_bounded(
                    liblzma::bufread::XzDecoder::new_stream(data, stream),
                    limit,
                    initial,
                )
            }
            Compression::Zstd => {
                let decoder = zstd::stream::read::Decoder::with_buffer(data)
                    .map_err(|e| Error::decode("cannot set up the zstd decoder").with_source(e))?;
                read_bounded(decoder, limit, initial)
            }
            Compression::Brotli => {
                read_bounded(brotli::Decompressor::new(data, 4096), limit, initial)
            }
        };
        out.map_err(|e| match e {
            Failure::Limit => Error::new(
                ErrorKind::LimitExceeded,
                format!("decompressed body exceeds the limit of {limit} bytes"),
            ),
            Failure::Io(e) => Error::decode(format!(
                "cannot decompress the body as {} ({})",
                self.name(),
                self.mime_type()
            ))
            .with_source(e),
        })
    }
}

impl fmt::Display for Compression {
    /// Writes the canonical short name.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Compression {
    type Err = Error;

    /// Same as [`Compression::from_name`].
    fn from_str(s: &str) -> Result<Compression> {
        Compression::from_name(s)
    }
}

enum Failure {
    Limit,
    Io(io::Error),
}

/// Read a decoder to its end, keeping at most `limit` bytes.
///
/// The buffer grows geometrically but is capped at `limit`, so a bomb cannot
/// make it allocate more than the limit; one extra byte read into a probe
/// tells "exactly at the limit" from "over it".
fn read_bounded<R: Read>(mut reader: R, limit: usize, initial: usize) -> Result<Bytes, Failure> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let mut v = Vec::new();
        for i in 0..600u32 {
            v.extend_from_slice(format!("line {i}: the quick brown fox\n").as_bytes());
        }
        v
    }

    #[test]
    fn every_method_round_trips() {
        let data = sample();
        for method in Compression::ALL {
            let packed = method.compress(&data).unwrap();
            assert!(packed.len() < data.len() / 4, "{method} did not compress");
            let back = method
                .decompress(&packed, DEFAULT_DECOMPRESSION_LIMIT)
                .unwrap();
            assert_eq!(back, data, "{method}");
            // An empty body round-trips as well.
            let packed = method.compress(b"").unwrap();
            assert_eq!(
                method.decompress(&packed, 10).unwrap(),
                Bytes::new(),
                "{method}"
            );
        }
    }

    #[test]
    fn levels_are_clamped_and_decodable() {
        let data = sample();
        for method in Compression::ALL {
            for level in [0, 1, 5, 99] {
                let packed = method.compress_with_level(&data, level).unwrap();
                let back = method.decompress(&packed, data.len()).unwrap();
                assert_eq!(back, data, "{method} level {level}");
            }
        }
    }

    #[test]
    fn names_aliases_and_mime_types() {
        let cases = [
            ("gzip", Compression::Zlib),
            ("zlib", Compression::Zlib),
            ("application/x-gzip", Compression::Zlib),
            ("bzip2", Compression::Bzip2),
            ("bzip", Compression::Bzip2),
            ("application/x-bz2", Compression::Bzip2),
            ("lzma", Compression::Lzma),
            ("xz", Compression::Lzma),
            ("application/x-lzma", Compression::Lzma),
            ("zstd", Compression::Zstd),
            ("zstandard", Compression::Zstd),
            ("application/zstd", Compression::Zstd),
            ("brotli", Compression::Brotli),
            ("application/x-brotli", Compression::Brotli),
            ("  GZip ", Compression::Zlib),
            ("Application/X-Brotli", Compression::Brotli),
        ];
        for (name, method) in cases {
            assert_eq!(Compression::from_name(name).unwrap(), method, "{name}");
        }
        for method in Compression::ALL {
            assert_eq!(Compression::from_name(method.mime_type()).unwrap(), method);
            assert_eq!(Compression::from_name(method.name()).unwrap(), method);
            assert_eq!(method.name().parse::<Compression>().unwrap(), method);
        }
        let err = Compression::from_name("snappy").unwrap_err();
        assert!(err.is_config(), "{err}");
        assert!(err.to_string().contains("snappy"), "{err}");
        assert!(err.to_string().contains("zstd"), "{err}");
    }

    #[test]
    fn limit_is_enforced_and_exact_limit_passes() {
        let data = vec![b'a'; 100_000];
        for method in Compression::ALL {
            let packed = method.compress(&data).unwrap();
            let exact = method.decompress(&packed, data.len()).unwrap();
            assert_eq!(exact.len(), data.len(), "{method}");
            let err = method.decompress(&packed, data.len() - 1).unwrap_err();
            assert!(err.is_limit_exceeded(), "{method}: {err}");
            assert_eq!(
                err.message(),
                format!(
                    "decompressed body exceeds the limit of {} bytes",
                    data.len() - 1
                )
            );
            let err = method.decompress(&packed, 0).unwrap_err();
            assert!(err.is_limit_exceeded(), "{method}: {err}");
        }
    }

    #[test]
    fn bomb_is_stopped_at_the_limit() {
        // 16 MiB of zeros compress to a few KiB; a 256 KiB limit must stop it
        // long before it is all produced.
        let zeros = vec![0u8; 16 * 1024 * 1024];
        for method in [Compression::Zlib, Compression::Zstd, Compression::Lzma] {
            let packed = method.compress_with_level(&zeros, 1).unwrap();
            assert!(packed.len() < 128 * 1024, "{method}");
            let err = method.decompress(&packed, 256 * 1024).unwrap_err();
            assert!(err.is_limit_exceeded(), "{method}: {err}");
        }
    }

    #[test]
    fn corrupt_truncated_and_garbage_input_is_a_decode_error() {
        let data = sample();
        for method in Compression::ALL {
            let packed = method.compress(&data).unwrap();
            let truncated = &packed[..packed.len() / 2];
            let err = method
                .decompress(truncated, DEFAULT_DECOMPRESSION_LIMIT)
                .unwrap_err();
            assert!(err.is_decode(), "{method} truncated: {err}");
            let err = method
                .decompress(
                    b"this is not compressed at all",
                    DEFAULT_DECOMPRESSION_LIMIT,
                )
                .unwrap_err();
            assert!(err.is_decode(), "{method} garbage: {err}");
            assert!(err.to_string().contains(method.mime_type()), "{err}");
            let mut flipped = packed.to_vec();
            let mid = flipped.len() / 2;
            flipped[mid] ^= 0xff;
            flipped[mid + 1] ^= 0x55;
            let res = method.decompress(&flipped, DEFAULT_DECOMPRESSION_LIMIT);
            // A flipped byte must never be accepted as the original data.
            match res {
                Ok(out) => assert_ne!(out, data, "{method} accepted corrupt data"),
                Err(err) => assert!(err.is_decode(), "{method} flipped: {err}"),
            }
        }
    }

    #[test]
    fn empty_input_follows_python() {
        // bz2.decompress(b"") is b""; the others raise.
        assert_eq!(
            Compression::Bzip2.decompress(b"", 10).unwrap(),
            Bytes::new()
        );
        for method in [
            Compression::Zlib,
            Compression::Lzma,
            Compression::Zstd,
            Compression::Brotli,
        ] {
            let err = method.decompress(b"", 10).unwrap_err();
            assert!(err.is_decode(), "{method}: {err}");
        }
    }

    #[test]
    fn tolerant_of_concatenation_and_gzip() {
        let a = b"first part, ".repeat(10);
        let b = b"second part".repeat(10);
        let both = [a.clone(), b.clone()].concat();
        for method in [Compression::Bzip2, Compression::Lzma, Compression::Zstd] {
            let joined = [method.compress(&a).unwrap(), method.compress(&b).unwrap()].concat();
            assert_eq!(
                method.decompress(&joined, 10_000).unwrap(),
                both,
                "{method}"
            );
        }
        // zlib ignores what follows the end of the stream, as Python does.
        let mut z = Compression::Zlib.compress(&a).unwrap().to_vec();
        z.extend_from_slice(b"trailing");
        assert_eq!(Compression::Zlib.decompress(&z, 10_000).unwrap(), a);
        // A real gzip member under application/x-gzip.
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&a).unwrap();
        let gz = gz.finish().unwrap();
        assert_eq!(Compression::Zlib.decompress(&gz, 10_000).unwrap(), a);
        // zstd frames without the content size (streaming encoder).
        let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
        enc.write_all(&a).unwrap();
        let streamed = enc.finish().unwrap();
        assert_eq!(Compression::Zstd.decompress(&streamed, 10_000).unwrap(), a);
    }
}
