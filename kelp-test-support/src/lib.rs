//! Test harness for kelp's integration tests.
//!
//! kelp's tests run against **real** brokers and inject **real** faults. This
//! crate provides the pieces they need:
//!
//! * [`require_rabbitmq`] / [`require_redis`]: fail loudly (panic with the
//!   command that starts the broker) when the default broker is not running.
//!   Tests never skip.
//! * [`unique_name`]: per-call unique queue/exchange/key names.
//! * [`RabbitNode`] / [`RabbitCluster`]: extra RabbitMQ nodes on free ports,
//!   with the PID of their Erlang VM (`beam.smp`) so tests can `SIGKILL`,
//!   `SIGSTOP` and `SIGCONT` them; graceful stop, restart on the same ports and
//!   data directory, a TLS listener, extra `rabbitmq.conf` lines, clustering.
//! * [`RedisServer`] / [`RedisSentinel`]: extra `redis-server` and Sentinel
//!   processes on free ports.
//! * [`FaultProxy`]: a TCP proxy between kelp and a broker whose behaviour
//!   (pass, reset, black hole, delay, close after N bytes, refuse) can be
//!   switched at run time.
//! * [`tls::generate_test_pki`]: a CA, a server certificate for
//!   `localhost`/`127.0.0.1` and a client certificate, made with the `openssl`
//!   command line tool.
//! * [`eventually`] / [`eventually_blocking`]: poll a condition until it
//!   holds, panicking with what was awaited after a bound that only turns a
//!   hang into a failure ([`wait_for`] / [`wait_for_async`] return an error
//!   instead).
//! * [`kill_pid`], [`free_port`], [`amqp_probe`].
//!
//! # Processes and clean-up
//!
//! Every process this crate starts is killed when its handle is dropped
//! (including during a panic's unwinding). Processes are started with an
//! environment marker (`KELP_TEST_OWNER=<pid>:<start time>`); if a test binary
//! dies without unwinding (SIGKILL, abort), the next test binary that starts a
//! node or server calls [`reap_orphans`], which kills marked processes whose
//! owner is gone and removes their temporary directories.
//!
//! # Running tests that start nodes
//!
//! RabbitMQ boots are CPU heavy (~5-10 s each on a 2-core machine). Boots in
//! one process are serialised by a process-wide lock (only the boot itself,
//! not the lifetime of a node), so tests that start nodes may run in parallel
//! threads; the 60 s boot timeout (override with
//! `KELP_TEST_RABBIT_START_TIMEOUT_SECS`) then applies to one boot at a time.
//!
//! # Environment
//!
//! * `KELP_TEST_AMQP_URL`, `KELP_TEST_REDIS_URL`: the default brokers.
//! * `KELP_RABBITMQ_SBIN`: directory holding the *real* `rabbitmq-server` and
//!   `rabbitmqctl` scripts (default: `/usr/lib/rabbitmq/bin`, the Debian
//!   location; `/usr/sbin/rabbitmq-server` on Debian is a wrapper that switches
//!   to the `rabbitmq` user and is not used).
//! * `KELP_REDIS_SERVER`: the `redis-server` binary (default: from `PATH`).
//! * `KELP_TEST_TMPDIR`: where temporary node directories go (default: the
//!   system temp dir).

#![warn(missing_docs)]

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub mod haproxy;
mod poll;
mod procs;
pub mod proxy;
pub mod rabbit;
pub mod redis;
pub mod tls;

pub use haproxy::HaProxy;
pub use poll::{Check, eventually, eventually_blocking, wait_for, wait_for_async};
pub use procs::reap_orphans;
pub use proxy::{FaultMode, FaultProxy};
pub use rabbit::{RabbitCluster, RabbitNode, RabbitNodeOptions, TlsListener};
pub use redis::{
    RedisOptions, RedisSentinel, RedisServer, RespValue, SentinelOptions, redis_command,
};

/// The error type of this crate: a human-readable message.
///
/// `Debug` prints the message verbatim (with its newlines), so
/// `.unwrap()`/`.expect()` in a test shows e.g. the tail of a node's log
/// readably.
#[derive(Clone, PartialEq, Eq)]
pub struct Error {
    msg: String,
    pub(crate) port_conflict: bool,
}

impl Error {
    pub(crate) fn new(msg: impl Into<String>) -> Self {
        Error {
            msg: msg.into(),
            port_conflict: false,
        }
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.msg
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)
    }
}

impl std::error::Error for Error {}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

// ---------------------------------------------------------------------------
// Default brokers
// ---------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------
// Names and ports
// ---------------------------------------------------------------------------

static NAME_COUNTER: AtomicU64 = AtomicU64::new(0);

fn nanos_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// A name unique to this call: `<prefix>-<pid>-<counter>-<time>`, e.g.
/// `orders-4242-7-18c2f9a1b3`. Safe for queues, exchanges and Redis keys
/// (only the prefix may bring other characters than `[0-9a-z-]`).
pub fn unique_name(prefix: &str) -> String {
    let n = NAME_COUNTER.fetch_add(1, Ordering::Relaxed);
    // The low 40 bits of the wall clock in microseconds: changes between runs,
    // short enough to read.
    let t = (nanos_now() / 1_000) & 0xff_ffff_ffff;
    format!("{prefix}-{}-{n}-{t:x}", std::process::id())
}

/// Picks a TCP port that is currently free on 127.0.0.1.
///
/// Ports are picked at random **below** the kernel's ephemeral range
/// (`/proc/sys/net/ipv4/ip_local_port_range`, usually from 32768), between
/// 10000 and its start, so that an outgoing connection can never occupy the
/// port between this call and the server's bind, or while a node is down
/// between `kill()` and `restart()`. Well-known ports of the default services
/// (5672, 15672, 25672, 6379, 26379, 4369, ...) are never returned, nor a port
/// this process already handed out.
pub fn free_port() -> u16 {
    procs::free_port()
}

// ---------------------------------------------------------------------------
// Signals
// ---------------------------------------------------------------------------

/// A signal for [`kill_pid`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    /// SIGKILL
    Kill,
    /// SIGTERM
    Term,
    /// SIGINT
    Int,
    /// SIGHUP
    Hup,
    /// SIGSTOP: freeze the process.
    Stop,
    /// SIGCONT: thaw a stopped process.
    Cont,
    /// Any other signal number.
    Other(i32),
}

impl Signal {
    /// The raw signal number.
    pub fn as_raw(self) -> i32 {
        match self {
            Signal::Kill => libc::SIGKILL,
            Signal::Term => libc::SIGTERM,
            Signal::Int => libc::SIGINT,
            Signal::Hup => libc::SIGHUP,
            Signal::Stop => libc::SIGSTOP,
            Signal::Cont => libc::SIGCONT,
            Signal::Other(n) => n,
        }
    }
}

/// Sends `signal` to process `pid` (`kill(2)`).
pub fn kill_pid(pid: u32, signal: Signal) -> io::Result<()> {
    if pid == 0 || pid > i32::MAX as u32 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("bad pid {pid}"),
        ));
    }
    // SAFETY: kill(2) has no memory-safety preconditions.
    let rc = unsafe { libc::kill(pid as libc::pid_t, signal.as_raw()) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Whether process `pid` exists and is not a zombie.
pub fn pid_alive(pid: u32) -> bool {
    procs::pid_alive(pid)
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

    #[test]
    fn unique_names_differ() {
        let a = unique_name("q");
        let b = unique_name("q");
        assert_ne!(a, b);
        assert!(a.starts_with(&format!("q-{}-", std::process::id())));
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
    }
}
