//! A Kombu Redis envelope, as a consumer pops it from a queue's list.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = kelp::__fuzz::redis_envelope(data);
});
