//! The faults a [`NetCluster`] can inject, each reversible and safe to
//! repeat: node processes (kill, freeze, graceful stop, restart), the
//! network between nodes (partitions, non-transitive ones too), the links
//! between the root namespace and a node (black hole, loss, slowness), and
//! a memory alarm.
//!
//! Network faults are a declared state, rendered into one nftables table
//! per node namespace (replaced atomically on each change) and htb classes;
//! see [`crate::netns`] for the plumbing. The state is recorded before the
//! rules are installed: if installing fails, calling the method again
//! installs the rest.

use std::collections::BTreeSet;
use std::time::Duration;

use super::net_cluster::{ClientLink, Faults, NetCluster};
use crate::error::{Error, Result};
use crate::netns::{self, NODE_DEV};

/// RabbitMQ's default `vm_memory_high_watermark` (relative), restored by
/// [`NetCluster::memory_alarm`]`(i, false)`.
const DEFAULT_WATERMARK: &str = "0.4";
/// A watermark no node stays under: the memory alarm goes off at once.
const ALARM_WATERMARK: &str = "0.0000001";

/// Generates `<name>_async`: the method on tokio's blocking pool.
macro_rules! async_twin {
    ($(#[$doc:meta])* $name:ident => $sync:ident($($arg:ident: $ty:ty),*) -> $ret:ty) => {
        $(#[$doc])*
        pub async fn $name(&self, $($arg: $ty),*) -> Result<$ret> {
            self.run_async(move |c| c.$sync($($arg),*)).await
        }
    };
}

impl NetCluster {
    // --- node processes -------------------------------------------------

    /// SIGKILLs node `i`'s Erlang VM and waits until it is gone (its AMQP
    /// port refuses connections then). No-op if it is not running.
    pub fn kill(&self, i: usize) -> Result<()> {
        self.checked(i)?.kill();
        Ok(())
    }

    /// Starts node `i` again on the same name, address, ports and data
    /// (stopping it gracefully first if it runs) and waits until it answers
    /// AMQP. A node that was not the last of the cluster to go down waits
    /// at boot for a peer that was: restart nodes while others run, or in
    /// the reverse order of stopping them.
    pub fn restart(&self, i: usize) -> Result<()> {
        self.checked(i)?.restart()
    }

    /// Freezes node `i` (SIGSTOP): its connections stay open and its ports
    /// accept TCP connections (kernel backlog), but nothing is answered,
    /// and its peers take it for down after `net_ticktime`.
    pub fn pause(&self, i: usize) -> Result<()> {
        self.checked(i)?.freeze()
    }

    /// Thaws node `i` after [`pause`](Self::pause) (SIGCONT).
    pub fn resume(&self, i: usize) -> Result<()> {
        self.checked(i)?.thaw()
    }

    /// Stops node `i` gracefully (`rabbitmqctl stop`) and waits until its
    /// VM has exited. No-op if it is not running.
    pub fn stop_node(&self, i: usize) -> Result<()> {
        self.checked(i)?.stop()
    }

    /// Boots node `i` (after [`stop_node`](Self::stop_node) or
    /// [`kill`](Self::kill)) and waits until it answers AMQP. No-op if it
    /// runs.
    pub fn start_node(&self, i: usize) -> Result<()> {
        let node = self.checked(i)?;
        if node.is_running() {
            return Ok(());
        }
        node.restart()
    }

    /// Restarts the nodes one after the other, the way an upgrade does:
    /// graceful stop, boot, then wait until the cluster is whole
    /// ([`wait_whole`](Self::wait_whole), within `within`) before the next.
    pub fn rolling_restart(&self, within: Duration) -> Result<()> {
        for i in 0..self.size() {
            self.stop_node(i)?;
            self.start_node(i)?;
            self.wait_whole(within)?;
        }
        Ok(())
    }

    async_twin!(
        /// [`kill`](Self::kill) on tokio's blocking pool.
        kill_async => kill(i: usize) -> ()
    );
    async_twin!(
        /// [`restart`](Self::restart) on tokio's blocking pool.
        restart_async => restart(i: usize) -> ()
    );
    async_twin!(
        /// [`pause`](Self::pause) on tokio's blocking pool.
        pause_async => pause(i: usize) -> ()
    );
    async_twin!(
        /// [`resume`](Self::resume) on tokio's blocking pool.
        resume_async => resume(i: usize) -> ()
    );
    async_twin!(
        /// [`stop_node`](Self::stop_node) on tokio's blocking pool.
        stop_node_async => stop_node(i: usize) -> ()
    );
    async_twin!(
        /// [`start_node`](Self::start_node) on tokio's blocking pool.
        start_node_async => start_node(i: usize) -> ()
    );
    async_twin!(
        /// [`rolling_restart`](Self::rolling_restart) on tokio's blocking pool.
        rolling_restart_async => rolling_restart(within: Duration) -> ()
    );

    // --- between nodes --------------------------------------------------

    /// Splits the cluster: every link between nodes of different `groups`
    /// is cut (both directions, every protocol: Erlang distribution, epmd,
    /// everything), links within a group work. Every node must be in
    /// exactly one group. Replaces any earlier partition; the links
    /// between the root namespace and the nodes are not touched.
    ///
    /// `partition(&[&[0], &[1, 2]])` cuts node 0 off from nodes 1 and 2.
    pub fn partition(&self, groups: &[&[usize]]) -> Result<()> {
        let n = self.size();
        let mut group_of = vec![None; n];
        for (g, members) in groups.iter().enumerate() {
            for &i in *members {
                match group_of.get_mut(i) {
                    None => return Err(Error::new(format!("no node {i} in a cluster of {n}"))),
                    Some(Some(_)) => return Err(Error::new(format!("node {i} is in two groups"))),
                    Some(slot) => *slot = Some(g),
                }
            }
        }
        if let Some(i) = group_of.iter().position(Option::is_none) {
            return Err(Error::new(format!("node {i} is in no group")));
        }
        self.set_cuts(
            pairs(n)
                .filter(|&(a, b)| group_of[a] != group_of[b])
                .collect(),
        )
    }

    /// Cuts node `i` off from all other nodes (not from the root
    /// namespace).
    pub fn isolate(&self, i: usize) -> Result<()> {
        self.checked(i)?;
        let others: Vec<usize> = (0..self.size()).filter(|&j| j != i).collect();
        self.partition(&[&[i], &others])
    }

    /// A non-transitive partition: each node reaches only its two
    /// neighbours (`i - 1` and `i + 1`, modulo the size). Needs 4 nodes or
    /// more (with 3, every node is a neighbour of both others: use
    /// [`bridge`](Self::bridge)).
    pub fn ring(&self) -> Result<()> {
        let n = self.size();
        if n < 4 {
            return Err(Error::new(format!(
                "a ring of {n} nodes cuts no link; use bridge() for a non-transitive partition"
            )));
        }
        self.set_cuts(
            pairs(n)
                .filter(|&(a, b)| b - a != 1 && b - a != n - 1)
                .collect(),
        )
    }

    /// A non-transitive partition: the other nodes are split into two
    /// halves that cannot reach each other, and node `i` reaches both (with
    /// 3 nodes, `bridge(1)` cuts only the link between 0 and 2). Each half
    /// plus `i` is a majority, so `pause_minority` pauses no one.
    pub fn bridge(&self, i: usize) -> Result<()> {
        self.checked(i)?;
        let others: Vec<usize> = (0..self.size()).filter(|&j| j != i).collect();
        let (left, right) = others.split_at(others.len() / 2);
        self.set_cuts(
            left.iter()
                .flat_map(|&a| right.iter().map(move |&b| (a.min(b), a.max(b))))
                .collect(),
        )
    }

    /// Cuts the link between nodes `a` and `b` too (other cuts stay).
    pub fn cut_link(&self, a: usize, b: usize) -> Result<()> {
        self.checked(a)?;
        self.checked(b)?;
        if a == b {
            return Err(Error::new("a node has no link to itself"));
        }
        let mut cuts = self.faults().cut.clone();
        cuts.insert((a.min(b), a.max(b)));
        self.set_cuts(cuts)
    }

    /// Restores every link between nodes. The nodes notice within about
    /// `net_ticktime`; see [`recover`](Self::recover) for what RabbitMQ
    /// then does.
    pub fn heal(&self) -> Result<()> {
        self.set_cuts(BTreeSet::new())
    }

    /// The node pairs `(a, b)`, `a < b`, currently cut apart.
    pub fn cut_links(&self) -> Vec<(usize, usize)> {
        self.faults().cut.iter().copied().collect()
    }

    fn set_cuts(&self, cuts: BTreeSet<(usize, usize)>) -> Result<()> {
        let mut faults = self.faults();
        faults.cut = cuts;
        (0..self.size()).try_for_each(|i| self.apply_filter(&faults, i))
    }

    async_twin!(
        /// [`isolate`](Self::isolate) on tokio's blocking pool.
        isolate_async => isolate(i: usize) -> ()
    );
    async_twin!(
        /// [`ring`](Self::ring) on tokio's blocking pool.
        ring_async => ring() -> ()
    );
    async_twin!(
        /// [`bridge`](Self::bridge) on tokio's blocking pool.
        bridge_async => bridge(i: usize) -> ()
    );
    async_twin!(
        /// [`cut_link`](Self::cut_link) on tokio's blocking pool.
        cut_link_async => cut_link(a: usize, b: usize) -> ()
    );
    async_twin!(
        /// [`heal`](Self::heal) on tokio's blocking pool.
        heal_async => heal() -> ()
    );

    /// [`partition`](Self::partition) on tokio's blocking pool.
    pub async fn partition_async(&self, groups: &[&[usize]]) -> Result<()> {
        let groups: Vec<Vec<usize>> = groups.iter().map(|g| g.to_vec()).collect();
        self.run_async(move |c| {
            let refs: Vec<&[usize]> = groups.iter().map(Vec::as_slice).collect();
            c.partition(&refs)
        })
        .await
    }

    // --- between the root namespace and a node ---------------------------

    /// Black-holes the link between the root namespace (the test, kelp)
    /// and node `i`: every packet either way is dropped, so new connections
    /// time out (they are not refused) and open ones stall until a
    /// heartbeat or TCP gives up. Node-to-node links are not touched.
    pub fn cut_client(&self, i: usize) -> Result<()> {
        self.set_client(i, ClientLink::Cut)
    }

    /// Drops `percent` % of the packets either way between the root
    /// namespace and node `i`, at random (nft `numgen random`); 100 is a
    /// [`cut_client`](Self::cut_client), 0 a healthy link.
    pub fn lossy_client(&self, i: usize, percent: u8) -> Result<()> {
        match percent {
            0 => self.set_client(i, ClientLink::Up),
            1..=100 => self.set_client(i, ClientLink::Lossy(percent)),
            _ => Err(Error::new(format!("a loss of {percent} %?"))),
        }
    }

    /// Limits the link between the root namespace and node `i` to
    /// `bits_per_sec` each way (htb classes on the root end of its veth
    /// for traffic to the node, and on the node's `eth0` for traffic to
    /// the root; node-to-node traffic is not limited). Replaces an earlier
    /// limit.
    pub fn slow_client(&self, i: usize, bits_per_sec: u64) -> Result<()> {
        self.set_slow(i, Some(bits_per_sec))
    }

    /// Restores the link between the root namespace and node `i`: no drop,
    /// no loss, no rate limit.
    pub fn heal_client(&self, i: usize) -> Result<()> {
        self.set_client(i, ClientLink::Up)?;
        self.set_slow(i, None)
    }

    /// Restores every link: between nodes and to the root namespace.
    pub fn heal_all(&self) -> Result<()> {
        self.heal()?;
        (0..self.size()).try_for_each(|i| self.heal_client(i))
    }

    fn set_client(&self, i: usize, link: ClientLink) -> Result<()> {
        self.checked(i)?;
        let mut faults = self.faults();
        faults.client[i] = link;
        self.apply_filter(&faults, i)
    }

    fn set_slow(&self, i: usize, bits: Option<u64>) -> Result<()> {
        self.checked(i)?;
        // Serialises changes of the links.
        let _faults = self.faults();
        let root = self.bridge_ip();
        let veth = self.links()[i + 1].clone();
        netns::set_rate_limit(None, &veth, &format!("src {root}/32"), bits)?;
        netns::set_rate_limit(
            Some(self.netns(i)),
            NODE_DEV,
            &format!("dst {root}/32"),
            bits,
        )
    }

    async_twin!(
        /// [`cut_client`](Self::cut_client) on tokio's blocking pool.
        cut_client_async => cut_client(i: usize) -> ()
    );
    async_twin!(
        /// [`lossy_client`](Self::lossy_client) on tokio's blocking pool.
        lossy_client_async => lossy_client(i: usize, percent: u8) -> ()
    );
    async_twin!(
        /// [`slow_client`](Self::slow_client) on tokio's blocking pool.
        slow_client_async => slow_client(i: usize, bits_per_sec: u64) -> ()
    );
    async_twin!(
        /// [`heal_client`](Self::heal_client) on tokio's blocking pool.
        heal_client_async => heal_client(i: usize) -> ()
    );
    async_twin!(
        /// [`heal_all`](Self::heal_all) on tokio's blocking pool.
        heal_all_async => heal_all() -> ()
    );

    /// Node `i`'s nftables rules as `nft list table` shows them (empty if
    /// it has none): what is being dropped, for a test's diagnostics.
    pub fn rules(&self, i: usize) -> Result<String> {
        self.checked(i)?;
        netns::list_filter(self.netns(i))
    }

    /// Renders node `i`'s rules from `faults` and installs them.
    fn apply_filter(&self, faults: &Faults, i: usize) -> Result<()> {
        let (ingress, egress) = node_rules(
            faults,
            i,
            &|j| self.node(j).ip().to_string(),
            &self.bridge_ip().to_string(),
        );
        netns::set_filter(self.netns(i), NODE_DEV, &ingress, &egress)
    }

    // --- resources --------------------------------------------------------

    /// Sets off (`on`) or clears node `i`'s memory alarm by moving its
    /// `vm_memory_high_watermark` (`rabbitmqctl
    /// set_vm_memory_high_watermark`, to 0.0000001 or back to RabbitMQ's
    /// default 0.4). While it is in force, publishers are blocked
    /// (`connection.blocked`) — RabbitMQ blocks them on every node of the
    /// cluster, not only on node `i`.
    pub fn memory_alarm(&self, i: usize, on: bool) -> Result<()> {
        let mark = if on {
            ALARM_WATERMARK
        } else {
            DEFAULT_WATERMARK
        };
        self.rabbitmqctl(i, &["set_vm_memory_high_watermark", mark])
            .map(drop)
    }

    async_twin!(
        /// [`memory_alarm`](Self::memory_alarm) on tokio's blocking pool.
        memory_alarm_async => memory_alarm(i: usize, on: bool) -> ()
    );
}

/// All node pairs `(a, b)`, `a < b`.
fn pairs(n: usize) -> impl Iterator<Item = (usize, usize)> {
    (0..n).flat_map(move |a| (a + 1..n).map(move |b| (a, b)))
}

/// Node `i`'s nft rules (ingress, egress on its `eth0`): drop what comes
/// from nodes it is cut off from (they drop what comes from it: both
/// directions are cut, and neither side's stack sees a local error), and
/// what goes between it and the root namespace (`root`, the bridge's
/// address) if that link is cut or lossy.
fn node_rules(
    faults: &Faults,
    i: usize,
    ip_of: &dyn Fn(usize) -> String,
    root: &str,
) -> (Vec<String>, Vec<String>) {
    let mut ingress = Vec::new();
    let mut egress = Vec::new();
    let peers: Vec<String> = faults
        .cut
        .iter()
        .filter_map(|&(a, b)| match (a == i, b == i) {
            (true, _) => Some(ip_of(b)),
            (_, true) => Some(ip_of(a)),
            _ => None,
        })
        .collect();
    if !peers.is_empty() {
        ingress.push(format!("ip saddr {{ {} }} drop", peers.join(", ")));
    }
    let verdict = match faults.client[i] {
        ClientLink::Up => None,
        ClientLink::Cut | ClientLink::Lossy(100..) => Some("drop".to_string()),
        ClientLink::Lossy(p) => Some(format!("numgen random mod 100 < {p} drop")),
    };
    if let Some(verdict) = verdict {
        ingress.push(format!("ip saddr {root} {verdict}"));
        egress.push(format!("ip daddr {root} {verdict}"));
    }
    (ingress, egress)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn faults(cut: &[(usize, usize)], client: ClientLink) -> Faults {
        Faults {
            cut: cut.iter().copied().collect(),
            client: vec![client; 3],
        }
    }

    fn rules(f: &Faults, i: usize) -> (Vec<String>, Vec<String>) {
        node_rules(f, i, &|j| format!("10.77.5.{}", j + 2), "10.77.5.1")
    }

    #[test]
    fn both_sides_of_a_cut_drop_what_they_receive() {
        let f = faults(&[(0, 1), (0, 2)], ClientLink::Up);
        assert_eq!(rules(&f, 0).0, ["ip saddr { 10.77.5.3, 10.77.5.4 } drop"]);
        assert_eq!(rules(&f, 1).0, ["ip saddr { 10.77.5.2 } drop"]);
        assert!(rules(&f, 1).1.is_empty());
        let healthy = faults(&[], ClientLink::Up);
        assert_eq!(rules(&healthy, 2), (vec![], vec![]));
    }

    #[test]
    fn client_faults_drop_both_ways() {
        let (i, e) = rules(&faults(&[], ClientLink::Cut), 1);
        assert_eq!(i, ["ip saddr 10.77.5.1 drop"]);
        assert_eq!(e, ["ip daddr 10.77.5.1 drop"]);
        let (i, _) = rules(&faults(&[], ClientLink::Lossy(30)), 1);
        assert_eq!(i, ["ip saddr 10.77.5.1 numgen random mod 100 < 30 drop"]);
        // nft's `numgen random mod 100` is 0..=99: 100 % is a plain drop.
        let (i, _) = rules(&faults(&[], ClientLink::Lossy(100)), 1);
        assert_eq!(i, ["ip saddr 10.77.5.1 drop"]);
    }

    #[test]
    fn pairs_are_ordered() {
        assert_eq!(pairs(3).collect::<Vec<_>>(), [(0, 1), (0, 2), (1, 2)]);
    }
}
