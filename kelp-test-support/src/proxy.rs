//! [`FaultProxy`]: a TCP proxy on 127.0.0.1 whose behaviour can be switched at
//! run time, to cut, stall, slow down or truncate the connections between kelp
//! and a broker.
//!
//! Each accepted client connection gets its own upstream connection; one tokio
//! task per connection forwards both directions with at most 256 KiB queued
//! per direction (beyond that it stops reading, so backpressure reaches the
//! sender). Tasks never panic; I/O errors on one side are propagated to the
//! other side as a reset.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::error::{Error, Result};

/// What a [`FaultProxy`] does. A new mode applies to existing **and** new
/// connections; [`FaultProxy::set_mode`] returns once every part of the proxy
/// has applied it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultMode {
    /// Forward everything (the default).
    Pass,
    /// Reset (RST, via `SO_LINGER` 0) every current connection, on both the
    /// client and the upstream side; new connections are accepted and reset
    /// at once (the client's connect succeeds, its first read/write fails).
    Reset,
    /// A network partition: sockets stay open, new connections are accepted
    /// (but no upstream connection is made yet), and nothing is forwarded in
    /// either direction. Data is *withheld*, not discarded: it stays queued in
    /// the proxy and the kernel buffers (the senders eventually block, as
    /// with TCP retransmissions), and flows again, intact and in order, when
    /// the mode changes back to `Pass`/`Delay`/`CloseAfter`. Closes (EOF)
    /// are withheld too.
    BlackHole,
    /// Forward every chunk this long after the proxy read it, preserving order
    /// (latency, not a bandwidth limit: chunks are pipelined).
    Delay(Duration),
    /// Forward `n` more bytes on each connection, counted over **both
    /// directions together** (client→server plus server→client) from the
    /// moment the connection sees this mode (or from its accept, for new
    /// connections); then close the connection on both sides (FIN; data left
    /// unread in the proxy's sockets may turn it into a RST). A chunk that
    /// would cross the limit is cut at it, so the peer sees a truncated
    /// stream.
    CloseAfter(u64),
    /// Refuse: the listening socket is closed, so new connection attempts get
    /// `ECONNREFUSED`; current connections are reset as in `Reset` (a broker
    /// that died). Leaving this mode binds the same address again.
    Refuse,
}

#[derive(Clone, Copy, Debug)]
struct Control {
    mode: FaultMode,
    generation: u64,
}

struct Shared {
    addr: SocketAddr,
    upstream: SocketAddr,
    open: AtomicUsize,
    total: AtomicUsize,
    next_id: AtomicU64,
    /// Generation each live connection has applied.
    conns: Mutex<HashMap<u64, Arc<AtomicU64>>>,
    /// Generation the listener has applied.
    listener_gen: AtomicU64,
}

/// A fault-injecting TCP proxy; see the [module docs](self) and [`FaultMode`].
///
/// Dropping it stops accepting (the port is released) and closes every
/// connection (dropping the control channel's sender ends every task). It must be created inside a tokio runtime (multi-thread or
/// current-thread).
pub struct FaultProxy {
    shared: Arc<Shared>,
    ctl: watch::Sender<Control>,
}

impl std::fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultProxy")
            .field("addr", &self.shared.addr)
            .field("upstream", &self.shared.upstream)
            .field("mode", &self.mode())
            .field("connections", &self.connections())
            .finish()
    }
}

const MAX_QUEUED: usize = 256 * 1024;
const CHUNK: usize = 16 * 1024;

fn bind_listener(addr: SocketAddr) -> io::Result<TcpListener> {
    let sock = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    sock.set_reuseaddr(true)?;
    sock.bind(addr)?;
    sock.listen(1024)
}

impl FaultProxy {
    /// Starts a proxy on `127.0.0.1:<free port>` forwarding to `upstream`,
    /// in [`FaultMode::Pass`].
    pub async fn start(upstream: SocketAddr) -> Result<FaultProxy> {
        let mut last_err = None;
        for _ in 0..10 {
            let addr = SocketAddr::from(([127, 0, 0, 1], crate::procs::free_port()));
            match bind_listener(addr) {
                Ok(l) => return Ok(Self::with_listener(l, upstream)),
                Err(e) => last_err = Some(e),
            }
        }
        Err(Error::new(format!(
            "FaultProxy: cannot bind a port on 127.0.0.1: {last_err:?}"
        )))
    }

