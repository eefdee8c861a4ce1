//! Extra RabbitMQ nodes (and clusters of them) for failover tests.
//!
//! A [`RabbitNode`] is a separate RabbitMQ node on this host, next to the
//! default `rabbit@localhost`: its own node name (`kelp-test-<amqp port>@localhost`),
//! AMQP port, Erlang distribution port, Erlang cookie, data (mnesia) and log
//! directories, `rabbitmq.conf`, `rabbitmq-env.conf` and enabled-plugins file,
//! all inside a temporary directory. No plugin is enabled, so it opens no
//! management/prometheus/stream port; it listens on 127.0.0.1 only. It never
//! touches the default node's files or ports.
//!
//! # How the VM's PID is found
//!
//! `rabbitmq-server` is a shell script. In the foreground it forks a subshell
//! that `exec`s `erl`, which `exec`s `erlexec`, which `exec`s `beam.smp`; the
//! script itself stays as the parent (to forward SIGTERM). This crate runs the
//! real script (not Debian's `/usr/sbin` wrapper, which switches user) as a
//! child, then scans `/proc` for the child's descendants whose `comm` is
//! `beam.smp` and whose `/proc/<pid>/cmdline` carries the marker
//! `-kelp_test_node <node name>` (passed through
//! `RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS`; so `pgrep -f <node name>` finds the
//! VM too). Once the node answers AMQP, the PID is verified twice more: it
//! must own the socket listening on the AMQP port (`/proc/net/tcp` inode vs
//! `/proc/<pid>/fd`), and it must equal the PID in the pid file RabbitMQ
//! writes (`RABBITMQ_PID_FILE`).
//!
//! # Readiness
//!
//! A node is ready when its AMQP port answers the protocol header with a
//! `connection.start` frame ([`crate::amqp_probe`]) and the listening socket
//! belongs to our VM (not a stranger that took the port); the TLS port, if
//! any, must accept TCP connections too.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::procs::{self, CmdOutput};
use crate::{Error, Result, Signal, amqp_probe, kill_pid};

/// A TLS (AMQPS) listener for a [`RabbitNode`]. Certificate files are PEM.
/// See [`crate::tls::generate_test_pki`] for a matching set.
#[derive(Clone, Debug)]
pub struct TlsListener {
    /// The port; `None` picks a free one.
    pub port: Option<u16>,
    /// `ssl_options.cacertfile`: CA certificates used to verify clients.
    pub cacert: PathBuf,
    /// `ssl_options.certfile`: the server certificate.
    pub cert: PathBuf,
    /// `ssl_options.keyfile`: the server key.
    pub key: PathBuf,
    /// `ssl_options.verify`: `verify_peer` if true, else `verify_none`.
    pub verify_peer: bool,
    /// `ssl_options.fail_if_no_peer_cert`.
    pub fail_if_no_peer_cert: bool,
}

impl TlsListener {
    /// A listener on a free port using the given files, with
    /// `verify = verify_peer` and `fail_if_no_peer_cert = false`.
    pub fn new(
        cacert: impl Into<PathBuf>,
        cert: impl Into<PathBuf>,
        key: impl Into<PathBuf>,
    ) -> Self {
        TlsListener {
            port: None,
            cacert: cacert.into(),
            cert: cert.into(),
            key: key.into(),
            verify_peer: true,
            fail_if_no_peer_cert: false,
        }
    }

    /// A listener using the server certificate of a [`crate::tls::TestPki`].
    pub fn from_pki(pki: &crate::tls::TestPki) -> Self {
        Self::new(&pki.ca_cert, &pki.server_cert, &pki.server_key)
    }

    /// Sets `ssl_options.verify` (`verify_peer` / `verify_none`).
    pub fn verify_peer(mut self, yes: bool) -> Self {
        self.verify_peer = yes;
        self
    }

