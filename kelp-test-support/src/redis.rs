//! Extra Redis servers and Sentinels, plus a minimal blocking RESP client.
//!
//! [`RedisServer`] runs `redis-server` in the foreground as a child process
//! (its PID is the server's), on a free port on 127.0.0.1, with no
//! persistence (`--save "" --appendonly no`) and its own working directory.
//! [`RedisSentinel`] runs `redis-server <generated sentinel.conf> --sentinel`
//! with small `down-after-milliseconds` / `failover-timeout` so failover tests
//! take seconds.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::procs;
use crate::error::{Error, Result};
use crate::signals::{Signal, kill_pid};

// ---------------------------------------------------------------------------
// RESP
// ---------------------------------------------------------------------------

/// A RESP2 reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RespValue {
    /// `+OK`
    Simple(String),
    /// `-ERR ...`
    Error(String),
    /// `:42`
    Integer(i64),
    /// `$n ...` (`None` for the null bulk string `$-1`).
    Bulk(Option<Vec<u8>>),
    /// `*n ...` (`None` for the null array `*-1`).
    Array(Option<Vec<RespValue>>),
}

impl RespValue {
    /// The value as text: simple strings, errors, integers and bulk strings.
    pub fn as_text(&self) -> Option<String> {
        match self {
            RespValue::Simple(s) | RespValue::Error(s) => Some(s.clone()),
            RespValue::Integer(i) => Some(i.to_string()),
            RespValue::Bulk(Some(b)) => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        }
    }
}

fn encode_command(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out
}

fn read_reply(r: &mut impl BufRead) -> std::io::Result<RespValue> {
    fn bad(msg: String) -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::InvalidData, msg)
    }
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "connection closed",
        ));
    }
    let line = line.trim_end_matches(['\r', '\n']);
    let (kind, rest) = line.split_at(line.len().min(1));
    let num = || {
        rest.parse::<i64>()
            .map_err(|_| bad(format!("bad RESP length {line:?}")))
    };
    Ok(match kind {
        "+" => RespValue::Simple(rest.to_string()),
        "-" => RespValue::Error(rest.to_string()),
        ":" => RespValue::Integer(num()?),
        "$" => {
            let n = num()?;
            if n < 0 {
                RespValue::Bulk(None)
            } else {
                let mut buf = vec![0u8; n as usize + 2];
                std::io::Read::read_exact(r, &mut buf)?;
                buf.truncate(n as usize);
                RespValue::Bulk(Some(buf))
            }
        }
        "*" => {
            let n = num()?;
            if n < 0 {
                RespValue::Array(None)
            } else {
                let mut items = Vec::with_capacity(n as usize);
                for _ in 0..n {
                    items.push(read_reply(r)?);
                }
                RespValue::Array(Some(items))
            }
        }
        _ => return Err(bad(format!("unexpected RESP line {line:?}"))),
    })
}

/// Sends one command (e.g. `&["SENTINEL", "get-master-addr-by-name", "mymaster"]`)
/// on a fresh connection to `addr` and returns the reply. `timeout` bounds the
/// connect and each read/write. A Redis error reply is returned as
/// `Ok(RespValue::Error(..))`.
pub fn redis_command(addr: SocketAddr, args: &[&str], timeout: Duration) -> Result<RespValue> {
    let s = TcpStream::connect_timeout(&addr, timeout)
        .map_err(|e| Error::new(format!("cannot connect to {addr}: {e}")))?;
    let _ = s.set_read_timeout(Some(timeout));
    let _ = s.set_write_timeout(Some(timeout));
    (&s).write_all(&encode_command(args))
        .map_err(|e| Error::new(format!("sending {args:?} to {addr}: {e}")))?;
    read_reply(&mut BufReader::new(&s))
        .map_err(|e| Error::new(format!("reading the reply to {args:?} from {addr}: {e}")))
}

// ---------------------------------------------------------------------------
// Child process management
// ---------------------------------------------------------------------------

fn redis_binary() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("KELP_REDIS_SERVER").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    procs::which("redis-server").ok_or_else(|| {
        Error::new("cannot find redis-server in PATH; install it (Debian: apt-get install redis-server) or set KELP_REDIS_SERVER")
    })
}

#[derive(Debug, Default)]
struct ProcState {
    child: Option<Child>,
    frozen: bool,
}

