//! The connection's health check: PINGs, the liveness key, keeping this
//! connection's unacked deliveries fresh, and the sweeps that put back
//! what others left.

use std::sync::{Arc, Weak};
use std::time::Duration;

use super::keys;
use super::shared::{ChannelInner, FANOUT_TAG, Shared, lock, now_secs};
use crate::error::{Error, ErrorKind, Result};

/// Kombu's `health_check_interval`: the longest kelp goes without PINGing.
pub(super) const HEALTH_CHECK: Duration = Duration::from_secs(25);
/// How long a connection's liveness key outlives its last refresh (done
/// five times as often): the time a killed consumer's taken but unrecorded
/// messages wait before a live one gives them back. A process that blocks
/// its runtime for longer is taken for dead, and its messages may come
/// twice (never zero times).
pub(super) const ALIVE_TTL: Duration = Duration::from_secs(15);

/// PING the server every `interval`; no answer within it means the server
/// is gone or frozen. While this connection has consumers it also sweeps
/// for messages whose visibility timeout passed (Kombu's
/// `restore_visible`), and keeps its own unacked deliveries visible-timeout
/// fresh, so a long handler's message is not handed to someone else while
/// it is still being worked on (Kombu redelivers those).
pub(super) async fn health_check(shared: Weak<Shared>, interval: Duration) {
    let interval = interval.max(Duration::from_millis(100));
    let (sweep_every, keepalive_every) = match shared.upgrade() {
        Some(s) => (s.options.unacked_restore_interval, (s.options.visibility_timeout / 3).max(Duration::from_millis(50))),
        None => return,
    };
    let alive_every = ALIVE_TTL / 5;
    let tick = interval.min(sweep_every).min(keepalive_every).min(alive_every);
    let start = tokio::time::Instant::now();
    let (mut last_ping, mut last_sweep, mut last_keepalive, mut last_alive) = (start, start, start, start);
    loop {
        let mut down = match shared.upgrade() {
            Some(s) => s.down.subscribe(),
            None => return,
        };
        tokio::select! {
            _ = tokio::time::sleep(tick) => {}
            _ = down.wait_for(|d| *d) => return,
        }
        let Some(shared) = shared.upgrade() else { return };
        if !shared.is_open() {
            return;
        }
        if last_ping.elapsed() >= interval {
            last_ping = tokio::time::Instant::now();
            let mut conn = shared.cmd.clone();
            let ping = tokio::time::timeout(interval, redis::cmd("PING").query_async::<String>(&mut conn)).await;
            match ping {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    let _ = shared.error(e, "checking the connection");
                    if shared.is_open() {
                        shared.fail(Error::connection(format!("{} stopped answering", shared.broker)));
                    }
                    return;
                }
                Err(_) => {
                    shared.fail(Error::new(
                        ErrorKind::Timeout,
                        format!("{} did not answer a PING within {interval:?} (frozen or unreachable)", shared.broker),
                    ));
                    return;
                }
            }
        }
        if last_alive.elapsed() >= alive_every {
            last_alive = tokio::time::Instant::now();
            let mut alive = redis::pipe();
            shared.refresh_alive(&mut alive);
            // A failure here is the PING's to notice.
            let _: Result<()> = shared.pipe(&alive, "saying this connection is alive").await;
        }
        let channels: Vec<Arc<ChannelInner>> = lock(&shared.channels).iter().filter_map(Weak::upgrade).collect();
        if last_keepalive.elapsed() >= keepalive_every {
            last_keepalive = tokio::time::Instant::now();
            let held: Vec<(String, String)> = channels
                .iter()
                .flat_map(|c| {
                    lock(&c.state)
                        .unacked
                        .values()
                        .filter(|u| !u.tag.starts_with(FANOUT_TAG))
                        .map(|u| (u.tag.clone(), u.source.to_string()))
                        .collect::<Vec<_>>()
                })
                .collect();
            if !held.is_empty() {
                let now = format!("{:.6}", now_secs());
                let mut zadd = redis::cmd("ZADD");
                zadd.arg(shared.keys.unacked_index()).arg("XX");
                // The held record carries the same time: a successor gives
                // back only records still at the time their holder wrote.
                let mut hset = redis::cmd("HSET");
                hset.arg(shared.keys.held(&shared.owner));
                for (tag, source) in &held {
                    zadd.arg(&now).arg(tag);
                    hset.arg(tag).arg(format!("{now}{}{source}", keys::SEP));
                }
                let mut pipe = redis::pipe();
                pipe.add_command(zadd).ignore().add_command(hset).ignore();
                let _: Result<()> = shared.pipe(&pipe, "refreshing unacked deliveries").await;
            }
        }
        let consuming = channels.iter().any(|c| !lock(&c.state).consumers.is_empty());
        if consuming && last_sweep.elapsed() >= sweep_every {
            last_sweep = tokio::time::Instant::now();
            let sweeping = shared.clone();
            tokio::spawn(async move {
                if let Err(e) = sweeping.sweep_processing().await {
                    tracing::warn!(error = %e, "the sweep of dead consumers' processing lists failed");
                }
                if let Err(e) = sweeping.sweep_held().await {
                    tracing::warn!(error = %e, "the sweep of gone connections' unacked deliveries failed");
                }
                if let Err(e) = sweeping.restore_visible().await {
                    tracing::warn!(error = %e, "the unacked sweep failed");
                }
            });
        }
    }
}
