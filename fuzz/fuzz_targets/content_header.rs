//! A content header frame's payload: body size and message properties.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = kelp::__fuzz::content_header(data);
});
