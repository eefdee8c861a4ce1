//! What an extra RabbitMQ node ([`RabbitNode`](super::RabbitNode)) is
//! started with: ports, a TLS listener, extra configuration, plugins, the
//! Erlang cookie and the boot timeout.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

/// A TLS (AMQPS) listener for a [`RabbitNode`](super::RabbitNode). Certificate files are PEM.
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

/// A node that runs inside a network namespace instead of on this host's
/// loopback (what [`NetCluster`](super::NetCluster) sets up for each of its
/// nodes).
///
/// The namespace must exist, with `addr` on one of its interfaces and `lo`
/// up. The node is then named `kelp@<addr>` (Erlang long names), listens
/// on `addr` (AMQP on 5672 unless [`RabbitNodeOptions::amqp_port`] says
/// otherwise, Erlang distribution on 25672), starts an `epmd` of its own on
/// the namespace's network stack, and lets `guest` log in from other hosts
/// (`loopback_users = none`), since its clients are not on its loopback.
/// The server and `rabbitmqctl` run under `ip netns exec <netns>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeNetns {
    /// The namespace's name (as `ip netns list` shows it).
    pub netns: String,
    /// The node's address in the namespace.
    pub addr: Ipv4Addr,
}

/// Options for [`RabbitNode::start_with`](super::RabbitNode::start_with). `Default` gives a plain node on
/// free ports.
#[derive(Clone, Debug)]
pub struct RabbitNodeOptions {
    /// The AMQP port; `None` picks a free one (5672 in a namespace). (The
    /// Erlang distribution port is always picked free, or 25672 in a
    /// namespace.)
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
    /// need the same cookie ([`RabbitCluster`](super::RabbitCluster) sees to that).
    pub erlang_cookie: Option<String>,
    /// How long one boot may take before it is considered failed. Default:
    /// 60 s, or `KELP_TEST_RABBIT_START_TIMEOUT_SECS`.
    pub start_timeout: Duration,
    /// Run the node in a network namespace (`None`: on 127.0.0.1).
    pub netns: Option<NodeNetns>,
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
            netns: None,
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

    /// Runs the node in network namespace `netns` on `addr` (see
    /// [`NodeNetns`]).
    pub fn in_netns(mut self, netns: impl Into<String>, addr: Ipv4Addr) -> Self {
        self.netns = Some(NodeNetns {
            netns: netns.into(),
            addr,
        });
        self
    }
}
