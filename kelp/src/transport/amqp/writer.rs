//! Writer and heartbeats: the writer task sends what the handles queued;
//! the heartbeat task beats while the writer is idle and watches the
//! broker's beats.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::AsyncWriteExt;

use super::codec;
use super::shared::{Conn, lock};
use super::socket::WriteSide;
use crate::error::Error;

pub(super) async fn run_writer(conn: Arc<Conn>, mut write: WriteSide) {
    let mut shutdown = conn.shutdown.subscribe();
    loop {
        let chunks = {
            let mut out = lock(&conn.out);
            conn.queued.store(0, Ordering::Relaxed);
            out.take()
        };
        if chunks.is_empty() {
            if *shutdown.borrow() {
                break;
            }
            tokio::select! {
                _ = conn.writer_wake.notified() => {}
                _ = shutdown.changed() => {}
            }
            continue;
        }
        if let Err(e) = write_all_chunks(&mut write, chunks).await {
            conn.fail(Error::connection(format!("cannot write to {}", conn.broker)).with_source(e));
            break;
        }
        conn.last_write_ms.store(conn.now_ms(), Ordering::Relaxed);
        conn.drained.notify_waiters();
    }
    let _ = write.shutdown().await;
}

/// Write every chunk, many per syscall.
async fn write_all_chunks(write: &mut WriteSide, mut chunks: Vec<Bytes>) -> std::io::Result<()> {
    use bytes::Buf;
    let mut first = 0;
    while first < chunks.len() {
        let slices: Vec<std::io::IoSlice<'_>> = chunks[first..]
            .iter()
            .take(64)
            .map(|c| std::io::IoSlice::new(c))
            .collect();
        let mut written = write.write_vectored(&slices).await?;
        if written == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        while written > 0 && first < chunks.len() {
            let len = chunks[first].len();
            if written >= len {
                written -= len;
                first += 1;
            } else {
                chunks[first].advance(written);
                written = 0;
            }
        }
    }
    Ok(())
}

/// Keeps the connection honest: sends our heartbeats and watches the
/// broker's, and leaves a broker that confirms nothing.
///
/// RabbitMQ sends a heartbeat every half interval when it has nothing else to
/// send, so a full interval of silence means two of its heartbeats were
/// missed: that is when we declare it dead (the AMQP rule of "two missed
/// heartbeats"). Checking every quarter interval puts detection between 1 and
/// 1.25 intervals after the last byte, where waiting for two full intervals
/// (as most clients do) would take 2 to 2.5.
///
/// A broker can also be alive and useless: a cluster node cut off from the
/// others keeps its connections and heartbeats and confirms nothing that
/// needs the cluster. When a publish waits longer than the confirm timeout
/// (blocked time aside), the connection is failed so that recovery
/// moves to another broker (see `Conn::stalled`).
pub(super) async fn run_keeper(conn: Arc<Conn>, heartbeat: Option<Duration>) {
    let confirm_tick = conn.confirm_timeout.map(|t| (t / 4).max(Duration::from_millis(100)));
    let tick = match (heartbeat.map(|h| h / 4), confirm_tick) {
        (Some(a), Some(b)) => a.min(b),
        (Some(a), None) | (None, Some(a)) => a,
        (None, None) => return,
    };
    let mut shutdown = conn.shutdown.subscribe();
    let mut ticker = tokio::time::interval(tick);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = shutdown.changed() => return,
        }
        let now = conn.now_ms();
        if let Some(interval) = heartbeat {
            let silent = now.saturating_sub(conn.last_read_ms.load(Ordering::Relaxed));
            if silent > interval.as_millis() as u64 {
                conn.fail(Error::connection(format!(
                    "missed heartbeats: nothing heard from {} for {} ms (heartbeat {:?})",
                    conn.broker, silent, interval
                )));
                return;
            }
            if now.saturating_sub(conn.last_write_ms.load(Ordering::Relaxed)) >= (interval / 2).as_millis() as u64 {
                let _ = conn.send(|out| {
                    codec::put_heartbeat(&mut out.head);
                    Ok(())
                });
            }
        }
        if let Some(waited) = conn.stalled() {
            conn.fail(Error::connection(format!(
                "{} left a publish unconfirmed for {} ms (confirm timeout {:?}): leaving it, as a \
                 node cut off from its cluster confirms nothing, or next to nothing",
                conn.broker,
                waited.as_millis(),
                conn.confirm_timeout.unwrap_or_default()
            )));
            return;
        }
    }
}