    /// Sets `ssl_options.fail_if_no_peer_cert`.
    pub fn fail_if_no_peer_cert(mut self, yes: bool) -> Self {
        self.fail_if_no_peer_cert = yes;
        self
    }

    /// Fixes the port.
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }
}

/// Options for [`RabbitNode::start_with`]. `Default` gives a plain node on
/// free ports.
#[derive(Clone, Debug)]
pub struct RabbitNodeOptions {
    /// The AMQP port; `None` picks a free one. (The Erlang distribution port
    /// is always picked free.)
    pub amqp_port: Option<u16>,
    /// An optional TLS listener.
    pub tls: Option<TlsListener>,
    /// Extra lines appended to the node's `rabbitmq.conf` (new-style format),
    /// e.g. `"vm_memory_high_watermark.relative = 0.0001"` or
    /// `"heartbeat = 5"`.
    pub extra_config: Vec<String>,
    /// Plugins to enable, e.g. `rabbitmq_auth_mechanism_ssl` (none by
    /// default; a plugin that opens a port would need one of its own).
    pub plugins: Vec<String>,
    /// The Erlang cookie; `None` generates one. Nodes that are to be clustered
    /// need the same cookie ([`RabbitCluster`] sees to that).
    pub erlang_cookie: Option<String>,
    /// How long one boot may take before it is considered failed. Default:
    /// 60 s, or `KELP_TEST_RABBIT_START_TIMEOUT_SECS`.
    pub start_timeout: Duration,
}

impl Default for RabbitNodeOptions {
    fn default() -> Self {
        let secs = std::env::var("KELP_TEST_RABBIT_START_TIMEOUT_SECS")
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .filter(|s| *s > 0)
            .unwrap_or(60);
        RabbitNodeOptions {
            amqp_port: None,
            tls: None,
            extra_config: Vec::new(),
            plugins: Vec::new(),
            erlang_cookie: None,
            start_timeout: Duration::from_secs(secs),
        }
    }
}

impl RabbitNodeOptions {
    /// Fixes the AMQP port.
    pub fn amqp_port(mut self, port: u16) -> Self {
        self.amqp_port = Some(port);
        self
    }

    /// Adds a TLS listener.
    pub fn tls(mut self, tls: TlsListener) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Appends a line to `rabbitmq.conf`.
    pub fn config_line(mut self, line: impl Into<String>) -> Self {
        self.extra_config.push(line.into());
        self
    }

    /// Enables a plugin.
    pub fn plugin(mut self, name: impl Into<String>) -> Self {
        self.plugins.push(name.into());
        self
    }

    /// Sets the Erlang cookie.
    pub fn erlang_cookie(mut self, cookie: impl Into<String>) -> Self {
        self.erlang_cookie = Some(cookie.into());
        self
    }

    /// Sets the boot timeout.
    pub fn start_timeout(mut self, timeout: Duration) -> Self {
        self.start_timeout = timeout;
        self
    }

    /// Starts a node with these options ([`RabbitNode::start_with`]).
    pub fn start(self) -> Result<RabbitNode> {
        RabbitNode::start_with(self)
    }
}

/// Serialises boots within this process (they are CPU heavy; see crate docs).
static BOOT_LOCK: Mutex<()> = Mutex::new(());

