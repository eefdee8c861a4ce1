//! [`NetCluster`]: a RabbitMQ cluster whose nodes each live in a network
//! namespace of their own, so that the network between them can fail for
//! real; how it starts, what it says of itself, and its teardown. The
//! faults themselves are in [`super::nemesis`].

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::cluster::{join, json_string_array};
use super::node::{RabbitNode, blocking};
use super::options::RabbitNodeOptions;
use crate::error::{Error, Result};
use crate::netns::{self, Subnet};
use crate::procs;

/// What a cluster does when its nodes lose sight of each other: RabbitMQ's
/// `cluster_partition_handling`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PartitionHandling {
    /// `ignore`, RabbitMQ's default: every side goes on serving; after the
    /// network heals the partition stays recorded until the nodes of all
    /// sides but one are restarted ([`NetCluster::recover`] does that).
    #[default]
    Ignore,
    /// `pause_minority`, what RabbitMQ recommends: nodes that see no
    /// majority of the cluster stop serving (their AMQP port closes) until
    /// they see one again; they then resume by themselves.
    PauseMinority,
    /// `autoheal`: after the network heals, the nodes outside the winning
    /// side restart by themselves.
    Autoheal,
}

impl PartitionHandling {
    fn config_value(self) -> &'static str {
        match self {
            PartitionHandling::Ignore => "ignore",
            PartitionHandling::PauseMinority => "pause_minority",
            PartitionHandling::Autoheal => "autoheal",
        }
    }
}

/// Options for [`NetCluster::start_with`].
#[derive(Clone, Debug)]
pub struct NetClusterOptions {
    /// How many nodes (1 to 36; 3 is the usual).
    pub nodes: usize,
    /// `cluster_partition_handling`.
    pub partition_handling: PartitionHandling,
    /// `net_ticktime` in seconds: a peer that has not been heard of for
    /// about this long is taken for down, so this is how long a partition
    /// takes to be noticed. `None` keeps RabbitMQ's 60 s; tests want ~10.
    pub net_ticktime: Option<u32>,
    /// Extra `rabbitmq.conf` lines for every node.
    pub extra_config: Vec<String>,
    /// The boot timeout of one node (see [`RabbitNodeOptions`]).
    pub start_timeout: Duration,
}

impl NetClusterOptions {
    /// `nodes` nodes, `ignore`, RabbitMQ's `net_ticktime`.
    pub fn new(nodes: usize) -> Self {
        NetClusterOptions {
            nodes,
            partition_handling: PartitionHandling::default(),
            net_ticktime: None,
            extra_config: Vec::new(),
            start_timeout: RabbitNodeOptions::default().start_timeout,
        }
    }

    /// Sets `cluster_partition_handling`.
    pub fn partition_handling(mut self, handling: PartitionHandling) -> Self {
        self.partition_handling = handling;
        self
    }

    /// Sets `net_ticktime` (seconds).
    pub fn net_ticktime(mut self, secs: u32) -> Self {
        self.net_ticktime = Some(secs);
        self
    }

    /// Appends a line to every node's `rabbitmq.conf`.
    pub fn config_line(mut self, line: impl Into<String>) -> Self {
        self.extra_config.push(line.into());
        self
    }

    /// Sets the boot timeout of one node.
    pub fn start_timeout(mut self, timeout: Duration) -> Self {
        self.start_timeout = timeout;
        self
    }

    /// Starts the cluster ([`NetCluster::start_with`]).
    pub fn start(self) -> Result<NetCluster> {
        NetCluster::start_with(self)
    }
}

/// What one node says of the cluster (`rabbitmqctl cluster_status`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClusterView {
    /// The nodes it sees running (itself included), sorted.
    pub running_nodes: Vec<String>,
    /// The partitions RabbitMQ has recorded: a node, and the nodes it was
    /// cut off from. Empty when the cluster is whole.
    pub partitions: Vec<(String, Vec<String>)>,
    /// The nodes with a resource alarm in force (memory or disk), as
    /// `<node>:<resource>`, sorted.
    pub alarms: Vec<String>,
}

/// Which links are faulty; what [`super::nemesis`] renders as nft rules and
/// htb classes.
#[derive(Debug)]
pub(super) struct Faults {
    /// Node pairs `(a, b)`, `a < b`, that cannot reach each other.
    pub(super) cut: std::collections::BTreeSet<(usize, usize)>,
    /// Per node: the link between the root namespace and the node.
    pub(super) client: Vec<ClientLink>,
}

