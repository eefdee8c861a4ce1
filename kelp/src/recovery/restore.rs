//! Replaying the [`Registry`] on a new broker connection, in order:
//! exchanges, queues (following server-named queues to their new names),
//! bindings, then the channels with their QoS and confirm mode (publishing
//! again what was never confirmed), then the subscriptions.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use super::active::{Active, PreparedChannel, lock};
use super::registry::Registry;
use super::subscription::{ConsumerRecord, next_epoch};
use crate::error::Error;
use crate::event::{Event, Events};
use crate::transport::confirm::SharedConfirms;
use crate::transport::{AnyChannel, AnyTransport, QueueDeclare};

/// After a reconnect: declare the recorded topology again (unless a warm
/// standby already holds it), reopen the channels and consume again.
/// Called before `active` is handed out, so operations wait until it is done.
pub(crate) async fn restore(registry: &Registry, active: &Active) {
    if !active.topology_declared {
        // The channels open while the topology is declared: nothing is
        // published on them before it is there, but opening them need
        // not wait for it.
        let (declared, prepared) = tokio::join!(
            declare_topology(registry, &active.transport, false, &active.events),
            prepare_missing(registry, &active.transport, &active.prepared)
        );
        lock(&active.prepared).extend(prepared);
        report_recreated(&active.events, &active.broker, declared.recreated);
    }
    reopen_and_reconsume(registry, active).await;
    let leftovers = std::mem::take(&mut *lock(&active.prepared));
    for prepared in leftovers {
        let _ = prepared.channel.close().await;
    }
}

/// Tell the application about queues that were gone and came back empty.
pub(crate) fn report_recreated(events: &Events, broker: &str, queues: Vec<String>) {
    for queue in queues {
        events.emit(Event::QueueRecreated { queue, broker: broker.to_owned() });
    }
}

/// A declaration of the record failed.
fn report(events: &Events, standby: bool, what: &str, entity: &str, error: &Error) {
    if standby {
        // The failover declares it again and reports then.
        tracing::debug!(entity = %entity, error = %error, "not declared on the standby");
    } else {
        events.emit(Event::TopologyRecoveryFailed {
            entity: format!("{what} {entity}"),
            reason: error.to_string(),
        });
    }
}

/// One channel for declaring the record, reopened when the broker closes it.
struct Declarer<'a> {
    transport: &'a AnyTransport,
    scratch: SharedConfirms,
    channel: Option<AnyChannel>,
}

impl Declarer<'_> {
    /// Is `queue` gone from the broker? A passive declaration says (and the
    /// broker closes the channel when it is gone: reopened at next use).
    /// Anything but "not found" counts as there: the declaration that
    /// follows reports its own errors.
    async fn lost(&mut self, queue: &QueueDeclare) -> bool {
        let probe = QueueDeclare { passive: true, ..queue.clone() };
        match self.channel().await {
            Ok(ch) => ch.queue_declare(&probe).await.is_err_and(|e| e.is_not_found()),
            Err(_) => false,
        }
    }

    async fn channel(&mut self) -> Result<&AnyChannel, Error> {
        if self.channel.as_ref().is_none_or(|c| !c.is_open()) {
            self.channel = self.transport.open_channel(self.scratch.clone()).await.ok();
        }
        self.channel
            .as_ref()
            .ok_or_else(|| Error::connection("cannot open a channel to restore the topology"))
    }
}

/// What declaring the record did.
pub(crate) struct Declared {
    /// Everything was declared (nothing failed or was left out).
    pub(crate) complete: bool,
    /// Queues that were gone from the broker and were declared anew, empty.
    pub(crate) recreated: Vec<String>,
}

