//! Pieces shared by every peer: the broker address, the workload
//! parameters, process CPU time, and the measurement of one timed section.

use std::fmt;
use std::future::Future;
use std::time::{Duration, Instant};

use kelp_cli::measure::BenchResult;

/// The broker used when `KELP_BENCH_URL` is not set.
pub const DEFAULT_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

/// Round trips made before the measured ones (connection and queue warm-up),
/// by every peer, Kombu included.
pub const ROUND_TRIP_WARMUP: u64 = 100;

/// How long connecting to the broker may take before the peer gives up.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long any single wait inside a workload (a confirm, a delivery) may
/// take before the peer reports the broker as stuck.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(60);

/// One benchmark workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Workload {
    /// Publish persistent messages with publisher confirms, `window` in flight.
    Publish,
    /// Consume a pre-filled queue with manual acks, one ack per message.
    Consume,
    /// Sequential publish → delivery round trips on two channels of one connection.
    RoundTrip,
}

impl Workload {
    /// Every workload, in the order the bench runs them.
    pub const ALL: [Workload; 3] = [Workload::Publish, Workload::Consume, Workload::RoundTrip];

    /// Short name used in tables, JSON and the Kombu script's command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Workload::Publish => "publish",
            Workload::Consume => "consume",
            Workload::RoundTrip => "round_trip",
        }
    }

    /// Parse [`Workload::as_str`] (also accepts `rtt` and `round-trip`).
    pub fn parse(text: &str) -> Option<Workload> {
        match text.trim() {
            "publish" => Some(Workload::Publish),
            "consume" => Some(Workload::Consume),
            "round_trip" | "round-trip" | "rtt" => Some(Workload::RoundTrip),
            _ => None,
        }
    }

    /// What the latency column of this workload's rows holds.
    pub fn latency_meaning(self) -> &'static str {
        match self {
            Workload::Publish => "publish→confirm latency per message",
            Workload::Consume => "none (throughput only)",
            Workload::RoundTrip => "publish→delivery round trip",
        }
    }
}

impl fmt::Display for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Parameters shared by every peer in one run.
#[derive(Debug, Clone)]
pub struct Params {
    /// `amqp://user:pass@host:port/vhost`.
    pub url: String,
    /// Messages published (publish) or consumed (consume).
    pub messages: u64,
    /// Body size in bytes.
    pub size: usize,
    /// Publishes kept in flight before waiting for a confirm.
    pub window: usize,
    /// Consumer prefetch (basic.qos prefetch_count).
    pub prefetch: u16,
    /// Measured round trips (after [`ROUND_TRIP_WARMUP`] unmeasured ones).
    pub round_trips: u64,
}

impl Default for Params {
    fn default() -> Params {
        Params {
            url: DEFAULT_URL.to_owned(),
            messages: 20_000,
            size: 100,
            window: 1_000,
            prefetch: 1_000,
            round_trips: 2_000,
        }
    }
}

impl Params {
    /// Read `KELP_BENCH_URL`, `KELP_BENCH_MESSAGES`, `KELP_BENCH_SIZE` (the
    /// first size when it is a list), `KELP_BENCH_WINDOW`,
    /// `KELP_BENCH_PREFETCH` and `KELP_BENCH_ROUND_TRIPS`, defaulting to
    /// [`Params::default`].
    pub fn from_env() -> Result<Params, String> {
        let defaults = Params::default();
        let size = match env_list::<usize>("KELP_BENCH_SIZE")? {
            Some(sizes) => sizes[0],
            None => defaults.size,
        };
        let params = Params {
            url: std::env::var("KELP_BENCH_URL").unwrap_or(defaults.url),
            messages: env_num("KELP_BENCH_MESSAGES")?.unwrap_or(defaults.messages),
            size,
            window: env_num("KELP_BENCH_WINDOW")?.unwrap_or(defaults.window),
            prefetch: env_num("KELP_BENCH_PREFETCH")?.unwrap_or(defaults.prefetch),
            round_trips: env_num("KELP_BENCH_ROUND_TRIPS")?.unwrap_or(defaults.round_trips),
        };
        params.validate()?;
        Ok(params)
    }

    /// Reject parameters no peer can run with.
    pub fn validate(&self) -> Result<(), String> {
        if self.messages == 0 {
            return Err("the message count must be at least 1".to_owned());
        }
        if self.window == 0 {
            return Err("the confirm window must be at least 1".to_owned());
        }
        if self.prefetch == 0 {
            return Err("the prefetch must be at least 1 (0 means unlimited in AMQP)".to_owned());
        }
        if self.round_trips == 0 {
            return Err("the round-trip count must be at least 1".to_owned());
        }
        if is_redis_url(&self.url) {
            return Ok(());
        }
        AmqpUrl::parse(&self.url).map(|_| ())
    }
}