/// Where the real `rabbitmq-server` / `rabbitmqctl` scripts are.
fn rabbitmq_sbin() -> Result<PathBuf> {
    if let Some(d) = std::env::var_os("KELP_RABBITMQ_SBIN").filter(|d| !d.is_empty()) {
        let d = PathBuf::from(d);
        if d.join("rabbitmq-server").is_file() {
            return Ok(d);
        }
        return Err(Error::new(format!(
            "KELP_RABBITMQ_SBIN={} has no rabbitmq-server script",
            d.display()
        )));
    }
    let debian = PathBuf::from("/usr/lib/rabbitmq/bin");
    if debian.join("rabbitmq-server").is_file() {
        return Ok(debian);
    }
    if let Some(p) = procs::which("rabbitmq-server") {
        let real = std::fs::canonicalize(&p).unwrap_or(p);
        // Debian/Ubuntu's /usr/sbin/rabbitmq-server `su`s to the rabbitmq user: not usable.
        let is_wrapper = std::fs::read_to_string(&real)
            .map(|s| s.contains("su rabbitmq"))
            .unwrap_or(false);
        if !is_wrapper && let Some(dir) = real.parent() {
            return Ok(dir.to_path_buf());
        }
    }
    Err(Error::new(
        "cannot find RabbitMQ's rabbitmq-server script (looked in /usr/lib/rabbitmq/bin and PATH); \
         install RabbitMQ (Debian: apt-get install rabbitmq-server) or set KELP_RABBITMQ_SBIN",
    ))
}

/// Immutable description of a node.
#[derive(Debug)]
struct NodeConfig {
    name: String,
    amqp_port: u16,
    dist_port: u16,
    tls_port: Option<u16>,
    dir: PathBuf,
    sbin: PathBuf,
    start_timeout: Duration,
}

impl NodeConfig {
    fn home(&self) -> PathBuf {
        self.dir.join("home")
    }
    fn log_file(&self) -> PathBuf {
        self.dir.join("log").join(format!("{}.log", self.name))
    }
    fn startup_log(&self) -> PathBuf {
        self.dir.join("startup.log")
    }
    fn pid_file(&self) -> PathBuf {
        self.dir.join("node.pid")
    }

