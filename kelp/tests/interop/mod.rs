//! The Python side of the Kombu interop tests: finding the interpreter and
//! running `kombu_peer.py` (shared by `kombu_interop.rs` and
//! `kombu_redis_interop.rs`).

#![allow(dead_code)]

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::Value as Json;

/// The Kombu peer script.
pub const PEER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/kombu_peer.py");

/// The interpreter with Kombu.
pub fn python() -> String {
    if let Ok(python) = std::env::var("KELP_PYTHON") {
        return python;
    }
    let venv = concat!(env!("CARGO_MANIFEST_DIR"), "/../.venv-interop/bin/python");
    if std::path::Path::new(venv).exists() {
        return venv.to_owned();
    }
    panic!(
        "the Kombu interop tests need Python with kombu: run scripts/python-env.sh \
         (it creates .venv-interop) or set KELP_PYTHON to such an interpreter"
    );
}

/// One JSON line the peer printed.
pub fn parse_line(line: &str) -> Json {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("bad line from the Kombu peer {line:?}: {e}"))
}

/// Run the Kombu peer with `args`, feeding `stdin`; its JSON output lines.
pub async fn kombu(args: Vec<String>, stdin: String) -> Vec<Json> {
    tokio::task::spawn_blocking(move || {
        let python = python();
        let mut child = Command::new(&python)
            .arg(PEER)
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {python:?} (KELP_PYTHON): {e}"));
        child.stdin.take().expect("piped stdin").write_all(stdin.as_bytes()).expect("write to the Kombu peer");
        let out = child.wait_with_output().expect("wait for the Kombu peer");
        assert!(
            out.status.success(),
            "the Kombu peer failed ({}) for {args:?}:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("the Kombu peer prints UTF-8").lines().map(parse_line).collect()
    })
    .await
    .expect("the Kombu peer thread")
}