/// The state of the link between the root namespace and a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ClientLink {
    Up,
    /// Every packet dropped.
    Cut,
    /// This percentage of packets dropped, at random.
    Lossy(u8),
}

/// What a [`NetCluster`] handle shares with the tasks its `_async`
/// methods run. Fields drop in order: the nodes (killed) before the
/// subnet (namespaces deleted).
#[derive(Debug)]
pub(super) struct Shared {
    pub(super) nodes: Vec<RabbitNode>,
    pub(super) subnet: Subnet,
    pub(super) faults: Mutex<Faults>,
    pub(super) handling: PartitionHandling,
}

/// A RabbitMQ cluster of N nodes, each in its own network namespace, for
/// tests that need the network between nodes (and between the test and a
/// node) to fail for real: partitions, one-way-looking black holes, packet
/// loss, slow links, besides killed, frozen and restarted nodes.
///
/// # Layout
///
/// The cluster gets a free `/24` of `10.77.0.0/16` (one per cluster, so
/// clusters of parallel tests do not collide). A bridge in the root
/// namespace holds `.1`; node `i` runs in namespace
/// `kelp-<pid>-<start>-<n>-<i>` on `eth0` = `10.77.x.(i + 2)`, the other
/// end of a veth pair on the bridge. The test (and kelp) stay in the root
/// namespace and reach node `i` at [`url`](Self::url)`(i)`,
/// `amqp://guest:guest@10.77.x.(i + 2):5672//`. Nodes are named
/// `kelp@10.77.x.(i + 2)` (long names), share one Erlang cookie, each has
/// its own epmd, and node 1.. joined node 0 with `rabbitmqctl
/// join_cluster`. Nothing leaves the machine: the addresses exist only on
/// the bridge and in the namespaces.
///
/// Faults are nft rules on `eth0` of the nodes' namespaces (ingress and
/// egress hooks: a dropped packet is lost on the wire, no sender sees an
/// error) and htb classes on both ends of a client link; see the methods
/// in the nemesis section ([`partition`](Self::partition),
/// [`cut_client`](Self::cut_client), [`kill`](Self::kill), ...).
///
/// # Teardown
///
/// Dropping the cluster (also while a panic unwinds) kills the nodes and
/// everything else running in the namespaces (epmd), and deletes the
/// namespaces (with their rules), the veths (with their qdiscs) and the
/// bridge. Leftovers of a test binary killed outright are deleted by the
/// next one ([`crate::reap_orphans`]).
///
/// # Requirements
///
/// Linux, root, `ip` (iproute2), `nft` (nftables) and `tc`; the kernel's
/// veth, bridge, nftables netdev (ingress/egress) and htb/u32 support. If a
/// firewall of the root namespace filters bridged traffic
/// (`br_netfilter` with a `FORWARD` policy of `DROP`, as Docker sets up),
/// the nodes cannot reach each other.
///
/// # Partition handling
///
/// See [`PartitionHandling`]. Set a short [`NetClusterOptions::net_ticktime`]
/// in tests (10 s) so a partition is noticed in ~10-15 s rather than a
/// minute. With `ignore`, RabbitMQ does not merge the sides again after
/// [`heal`](Self::heal): [`recover`](Self::recover) restarts the nodes of
/// the losing sides, as RabbitMQ's partition guide says to.
#[derive(Debug)]
pub struct NetCluster {
    pub(super) inner: Arc<Shared>,
}

impl NetCluster {
    /// Starts an `n`-node cluster with default options (`ignore`,
    /// RabbitMQ's `net_ticktime`).
    pub fn start(n: usize) -> Result<NetCluster> {
        Self::start_with(NetClusterOptions::new(n))
    }

