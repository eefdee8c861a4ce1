//! The reliability campaign on Redis: a master with two replicas and three
//! Sentinels, the master killed with SIGKILL round after round, and a
//! client cut off from Redis by a network partition. Every message is
//! counted by id ([`kelp_cli::drill`]); a run passes with lost = 0 and
//! unexpected = 0.
//!
//! Redis replicates asynchronously: a master killed right after a write can
//! lose it. With `confirm_replicas` a publish is confirmed only once a
//! replica has it, which is what makes lost = 0 hold here.

mod campaign;

use std::time::Duration;

use kelp_test_support::{
    FaultMode, FaultProxy, RedisOptions, RedisSentinel, RedisServer, SentinelOptions, eventually, require_redis,
};

const MASTER: &str = "kelp-campaign";
const PATIENCE: Duration = Duration::from_secs(60);

/// A master, two replicas and three Sentinels (quorum 2) that know them all.
struct Group {
    servers: Vec<RedisServer>,
    sentinels: Vec<RedisSentinel>,
}

impl Group {
    async fn start() -> Group {
        let master = RedisServer::start().unwrap_or_else(|e| panic!("cannot start redis-server: {e}"));
        let mut servers = vec![master];
        for _ in 0..2 {
            let replica = RedisOptions::default()
                .replica_of(servers[0].port())
                .start()
                .unwrap_or_else(|e| panic!("cannot start a replica: {e}"));
            servers.push(replica);
        }
        let sentinels = RedisSentinel::start_many(3, SentinelOptions::new(MASTER, servers[0].port(), 2))
            .unwrap_or_else(|e| panic!("cannot start the Sentinels (redis-server --sentinel): {e}"));
        let group = Group { servers, sentinels };
        for s in &group.sentinels {
            eventually("each Sentinel knows both replicas and the other two", PATIENCE, async || {
                count(s.command(&["SENTINEL", "replicas", MASTER])) == 2 && count(s.command(&["SENTINEL", "sentinels", MASTER])) == 2
            })
            .await;
        }
        group
    }

    fn url(&self) -> String {
        self.sentinels.iter().map(|s| format!("sentinel://127.0.0.1:{}", s.port())).collect::<Vec<_>>().join(";")
    }

    /// The master the Sentinels agree on now.
    fn master(&self) -> Option<usize> {
        let port = self.sentinels[0].master_addr().ok().flatten()?.1;
        self.servers.iter().position(|s| s.port() == port)
    }

    /// Every server up, one master, two replicas linked to it.
    async fn healthy(&self) {
        eventually("one master and two linked replicas", PATIENCE, async || {
            let Some(master) = self.master() else { return false };
            self.servers.iter().enumerate().filter(|(i, _)| *i != master).all(|(_, s)| {
                s.command(&["INFO", "replication"])
                    .ok()
                    .and_then(|v| v.as_text())
                    .is_some_and(|t| t.contains("role:slave") && t.contains("master_link_status:up"))
            })
        })
        .await;
    }
}

fn count(reply: kelp_test_support::Result<kelp_test_support::RespValue>) -> usize {
    match reply {
        Ok(kelp_test_support::RespValue::Array(Some(items))) => items.len(),
        _ => 0,
    }
}

/// SIGKILL of the master, every round: the Sentinels promote a replica,
/// the killed server comes back (empty: these servers keep nothing on disk)
/// and becomes a replica of the new master. With confirm_replicas = 1,
/// nothing confirmed is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_master_killed_under_sentinel_loses_nothing_confirmed() {
    let group = Group::start().await;
    group.healthy().await;
    let config = campaign::drill(group.url(), "campaign-redis-kill").connection(|b| {
        b.transport_option("master_name", MASTER)
            .transport_option("confirm_replicas", 1)
            .transport_option("confirm_replicas_timeout", 2.0)
    });
    let group = &group;
    let report = campaign::campaign("redis: master kill -9 under Sentinel", config, |round, faults, _| async move {
        let old = group.master().expect("a master");
        let what = format!("round {round}: kill -9 of the master (server {old})");
        faults.fault(what.clone());
        group.servers[old].kill();
        eventually("the Sentinels promote a replica", PATIENCE, async || group.master().is_some_and(|m| m != old)).await;
        group.servers[old].restart().unwrap_or_else(|e| panic!("cannot restart server {old}: {e}"));
        group.healthy().await;
        faults.heal(what);
    })
    .await;
    campaign::assert_nothing_lost("redis master kill", &report);
    assert!(report.progress.failovers > 0, "the clients never failed over:\n{}", report.to_text());
}

/// The clients' link to Redis is cut (a black hole: nothing passes, nothing
/// is refused) for longer than a heartbeat, then healed: the clients notice,
/// reconnect once the link is back, publish again what was not confirmed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_client_partition_loses_nothing_confirmed() {
    let url = require_redis();
    let upstream = kelp::BrokerUrl::parse(&url).unwrap();
    let addr = format!("{}:{}", upstream.host(), upstream.port().unwrap_or(6379)).parse().unwrap();
    let proxy = FaultProxy::start(addr).await.unwrap();
    let through = proxy.url_for(&url);
    let config = campaign::drill(through, "campaign-redis-partition").connection(|b| b.heartbeat(Some(Duration::from_secs(2))));
    let proxy = &proxy;
    let report = campaign::campaign("redis: client partition", config, |round, faults, _| async move {
        let what = format!("round {round}: client cut off from Redis for 6 s");
        faults.fault(what.clone());
        proxy.set_mode(FaultMode::BlackHole).await;
        tokio::time::sleep(Duration::from_secs(6)).await;
        proxy.set_mode(FaultMode::Pass).await;
        faults.heal(what);
    })
    .await;
    campaign::assert_nothing_lost("redis client partition", &report);
}
