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

#[cfg_attr(not(any(feature = "zlib", feature = "bzip2", feature = "lzma", feature = "zstd", feature = "brotli")), allow(dead_code))]
mod bounded;
#[cfg(feature = "brotli")]
mod brotli;
#[cfg(feature = "bzip2")]
mod bzip2;
#[cfg(feature = "lzma")]
mod lzma;
// The round trips need every method; a build without some is tested below.
#[cfg(all(test, feature = "zlib", feature = "bzip2", feature = "lzma", feature = "zstd", feature = "brotli"))]
mod tests;
#[cfg(feature = "zlib")]
mod zlib;
#[cfg(feature = "zstd")]
mod zstd;

use std::fmt;
use std::str::FromStr;

use bytes::Bytes;

use self::bounded::Failure;
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
    /// let packed = Compression::Zlib.compress(log.as_bytes())?;
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
    /// let quick = Compression::Zlib.compress_with_level(page.as_bytes(), 1)?;
    /// let back = Compression::Zlib.decompress(&quick, page.len())?;
    /// assert_eq!(back, page.as_bytes());
    /// # Ok::<(), kelp::Error>(())
    /// ```
    // Without any method compiled in, everything after the match is unreachable.
    #[cfg_attr(not(feature = "zlib"), allow(unreachable_code, unused_variables))]
    pub fn compress_with_level(self, data: &[u8], level: u32) -> Result<Bytes> {
        let out: std::io::Result<Vec<u8>> = match self {
            #[cfg(feature = "zlib")]
            Compression::Zlib => zlib::compress(data, level),
            #[cfg(feature = "bzip2")]
            Compression::Bzip2 => bzip2::compress(data, level),
            #[cfg(feature = "lzma")]
            Compression::Lzma => lzma::compress(data, level),
            #[cfg(feature = "zstd")]
            Compression::Zstd => zstd::compress(data, level),
            #[cfg(feature = "brotli")]
            Compression::Brotli => brotli::compress(data, level),
            #[allow(unreachable_patterns)] // every method compiled in
            _ => return Err(self.compiled_out()),
        };
        out.map(Bytes::from)
            .map_err(|e| Error::encode(format!("{} compression failed", self.name())).with_source(e))
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
    #[cfg_attr(not(feature = "zlib"), allow(unreachable_code, unused_variables))]
    pub fn decompress(self, data: &[u8], limit: usize) -> Result<Bytes> {
        // A first allocation sized for typical ratios; it grows as needed but
        // never past the limit.
        let initial = data.len().saturating_mul(4).max(4096);
        let out: std::result::Result<Bytes, Failure> = match self {
            #[cfg(feature = "zlib")]
            Compression::Zlib => zlib::decompress(data, limit, initial),
            #[cfg(feature = "bzip2")]
            Compression::Bzip2 => bzip2::decompress(data, limit, initial),
            #[cfg(feature = "lzma")]
            Compression::Lzma => lzma::decompress(data, limit, initial),
            #[cfg(feature = "zstd")]
            Compression::Zstd => zstd::decompress(data, limit, initial),
            #[cfg(feature = "brotli")]
            Compression::Brotli => brotli::decompress(data, limit, initial),
            #[allow(unreachable_patterns)] // every method compiled in
            _ => return Err(self.compiled_out()),
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
            Failure::Setup(e) => e,
        })
    }

    /// The cargo feature that compiles this method in (its
    /// [`name`](Compression::name)).
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(kelp::Compression::Lzma.feature(), "lzma");
    /// ```
    pub fn feature(self) -> &'static str {
        self.name()
    }

    /// True when this build compiles the method in; a method that is left
    /// out fails with [`Unsupported`](ErrorKind::Unsupported), naming its
    /// feature.
    ///
    /// # Examples
    ///
    /// ```
    /// use kelp::Compression;
    ///
    /// let usable: Vec<Compression> = Compression::ALL.into_iter().filter(|m| m.is_available()).collect();
    /// assert!(usable.contains(&Compression::Zlib)); // a default feature
    /// ```
    pub fn is_available(self) -> bool {
        match self {
            Compression::Zlib => cfg!(feature = "zlib"),
            Compression::Bzip2 => cfg!(feature = "bzip2"),
            Compression::Lzma => cfg!(feature = "lzma"),
            Compression::Zstd => cfg!(feature = "zstd"),
            Compression::Brotli => cfg!(feature = "brotli"),
        }
    }

    /// The error for a method whose feature was left out of the build.
    fn compiled_out(self) -> Error {
        Error::feature_missing(format_args!("{} compression ({})", self.name(), self.mime_type()), self.feature())
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

#[cfg(test)]
mod availability {
    use super::*;

    #[test]
    fn a_method_left_out_is_refused_by_name() {
        for method in Compression::ALL {
            let packed = method.compress(b"abc");
            if method.is_available() {
                let back = method.decompress(&packed.unwrap(), 10).unwrap();
                assert_eq!(back.as_ref(), b"abc");
            } else {
                let err = packed.unwrap_err();
                assert_eq!(err.kind(), ErrorKind::Unsupported);
                assert!(err.message().contains(&format!("`{}` feature", method.feature())), "{err}");
                assert_eq!(method.decompress(b"abc", 10).unwrap_err().kind(), ErrorKind::Unsupported);
            }
        }
    }
}