    /// Creates the subnet and namespaces, boots node 0, then boots each
    /// further node and joins it to node 0. On error, everything created
    /// so far is torn down.
    pub fn start_with(opts: NetClusterOptions) -> Result<NetCluster> {
        crate::reap::reap_orphans_once();
        let n = opts.nodes;
        let subnet = Subnet::create(n)?;
        let mut base = RabbitNodeOptions::default()
            .erlang_cookie(procs::random_token(20))
            .start_timeout(opts.start_timeout)
            .config_line(format!(
                "cluster_partition_handling = {}",
                opts.partition_handling.config_value()
            ));
        if let Some(secs) = opts.net_ticktime {
            base = base.config_line(format!("net_ticktime = {secs}"));
        }
        base.extra_config.extend(opts.extra_config.iter().cloned());
        let mut nodes: Vec<RabbitNode> = Vec::with_capacity(n);
        for i in 0..n {
            let node = base
                .clone()
                .in_netns(subnet.namespaces[i].clone(), subnet.node_ip(i))
                .start()?;
            if let Some(seed) = nodes.first() {
                join(&node, seed.node_name(), opts.start_timeout)?;
            }
            nodes.push(node);
        }
        Ok(NetCluster {
            inner: Arc::new(Shared {
                nodes,
                subnet,
                faults: Mutex::new(Faults {
                    cut: Default::default(),
                    client: vec![ClientLink::Up; n],
                }),
                handling: opts.partition_handling,
            }),
        })
    }

    /// [`start`](Self::start) on tokio's blocking pool.
    pub async fn start_async(n: usize) -> Result<NetCluster> {
        blocking(move || Self::start(n)).await
    }

    /// [`start_with`](Self::start_with) on tokio's blocking pool.
    pub async fn start_with_async(opts: NetClusterOptions) -> Result<NetCluster> {
        blocking(move || Self::start_with(opts)).await
    }

