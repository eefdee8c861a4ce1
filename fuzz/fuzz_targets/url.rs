//! Broker URLs (and `;` lists of them) as a user or a config file gives them.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // URLs arrive as Rust strings; other bytes cannot reach the parser.
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = kelp::__fuzz::url(text);
    }
});
