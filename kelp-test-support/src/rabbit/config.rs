//! A node's files and environment: where RabbitMQ's scripts are, the
//! node's temporary directory with its configuration, Erlang cookie, data
//! and logs, and the environment both the server and `rabbitmqctl` run in.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::options::RabbitNodeOptions;
use crate::brokers::amqp_probe;
use crate::error::{Error, Result};
use crate::netns;
use crate::procs;

/// Where the real `rabbitmq-server` / `rabbitmqctl` scripts are.
pub(super) fn rabbitmq_sbin() -> Result<PathBuf> {
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
pub(super) struct NodeConfig {
    pub(super) name: String,
    /// The address it listens on: 127.0.0.1, or its address in `netns`.
    pub(super) ip: Ipv4Addr,
    /// The network namespace it runs in, if any.
    pub(super) netns: Option<String>,
    pub(super) amqp_port: u16,
    pub(super) dist_port: u16,
    pub(super) tls_port: Option<u16>,
    pub(super) dir: PathBuf,
    pub(super) sbin: PathBuf,
    pub(super) start_timeout: Duration,
}

impl NodeConfig {
    /// A node on the ports `opts` fixes and free ones for the rest, in a
    /// new temporary directory (nothing written in it yet). A node in a
    /// namespace has the namespace's ports to itself and is named after its
    /// address.
    pub(super) fn new(opts: &RabbitNodeOptions, sbin: &Path) -> Result<NodeConfig> {
        let in_ns = opts.netns.is_some();
        let pick = |fixed: u16| if in_ns { fixed } else { procs::free_port() };
        let amqp_port = opts.amqp_port.unwrap_or_else(|| pick(5672));
        let dist_port = pick(25672);
        let tls_port = opts
            .tls
            .as_ref()
            .map(|t| t.port.unwrap_or_else(|| pick(5671)));
        let (name, ip, netns, kind) = match &opts.netns {
            Some(n) => (
                format!("kelp@{}", n.addr),
                n.addr,
                Some(n.netns.clone()),
                format!("rabbit-{}", n.addr),
            ),
            None => (
                format!("kelp-test-{amqp_port}@localhost"),
                Ipv4Addr::LOCALHOST,
                None,
                format!("rabbit-{amqp_port}"),
            ),
        };
        Ok(NodeConfig {
            name,
            ip,
            netns,
            amqp_port,
            dist_port,
            tls_port,
            dir: procs::make_temp_dir(&kind)?,
            sbin: sbin.to_path_buf(),
            start_timeout: opts.start_timeout,
        })
    }

    pub(super) fn home(&self) -> PathBuf {
        self.dir.join("home")
    }
    pub(super) fn log_file(&self) -> PathBuf {
        self.dir.join("log").join(format!("{}.log", self.name))
    }
    pub(super) fn startup_log(&self) -> PathBuf {
        self.dir.join("startup.log")
    }
    pub(super) fn pid_file(&self) -> PathBuf {
        self.dir.join("node.pid")
    }

    /// A command running one of RabbitMQ's scripts (`rabbitmq-server`,
    /// `rabbitmqctl`) for this node: in its namespace, with its
    /// environment.
    pub(super) fn command(&self, script: &str) -> Result<Command> {
        let program = self.sbin.join(script);
        let mut cmd = match &self.netns {
            Some(ns) => netns::command_in(ns, &program)?,
            None => Command::new(program),
        };
        self.apply_env(&mut cmd);
        Ok(cmd)
    }

    /// Whether the node's AMQP port answers [`amqp_probe`], seen from the
    /// node's own network (its namespace: faults on the links to it do not
    /// count).
    pub(super) fn probe_amqp(&self, timeout: Duration) -> Result<()> {
        let addr = SocketAddr::from((self.ip, self.amqp_port));
        match &self.netns {
            Some(ns) => netns::in_netns(ns, || amqp_probe(addr, timeout))?,
            None => amqp_probe(addr, timeout),
        }
    }

    /// Whether `port` of the node accepts TCP connections, seen from the
    /// node's own network.
    pub(super) fn accepts(&self, port: u16, timeout: Duration) -> bool {
        let addr = SocketAddr::from((self.ip, port));
        let connect = || std::net::TcpStream::connect_timeout(&addr, timeout).is_ok();
        match &self.netns {
            Some(ns) => netns::in_netns(ns, connect).unwrap_or(false),
            None => connect(),
        }
    }

    /// Environment for both the server and the CLI tools. In a namespace,
    /// `ERL_EPMD_ADDRESS` stays unset: the namespace's epmd listens on all
    /// of its addresses, and the node and the CLI find it on the node's.
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
        let [a, b, c, e] = self.ip.octets();
        cmd.env("HOME", self.home())
            .env("RABBITMQ_NODENAME", &self.name)
            .env("RABBITMQ_NODE_IP_ADDRESS", self.ip.to_string())
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
                    "-kernel inet_dist_use_interface {{{a},{b},{c},{e}}} -kelp_test_node {}",
                    self.name
                ),
            )
            .current_dir(d);
        if self.netns.is_some() {
            cmd.env("RABBITMQ_USE_LONGNAME", "true");
        } else {
            cmd.env("ERL_EPMD_ADDRESS", "127.0.0.1");
        }
        procs::mark(cmd, d);
    }

    pub(super) fn diagnostics(&self) -> String {
        format!(
            "--- {} (last lines) ---\n{}\n--- {} (last lines) ---\n{}",
            self.startup_log().display(),
            procs::tail_file(&self.startup_log(), 30),
            self.log_file().display(),
            procs::tail_file(&self.log_file(), 40)
        )
    }

    /// Writes the node's directories and files: home with the Erlang
    /// cookie, mnesia, log, conf.d, enabled_plugins, an empty
    /// rabbitmq-env.conf and rabbitmq.conf.
    pub(super) fn write_files(&self, opts: &RabbitNodeOptions) -> Result<()> {
        let dir = &self.dir;
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
        conf.push_str(&format!("listeners.tcp.1 = {}:{}\n", self.ip, self.amqp_port));
        if self.netns.is_some() {
            // Clients come over the bridge, not the loopback.
            conf.push_str("loopback_users = none\n");
        } else {
            conf.push_str("loopback_users.guest = true\n");
        }
        if let (Some(tls), Some(port)) = (&opts.tls, self.tls_port) {
            conf.push_str(&format!("listeners.ssl.1 = {}:{port}\n", self.ip));
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
        procs::write_file(&dir.join("rabbitmq.conf"), &conf)
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
