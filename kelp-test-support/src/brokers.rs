//! The default brokers of the tests, and checks that they are up.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::redis::{RespValue, redis_command};

/// The default AMQP URL for tests: `$KELP_TEST_AMQP_URL` if set and non-empty,
/// else `amqp://guest:guest@127.0.0.1:5672//`.
pub fn default_amqp_url() -> String {
    match std::env::var("KELP_TEST_AMQP_URL") {
        Ok(v) if !v.trim().is_empty() => v.trim().to_string(),
        _ => "amqp://guest:guest@127.0.0.1:5672//".to_string(),
    }
}

/// The default Redis URL for tests: `$KELP_TEST_REDIS_URL` if set and
/// non-empty, else `redis://127.0.0.1:6379/0`.
pub fn default_redis_url() -> String {
    match std::env::var("KELP_TEST_REDIS_URL") {
        Ok(v) if !v.trim().is_empty() => v.trim().to_string(),
        _ => "redis://127.0.0.1:6379/0".to_string(),
    }
}

const RABBIT_START_HINT: &str = "Start the default broker (guest/guest on 127.0.0.1:5672) with:\n    \
     rabbitmq-server -detached\n\
     or point KELP_TEST_AMQP_URL at a running broker. kelp's tests never skip when a broker is missing.";

const REDIS_START_HINT: &str = "Start the default Redis server with:\n    \
     redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save \"\" --appendonly no\n\
     or point KELP_TEST_REDIS_URL at a running server. kelp's tests never skip when a broker is missing.";

/// Checks that the default RabbitMQ broker ([`default_amqp_url`]) accepts TCP
/// connections and answers the AMQP 0-9-1 protocol header with a
/// `connection.start` frame; **panics** with instructions to start it
/// otherwise. Returns the URL.
///
/// Blocking, but quick (loopback; at most ~2 s to connect and 10 s for the
/// broker's answer), so it may be called at the top of async tests too.
pub fn require_rabbitmq() -> String {
    let url = default_amqp_url();
    let addr = match url_socket_addr(&url, 5672) {
        Ok(a) => a,
        Err(e) => panic!("kelp tests: cannot use AMQP URL {url:?}: {e}\n{RABBIT_START_HINT}"),
    };
    if let Err(e) = amqp_probe(addr, Duration::from_secs(10)) {
        panic!(
            "kelp tests need a running RabbitMQ broker at {url} ({addr}), but: {e}\n{RABBIT_START_HINT}"
        );
    }
    url
}

