//! [`RabbitCluster`]: nodes joined into one RabbitMQ cluster, and what the
//! cluster says of itself.

use std::time::Duration;

use super::node::{RabbitNode, blocking};
use super::options::RabbitNodeOptions;
use crate::procs;
use crate::error::{Error, Result};

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
            join(&node, nodes[0].node_name(), opts.start_timeout)?;
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

/// Joins a running `node` to the cluster of node `seed`, as RabbitMQ's
/// clustering guide does (`rabbitmqctl stop_app; join_cluster <seed>;
/// start_app`), and waits until it answers AMQP again.
pub(super) fn join(node: &RabbitNode, seed: &str, timeout: Duration) -> Result<()> {
    node.rabbitmqctl(&["stop_app"])?;
    node.rabbitmqctl(&["join_cluster", seed])?;
    node.rabbitmqctl(&["start_app"])?;
    crate::poll::wait_for(|| node.probe(Duration::from_secs(2)).is_ok(), timeout).map_err(|_| {
        Error::new(format!(
            "node {} did not answer AMQP after joining {seed}\n{}",
            node.node_name(),
            node.diagnostics()
        ))
    })
}

/// Extracts `"key":["a","b"]` from JSON text (node names need no unescaping).
pub(super) fn json_string_array(json: &str, key: &str) -> Option<Vec<String>> {
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