    /// Environment for both the server and the CLI tools.
    fn apply_env(&self, cmd: &mut Command) {
        // Nothing from the caller's RabbitMQ/Erlang environment may leak in
        // (a developer's RABBITMQ_NODENAME, say).
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy();
            if k.starts_with("RABBITMQ_") || k.starts_with("ERL_") || k == "NOTIFY_SOCKET" {
                cmd.env_remove(k.as_ref());
            }
        }
        let d = &self.dir;
        cmd.env("HOME", self.home())
            .env("RABBITMQ_NODENAME", &self.name)
            .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
            .env("RABBITMQ_NODE_PORT", self.amqp_port.to_string())
            .env("RABBITMQ_DIST_PORT", self.dist_port.to_string())
            .env("RABBITMQ_MNESIA_BASE", d.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", d.join("log"))
            .env("RABBITMQ_CONFIG_FILE", d.join("rabbitmq.conf"))
            .env("RABBITMQ_ADVANCED_CONFIG_FILE", d.join("advanced.config"))
            .env("RABBITMQ_CONFIG_FILES", d.join("conf.d"))
            .env("RABBITMQ_CONF_ENV_FILE", d.join("rabbitmq-env.conf"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", d.join("enabled_plugins"))
            .env("RABBITMQ_PID_FILE", self.pid_file())
            .env(
                "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS",
                format!(
                    "-kernel inet_dist_use_interface {{127,0,0,1}} -kelp_test_node {}",
                    self.name
                ),
            )
            .env("ERL_EPMD_ADDRESS", "127.0.0.1")
            .current_dir(d);
        procs::mark(cmd, d);
    }

    fn diagnostics(&self) -> String {
        format!(
            "--- {} (last lines) ---\n{}\n--- {} (last lines) ---\n{}",
            self.startup_log().display(),
            procs::tail_file(&self.startup_log(), 30),
            self.log_file().display(),
            procs::tail_file(&self.log_file(), 40)
        )
    }
}

#[derive(Debug, Default)]
struct NodeState {
    /// The `rabbitmq-server` script process.
    script: Option<Child>,
    /// The Erlang VM.
    beam: Option<u32>,
    frozen: bool,
}

#[derive(Debug)]
struct NodeInner {
    cfg: NodeConfig,
    state: Mutex<NodeState>,
    /// The beam PID, or 0 when not running (readable without the state lock).
    pid: AtomicU32,
}

impl NodeInner {
    fn lock(&self) -> MutexGuard<'_, NodeState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Boots the node (state must be "not running"). Holds the boot lock.
    fn boot(&self, st: &mut NodeState) -> Result<()> {
        let _boot = BOOT_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let cfg = &self.cfg;
        let mut cmd = Command::new(cfg.sbin.join("rabbitmq-server"));
        cfg.apply_env(&mut cmd);
        let (out, err) = procs::append_log(&cfg.startup_log())?;
        cmd.stdin(std::process::Stdio::null())
            .stdout(out)
            .stderr(err);
        let _ = std::fs::remove_file(cfg.pid_file());
        let t0 = Instant::now();
        let mut child = cmd.spawn().map_err(|e| {
            Error::new(format!(
                "cannot run {}/rabbitmq-server: {e}",
                cfg.sbin.display()
            ))
        })?;
        let deadline = t0 + cfg.start_timeout;
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], cfg.amqp_port));
        let mut beam: Option<u32> = None;
        let mut last_probe = String::from("no probe yet");
        let fail = |child: &mut Child, why: String| -> Error {
            procs::kill_tree(child);
            let diag = cfg.diagnostics();
            let port_conflict = diag.contains("eaddrinuse") || why.contains("another process");
            let mut e = Error::new(format!(
                "RabbitMQ node {} (AMQP 127.0.0.1:{}, dist port {}, dir {}) failed to start: {why}\n{diag}",
                cfg.name,
                cfg.amqp_port,
                cfg.dist_port,
                cfg.dir.display()
            ));
            e.port_conflict = port_conflict;
            e
        };
        loop {
            match child.try_wait() {
                Ok(Some(status)) => {
                    return Err(fail(
                        &mut child,
                        format!("rabbitmq-server exited with {status}"),
                    ));
                }
                Ok(None) => {}
                Err(e) => {
                    return Err(fail(
                        &mut child,
                        format!("cannot wait for rabbitmq-server: {e}"),
                    ));
                }
            }
            if beam.is_none() {
                beam = find_beam(child.id(), &cfg.name);
            }
            if let Some(pid) = beam {
                if !procs::pid_alive(pid) {
                    return Err(fail(
                        &mut child,
                        format!("the Erlang VM (pid {pid}) died during boot"),
                    ));
                }
                match amqp_probe(addr, Duration::from_secs(2)) {
                    Ok(()) => {
                        if procs::pid_listens_on(pid, cfg.amqp_port) {
                            break;
                        }
                        last_probe = format!(
                            "port {} answers AMQP, but the listening socket belongs to another process than our VM (pid {pid})",
                            cfg.amqp_port
                        );
                    }
                    Err(e) => last_probe = e.to_string(),
                }
            }
            if Instant::now() >= deadline {
                let why = match beam {
                    None => format!(
                        "no beam.smp process appeared under rabbitmq-server (pid {}) within {:?}",
                        child.id(),
                        cfg.start_timeout
                    ),
                    Some(pid) => format!(
                        "not ready within {:?} (beam pid {pid}); last AMQP probe: {last_probe}",
                        cfg.start_timeout
                    ),
                };
                return Err(fail(&mut child, why));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let pid = beam.expect("beam pid known when ready");
        // Cross-check with the pid file RabbitMQ writes.
        if let Ok(text) = std::fs::read_to_string(cfg.pid_file())
            && let Ok(file_pid) = text.trim().parse::<u32>()
            && file_pid != pid
        {
            return Err(fail(
                &mut child,
                format!(
                    "pid file {} says {file_pid}, but /proc says the VM is {pid}",
                    cfg.pid_file().display()
                ),
            ));
        }
        if let Some(tls_port) = cfg.tls_port {
            let tls_addr = std::net::SocketAddr::from(([127, 0, 0, 1], tls_port));
            loop {
                if std::net::TcpStream::connect_timeout(&tls_addr, Duration::from_secs(2)).is_ok()
                    && procs::pid_listens_on(pid, tls_port)
                {
                    break;
                }
                if Instant::now() >= deadline {
                    return Err(fail(
                        &mut child,
                        format!(
                            "AMQP is up but the TLS listener on 127.0.0.1:{tls_port} is not (check the certificate paths)"
                        ),
                    ));
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        eprintln!(
            "kelp-test-support: RabbitMQ node {} ready on 127.0.0.1:{} after {:.1} s (beam pid {pid})",
            cfg.name,
            cfg.amqp_port,
            t0.elapsed().as_secs_f64()
        );
        st.script = Some(child);
        st.beam = Some(pid);
        st.frozen = false;
        self.pid.store(pid, Ordering::SeqCst);
        Ok(())
    }

    /// SIGKILLs the VM (and the script), waits until both are gone.
    fn kill_locked(&self, st: &mut NodeState) {
        if let Some(pid) = st.beam.take() {
            if st.frozen {
                let _ = kill_pid(pid, Signal::Cont);
            }
            let _ = kill_pid(pid, Signal::Kill);
            procs::wait_pid_gone(pid, Duration::from_secs(30));
        }
        if let Some(mut child) = st.script.take() {
            // The script exits by itself once the VM is gone; make sure.
            if procs::wait_child(&mut child, Duration::from_secs(10)).is_none() {
                procs::kill_tree(&mut child);
            } else {
                // Any straggler (erl_child_setup etc.) re-parented elsewhere
                // dies with its VM; nothing else to do.
            }
        }
        st.frozen = false;
        self.pid.store(0, Ordering::SeqCst);
    }

    fn ctl(&self, args: &[&str], timeout: Duration) -> Result<CmdOutput> {
        let cfg = &self.cfg;
        let mut cmd = Command::new(cfg.sbin.join("rabbitmqctl"));
        cfg.apply_env(&mut cmd);
        cmd.arg("-n").arg(&cfg.name).args(args);
        procs::run_with_timeout(cmd, &cfg.dir, timeout)
    }

    fn ctl_ok(&self, args: &[&str], timeout: Duration) -> Result<String> {
        let out = self.ctl(args, timeout)?;
        match out.status {
            Some(s) if s.success() => Ok(out.stdout),
            status => Err(Error::new(format!(
                "rabbitmqctl -n {} {} failed ({}):\nstdout: {}\nstderr: {}",
                self.cfg.name,
                args.join(" "),
                match status {
                    Some(s) => s.to_string(),
                    None => format!("killed after {timeout:?}"),
                },
                out.stdout.trim_end(),
                out.stderr.trim_end()
            ))),
        }
    }

    fn stop_locked(&self, st: &mut NodeState) -> Result<()> {
        if st.beam.is_none() {
            return Ok(());
        }
        if st.frozen {
            if let Some(pid) = st.beam {
                let _ = kill_pid(pid, Signal::Cont);
            }
            st.frozen = false;
        }
        let res = self.ctl_ok(&["stop"], Duration::from_secs(120));
        let beam = st.beam;
        let exited = match st.script.as_mut() {
            Some(child) => procs::wait_child(child, Duration::from_secs(60)).is_some(),
            None => true,
        } && beam
            .map(|p| procs::wait_pid_gone(p, Duration::from_secs(10)))
            .unwrap_or(true);
        if !exited {
            self.kill_locked(st);
            return Err(Error::new(format!(
                "node {} did not exit within 60 s of `rabbitmqctl stop` ({}); it was SIGKILLed\n{}",
                self.cfg.name,
                match &res {
                    Ok(_) => "stop succeeded".to_string(),
                    Err(e) => e.to_string(),
                },
                self.cfg.diagnostics()
            )));
        }
        st.beam = None;
        st.script = None;
        self.pid.store(0, Ordering::SeqCst);
        res.map(|_| ())
    }
}

impl Drop for NodeInner {
    fn drop(&mut self) {
        let mut st = std::mem::take(&mut *self.lock());
        self.kill_locked(&mut st);
        // Stragglers (rabbitmqctl runs killed at timeout are reaped already).
        procs::remove_dir_retrying(&self.cfg.dir);
    }
}

/// Finds the `beam.smp` descendant of `script_pid` carrying our marker.
fn find_beam(script_pid: u32, node_name: &str) -> Option<u32> {
    let mut candidates = procs::descendants(script_pid);
    candidates.insert(0, script_pid);
    candidates.into_iter().find(|&pid| {
        procs::proc_comm(pid).as_deref() == Some("beam.smp")
            && procs::proc_cmdline(pid).is_some_and(|args| {
                args.windows(2)
                    .any(|w| w[0] == "-kelp_test_node" && w[1] == node_name)
            })
    })
}

/// An extra RabbitMQ node on this host; see the [module docs](self).
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
        procs::reap_orphans_once();
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
        let amqp_port = opts.amqp_port.unwrap_or_else(procs::free_port);
        let dist_port = procs::free_port();
        let tls_port = opts
            .tls
            .as_ref()
            .map(|t| t.port.unwrap_or_else(procs::free_port));
        let name = format!("kelp-test-{amqp_port}@localhost");
        let dir = procs::make_temp_dir(&format!("rabbit-{amqp_port}"))?;
        let cfg = NodeConfig {
            name,
            amqp_port,
            dist_port,
            tls_port,
            dir: dir.clone(),
            sbin: sbin.to_path_buf(),
            start_timeout: opts.start_timeout,
        };
        // From here on, dropping `node` removes the directory.
        let node = RabbitNode {
            inner: Arc::new(NodeInner {
                cfg,
                state: Mutex::new(NodeState::default()),
                pid: AtomicU32::new(0),
            }),
        };
        let mk = |p: PathBuf| {
            std::fs::create_dir_all(&p)
                .map_err(|e| Error::new(format!("cannot create {}: {e}", p.display())))
        };
        mk(dir.join("home"))?;
        mk(dir.join("mnesia"))?;
        mk(dir.join("log"))?;
        mk(dir.join("conf.d"))?;
        let cookie = opts
            .erlang_cookie
            .clone()
            .unwrap_or_else(|| procs::random_token(20));
        let cookie_path = dir.join("home").join(".erlang.cookie");
        procs::write_file(&cookie_path, &cookie)?;
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&cookie_path, std::fs::Permissions::from_mode(0o400))
                .map_err(|e| Error::new(format!("cannot chmod {}: {e}", cookie_path.display())))?;
        }
        procs::write_file(
            &dir.join("enabled_plugins"),
            &format!("[{}].\n", opts.plugins.join(",")),
        )?;
        procs::write_file(
            &dir.join("rabbitmq-env.conf"),
            "# kelp-test-support: intentionally empty (keeps /etc/rabbitmq/rabbitmq-env.conf out)\n",
        )?;
        let mut conf = String::from("# generated by kelp-test-support\n");
        conf.push_str(&format!("listeners.tcp.1 = 127.0.0.1:{amqp_port}\n"));
        conf.push_str("loopback_users.guest = true\n");
        if let (Some(tls), Some(port)) = (&opts.tls, tls_port) {
            conf.push_str(&format!("listeners.ssl.1 = 127.0.0.1:{port}\n"));
            conf.push_str(&format!(
                "ssl_options.cacertfile = {}\n",
                abs(&tls.cacert).display()
            ));
            conf.push_str(&format!(
                "ssl_options.certfile = {}\n",
                abs(&tls.cert).display()
            ));
            conf.push_str(&format!(
                "ssl_options.keyfile = {}\n",
                abs(&tls.key).display()
            ));
            conf.push_str(&format!(
                "ssl_options.verify = {}\n",
                if tls.verify_peer {
                    "verify_peer"
                } else {
                    "verify_none"
                }
            ));
            conf.push_str(&format!(
                "ssl_options.fail_if_no_peer_cert = {}\n",
                tls.fail_if_no_peer_cert
            ));
        }
        for line in &opts.extra_config {
            conf.push_str(line);
            conf.push('\n');
        }
        procs::write_file(&dir.join("rabbitmq.conf"), &conf)?;
        Ok(node)
    }