    /// Starts a proxy on the given local address (e.g. a fixed port).
    pub async fn start_on(local: SocketAddr, upstream: SocketAddr) -> Result<FaultProxy> {
        let l = bind_listener(local)
            .map_err(|e| Error::new(format!("FaultProxy: cannot bind {local}: {e}")))?;
        Ok(Self::with_listener(l, upstream))
    }

    fn with_listener(listener: TcpListener, upstream: SocketAddr) -> FaultProxy {
        let addr = listener
            .local_addr()
            .expect("bound listener has an address");
        let shared = Arc::new(Shared {
            addr,
            upstream,
            open: AtomicUsize::new(0),
            total: AtomicUsize::new(0),
            next_id: AtomicU64::new(0),
            conns: Mutex::new(HashMap::new()),
            listener_gen: AtomicU64::new(0),
        });
        let (ctl, rx) = watch::channel(Control {
            mode: FaultMode::Pass,
            generation: 0,
        });
        tokio::spawn(accept_loop(shared.clone(), rx, listener));
        FaultProxy { shared, ctl }
    }

    /// The proxy's address (`127.0.0.1:<port>`): point the client here.
    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// The proxy's port.
    pub fn port(&self) -> u16 {
        self.shared.addr.port()
    }

    /// The upstream address.
    pub fn upstream(&self) -> SocketAddr {
        self.shared.upstream
    }

    /// `url` with its `host:port` replaced by the proxy's address, e.g.
    /// `amqp://guest:guest@127.0.0.1:5672//` → `amqp://guest:guest@127.0.0.1:<proxy port>//`.
    pub fn url_for(&self, url: &str) -> String {
        let Some((scheme, rest)) = url.split_once("://") else {
            return url.to_string();
        };
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(end);
        let userinfo = authority
            .rsplit_once('@')
            .map(|(u, _)| format!("{u}@"))
            .unwrap_or_default();
        format!("{scheme}://{userinfo}{}{tail}", self.shared.addr)
    }

    /// The current mode.
    pub fn mode(&self) -> FaultMode {
        self.ctl.borrow().mode
    }