    /// Runs `f` with this cluster on tokio's blocking pool: the `_async`
    /// form of any method (the cluster lives on until `f` returns, even if
    /// the caller's future is dropped).
    pub async fn run_async<T: Send + 'static>(
        &self,
        f: impl FnOnce(&NetCluster) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let handle = NetCluster {
            inner: self.inner.clone(),
        };
        blocking(move || f(&handle)).await
    }

    /// Node `i`, or an error naming the cluster's size.
    pub(super) fn checked(&self, i: usize) -> Result<&RabbitNode> {
        self.inner.nodes.get(i).ok_or_else(|| {
            Error::new(format!(
                "no node {i} in a cluster of {}",
                self.inner.nodes.len()
            ))
        })
    }

    pub(super) fn faults(&self) -> MutexGuard<'_, Faults> {
        self.inner.faults.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How many nodes.
    pub fn size(&self) -> usize {
        self.inner.nodes.len()
    }

    /// The nodes (node 0 is the one the others joined).
    pub fn nodes(&self) -> &[RabbitNode] {
        &self.inner.nodes
    }

    /// Node `i`. Panics if out of range.
    pub fn node(&self, i: usize) -> &RabbitNode {
        &self.inner.nodes[i]
    }

    /// Node `i`'s AMQP URL from the root namespace,
    /// `amqp://guest:guest@10.77.x.(i + 2):5672//`. Panics if out of range.
    pub fn url(&self, i: usize) -> String {
        self.node(i).url()
    }

    /// All nodes' AMQP URLs, node 0 first.
    pub fn urls(&self) -> Vec<String> {
        self.inner.nodes.iter().map(RabbitNode::url).collect()
    }

    /// Node `i`'s AMQP address. Panics if out of range.
    pub fn addr(&self, i: usize) -> SocketAddr {
        self.node(i).addr()
    }

    /// Node `i`'s Erlang distribution address (`10.77.x.(i + 2):25672`).
    /// Panics if out of range.
    pub fn dist_addr(&self, i: usize) -> SocketAddr {
        SocketAddr::from((self.node(i).ip(), self.node(i).dist_port()))
    }

    /// Node `i`'s Erlang node name, `kelp@10.77.x.(i + 2)`. Panics if out
    /// of range.
    pub fn node_name(&self, i: usize) -> &str {
        self.node(i).node_name()
    }

    /// All node names, node 0 first.
    pub fn node_names(&self) -> Vec<String> {
        self.inner
            .nodes
            .iter()
            .map(|n| n.node_name().to_string())
            .collect()
    }

    /// The bridge's address, where the root namespace's packets to the
    /// nodes come from.
    pub fn bridge_ip(&self) -> Ipv4Addr {
        self.inner.subnet.bridge_ip()
    }

    /// Node `i`'s network namespace (for `ip netns exec`). Panics if out of
    /// range.
    pub fn netns(&self, i: usize) -> &str {
        &self.inner.subnet.namespaces[i]
    }

    /// The links this cluster made in the root namespace: the bridge, then
    /// the root end of each node's veth (node 0 first).
    pub fn links(&self) -> Vec<String> {
        let sub = &self.inner.subnet;
        std::iter::once(sub.bridge().to_string())
            .chain(sub.veths.iter().cloned())
            .collect()
    }

    /// A TCP connection attempt to `addr` from node `i`'s namespace (the
    /// connection is closed at once): what node `i`'s network lets through.
    pub fn connect_from(
        &self,
        i: usize,
        addr: SocketAddr,
        timeout: Duration,
    ) -> std::io::Result<()> {
        let ns = self
            .inner
            .subnet
            .namespaces
            .get(i)
            .ok_or_else(|| std::io::Error::other(format!("no node {i}")))?;
        netns::in_netns(ns, || {
            std::net::TcpStream::connect_timeout(&addr, timeout).map(drop)
        })
        .map_err(|e| std::io::Error::other(e.to_string()))?
    }

    /// `rabbitmqctl -n <node i> <args>`, run in node `i`'s namespace with
    /// its environment; its stdout (see [`RabbitNode::rabbitmqctl`]).
    pub fn rabbitmqctl(&self, i: usize, args: &[&str]) -> Result<String> {
        self.checked(i)?.rabbitmqctl(args)
    }

    /// [`rabbitmqctl`](Self::rabbitmqctl) on tokio's blocking pool.
    pub async fn rabbitmqctl_async(&self, i: usize, args: &[&str]) -> Result<String> {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        self.run_async(move |c| {
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            c.rabbitmqctl(i, &refs)
        })
        .await
    }

    /// `rabbitmqctl cluster_status` as node `i` sees it (text).
    pub fn cluster_status(&self, i: usize) -> Result<String> {
        self.rabbitmqctl(i, &["cluster_status"])
    }

    /// The cluster as node `i` sees it (`cluster_status --formatter json`).
    /// An error if node `i` does not answer (killed, stopped, frozen), or if
    /// RabbitMQ's answer cannot be read.
    ///
    /// While a partition is being detected (up to ~`net_ticktime` after it
    /// began) a node's answer can take that long: it waits for its peers.
    /// A `rabbitmqctl` still running after 60 s is killed (an error).
    pub fn view(&self, i: usize) -> Result<ClusterView> {
        let args = ["cluster_status", "--formatter", "json", "--timeout", "10"];
        let (code, json, err) = self
            .checked(i)?
            .rabbitmqctl_raw(&args, Duration::from_secs(60))?;
        if code != Some(0) {
            return Err(Error::new(format!(
                "rabbitmqctl cluster_status on node {i} failed ({}): {}{}",
                code.map_or("killed after 60 s".to_string(), |c| format!(
                    "exit code {c}"
                )),
                json.trim(),
                err.trim()
            )));
        }
        parse_view(&json)
            .ok_or_else(|| Error::new(format!("cannot read node {i}'s cluster_status: {json}")))
    }

    /// The running nodes as node `i` sees them, sorted.
    pub fn running_nodes(&self, i: usize) -> Result<Vec<String>> {
        self.view(i).map(|v| v.running_nodes)
    }

    /// The partitions node `i` knows of (empty: none).
    pub fn partitions(&self, i: usize) -> Result<Vec<(String, Vec<String>)>> {
        self.view(i).map(|v| v.partitions)
    }

    /// Each node's view, or why it has none.
    fn views(&self) -> Vec<Result<ClusterView>> {
        (0..self.size()).map(|i| self.view(i)).collect()
    }

    /// Why the cluster is not whole yet, per the views; `None` if it is:
    /// every node answers, sees all nodes running and knows of no
    /// partition.
    fn not_whole(&self, views: &[Result<ClusterView>]) -> Option<String> {
        let mut all = self.node_names();
        all.sort();
        let problems: Vec<String> = views
            .iter()
            .enumerate()
            .filter_map(|(i, v)| match v {
                Err(e) => Some(format!("node {i}: {}", first_line(e.message()))),
                Ok(v) if v.running_nodes != all => {
                    Some(format!("node {i} sees running {:?}", v.running_nodes))
                }
                Ok(v) if !v.partitions.is_empty() => {
                    Some(format!("node {i} reports partitions {:?}", v.partitions))
                }
                Ok(_) => None,
            })
            .collect();
        (!problems.is_empty()).then(|| problems.join("; "))
    }

    /// Whether the cluster is whole right now (every node answers
    /// `rabbitmqctl`, sees every node running and knows of no partition).
    /// Runs `rabbitmqctl` once per node (~1-2 s of CPU each).
    pub fn is_whole(&self) -> bool {
        self.not_whole(&self.views()).is_none()
    }

    /// Waits until the cluster is whole ([`is_whole`](Self::is_whole)),
    /// e.g. after [`heal`](Self::heal) under `pause_minority`, or after a
    /// node was restarted; an error saying what was seen last if it is not
    /// within `within`.
    pub fn wait_whole(&self, within: Duration) -> Result<()> {
        self.wait_whole_or(within, |_, _, _| Vec::new()).map(|_| ())
    }

    /// [`wait_whole`](Self::wait_whole) on tokio's blocking pool.
    pub async fn wait_whole_async(&self, within: Duration) -> Result<()> {
        self.run_async(move |c| c.wait_whole(within)).await
    }

    /// Brings a cluster whose network was healed back to one piece, and
    /// returns the nodes it restarted.
    ///
    /// Waits until the cluster is whole. If meanwhile the nodes report a
    /// partition (with `ignore`, RabbitMQ keeps the sides apart after the
    /// network heals), it does what RabbitMQ's partition guide says: keep
    /// the largest side that saw no partition among itself, and restart
    /// the nodes of the other sides (`rabbitmqctl stop`, then a boot on
    /// the same data; each at most once), which then take the kept side's
    /// state. Under `pause_minority` and `autoheal` RabbitMQ recovers by
    /// itself and this only waits. Nodes that are down stay down (it then
    /// fails).
    pub fn recover(&self, within: Duration) -> Result<Vec<usize>> {
        let handling = self.inner.handling;
        self.wait_whole_or(within, |c, views, done| {
            if handling != PartitionHandling::Ignore {
                return Vec::new();
            }
            let losers: Vec<usize> = losing_sides(&c.node_names(), views)
                .into_iter()
                .filter(|i| !done.contains(i))
                .collect();
            for &i in &losers {
                eprintln!(
                    "kelp-test-support: restarting {} to end a partition (cluster_partition_handling = ignore)",
                    c.node_name(i)
                );
                if let Err(e) = c.node(i).restart() {
                    eprintln!("kelp-test-support: restarting {} failed: {e}", c.node_name(i));
                }
            }
            losers
        })
    }

    /// [`recover`](Self::recover) on tokio's blocking pool.
    pub async fn recover_async(&self, within: Duration) -> Result<Vec<usize>> {
        self.run_async(move |c| c.recover(within)).await
    }

    /// Polls the views until whole; `act` may do something about what it
    /// sees, given what it did before, and returns the nodes it restarted
    /// (all of which are returned in the end).
    fn wait_whole_or(
        &self,
        within: Duration,
        mut act: impl FnMut(&NetCluster, &[Result<ClusterView>], &[usize]) -> Vec<usize>,
    ) -> Result<Vec<usize>> {
        let start = Instant::now();
        let mut restarted = Vec::new();
        loop {
            let views = self.views();
            let Some(why) = self.not_whole(&views) else {
                return Ok(restarted);
            };
            if start.elapsed() >= within {
                return Err(Error::new(format!(
                    "the cluster is not whole after {within:?}: {why}"
                )));
            }
            let acted = act(self, &views, &restarted);
            if acted.is_empty() {
                std::thread::sleep(Duration::from_secs(1));
            }
            restarted.extend(acted);
        }
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}