    /// The AMQP port (127.0.0.1).
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

    /// `127.0.0.1:<amqp port>`.
    pub fn addr(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::from(([127, 0, 0, 1], self.inner.cfg.amqp_port))
    }

    /// `amqp://guest:guest@127.0.0.1:<port>//`
    pub fn url(&self) -> String {
        format!(
            "amqp://guest:guest@127.0.0.1:{}//",
            self.inner.cfg.amqp_port
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

    /// The Erlang node name, `kelp-test-<amqp port>@localhost`.
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
        self.inner.ctl_ok(args, Duration::from_secs(120))
    }

    /// [`rabbitmqctl`](Self::rabbitmqctl) with a custom timeout, returning
    /// `(exit code or None if killed at the timeout, stdout, stderr)` whatever
    /// the outcome.
    pub fn rabbitmqctl_raw(
        &self,
        args: &[&str],
        timeout: Duration,
    ) -> Result<(Option<i32>, String, String)> {
        let out = self.inner.ctl(args, timeout)?;
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
        let out = self.rabbitmqctl_async(&["eval", "mnesia:sync_log()."]).await?;
        if out.trim() == "ok" {
            Ok(())
        } else {
            Err(Error::new(format!("mnesia:sync_log() on {} answered {out:?}", self.url())))
        }
    }

    /// [`rabbitmqctl`](Self::rabbitmqctl) on tokio's blocking pool.
    pub async fn rabbitmqctl_async(&self, args: &[&str]) -> Result<String> {
        let inner = self.inner.clone();
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        blocking(move || {
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            inner.ctl_ok(&refs, Duration::from_secs(120))
        })
        .await
    }
}

fn abs(p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|d| d.join(p))
            .unwrap_or_else(|_| p.to_path_buf())
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => Err(Error::new(format!("blocking task failed: {e}"))),
    }
}

