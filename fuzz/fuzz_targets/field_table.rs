//! An AMQP field table (message headers, arguments) as a broker sends it.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = kelp::__fuzz::field_table(data);
});