/// The nodes to restart to end a recorded partition (indices into
/// `names`): all but the largest group of nodes that report no partition
/// with each other. Empty if no node reports a partition.
fn losing_sides(names: &[String], views: &[Result<ClusterView>]) -> Vec<usize> {
    let index = |name: &str| names.iter().position(|n| n == name);
    let mut apart = std::collections::BTreeSet::new();
    for v in views.iter().flatten() {
        for (node, peers) in &v.partitions {
            for peer in peers {
                if let (Some(a), Some(b)) = (index(node), index(peer)) {
                    apart.insert((a.min(b), a.max(b)));
                }
            }
        }
    }
    if apart.is_empty() {
        return Vec::new();
    }
    // Greedy: most trusted first (fewest partners apart), then keep whoever
    // is apart from no one kept.
    let mut order: Vec<usize> = (0..names.len()).collect();
    order.sort_by_key(|&i| apart.iter().filter(|(a, b)| *a == i || *b == i).count());
    let mut kept: Vec<usize> = Vec::new();
    for i in order {
        if kept.iter().all(|&k| !apart.contains(&(i.min(k), i.max(k)))) {
            kept.push(i);
        }
    }
    (0..names.len()).filter(|i| !kept.contains(i)).collect()
}

/// Reads `cluster_status --formatter json`: `running_nodes` (a list),
/// `partitions` (an object of node to list) and `alarms` (a list of
/// `{"node":..,"resource":..}` objects, or of other shapes: kept as text).
fn parse_view(json: &str) -> Option<ClusterView> {
    let mut running_nodes = json_string_array(json, "running_nodes")?;
    running_nodes.sort();
    let body = json_object_body(json, "partitions")?;
    let mut partitions = Vec::new();
    let mut rest = body;
    while let Some(q) = rest.find('"') {
        let after = &rest[q + 1..];
        let end = after.find('"')?;
        let node = after[..end].to_string();
        let list_start = after.find('[')? + 1;
        let list_end = list_start + after[list_start..].find(']')?;
        let peers: Vec<String> = after[list_start..list_end]
            .split(',')
            .map(|s| s.trim().trim_matches('"').to_string())
            .filter(|s| !s.is_empty())
            .collect();
        partitions.push((node, peers));
        rest = &after[list_end + 1..];
    }
    partitions.sort();
    let mut alarms = Vec::new();
    let key = "\"alarms\":[";
    if let Some(at) = json.find(key) {
        let list = &json[at + key.len()..];
        let list = &list[..list.find(']')?];
        for item in list.split('}').filter(|s| s.contains('"')) {
            let field = |k: &str| {
                let at = item.find(&format!("\"{k}\":\""))? + k.len() + 4;
                Some(item[at..at + item[at..].find('"')?].to_string())
            };
            match (field("node"), field("resource")) {
                (Some(n), Some(r)) => alarms.push(format!("{n}:{r}")),
                _ => alarms.push(item.trim_matches([',', '{', ' ']).to_string()),
            }
        }
    }
    alarms.sort();
    Some(ClusterView {
        running_nodes,
        partitions,
        alarms,
    })
}