/// A `redis-server` child process that can be killed, frozen and restarted.
#[derive(Debug)]
struct RedisProc {
    what: &'static str,
    program: PathBuf,
    args: Vec<String>,
    port: u16,
    dir: PathBuf,
    start_timeout: Duration,
    state: Mutex<ProcState>,
}

impl RedisProc {
    fn lock(&self) -> MutexGuard<'_, ProcState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("redis.log")
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    fn spawn(&self, st: &mut ProcState) -> Result<()> {
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args).current_dir(&self.dir);
        procs::mark(&mut cmd, &self.dir);
        let (out, err) = procs::append_log(&self.log_path())?;
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        let t0 = Instant::now();
        let mut child = cmd
            .spawn()
            .map_err(|e| Error::new(format!("cannot run {}: {e}", self.program.display())))?;
        let deadline = t0 + self.start_timeout;
        let mut last = String::from("no attempt yet");
        loop {
            let mut ready_check = false;
            if let Ok(Some(status)) = child.try_wait() {
                let _ = child.wait();
                return Err(self.fail(format!("exited with {status}"), &last));
            }
            match redis_command(self.addr(), &["PING"], Duration::from_secs(2)) {
                // A server that wants AUTH is up as well.
                Ok(RespValue::Simple(ref s)) if s == "PONG" => ready_check = true,
                Ok(RespValue::Error(ref e))
                    if e.starts_with("NOAUTH") || e.starts_with("WRONGPASS") =>
                {
                    ready_check = true
                }
                Ok(other) => last = format!("PING answered {other:?}"),
                Err(e) => last = e.to_string(),
            }
            if ready_check {
                if procs::pid_listens_on(child.id(), self.port) {
                    break;
                }
                last = "the answer came from another process than ours".into();
            }
            if Instant::now() >= deadline {
                procs::kill_tree(&mut child);
                return Err(self.fail(format!("not ready within {:?}", self.start_timeout), &last));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        st.child = Some(child);
        st.frozen = false;
        Ok(())
    }

    fn fail(&self, why: String, last: &str) -> Error {
        let log = procs::tail_file(&self.log_path(), 30);
        let mut e = Error::new(format!(
            "{} on 127.0.0.1:{} ({} {}) failed to start: {why}; last check: {last}\n--- {} (last lines) ---\n{log}",
            self.what,
            self.port,
            self.program.display(),
            self.args.join(" "),
            self.log_path().display()
        ));
        e.port_conflict = log.contains("Address already in use");
        e
    }

    fn kill_locked(&self, st: &mut ProcState) {
        if let Some(mut child) = st.child.take() {
            if st.frozen {
                let _ = kill_pid(child.id(), Signal::Cont);
            }
            let _ = child.kill();
            if procs::wait_child(&mut child, Duration::from_secs(10)).is_none() {
                procs::kill_tree(&mut child);
            }
        }
        st.frozen = false;
    }

    fn pid(&self) -> Option<u32> {
        self.lock().child.as_ref().map(Child::id)
    }

    fn signal(&self, sig: Signal) -> Result<()> {
        let mut st = self.lock();
        let pid = st.child.as_ref().map(Child::id).ok_or_else(|| {
            Error::new(format!(
                "{} on port {} is not running",
                self.what, self.port
            ))
        })?;
        kill_pid(pid, sig).map_err(|e| Error::new(format!("kill({pid}, {sig:?}): {e}")))?;
        match sig {
            Signal::Stop => st.frozen = true,
            Signal::Cont => st.frozen = false,
            _ => {}
        }
        Ok(())
    }

    fn stop_graceful(&self) -> Result<()> {
        let mut st = self.lock();
        let frozen = st.frozen;
        let Some(child) = st.child.as_mut() else {
            return Ok(());
        };
        if frozen {
            let _ = kill_pid(child.id(), Signal::Cont);
        }
        let _ = kill_pid(child.id(), Signal::Term);
        if procs::wait_child(child, Duration::from_secs(30)).is_none() {
            self.kill_locked(&mut st);
            return Err(Error::new(format!(
                "{} on port {} ignored SIGTERM for 30 s; killed",
                self.what, self.port
            )));
        }
        st.child = None;
        st.frozen = false;
        Ok(())
    }

    fn restart(&self) -> Result<()> {
        let mut st = self.lock();
        self.kill_locked(&mut st);
        self.spawn(&mut st)
    }
}

impl Drop for RedisProc {
    fn drop(&mut self) {
        let mut st = std::mem::take(&mut *self.lock());
        self.kill_locked(&mut st);
        procs::remove_dir_retrying(&self.dir);
    }
}

/// Starts a RedisProc, retrying with a new port on a port conflict when the
/// port was picked by us.
fn start_proc(
    what: &'static str,
    fixed_port: Option<u16>,
    start_timeout: Duration,
    make: impl Fn(u16, &Path) -> Result<Vec<String>>,
) -> Result<RedisProc> {
    crate::reap::reap_orphans_once();
    let program = redis_binary()?;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let port = fixed_port.unwrap_or_else(procs::free_port);
        let dir = procs::make_temp_dir(&format!("redis-{port}"))?;
        let args = match make(port, &dir) {
            Ok(a) => a,
            Err(e) => {
                procs::remove_dir_retrying(&dir);
                return Err(e);
            }
        };
        let p = RedisProc {
            what,
            program: program.clone(),
            args,
            port,
            dir,
            start_timeout,
            state: Mutex::new(ProcState::default()),
        };
        let res = {
            let mut st = p.lock();
            p.spawn(&mut st)
        };
        match res {
            Ok(()) => return Ok(p),
            Err(e) if e.port_conflict && fixed_port.is_none() && attempt < 3 => drop(p),
            Err(e) => return Err(e),
        }
    }
}

