//! Extra RabbitMQ nodes (and clusters of them) for failover tests.
//!
//! A [`RabbitNode`] is a separate RabbitMQ node on this host, next to the
//! default `rabbit@localhost`: its own node name (`kelp-test-<amqp port>@localhost`),
//! AMQP port, Erlang distribution port, Erlang cookie, data (mnesia) and log
//! directories, `rabbitmq.conf`, `rabbitmq-env.conf` and enabled-plugins file,
//! all inside a temporary directory. No plugin is enabled, so it opens no
//! management/prometheus/stream port; it listens on 127.0.0.1 only. It never
//! touches the default node's files or ports. (A node can also run inside a
//! network namespace, on an address of its own: [`NodeNetns`]; a
//! [`NetCluster`] is made of such nodes.)
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

mod cluster;
mod config;
mod ctl;
mod nemesis;
mod net_cluster;
mod node;
mod options;
mod process;

pub use cluster::RabbitCluster;
pub use net_cluster::{ClusterView, NetCluster, NetClusterOptions, PartitionHandling};
pub use node::RabbitNode;
pub use options::{NodeNetns, RabbitNodeOptions, TlsListener};

#[allow(dead_code)]
fn _assert_send_sync() {
    fn is<T: Send + Sync>() {}
    is::<RabbitNode>();
    is::<RabbitCluster>();
    is::<NetCluster>();
}