/// Declare the recorded exchanges, queues and bindings on `transport`.
/// On a standby, server-named queues (and bindings to them) are left out:
/// they get new names when they are declared for real.
pub(crate) async fn declare_topology(registry: &Registry, transport: &AnyTransport, standby: bool, events: &Events) -> Declared {
    let mut complete = true;
    let mut recreated = Vec::new();
    let topology = registry.snapshot();
    let mut declarer = Declarer { transport, scratch: SharedConfirms::default(), channel: None };
    for exchange in &topology.exchanges {
        let result = match declarer.channel().await {
            Ok(ch) => ch.exchange_declare(exchange).await,
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            complete = false;
            report(events, standby, "exchange", &exchange.name, &e);
        }
    }
    let server_named: Vec<&str> = topology.queues.iter().filter(|q| q.server_named).map(|q| q.name()).collect();
    for queue in &topology.queues {
        if standby && queue.server_named {
            complete = false;
            continue;
        }
        let mut declare = queue.declare.clone();
        if queue.server_named {
            declare.name.clear(); // the broker names it anew
        } else if !declare.exclusive && !declare.auto_delete && declarer.lost(&declare).await {
            recreated.push(declare.name.clone());
        }
        let result = match declarer.channel().await {
            Ok(ch) => ch.queue_declare(&declare).await,
            Err(e) => Err(e),
        };
        match result {
            Ok(declared) if declared.name != queue.name() => {
                registry.rename_queue(queue.name(), &declared.name);
                events.emit(Event::QueueRenamed { old: queue.name().to_owned(), new: declared.name });
            }
            Ok(_) => {}
            Err(e) => {
                complete = false;
                report(events, standby, "queue", queue.name(), &e);
            }
        }
    }
    let bindings = if server_named.is_empty() { topology.bindings.clone() } else { registry.bindings() };
    for b in &bindings {
        if standby && b.to_queue && server_named.contains(&b.args.destination.as_str()) {
            continue;
        }
        let result = match declarer.channel().await {
            Ok(ch) if b.to_queue => ch.queue_bind(&b.args).await,
            Ok(ch) => ch.exchange_bind(&b.args).await,
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            complete = false;
            let what = format!("{} -> {} ({})", b.args.source, b.args.destination, b.args.routing_key);
            report(events, standby, "binding", &what, &e);
        }
    }
    if let Some(channel) = declarer.channel {
        // Its close-ok need not hold up what follows.
        tokio::spawn(async move {
            let _ = channel.close().await;
        });
    }
    Declared { complete, recreated }
}

/// Open a channel (not yet adopted) on `transport` for every live
/// supervised channel that has none in `have`.
pub(crate) async fn prepare_missing(registry: &Registry, transport: &AnyTransport, have: &Mutex<Vec<PreparedChannel>>) -> Vec<PreparedChannel> {
    let mut prepared = Vec::new();
    for core in registry.live_cores() {
        if lock(have).iter().any(|p| p.owner == core.id()) {
            continue;
        }
        match core.prepare_on(transport).await {
            Ok(Some(p)) => prepared.push(p),
            // Nothing to gain on this transport, or the connection is
            // failing: the channels open by themselves.
            Ok(None) => break,
            Err(e) => {
                tracing::debug!(error = %e, "a channel could not be opened ahead");
                break;
            }
        }
    }
    prepared
}

/// Keep one channel per live supervised channel open ahead on the standby
/// `transport`, with the channel's current QoS and confirm mode.
pub(crate) async fn prepare_channels(
    registry: &Registry,
    transport: &AnyTransport,
    prepared: &Mutex<Vec<PreparedChannel>>,
    taken_over: &AtomicBool,
) {
    let cores = registry.live_cores();
    let is_current = |p: &PreparedChannel| {
        p.channel.is_open() && cores.iter().any(|c| c.id() == p.owner && c.settings() == p.settings)
    };
    let stale: Vec<PreparedChannel> = {
        let mut list = lock(prepared);
        let (keep, stale) = std::mem::take(&mut *list).into_iter().partition(is_current);
        *list = keep;
        stale
    };
    for p in stale {
        let _ = p.channel.close().await;
    }
    let fresh = prepare_missing(registry, transport, prepared).await;
    // Under the lock the takeover takes the list with, after it raised the
    // flag: once the standby took over, what it holds was handed on, and a
    // channel opened meanwhile would be nobody's.
    let orphans = {
        let mut list = lock(prepared);
        if taken_over.load(Ordering::Acquire) {
            fresh
        } else {
            list.extend(fresh);
            Vec::new()
        }
    };
    for p in orphans {
        let _ = p.channel.close().await;
    }
}

/// Reopen the channels on the new connection (publishing again what was
/// not confirmed), then the subscriptions on them.
async fn reopen_and_reconsume(registry: &Registry, active: &Active) {
    for core in registry.live_cores() {
        if let Err(e) = core.reopen_on(active).await {
            tracing::warn!(error = %e, "a channel could not be reopened after the reconnect");
        }
    }
    for record in registry.live_consumers() {
        let channel = match record.core.reopen_on(active).await {
            Ok(channel) => channel,
            Err(e) => {
                consume_failed(&active.events, &record, &e);
                continue;
            }
        };
        let epoch = next_epoch();
        match channel.consume(record.consume_args(epoch), record.sink.clone()).await {
            Ok(_) => record.moved_to(channel, epoch),
            Err(e) => consume_failed(&active.events, &record, &e),
        }
    }
}

fn consume_failed(events: &Events, record: &ConsumerRecord, error: &Error) {
    events.emit(Event::TopologyRecoveryFailed {
        entity: format!("consumer {} of queue {}", record.tag, record.queue()),
        reason: error.to_string(),
    });
}