// ---------------------------------------------------------------------------
// RedisServer
// ---------------------------------------------------------------------------

/// Options for [`RedisServer::start_with`].
#[derive(Clone, Debug)]
pub struct RedisOptions {
    /// The port; `None` picks a free one.
    pub port: Option<u16>,
    /// Extra command-line arguments, e.g. `["--replicaof", "127.0.0.1", "6390"]`
    /// or `["--requirepass", "secret"]`.
    pub extra_args: Vec<String>,
    /// How long the server may take to answer PING. Default 30 s.
    pub start_timeout: Duration,
}

impl Default for RedisOptions {
    fn default() -> Self {
        RedisOptions {
            port: None,
            extra_args: Vec::new(),
            start_timeout: Duration::from_secs(30),
        }
    }
}

impl RedisOptions {
    /// Fixes the port.
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// Appends command-line arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.extra_args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Makes the server a replica of `127.0.0.1:<port>`.
    pub fn replica_of(self, master_port: u16) -> Self {
        self.args([
            "--replicaof".to_string(),
            "127.0.0.1".to_string(),
            master_port.to_string(),
        ])
    }

    /// Starts the server ([`RedisServer::start_with`]).
    pub fn start(self) -> Result<RedisServer> {
        RedisServer::start_with(self)
    }
}

/// An extra `redis-server` on 127.0.0.1 (see the [module docs](self)).
/// Dropping it kills the server (SIGCONT first if frozen, then SIGKILL) and
/// removes its directory.
#[derive(Debug)]
pub struct RedisServer {
    proc: RedisProc,
}

impl RedisServer {
    /// Starts a server with default options and waits until it answers PING.
    pub fn start() -> Result<RedisServer> {
        Self::start_with(RedisOptions::default())
    }

    /// Starts a server and waits until it answers PING.
    pub fn start_with(opts: RedisOptions) -> Result<RedisServer> {
        let extra = opts.extra_args.clone();
        let proc = start_proc(
            "redis-server",
            opts.port,
            opts.start_timeout,
            |port, dir| {
                let mut args: Vec<String> = [
                    "--port",
                    &port.to_string(),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--daemonize",
                    "no",
                    "--logfile",
                    "",
                    "--dir",
                ]
                .iter()
                .map(|s| s.to_string())
                .collect();
                args.push(dir.display().to_string());
                args.extend(extra.iter().cloned());
                Ok(args)
            },
        )?;
        Ok(RedisServer { proc })
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.proc.port
    }

    /// `127.0.0.1:<port>`.
    pub fn addr(&self) -> SocketAddr {
        self.proc.addr()
    }

