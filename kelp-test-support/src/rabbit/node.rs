//! [`RabbitNode`]: one extra node, started, signalled, stopped and
//! restarted through its processes, and `rabbitmqctl` against it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::config::{NodeConfig, rabbitmq_sbin};
use super::ctl::{ctl, ctl_ok};
use super::options::RabbitNodeOptions;
use super::process::NodeInner;
use crate::procs;
use crate::error::{Error, Result};
use crate::signals::{Signal, kill_pid};

/// An extra RabbitMQ node on this host; see the [module docs](super).
///
/// Methods take `&self` (state is behind a mutex), so a node can be shared
/// between tasks; the `*_async` variants run the blocking work on tokio's
/// blocking pool, so other tasks (e.g. a kelp client reconnecting) keep
/// running meanwhile.
///
/// Dropping it kills the node (thawing it first if frozen, then SIGKILL) and
/// removes its temporary directory.
#[derive(Debug)]
pub struct RabbitNode {
    inner: Arc<NodeInner>,
}

impl RabbitNode {
    /// Starts a node with default options and waits until it is ready.
    pub fn start() -> Result<RabbitNode> {
        Self::start_with(RabbitNodeOptions::default())
    }

    /// Starts a node and waits until it is ready (AMQP `connection.start`
    /// received from our VM; TLS port accepting if configured). Free ports are
    /// picked for everything the options leave open; if a picked port turns out
    /// to be taken at boot, the start is retried with new ports (twice).
    pub fn start_with(opts: RabbitNodeOptions) -> Result<RabbitNode> {
        crate::reap::reap_orphans_once();
        let sbin = rabbitmq_sbin()?;
        let retries_allowed =
            opts.amqp_port.is_none() && opts.tls.as_ref().is_none_or(|t| t.port.is_none());
        let mut attempt = 0;
        loop {
            attempt += 1;
            let node = Self::prepare(&opts, &sbin)?;
            let res = {
                let mut st = node.inner.lock();
                node.inner.boot(&mut st)
            };
            match res {
                Ok(()) => return Ok(node),
                Err(e) if e.port_conflict && retries_allowed && attempt < 3 => {
                    eprintln!(
                        "kelp-test-support: port conflict starting {}, retrying with new ports",
                        node.node_name()
                    );
                    drop(node);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// [`start`](Self::start) on tokio's blocking pool.
    pub async fn start_async() -> Result<RabbitNode> {
        Self::start_with_async(RabbitNodeOptions::default()).await
    }

    /// [`start_with`](Self::start_with) on tokio's blocking pool.
    pub async fn start_with_async(opts: RabbitNodeOptions) -> Result<RabbitNode> {
        blocking(move || Self::start_with(opts)).await
    }

    /// Creates the directory and files of a node (does not boot it).
    fn prepare(opts: &RabbitNodeOptions, sbin: &Path) -> Result<RabbitNode> {
        let cfg = NodeConfig::new(opts, sbin)?;
        // From here on, dropping `node` removes the directory.
        let node = RabbitNode {
            inner: Arc::new(NodeInner::new(cfg)),
        };
        node.inner.cfg.write_files(opts)?;
        Ok(node)
    }

    /// The AMQP port (on [`ip`](Self::ip)).
    pub fn amqp_port(&self) -> u16 {
        self.inner.cfg.amqp_port
    }

    /// The AMQPS (TLS) port, if the node has a TLS listener.
    pub fn amqps_port(&self) -> Option<u16> {
        self.inner.cfg.tls_port
    }

    /// The Erlang distribution port.
    pub fn dist_port(&self) -> u16 {
        self.inner.cfg.dist_port
    }

    /// The address the node listens on: 127.0.0.1, or its address in its
    /// network namespace ([`RabbitNodeOptions::in_netns`]).
    pub fn ip(&self) -> std::net::Ipv4Addr {
        self.inner.cfg.ip
    }

    /// The network namespace the node runs in, if any.
    pub fn netns(&self) -> Option<&str> {
        self.inner.cfg.netns.as_deref()
    }

    /// `<ip>:<amqp port>`, e.g. `127.0.0.1:<amqp port>`.
    pub fn addr(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::from((self.inner.cfg.ip, self.inner.cfg.amqp_port))
    }

    /// `amqp://guest:guest@<ip>:<port>//`
    pub fn url(&self) -> String {
        format!(
            "amqp://guest:guest@{}:{}//",
            self.inner.cfg.ip, self.inner.cfg.amqp_port
        )
    }

    /// `amqps://guest:guest@localhost:<tls port>//` (host `localhost` so that
    /// it matches the test server certificate), if TLS is configured.
    pub fn amqps_url(&self) -> Option<String> {
        self.inner
            .cfg
            .tls_port
            .map(|p| format!("amqps://guest:guest@localhost:{p}//"))
    }

    /// The Erlang node name: `kelp-test-<amqp port>@localhost`, or
    /// `kelp@<ip>` in a namespace.
    pub fn node_name(&self) -> &str {
        &self.inner.cfg.name
    }

    /// The PID of the node's Erlang VM (`beam.smp`), or `None` while the node
    /// is not running (after [`kill`](Self::kill) / [`stop`](Self::stop)).
    pub fn pid(&self) -> Option<u32> {
        match self.inner.pid.load(Ordering::SeqCst) {
            0 => None,
            p => Some(p),
        }
    }

    /// Whether the VM process is running (possibly frozen).
    pub fn is_running(&self) -> bool {
        self.pid().is_some_and(procs::pid_alive)
    }

    /// Whether the node is currently frozen ([`freeze`](Self::freeze)).
    pub fn is_frozen(&self) -> bool {
        self.inner.lock().frozen
    }

    /// The node's temporary directory (data in `mnesia/`, logs in `log/`).
    pub fn dir(&self) -> &Path {
        &self.inner.cfg.dir
    }

    /// The node's main log file.
    pub fn log_file(&self) -> PathBuf {
        self.inner.cfg.log_file()
    }

    /// The last `lines` lines of the node's log.
    pub fn log_tail(&self, lines: usize) -> String {
        procs::tail_file(&self.inner.cfg.log_file(), lines)
    }

    /// SIGKILLs the Erlang VM and waits until it (and the `rabbitmq-server`
    /// script) have exited: the AMQP port refuses connections afterwards.
    /// No-op if not running. Works on a frozen node.
    pub fn kill(&self) {
        let mut st = self.inner.lock();
        self.inner.kill_locked(&mut st);
    }

    /// SIGSTOPs the Erlang VM: the ports still accept TCP connections (kernel
    /// backlog) but nothing is answered. Undo with [`thaw`](Self::thaw).
    pub fn freeze(&self) -> Result<()> {
        let mut st = self.inner.lock();
        let pid = st
            .beam
            .ok_or_else(|| Error::new(format!("node {} is not running", self.node_name())))?;
        kill_pid(pid, Signal::Stop).map_err(|e| Error::new(format!("SIGSTOP {pid}: {e}")))?;
        st.frozen = true;
        Ok(())
    }

    /// SIGCONTs the Erlang VM after [`freeze`](Self::freeze).
    pub fn thaw(&self) -> Result<()> {
        let mut st = self.inner.lock();
        let pid = st
            .beam
            .ok_or_else(|| Error::new(format!("node {} is not running", self.node_name())))?;
        kill_pid(pid, Signal::Cont).map_err(|e| Error::new(format!("SIGCONT {pid}: {e}")))?;
        st.frozen = false;
        Ok(())
    }

    /// Stops the node gracefully (`rabbitmqctl -n <node> stop`, thawing it
    /// first if frozen) and waits for the VM to exit. If it does not exit
    /// within 60 s it is SIGKILLed and an error returned. No-op if not running.
    pub fn stop(&self) -> Result<()> {
        let mut st = self.inner.lock();
        self.inner.stop_locked(&mut st)
    }

    /// [`stop`](Self::stop) on tokio's blocking pool.
    pub async fn stop_async(&self) -> Result<()> {
        let inner = self.inner.clone();
        blocking(move || {
            let mut st = inner.lock();
            inner.stop_locked(&mut st)
        })
        .await
    }

    /// Starts the node again on the same node name, ports and data directory
    /// (durable queues, users, vhosts survive) and waits until it is ready.
    /// If it is still running it is first stopped gracefully (use
    /// [`kill`](Self::kill) first for a crash-restart).
    pub fn restart(&self) -> Result<()> {
        let mut st = self.inner.lock();
        if st.beam.is_some() {
            self.inner.stop_locked(&mut st)?;
        }
        self.inner.boot(&mut st)
    }

    /// [`restart`](Self::restart) on tokio's blocking pool, so that other
    /// tasks keep running while the node boots.
    pub async fn restart_async(&self) -> Result<()> {
        let inner = self.inner.clone();
        blocking(move || {
            let mut st = inner.lock();
            if st.beam.is_some() {
                inner.stop_locked(&mut st)?;
            }
            inner.boot(&mut st)
        })
        .await
    }

    /// Runs `rabbitmqctl -n <this node> <args>` (with this node's Erlang
    /// cookie) and returns its stdout; an error (with stdout and stderr) if it
    /// exits non-zero or takes more than 120 s (it is killed then).
    ///
    /// Each call boots a CLI VM: ~1-2 s.
    pub fn rabbitmqctl(&self, args: &[&str]) -> Result<String> {
        ctl_ok(&self.inner.cfg, args, Duration::from_secs(120))
    }

    /// [`rabbitmqctl`](Self::rabbitmqctl) with a custom timeout, returning
    /// `(exit code or None if killed at the timeout, stdout, stderr)` whatever
    /// the outcome.
    pub fn rabbitmqctl_raw(
        &self,
        args: &[&str],
        timeout: Duration,
    ) -> Result<(Option<i32>, String, String)> {
        let out = ctl(&self.inner.cfg, args, timeout)?;
        Ok((out.status.and_then(|s| s.code()), out.stdout, out.stderr))
    }

    /// Make the node write its metadata store's transaction log to disk
    /// (`mnesia:sync_log()`). Mnesia does not sync a committed transaction
    /// at once (erlang/otp#3975), so a durable queue declared shortly before
    /// a kill -9 can be missing when the node comes back, with every
    /// message in it, confirmed or not: the broker's loss, which no client
    /// can prevent. Whoever kills a node to test a client calls this after
    /// declaring what must survive. ~1-2 s (a CLI VM boots).
    pub async fn sync_metadata_async(&self) -> Result<()> {
        let out = self
            .rabbitmqctl_async(&["eval", "mnesia:sync_log()."])
            .await?;
        if out.trim() == "ok" {
            Ok(())
        } else {
            Err(Error::new(format!(
                "mnesia:sync_log() on {} answered {out:?}",
                self.url()
            )))
        }
    }

    /// [`rabbitmqctl`](Self::rabbitmqctl) on tokio's blocking pool.
    pub async fn rabbitmqctl_async(&self, args: &[&str]) -> Result<String> {
        let inner = self.inner.clone();
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        blocking(move || {
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            ctl_ok(&inner.cfg, &refs, Duration::from_secs(120))
        })
        .await
    }

    /// Whether the node answers AMQP ([`crate::amqp_probe`]) on its own
    /// network (from inside its namespace, if it has one).
    pub(super) fn probe(&self, timeout: Duration) -> Result<()> {
        self.inner.cfg.probe_amqp(timeout)
    }

    /// The tails of the node's startup log and main log, for an error.
    pub(super) fn diagnostics(&self) -> String {
        self.inner.cfg.diagnostics()
    }
}

impl RabbitNodeOptions {
    /// Starts a node with these options ([`RabbitNode::start_with`]).
    pub fn start(self) -> Result<RabbitNode> {
        RabbitNode::start_with(self)
    }
}

/// Runs `f` on tokio's blocking pool (a panic in it goes on in the caller).
pub(super) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => Err(Error::new(format!("blocking task failed: {e}"))),
    }
}
