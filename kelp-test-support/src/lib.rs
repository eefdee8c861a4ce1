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
//! * [`NetCluster`]: a RabbitMQ cluster whose nodes each run in a network
//!   namespace of their own (on `10.77.x.0/24`, reached from the tests
//!   through a bridge and veth pairs), for faults between nodes that are
//!   real network faults: partitions (also non-transitive ones), a black
//!   hole, random loss or a rate limit on the link between the test and
//!   one node (nftables rules, htb classes), besides killed, frozen,
//!   stopped and restarted nodes and memory alarms. `cluster_partition_handling`
//!   is configurable, and [`NetCluster::recover`] brings the cluster back
//!   in one piece after a partition, as RabbitMQ's guide says. Needs root,
//!   `ip`, `tc` and `nft` (`scripts/deps.sh` installs them).
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
//! owner is gone and removes their temporary directories. The network
//! namespaces, veths and bridges of a [`NetCluster`] carry their owner in
//! their names (and interface aliases) and are deleted the same way.
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

mod brokers;
mod error;
mod names;
mod netns;
mod poll;
mod procs;
mod reap;
mod signals;

pub mod haproxy;
pub mod proxy;
pub mod rabbit;
pub mod redis;
pub mod tls;

pub use brokers::{
    amqp_probe, default_amqp_url, default_redis_url, require_rabbitmq, require_rabbitmq_async, require_redis,
    require_redis_async,
};
pub use error::{Error, Result};
pub use names::unique_name;
pub use procs::{free_port, pid_alive};
pub use reap::reap_orphans;
pub use haproxy::HaProxy;
pub use poll::{Check, eventually, eventually_blocking, next_matching, wait_for, wait_for_async};
pub use signals::{Signal, kill_pid};
pub use proxy::{FaultMode, FaultProxy};
pub use rabbit::{
    ClusterView, NetCluster, NetClusterOptions, NodeNetns, PartitionHandling, RabbitCluster,
    RabbitNode, RabbitNodeOptions, TlsListener,
};
pub use redis::{
    RedisOptions, RedisSentinel, RedisServer, RespValue, SentinelOptions, redis_command,
};