    /// `redis://127.0.0.1:<port>/0`
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.proc.port)
    }

    /// The server's PID, or `None` after [`kill`](Self::kill).
    pub fn pid(&self) -> Option<u32> {
        self.proc.pid()
    }

    /// The server's working directory.
    pub fn dir(&self) -> &Path {
        &self.proc.dir
    }

    /// The last `lines` lines of the server's log.
    pub fn log_tail(&self, lines: usize) -> String {
        procs::tail_file(&self.proc.log_path(), lines)
    }

    /// SIGKILLs the server and waits for it to exit. No-op if not running.
    pub fn kill(&self) {
        let mut st = self.proc.lock();
        self.proc.kill_locked(&mut st);
    }

    /// SIGTERMs the server and waits for it to exit (SIGKILL after 30 s).
    pub fn stop(&self) -> Result<()> {
        self.proc.stop_graceful()
    }

    /// SIGSTOPs the server.
    pub fn freeze(&self) -> Result<()> {
        self.proc.signal(Signal::Stop)
    }

    /// SIGCONTs the server after [`freeze`](Self::freeze).
    pub fn thaw(&self) -> Result<()> {
        self.proc.signal(Signal::Cont)
    }

    /// Kills the server if running, then starts it again on the same port,
    /// directory and arguments. There is no persistence: data is lost.
    pub fn restart(&self) -> Result<()> {
        self.proc.restart()
    }

    /// Runs one command against this server ([`redis_command`], 10 s timeout).
    pub fn command(&self, args: &[&str]) -> Result<RespValue> {
        redis_command(self.addr(), args, Duration::from_secs(10))
    }
}

// ---------------------------------------------------------------------------
// Sentinel
// ---------------------------------------------------------------------------

/// Options for [`RedisSentinel::start`].
#[derive(Clone, Debug)]
pub struct SentinelOptions {
    /// The monitored master's name (`sentinel monitor <name> ...`).
    pub master_name: String,
    /// The master's host (an IP address; default `127.0.0.1`).
    pub master_host: String,
    /// The master's port.
    pub master_port: u16,
    /// The quorum.
    pub quorum: u32,
    /// `sentinel down-after-milliseconds` (default 1 s).
    pub down_after: Duration,
    /// `sentinel failover-timeout` (default 5 s).
    pub failover_timeout: Duration,
    /// The sentinel's port; `None` picks a free one.
    pub port: Option<u16>,
    /// Extra lines for the sentinel's config file.
    pub extra_config: Vec<String>,
    /// How long the sentinel may take to answer PING. Default 30 s.
    pub start_timeout: Duration,
}

impl SentinelOptions {
    /// Monitors `master_name` at 127.0.0.1:`master_port` with `quorum`, with
    /// the defaults above.
    pub fn new(master_name: impl Into<String>, master_port: u16, quorum: u32) -> Self {
        SentinelOptions {
            master_name: master_name.into(),
            master_host: "127.0.0.1".into(),
            master_port,
            quorum,
            down_after: Duration::from_millis(1000),
            failover_timeout: Duration::from_millis(5000),
            port: None,
            extra_config: Vec::new(),
            start_timeout: Duration::from_secs(30),
        }
    }
}

/// A Redis Sentinel process (`redis-server <conf> --sentinel`) on 127.0.0.1.
/// Start several (with [`RedisSentinel::start_many`]) for a realistic quorum.
/// Dropping it kills it and removes its directory.
#[derive(Debug)]
pub struct RedisSentinel {
    proc: RedisProc,
    master_name: String,
}

impl RedisSentinel {
    /// Starts a sentinel and waits until it answers PING.
    pub fn start(opts: SentinelOptions) -> Result<RedisSentinel> {
        let o = opts.clone();
        let proc = start_proc(
            "redis sentinel",
            opts.port,
            opts.start_timeout,
            move |port, dir| {
                let conf = dir.join("sentinel.conf");
                let name = &o.master_name;
                let mut text = format!(
                    "# generated by kelp-test-support\n\
                 port {port}\n\
                 bind 127.0.0.1\n\
                 daemonize no\n\
                 logfile \"\"\n\
                 dir {dir}\n\
                 sentinel monitor {name} {host} {mport} {quorum}\n\
                 sentinel down-after-milliseconds {name} {down}\n\
                 sentinel failover-timeout {name} {fo}\n\
                 sentinel parallel-syncs {name} 1\n",
                    dir = dir.display(),
                    host = o.master_host,
                    mport = o.master_port,
                    quorum = o.quorum,
                    down = o.down_after.as_millis().max(1),
                    fo = o.failover_timeout.as_millis().max(1),
                );
                for l in &o.extra_config {
                    text.push_str(l);
                    text.push('\n');
                }
                procs::write_file(&conf, &text)?;
                Ok(vec![conf.display().to_string(), "--sentinel".to_string()])
            },
        )?;
        Ok(RedisSentinel {
            proc,
            master_name: opts.master_name,
        })
    }

