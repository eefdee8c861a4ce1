//! Round trips, aliases and the decompression bound, for the codecs compiled in.
use std::io::Write;

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
    let mut gz = ::flate2::write::GzEncoder::new(Vec::new(), ::flate2::Compression::default());
    gz.write_all(&a).unwrap();
    let gz = gz.finish().unwrap();
    assert_eq!(Compression::Zlib.decompress(&gz, 10_000).unwrap(), a);
    // zstd frames without the content size (streaming encoder).
    let mut enc = ::zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
    enc.write_all(&a).unwrap();
    let streamed = enc.finish().unwrap();
    assert_eq!(Compression::Zstd.decompress(&streamed, 10_000).unwrap(), a);
}
