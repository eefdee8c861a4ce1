//! RedisServer / RedisSentinel self-tests with real redis-server processes.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use kelp_test_support::{
    RedisOptions, RedisSentinel, RedisServer, RespValue, SentinelOptions, eventually_blocking,
    pid_alive,
};

/// Sends a raw RESP PING and returns what came back (or the error).
fn raw_ping(addr: SocketAddr, read_timeout: Duration) -> std::io::Result<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(read_timeout))?;
    s.write_all(b"*1\r\n$4\r\nPING\r\n")?;
    let mut buf = [0u8; 7];
    s.read_exact(&mut buf)?;
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

fn info_field(server_reply: RespValue, field: &str) -> Option<String> {
    let text = server_reply.as_text()?;
    text.lines().find_map(|l| {
        l.strip_prefix(&format!("{field}:"))
            .map(|v| v.trim().to_string())
    })
}

#[test]
fn redis_server_lifecycle() {
    let r = RedisServer::start().expect("redis starts");
    let port = r.port();
    assert_ne!(port, 6379);
    assert_eq!(r.url(), format!("redis://127.0.0.1:{port}/0"));
    let pid = r.pid().unwrap();
    assert_eq!(
        std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .unwrap()
            .trim(),
        "redis-server"
    );
    let dir = r.dir().to_path_buf();

    assert_eq!(
        raw_ping(r.addr(), Duration::from_secs(10)).unwrap(),
        "+PONG\r\n"
    );
    assert_eq!(
        r.command(&["SET", "k", "v"]).unwrap(),
        RespValue::Simple("OK".into())
    );

    // Frozen: connect works (backlog), no answer.
    r.freeze().unwrap();
    let e = raw_ping(r.addr(), Duration::from_millis(700)).expect_err("frozen redis answered");
    assert!(
        matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
        "{e}"
    );
    r.thaw().unwrap();
    assert_eq!(
        raw_ping(r.addr(), Duration::from_secs(10)).unwrap(),
        "+PONG\r\n"
    );

    // Killed: port refuses.
    r.kill();
    assert!(!pid_alive(pid));
    assert!(r.pid().is_none());
    let e = TcpStream::connect(r.addr()).expect_err("killed redis still accepts");
    assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused);

    // Restarted on the same port (no persistence: data gone).
    r.restart().unwrap();
    assert_eq!(r.port(), port);
    assert_eq!(
        raw_ping(r.addr(), Duration::from_secs(10)).unwrap(),
        "+PONG\r\n"
    );
    assert_eq!(r.command(&["GET", "k"]).unwrap(), RespValue::Bulk(None));
    let pid2 = r.pid().unwrap();

    // Graceful stop, then drop cleans up.
    r.stop().unwrap();
    assert!(!pid_alive(pid2));
    drop(r);
    assert!(!dir.exists());
}

#[test]
fn redis_extra_args_and_drop_kills() {
    let r = RedisOptions::default()
        .args(["--requirepass", "s3cret"])
        .start()
        .expect("redis starts");
    let pid = r.pid().unwrap();
    match r.command(&["GET", "x"]).unwrap() {
        RespValue::Error(e) => assert!(e.starts_with("NOAUTH"), "{e}"),
        other => panic!("expected NOAUTH, got {other:?}"),
    }
    assert_eq!(
        r.command(&["AUTH", "s3cret"]).unwrap(),
        RespValue::Simple("OK".into())
    );
    r.freeze().unwrap();
    drop(r); // frozen: Drop must still kill it
    assert!(!pid_alive(pid));
}

#[test]
fn sentinel_reports_master_and_fails_over() {
    let master = RedisServer::start().expect("master");
    let replica = RedisOptions::default()
        .replica_of(master.port())
        .start()
        .expect("replica");
    eventually_blocking("the replica syncs", Duration::from_secs(30), || {
        replica
            .command(&["INFO", "replication"])
            .ok()
            .and_then(|v| info_field(v, "master_link_status"))
            .as_deref()
            == Some("up")
    });

    let name = "kelp-test-master";
    let sentinel =
        RedisSentinel::start(SentinelOptions::new(name, master.port(), 1)).expect("sentinel");
    assert_eq!(
        raw_ping(sentinel.addr(), Duration::from_secs(10)).unwrap(),
        "+PONG\r\n"
    );
    assert_eq!(
        sentinel.master_addr().unwrap(),
        Some(("127.0.0.1".to_string(), master.port()))
    );
    match sentinel
        .command(&["SENTINEL", "get-master-addr-by-name", "no-such-master"])
        .unwrap()
    {
        RespValue::Array(None) | RespValue::Bulk(None) => {}
        other => panic!("unknown master: {other:?}"),
    }

    // The sentinel must have discovered the replica before a failover can pick it.
    eventually_blocking(
        "the sentinel sees the replica",
        Duration::from_secs(30),
        || {
            matches!(sentinel.command(&["SENTINEL", "replicas", name]),
            Ok(RespValue::Array(Some(ref v))) if !v.is_empty())
        },
    );

    // Kill the master: the sentinel promotes the replica (down-after 1 s).
    master.kill();
    eventually_blocking(
        "the sentinel names the replica as the master",
        Duration::from_secs(60),
        || match sentinel.master_addr() {
            Ok(Some((_, port))) if port == replica.port() => Ok(()),
            other => Err(format!(
                "master {other:?}; sentinel log:\n{}",
                sentinel.log_tail(40)
            )),
        },
    );
    eventually_blocking("the replica is promoted", Duration::from_secs(30), || {
        replica
            .command(&["INFO", "replication"])
            .ok()
            .and_then(|v| info_field(v, "role"))
            .as_deref()
            == Some("master")
    });

    let spid = sentinel.pid().unwrap();
    drop(sentinel);
    assert!(!pid_alive(spid));
}