/// Async wrapper of [`require_rabbitmq`] (runs it on tokio's blocking pool).
pub async fn require_rabbitmq_async() -> String {
    match tokio::task::spawn_blocking(require_rabbitmq).await {
        Ok(url) => url,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// Checks that the default Redis server ([`default_redis_url`]) accepts TCP
/// connections and answers `PING`; **panics** with instructions to start it
/// otherwise. Returns the URL.
pub fn require_redis() -> String {
    let url = default_redis_url();
    let addr = match url_socket_addr(&url, 6379) {
        Ok(a) => a,
        Err(e) => panic!("kelp tests: cannot use Redis URL {url:?}: {e}\n{REDIS_START_HINT}"),
    };
    match redis_command(addr, &["PING"], Duration::from_secs(5)) {
        // A server that requires AUTH answers an error, which still proves it runs.
        Ok(RespValue::Simple(_)) | Ok(RespValue::Error(_)) => url,
        Ok(other) => panic!(
            "kelp tests need a running Redis server at {url} ({addr}), but PING answered {other:?}\n{REDIS_START_HINT}"
        ),
        Err(e) => panic!(
            "kelp tests need a running Redis server at {url} ({addr}), but: {e}\n{REDIS_START_HINT}"
        ),
    }
}

/// Async wrapper of [`require_redis`] (runs it on tokio's blocking pool).
pub async fn require_redis_async() -> String {
    match tokio::task::spawn_blocking(require_redis).await {
        Ok(url) => url,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// Extracts `host:port` from a URL like `scheme://[user[:pass]@]host[:port][/...]`
/// and resolves it (IPv6 hosts in brackets).
fn url_socket_addr(url: &str, default_port: u16) -> Result<SocketAddr> {
    let rest = url
        .split_once("://")
        .map(|(_, r)| r)
        .ok_or_else(|| Error::new("no scheme (expected scheme://host:port/...)"))?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let hostport = authority
        .rsplit_once('@')
        .map(|(_, h)| h)
        .unwrap_or(authority);
    let (host, port) = if let Some(stripped) = hostport.strip_prefix('[') {
        let (h, after) = stripped
            .split_once(']')
            .ok_or_else(|| Error::new("unterminated [ in host"))?;
        let port = match after.strip_prefix(':') {
            Some(p) if !p.is_empty() => p
                .parse()
                .map_err(|_| Error::new(format!("bad port {p:?}")))?,
            _ => default_port,
        };
        (h.to_string(), port)
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) if !p.is_empty() => (
                h.to_string(),
                p.parse()
                    .map_err(|_| Error::new(format!("bad port {p:?}")))?,
            ),
            Some((h, _)) => (h.to_string(), default_port),
            None => (hostport.to_string(), default_port),
        }
    };
    let host = if host.is_empty() {
        "127.0.0.1".to_string()
    } else {
        host
    };
    (host.as_str(), port)
        .to_socket_addrs()
        .map_err(|e| Error::new(format!("cannot resolve {host}:{port}: {e}")))?
        .next()
        .ok_or_else(|| Error::new(format!("{host}:{port} resolves to no address")))
}

/// Speaks the AMQP 0-9-1 protocol header to `addr` and checks that the server
/// answers with a `connection.start` method frame (frame type 1, channel 0,
/// class 10, method 10). A bare TCP accept is not enough: RabbitMQ's port can
/// accept before the broker is ready (or while its VM is stopped).
///
/// `timeout` bounds the connect and the wait for the answer.
pub fn amqp_probe(addr: SocketAddr, timeout: Duration) -> Result<()> {
    let start = Instant::now();
    let mut s = TcpStream::connect_timeout(&addr, timeout)
        .map_err(|e| Error::new(format!("cannot connect to {addr}: {e}")))?;
    let remaining = timeout
        .saturating_sub(start.elapsed())
        .max(Duration::from_millis(10));
    let _ = s.set_read_timeout(Some(remaining));
    let _ = s.set_write_timeout(Some(remaining));
    s.write_all(b"AMQP\x00\x00\x09\x01")
        .map_err(|e| Error::new(format!("cannot send the AMQP header to {addr}: {e}")))?;
    let mut buf = [0u8; 11];
    let mut got = 0;
    while got < buf.len() {
        match s.read(&mut buf[got..]) {
            Ok(0) => {
                return Err(Error::new(format!(
                    "{addr} closed the connection after {got} bytes instead of sending connection.start"
                )));
            }
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Err(Error::new(format!(
                    "{addr} accepted the connection but sent no connection.start within {timeout:?}"
                )));
            }
            Err(e) => return Err(Error::new(format!("reading from {addr}: {e}"))),
        }
    }
    // frame: type(1) channel(2) size(4) | class(2) method(2)
    if buf[0] != 1 || buf[1] != 0 || buf[2] != 0 || buf[7..11] != [0, 10, 0, 10] {
        return Err(Error::new(format!(
            "{addr} did not answer with an AMQP connection.start frame (got {:02x?})",
            &buf[..got]
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_parsing() {
        let a = url_socket_addr("amqp://guest:guest@127.0.0.1:5672//", 5672).unwrap();
        assert_eq!(a, "127.0.0.1:5672".parse().unwrap());
        let a = url_socket_addr("amqp://127.0.0.1", 5672).unwrap();
        assert_eq!(a.port(), 5672);
        let a = url_socket_addr("redis://:secret@127.0.0.1:6380/2", 6379).unwrap();
        assert_eq!(a, "127.0.0.1:6380".parse().unwrap());
        let a = url_socket_addr("amqp://u:p@[::1]:5673/v", 5672).unwrap();
        assert_eq!(a, "[::1]:5673".parse().unwrap());
        let a = url_socket_addr("amqp://u:p@[::1]/v", 5672).unwrap();
        assert_eq!(a, "[::1]:5672".parse().unwrap());
        assert!(url_socket_addr("127.0.0.1:5672", 5672).is_err());
    }
}