/// The text between the braces of `"key":{...}` (no nested objects).
fn json_object_body<'a>(json: &'a str, key: &str) -> Option<&'a str> {
    let open = format!("\"{key}\":{{");
    let start = json.find(&open)? + open.len();
    let end = start + json[start..].find('}')?;
    Some(&json[start..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    const WHOLE: &str = r#"{"alarms":[],"cluster_name":"kelp@10.77.5.2","disk_nodes":["kelp@10.77.5.2","kelp@10.77.5.3"],"partitions":{},"running_nodes":["kelp@10.77.5.3","kelp@10.77.5.2"],"versions":{}}"#;
    const SPLIT: &str = r#"{"alarms":[{"node":"kelp@10.77.5.2","resource":"memory"}],"partitions":{"kelp@10.77.5.2":["kelp@10.77.5.3","kelp@10.77.5.4"]},"running_nodes":["kelp@10.77.5.2"]}"#;

    #[test]
    fn views_are_read() {
        let v = parse_view(WHOLE).unwrap();
        assert_eq!(v.running_nodes, ["kelp@10.77.5.2", "kelp@10.77.5.3"]);
        assert!(v.partitions.is_empty());
        assert!(v.alarms.is_empty());
        let v = parse_view(SPLIT).unwrap();
        assert_eq!(
            v.partitions,
            [(
                "kelp@10.77.5.2".to_string(),
                vec!["kelp@10.77.5.3".to_string(), "kelp@10.77.5.4".to_string()]
            )]
        );
        assert_eq!(v.alarms, ["kelp@10.77.5.2:memory"]);
        assert!(parse_view("{}").is_none());
    }

    #[test]
    fn the_largest_side_is_kept() {
        let names: Vec<String> = (2..5).map(|i| format!("kelp@10.77.5.{i}")).collect();
        let split = parse_view(SPLIT).unwrap();
        assert_eq!(losing_sides(&names, &[Ok(split)]), [0]);
        let whole = parse_view(WHOLE).unwrap();
        assert!(losing_sides(&names, &[Ok(whole)]).is_empty());
        // 1 and 2 apart (0 sees both): one of them goes.
        let bridge = ClusterView {
            partitions: vec![(names[1].clone(), vec![names[2].clone()])],
            ..Default::default()
        };
        assert_eq!(losing_sides(&names, &[Ok(bridge)]).len(), 1);
    }
}
