//! Bytes from a broker, cut into frames and decoded as the connection
//! reader does (methods and content headers included).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = kelp::__fuzz::read_frames(data);
});