    /// Switches the mode, for existing and new connections, and waits (at
    /// most 5 s) until the listener and every open connection have applied
    /// it: on return, `Reset`/`Refuse` connections are closed, a `Refuse`
    /// listener is closed (and a non-`Refuse` one is listening again), and
    /// nothing more is forwarded under `BlackHole`.
    pub async fn set_mode(&self, mode: FaultMode) {
        let mut generation = 0;
        self.ctl.send_modify(|c| {
            c.generation += 1;
            c.mode = mode;
            generation = c.generation;
        });
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let listener_done = self.shared.listener_gen.load(Ordering::SeqCst) >= generation;
            let conns_done = self
                .shared
                .conns
                .lock()
                .map(|m| m.values().all(|g| g.load(Ordering::SeqCst) >= generation))
                .unwrap_or(true);
            if listener_done && conns_done {
                return;
            }
            if Instant::now() >= deadline {
                eprintln!(
                    "kelp-test-support: FaultProxy {}: mode {mode:?} not applied everywhere after 5 s \
                     (listener applied: {listener_done})",
                    self.shared.addr
                );
                return;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// Connections currently open (accepted and not yet closed).
    pub fn connections(&self) -> usize {
        self.shared.open.load(Ordering::SeqCst)
    }

    /// Connections accepted since the start.
    pub fn total_connections(&self) -> usize {
        self.shared.total.load(Ordering::SeqCst)
    }
}

async fn accept_loop(shared: Arc<Shared>, mut rx: watch::Receiver<Control>, listener: TcpListener) {
    let mut listener = Some(listener);
    loop {
        let ctl = *rx.borrow_and_update();
        if ctl.mode == FaultMode::Refuse {
            listener = None;
        } else if listener.is_none() {
            match bind_listener(shared.addr) {
                Ok(l) => listener = Some(l),
                Err(_) => {
                    // Someone holds the port for now: retry shortly.
                    tokio::select! {
                        r = rx.changed() => if r.is_err() { return },
                        _ = tokio::time::sleep(Duration::from_millis(20)) => {}
                    }
                    continue;
                }
            }
        }
        shared.listener_gen.store(ctl.generation, Ordering::SeqCst);
        match &listener {
            None => {
                if rx.changed().await.is_err() {
                    return;
                }
            }
            Some(l) => {
                tokio::select! {
                    r = rx.changed() => if r.is_err() { return },
                    a = l.accept() => match a {
                        Ok((sock, _)) => {
                            shared.total.fetch_add(1, Ordering::SeqCst);
                            shared.open.fetch_add(1, Ordering::SeqCst);
                            let id = shared.next_id.fetch_add(1, Ordering::SeqCst);
                            let seen = Arc::new(AtomicU64::new(0));
                            if let Ok(mut m) = shared.conns.lock() {
                                m.insert(id, seen.clone());
                            }
                            let guard = ConnGuard { shared: shared.clone(), id };
                            tokio::spawn(connection(guard, seen, rx.clone(), sock));
                        }
                        Err(_) => {
                            // E.g. EMFILE: back off instead of spinning.
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                    },
                }
            }
        }
    }
}

/// Unregisters a connection when its task ends (however it ends).
struct ConnGuard {
    shared: Arc<Shared>,
    id: u64,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        if let Ok(mut m) = self.shared.conns.lock() {
            m.remove(&self.id);
        }
        self.shared.open.fetch_sub(1, Ordering::SeqCst);
    }
}

fn reset(s: TcpStream) {
    let _ = s.set_zero_linger();
    drop(s);
}

fn shutdown_write(s: &TcpStream) {
    // SAFETY: shutdown(2) on a valid, owned fd; no memory involved.
    unsafe {
        libc::shutdown(s.as_raw_fd(), libc::SHUT_WR);
    }
}

fn close_graceful(s: TcpStream) {
    shutdown_write(&s);
    drop(s);
}

struct Chunk {
    data: Vec<u8>,
    off: usize,
    read_at: Instant,
}

#[derive(Default)]
struct Dir {
    queue: VecDeque<Chunk>,
    queued: usize,
    eof: bool,
    shut: bool,
}

impl Dir {
    fn done(&self) -> bool {
        self.eof && self.queue.is_empty() && self.shut
    }
}

enum Event {
    Changed(bool),
    Readable { c2s: bool, ok: bool },
    Writable { c2s: bool, ok: bool },
    Timer,
}

async fn connection(
    guard: ConnGuard,
    seen: Arc<AtomicU64>,
    mut rx: watch::Receiver<Control>,
    client: TcpStream,
) {
    let _guard = guard;
    let _ = client.set_nodelay(true);
    let upstream_addr = _guard.shared.upstream;

    // Phase 1: get an upstream connection when the mode allows.
    let upstream = loop {
        let ctl = *rx.borrow_and_update();
        match ctl.mode {
            FaultMode::Reset | FaultMode::Refuse => {
                reset(client);
                seen.store(ctl.generation, Ordering::SeqCst);
                return;
            }
            FaultMode::BlackHole => {
                seen.store(ctl.generation, Ordering::SeqCst);
                if rx.changed().await.is_err() {
                    return;
                }
            }
            _ => {
                seen.store(ctl.generation, Ordering::SeqCst);
                tokio::select! {
                    r = rx.changed() => if r.is_err() { return },
                    c = tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(upstream_addr)) => match c {
                        Ok(Ok(u)) => break u,
                        // Upstream refused / unreachable: the client sees a reset.
                        _ => { reset(client); return; }
                    },
                }
            }
        }
    };
    let _ = upstream.set_nodelay(true);

    // Phase 2: forward.
    let mut c2s = Dir::default();
    let mut s2c = Dir::default();
    let mut forwarded: u64 = 0;
    let mut close_after_base: Option<(u64, u64)> = None; // (generation, forwarded at start)
    let mut buf = vec![0u8; CHUNK];
    loop {
        let ctl = *rx.borrow_and_update();
        let mode = ctl.mode;
        if matches!(mode, FaultMode::Reset | FaultMode::Refuse) {
            reset(client);
            reset(upstream);
            seen.store(ctl.generation, Ordering::SeqCst);
            return;
        }
        let budget = match mode {
            FaultMode::CloseAfter(n) => {
                let base = match close_after_base {
                    Some((g, b)) if g == ctl.generation => b,
                    _ => {
                        close_after_base = Some((ctl.generation, forwarded));
                        forwarded
                    }
                };
                Some(n.saturating_sub(forwarded - base))
            }
            _ => None,
        };
        if budget == Some(0) {
            close_graceful(client);
            close_graceful(upstream);
            seen.store(ctl.generation, Ordering::SeqCst);
            return;
        }
        seen.store(ctl.generation, Ordering::SeqCst);
        let blackhole = mode == FaultMode::BlackHole;
        let delay = match mode {
            FaultMode::Delay(d) => d,
            _ => Duration::ZERO,
        };
        // Propagate EOFs once everything before them is forwarded.
        if !blackhole {
            if c2s.eof && c2s.queue.is_empty() && !c2s.shut {
                shutdown_write(&upstream);
                c2s.shut = true;
            }
            if s2c.eof && s2c.queue.is_empty() && !s2c.shut {
                shutdown_write(&client);
                s2c.shut = true;
            }
        }
        if c2s.done() && s2c.done() {
            drop(client);
            drop(upstream);
            return;
        }
        let now = Instant::now();
        let can_read_c2s = !blackhole && !c2s.eof && c2s.queued < MAX_QUEUED;
        let can_read_s2c = !blackhole && !s2c.eof && s2c.queued < MAX_QUEUED;
        // (Absurd delays saturate at a year instead of overflowing.)
        let due = |d: &Dir| {
            d.queue.front().map(|c| {
                c.read_at
                    .checked_add(delay)
                    .unwrap_or_else(|| c.read_at + Duration::from_secs(365 * 86_400))
            })
        };
        let (due_c2s, due_s2c) = if blackhole {
            (None, None)
        } else {
            (due(&c2s), due(&s2c))
        };
        let write_c2s = due_c2s.is_some_and(|t| t <= now);
        let write_s2c = due_s2c.is_some_and(|t| t <= now);
        let timer = [due_c2s, due_s2c]
            .into_iter()
            .flatten()
            .filter(|t| *t > now)
            .min();

        let ev = tokio::select! {
            r = rx.changed() => Event::Changed(r.is_ok()),
            r = client.readable(), if can_read_c2s => Event::Readable { c2s: true, ok: r.is_ok() },
            r = upstream.readable(), if can_read_s2c => Event::Readable { c2s: false, ok: r.is_ok() },
            r = upstream.writable(), if write_c2s => Event::Writable { c2s: true, ok: r.is_ok() },
            r = client.writable(), if write_s2c => Event::Writable { c2s: false, ok: r.is_ok() },
            _ = tokio::time::sleep_until(timer.unwrap_or(now)), if timer.is_some() => Event::Timer,
        };
        match ev {
            Event::Changed(true) | Event::Timer => {}
            Event::Changed(false) => return, // proxy dropped: close both (FIN)
            Event::Readable { c2s: dir_c2s, ok } => {
                let (src, dir) = if dir_c2s {
                    (&client, &mut c2s)
                } else {
                    (&upstream, &mut s2c)
                };
                if !ok {
                    reset(client);
                    reset(upstream);
                    return;
                }
                match src.try_read(&mut buf) {
                    Ok(0) => dir.eof = true,
                    Ok(n) => {
                        dir.queued += n;
                        dir.queue.push_back(Chunk {
                            data: buf[..n].to_vec(),
                            off: 0,
                            read_at: Instant::now(),
                        });
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => {
                        // The peer reset (or worse): pass the reset on.
                        reset(client);
                        reset(upstream);
                        return;
                    }
                }
            }
            Event::Writable { c2s: dir_c2s, ok } => {
                if !ok {
                    reset(client);
                    reset(upstream);
                    return;
                }
                // Re-check the mode right before writing: a set_mode that
                // returned before this point must be honoured.
                let now_ctl = *rx.borrow();
                if now_ctl.generation != ctl.generation {
                    continue;
                }
                let (dst, dir) = if dir_c2s {
                    (&upstream, &mut c2s)
                } else {
                    (&client, &mut s2c)
                };
                let Some(front) = dir.queue.front_mut() else {
                    continue;
                };
                let mut end = front.data.len();
                if let Some(b) = budget {
                    end = end.min(
                        front
                            .off
                            .saturating_add(usize::try_from(b).unwrap_or(usize::MAX)),
                    );
                }
                match dst.try_write(&front.data[front.off..end]) {
                    Ok(n) => {
                        front.off += n;
                        dir.queued -= n;
                        forwarded += n as u64;
                        if front.off >= front.data.len() {
                            dir.queue.pop_front();
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => {
                        reset(client);
                        reset(upstream);
                        return;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn url_for_rewrites_authority() {
        let up: SocketAddr = "127.0.0.1:5672".parse().unwrap();
        let p = FaultProxy::start(up).await.unwrap();
        let port = p.port();
        assert_eq!(
            p.url_for("amqp://guest:guest@127.0.0.1:5672//"),
            format!("amqp://guest:guest@127.0.0.1:{port}//")
        );
        assert_eq!(
            p.url_for("redis://127.0.0.1:6379/0"),
            format!("redis://127.0.0.1:{port}/0")
        );
        assert_eq!(
            p.url_for("amqp://localhost"),
            format!("amqp://127.0.0.1:{port}")
        );
    }
}