/// A RabbitMQ cluster of [`RabbitNode`]s on this host.
///
/// Node 0 is started first; nodes 1.. are started and joined to it with
/// `rabbitmqctl stop_app; join_cluster <node 0>; start_app`. All nodes share
/// one Erlang cookie. Dropping the cluster kills all nodes.
///
/// Restarting a killed member works while another member is up; a member
/// that was not the last to stop may wait (up to RabbitMQ's
/// `mnesia_table_loading_retry_*`, ~5 min by default) for its peers at boot,
/// so restart members in the reverse order of stopping them.
#[derive(Debug)]
pub struct RabbitCluster {
    nodes: Vec<RabbitNode>,
}

impl RabbitCluster {
    /// Starts an `n`-node cluster with default options.
    pub fn start(n: usize) -> Result<RabbitCluster> {
        Self::start_with(n, RabbitNodeOptions::default())
    }

    /// Starts an `n`-node cluster; `opts` applies to every node (its ports
    /// must be left to be picked: `amqp_port` and a TLS port must be `None`).
    pub fn start_with(n: usize, mut opts: RabbitNodeOptions) -> Result<RabbitCluster> {
        if n == 0 {
            return Err(Error::new("a cluster needs at least one node"));
        }
        if opts.amqp_port.is_some() || opts.tls.as_ref().is_some_and(|t| t.port.is_some()) {
            return Err(Error::new(
                "RabbitCluster: leave amqp_port and the TLS port as None (each node needs its own)",
            ));
        }
        if opts.erlang_cookie.is_none() {
            opts.erlang_cookie = Some(procs::random_token(20));
        }
        let first = RabbitNode::start_with(opts.clone())?;
        let mut nodes = vec![first];
        for _ in 1..n {
            let node = RabbitNode::start_with(opts.clone())?;
            let seed = nodes[0].node_name().to_string();
            node.rabbitmqctl(&["stop_app"])?;
            node.rabbitmqctl(&["join_cluster", &seed])?;
            node.rabbitmqctl(&["start_app"])?;
            let addr = node.addr();
            crate::wait_for(
                || amqp_probe(addr, Duration::from_secs(2)).is_ok(),
                opts.start_timeout,
            )
            .map_err(|_| {
                Error::new(format!(
                    "node {} did not answer AMQP after joining {seed}\n{}",
                    node.node_name(),
                    node.inner.cfg.diagnostics()
                ))
            })?;
            nodes.push(node);
        }
        Ok(RabbitCluster { nodes })
    }

