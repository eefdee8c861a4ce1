//! `require_*` must fail loudly, with the command that starts the broker.
//! Its own test binary with a single test, because it changes environment
//! variables (process-global).

use kelp_test_support::{free_port, require_rabbitmq, require_redis};

fn panic_message(f: impl FnOnce() -> String + std::panic::UnwindSafe) -> String {
    let err = std::panic::catch_unwind(f).expect_err("require_* returned instead of panicking");
    err.downcast_ref::<String>()
        .cloned()
        .or_else(|| err.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

#[test]
fn require_panics_with_start_instructions_when_broker_is_down() {
    let dead = free_port(); // nothing listens there
    // SAFETY: this binary has exactly one test; no other thread reads the environment.
    unsafe {
        std::env::set_var(
            "KELP_TEST_AMQP_URL",
            format!("amqp://guest:guest@127.0.0.1:{dead}//"),
        );
        std::env::set_var("KELP_TEST_REDIS_URL", format!("redis://127.0.0.1:{dead}/0"));
    }
    let m = panic_message(require_rabbitmq);
    assert!(m.contains("rabbitmq-server -detached"), "{m}");
    assert!(m.contains(&dead.to_string()), "{m}");
    let m = panic_message(require_redis);
    assert!(
        m.contains(
            "redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save \"\" --appendonly no"
        ),
        "{m}"
    );
    // Something that accepts TCP but does not speak AMQP is rejected too.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        use std::io::{Read, Write};
        let (mut s, _) = l.accept().unwrap();
        let mut hdr = [0u8; 8];
        let _ = s.read_exact(&mut hdr);
        let _ = s.write_all(b"HTTP/1.0 400 Bad Request\r\n\r\n");
    });
    unsafe {
        std::env::set_var(
            "KELP_TEST_AMQP_URL",
            format!("amqp://guest:guest@127.0.0.1:{port}//"),
        );
    }
    let m = panic_message(require_rabbitmq);
    assert!(
        m.contains("did not answer with an AMQP connection.start"),
        "{m}"
    );
    assert!(m.contains("rabbitmq-server -detached"), "{m}");
    server.join().unwrap();
}