    /// Starts `n` sentinels with the same options (each on its own free port;
    /// `opts.port` must be `None` if `n > 1`).
    pub fn start_many(n: usize, opts: SentinelOptions) -> Result<Vec<RedisSentinel>> {
        if n > 1 && opts.port.is_some() {
            return Err(Error::new(
                "start_many: leave SentinelOptions::port as None",
            ));
        }
        (0..n).map(|_| Self::start(opts.clone())).collect()
    }

    /// The sentinel's port.
    pub fn port(&self) -> u16 {
        self.proc.port
    }

    /// `127.0.0.1:<port>`.
    pub fn addr(&self) -> SocketAddr {
        self.proc.addr()
    }

    /// The sentinel's PID, or `None` after [`kill`](Self::kill).
    pub fn pid(&self) -> Option<u32> {
        self.proc.pid()
    }

    /// The monitored master's name.
    pub fn master_name(&self) -> &str {
        &self.master_name
    }

    /// The last `lines` lines of the sentinel's log.
    pub fn log_tail(&self, lines: usize) -> String {
        procs::tail_file(&self.proc.log_path(), lines)
    }

    /// SIGKILLs the sentinel. No-op if not running.
    pub fn kill(&self) {
        let mut st = self.proc.lock();
        self.proc.kill_locked(&mut st);
    }

    /// SIGSTOPs the sentinel.
    pub fn freeze(&self) -> Result<()> {
        self.proc.signal(Signal::Stop)
    }

    /// SIGCONTs the sentinel.
    pub fn thaw(&self) -> Result<()> {
        self.proc.signal(Signal::Cont)
    }

    /// Kills the sentinel if running and starts it again (same port and
    /// config file, which the sentinel rewrites with what it learnt).
    pub fn restart(&self) -> Result<()> {
        self.proc.restart()
    }

    /// Runs one command against this sentinel (10 s timeout).
    pub fn command(&self, args: &[&str]) -> Result<RespValue> {
        redis_command(self.addr(), args, Duration::from_secs(10))
    }

    /// `SENTINEL get-master-addr-by-name <master>`: the current master's
    /// `(host, port)` as this sentinel sees it, `None` if it knows no master
    /// of that name.
    pub fn master_addr(&self) -> Result<Option<(String, u16)>> {
        match self.command(&["SENTINEL", "get-master-addr-by-name", &self.master_name])? {
            RespValue::Array(Some(items)) if items.len() == 2 => {
                let host = items[0].as_text().unwrap_or_default();
                let port = items[1]
                    .as_text()
                    .and_then(|p| p.parse().ok())
                    .ok_or_else(|| Error::new(format!("bad port in {items:?}")))?;
                Ok(Some((host, port)))
            }
            RespValue::Array(None) | RespValue::Bulk(None) => Ok(None),
            other => Err(Error::new(format!(
                "unexpected reply to get-master-addr-by-name: {other:?}"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resp_roundtrip() {
        assert_eq!(encode_command(&["PING"]), b"*1\r\n$4\r\nPING\r\n");
        let input = b"*3\r\n$9\r\n127.0.0.1\r\n:6379\r\n*-1\r\n";
        let v = read_reply(&mut &input[..]).unwrap();
        assert_eq!(
            v,
            RespValue::Array(Some(vec![
                RespValue::Bulk(Some(b"127.0.0.1".to_vec())),
                RespValue::Integer(6379),
                RespValue::Array(None),
            ]))
        );
        assert_eq!(
            read_reply(&mut &b"-ERR x\r\n"[..]).unwrap(),
            RespValue::Error("ERR x".into())
        );
        assert_eq!(
            read_reply(&mut &b"$-1\r\n"[..]).unwrap(),
            RespValue::Bulk(None)
        );
    }
}