/// The Redis server used by the Redis bench when `KELP_BENCH_REDIS_URL` is not set.
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379/0";

/// `redis://...` or `rediss://...` (the Redis bench's peers take these).
pub fn is_redis_url(url: &str) -> bool {
    url.starts_with("redis://") || url.starts_with("rediss://")
}

/// Read a number from the environment; `None` when unset or empty.
pub fn env_num<T: std::str::FromStr>(name: &str) -> Result<Option<T>, String> {
    match std::env::var(name) {
        Ok(text) if !text.trim().is_empty() => text
            .trim()
            .replace('_', "")
            .parse()
            .map(Some)
            .map_err(|_| format!("{name}={text:?} is not a valid number")),
        _ => Ok(None),
    }
}

/// Read a comma-separated list of numbers from the environment.
pub fn env_list<T: std::str::FromStr>(name: &str) -> Result<Option<Vec<T>>, String> {
    match std::env::var(name) {
        Ok(text) if !text.trim().is_empty() => text
            .split(',')
            .map(|item| {
                item.trim()
                    .replace('_', "")
                    .parse()
                    .map_err(|_| format!("{name}={text:?}: {item:?} is not a valid number"))
            })
            .collect::<Result<Vec<T>, String>>()
            .map(Some),
        _ => Ok(None),
    }
}

/// A parsed `amqp://` URL, given to each client in its own form.
///
/// The vhost follows Kombu's reading: the percent-decoded path after the
/// first `/`, and `/` when that is empty (so `amqp://h`, `amqp://h/`,
/// `amqp://h//` and `amqp://h/%2f` all mean vhost `/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmqpUrl {
    /// Host name or address (without IPv6 brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// User name.
    pub user: String,
    /// Password.
    pub password: String,
    /// Virtual host.
    pub vhost: String,
}

impl AmqpUrl {
    /// Parse `amqp://[user[:password]@]host[:port][/vhost]` (`pyamqp://` too).
    pub fn parse(url: &str) -> Result<AmqpUrl, String> {
        let rest = url
            .strip_prefix("amqp://")
            .or_else(|| url.strip_prefix("pyamqp://"))
            .ok_or_else(|| format!("{url:?}: only plain amqp:// URLs are supported by the peers"))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, ""),
        };
        let (userinfo, hostport) = match authority.rfind('@') {
            Some(i) => (Some(&authority[..i]), &authority[i + 1..]),
            None => (None, authority),
        };
        let (user, password) = match userinfo {
            Some(info) => match info.split_once(':') {
                Some((u, p)) => (percent_decode(u)?, percent_decode(p)?),
                None => (percent_decode(info)?, "guest".to_owned()),
            },
            None => ("guest".to_owned(), "guest".to_owned()),
        };
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (host, after) = v6
                .split_once(']')
                .ok_or_else(|| format!("{url:?}: unclosed '[' in the host"))?;
            (host.to_owned(), after.strip_prefix(':'))
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h.to_owned(), Some(p)),
                None => (hostport.to_owned(), None),
            }
        };
        let port = match port {
            Some(p) if !p.is_empty() => p.parse().map_err(|_| format!("{url:?}: bad port {p:?}"))?,
            _ => 5672,
        };
        let host = if host.is_empty() { "127.0.0.1".to_owned() } else { host };
        let vhost = percent_decode(path.split('?').next().unwrap_or(""))?;
        let vhost = if vhost.is_empty() { "/".to_owned() } else { vhost };
        Ok(AmqpUrl {
            host,
            port,
            user,
            password,
            vhost,
        })
    }

    /// The URL in the AMQP URI spec's form (vhost percent-encoded), for lapin.
    pub fn to_uri(&self) -> String {
        format!(
            "amqp://{}:{}@{}:{}/{}",
            percent_encode(&self.user),
            percent_encode(&self.password),
            self.host_for_uri(),
            self.port,
            percent_encode(&self.vhost)
        )
    }

    /// The address without credentials, for messages.
    pub fn display(&self) -> String {
        format!(
            "amqp://{}:{}/{}",
            self.host_for_uri(),
            self.port,
            percent_encode(&self.vhost)
        )
    }

    fn host_for_uri(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        }
    }

    /// `host:port`, for a plain TCP check.
    pub fn socket_addr(&self) -> String {
        format!("{}:{}", self.host_for_uri(), self.port)
    }
}

fn percent_decode(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("bad percent escape in {text:?}"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("{text:?} does not decode to UTF-8"))
}

fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Check that something accepts TCP connections at the broker's address, so
/// that an absent RabbitMQ is reported as such rather than as a client error.
pub fn check_broker(url: &str) -> Result<(), String> {
    use std::net::{TcpStream, ToSocketAddrs};
    let parsed = AmqpUrl::parse(url)?;
    let addrs: Vec<_> = parsed
        .socket_addr()
        .to_socket_addrs()
        .map_err(|e| {
            format!(
                "RabbitMQ is not reachable: cannot resolve {}: {e}",
                parsed.socket_addr()
            )
        })?
        .collect();
    let mut last = None;
    for addr in &addrs {
        match TcpStream::connect_timeout(addr, Duration::from_secs(3)) {
            Ok(_) => return Ok(()),
            Err(e) => last = Some(e),
        }
    }
    Err(format!(
        "RabbitMQ is not reachable at {} ({}); start it or set KELP_BENCH_URL",
        parsed.display(),
        last.map_or_else(|| "no address".to_owned(), |e| e.to_string())
    ))
}

/// Process CPU time (user + system) of the whole process, all threads,
/// from `getrusage(RUSAGE_SELF)` (microsecond resolution).
pub fn process_cpu_time() -> Duration {
    // SAFETY: getrusage only writes into the zeroed struct we pass it.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        if libc::getrusage(libc::RUSAGE_SELF, &mut usage) != 0 {
            return Duration::ZERO;
        }
        usage
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, (t.tv_usec as u32).saturating_mul(1_000));
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// `ct` or `mt`, after the tokio runtime the caller runs on, so that rows
/// are named `lapin/ct`, `amqprs/mt`...
pub fn runtime_tag() -> &'static str {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::CurrentThread) => "ct",
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => "mt",
        _ => "rt",
    }
}

/// A queue name no concurrent run uses.
pub fn unique_queue(peer: &str, workload: Workload) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("kelp-bench-{peer}-{workload}-{}-{nanos}", std::process::id())
}

/// The wall clock and process CPU time at the start of a timed section.
#[derive(Debug, Clone, Copy)]
pub struct Timer {
    start: Instant,
    cpu: Duration,
}

impl Timer {
    /// Start timing now.
    pub fn start() -> Timer {
        let cpu = process_cpu_time();
        Timer {
            start: Instant::now(),
            cpu,
        }
    }

    /// Stop timing and build the row; `latencies_ns` is sorted here.
    pub fn finish(self, name: String, messages: u64, size: usize, mut latencies_ns: Vec<u64>) -> BenchResult {
        let elapsed = self.start.elapsed();
        let cpu = process_cpu_time().saturating_sub(self.cpu);
        latencies_ns.sort_unstable();
        BenchResult {
            name,
            messages,
            size,
            elapsed,
            latencies_ns,
            cpu: Some(cpu),
        }
    }
}

/// Nanoseconds since `since`, as stored in [`BenchResult::latencies_ns`].
pub fn nanos_since(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// Attach what was being done to a client error.
pub(crate) trait Context<T> {
    fn ctx(self, what: impl fmt::Display) -> Result<T, String>;
}

impl<T, E: fmt::Display> Context<T> for Result<T, E> {
    fn ctx(self, what: impl fmt::Display) -> Result<T, String> {
        self.map_err(|e| format!("{what}: {e}"))
    }
}

/// Bound a wait that must not hang the bench.
pub(crate) async fn bounded<T>(
    what: impl fmt::Display,
    limit: Duration,
    fut: impl Future<Output = T>,
) -> Result<T, String> {
    tokio::time::timeout(limit, fut)
        .await
        .map_err(|_| format!("{what}: no answer from the broker within {limit:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        let u = AmqpUrl::parse("amqp://guest:guest@127.0.0.1:5672/%2f").unwrap();
        assert_eq!((u.host.as_str(), u.port, u.vhost.as_str()), ("127.0.0.1", 5672, "/"));
        assert_eq!(AmqpUrl::parse("amqp://h//").unwrap().vhost, "/");
        assert_eq!(AmqpUrl::parse("amqp://h").unwrap().vhost, "/");
        let u = AmqpUrl::parse("amqp://a%40b:p%3Aw@[::1]:5673/dev").unwrap();
        assert_eq!(
            (
                u.user.as_str(),
                u.password.as_str(),
                u.host.as_str(),
                u.port,
                u.vhost.as_str()
            ),
            ("a@b", "p:w", "::1", 5673, "dev")
        );
        assert_eq!(u.to_uri(), "amqp://a%40b:p%3Aw@[::1]:5673/dev");
        assert!(AmqpUrl::parse("redis://h").is_err());
    }

    #[test]
    fn cpu_time_moves() {
        let before = process_cpu_time();
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_add(i * i);
        }
        std::hint::black_box(x);
        assert!(process_cpu_time() > before);
    }
}
