//! Replays the fuzz corpus in `fuzz/seeds/` through the same entry points the
//! fuzz targets call, on stable Rust: every input the fuzzers kept (and
//! every crash since fixed) is checked again by a plain `cargo test`.

use std::fmt::Display;
use std::fs;
use std::path::PathBuf;

/// Each target's minimised corpus holds over 200 files: fewer than this
/// means it went missing or was cut down to the hand-written seeds.
const MIN_FILES: usize = 100;

/// The files of one target's corpus, sorted, as (name, bytes).
fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/seeds")
        .join(target);
    let entries =
        fs::read_dir(&dir).unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()));
    let mut files: Vec<(String, Vec<u8>)> = entries
        .map(|entry| {
            let path = entry
                .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
                .path();
            let bytes =
                fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            (name, bytes)
        })
        .collect();
    files.sort();
    assert!(
        files.len() >= MIN_FILES,
        "{} holds {} files; the corpus for {target} is missing (see fuzz/README.md)",
        dir.display(),
        files.len()
    );
    assert!(
        files.iter().any(|(name, _)| name.starts_with("hand-")),
        "{} lost its hand-written seeds (python3 fuzz/gen_seeds.py writes them)",
        dir.display()
    );
    files
}

/// Run every file through `decode` (which panics on a bug). The hand-written
/// seeds are real, well-formed input: they must decode, to something `good`.
fn replay<T, E: Display>(
    target: &str,
    decode: impl Fn(&[u8]) -> Result<T, E>,
    good: impl Fn(&T) -> bool,
) {
    for (name, bytes) in corpus(target) {
        let result = decode(&bytes);
        if name.starts_with("hand-") {
            match result {
                Ok(value) => assert!(good(&value), "{target}/{name} decoded to too little"),
                Err(e) => panic!("{target}/{name} does not decode: {e}"),
            }
        }
    }
}

#[test]
fn frames_corpus() {
    replay("frames", kelp::__fuzz::read_frames, |&frames| frames > 0);
}

#[test]
fn field_table_corpus() {
    replay("field_table", kelp::__fuzz::field_table, |_| true);
}

#[test]
fn content_header_corpus() {
    replay("content_header", kelp::__fuzz::content_header, |_| true);
}

#[test]
fn url_corpus() {
    replay(
        "url",
        |bytes| match std::str::from_utf8(bytes) {
            Ok(text) => kelp::__fuzz::url(text),
            // As the fuzz target does: only text reaches the parser.
            Err(_) => Ok(0),
        },
        |&urls| urls > 0,
    );
}

#[test]
fn redis_envelope_corpus() {
    // Some real envelopes carry an empty body: decoding is what counts.
    replay("redis_envelope", kelp::__fuzz::redis_envelope, |_| true);
}