    /// [`start_with`](Self::start_with) on tokio's blocking pool.
    pub async fn start_with_async(n: usize, opts: RabbitNodeOptions) -> Result<RabbitCluster> {
        blocking(move || Self::start_with(n, opts)).await
    }

    /// The nodes, node 0 (the seed) first.
    pub fn nodes(&self) -> &[RabbitNode] {
        &self.nodes
    }

    /// Node `i`. Panics if out of range.
    pub fn node(&self, i: usize) -> &RabbitNode {
        &self.nodes[i]
    }

    /// The AMQP URLs of all nodes.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RabbitNode::url).collect()
    }

    /// The node names of all nodes.
    pub fn node_names(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| n.node_name().to_string())
            .collect()
    }

    /// `rabbitmqctl cluster_status` as seen by the first running node.
    pub fn cluster_status(&self) -> Result<String> {
        let node = self
            .nodes
            .iter()
            .find(|n| n.is_running())
            .ok_or_else(|| Error::new("no node of the cluster is running"))?;
        node.rabbitmqctl(&["cluster_status"])
    }

    /// The cluster's running nodes as seen by the first running member
    /// (`rabbitmqctl cluster_status --formatter json`, key `running_nodes`).
    pub fn running_nodes(&self) -> Result<Vec<String>> {
        let node = self
            .nodes
            .iter()
            .find(|n| n.is_running())
            .ok_or_else(|| Error::new("no node of the cluster is running"))?;
        let json = node.rabbitmqctl(&["cluster_status", "--formatter", "json"])?;
        json_string_array(&json, "running_nodes")
            .ok_or_else(|| Error::new(format!("no running_nodes in cluster_status output: {json}")))
    }

    /// Takes the nodes out of the cluster handle.
    pub fn into_nodes(self) -> Vec<RabbitNode> {
        self.nodes
    }
}

/// Extracts `"key":["a","b"]` from JSON text (node names need no unescaping).
fn json_string_array(json: &str, key: &str) -> Option<Vec<String>> {
    let start = json.find(&format!("\"{key}\":["))? + key.len() + 4;
    let end = start + json[start..].find(']')?;
    Some(
        json[start..end]
            .split(',')
            .map(|s| s.trim().trim_matches('"').to_string())
            .filter(|s| !s.is_empty())
            .collect(),
    )
}

#[allow(dead_code)]
fn _assert_send_sync() {
    fn is<T: Send + Sync>() {}
    is::<RabbitNode>();
    is::<RabbitCluster>();
}

#[cfg(test)]
mod tests {
    #[test]
    fn json_array() {
        let j = r#"{"disk_nodes":["a@h"],"running_nodes":["a@h","b@h"],"x":[]}"#;
        assert_eq!(
            super::json_string_array(j, "running_nodes").unwrap(),
            vec!["a@h", "b@h"]
        );
        assert_eq!(
            super::json_string_array(j, "x").unwrap(),
            Vec::<String>::new()
        );
        assert!(super::json_string_array(j, "nope").is_none());
    }
}
