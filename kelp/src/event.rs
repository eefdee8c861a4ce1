//! [`Event`]s: what happens to a connection that the application may want
//! to know about, without polling. Subscribe with
//! [`Connection::events`](crate::Connection::events); every event is also
//! logged through `tracing`.

use std::fmt;
use std::time::Duration;

/// Something that happened to a connection.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use kelp::Event;
///
/// // What a monitoring hook might do with each event.
/// fn severity(event: &Event) -> &'static str {
///     match event {
///         Event::ConnectionLost { .. } | Event::RecoveryFailed { .. } => "error",
///         Event::Blocked { .. } | Event::TopologyRecoveryFailed { .. } => "warning",
///         _ => "info",
///     }
/// }
///
/// let event = Event::Recovered { broker: "amqp://guest:**@rabbit-b:5672//".into(), took: Duration::from_millis(850) };
/// assert_eq!(severity(&event), "info");
/// assert_eq!(event.to_string(), "recovered on amqp://guest:**@rabbit-b:5672// in 850ms");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// Connected to a broker.
    Connected {
        /// The broker, password masked.
        broker: String,
    },
    /// Automatic recovery began after the connection was lost.
    RecoveryStarted {
        /// The broker that was lost, password masked.
        broker: String,
        /// Why it was lost.
        reason: String,
    },
    /// The connection was re-established and its topology, channels,
    /// unconfirmed publishes and consumers restored.
    Recovered {
        /// The broker now in use, password masked.
        broker: String,
        /// From the start of recovery to its end.
        took: Duration,
    },
    /// Recovery gave up (its retry policy ran out); operations fail until a
    /// broker is reachable again.
    RecoveryFailed {
        /// The last error.
        reason: String,
    },
    /// One declaration could not be replayed during recovery.
    TopologyRecoveryFailed {
        /// What: `exchange x`, `queue q`, `binding ...`, `consumer ...`.
        entity: String,
        /// Why.
        reason: String,
    },
    /// A server-named queue came back under a new name after recovery.
    QueueRenamed {
        /// The name on the lost connection.
        old: String,
        /// The new name.
        new: String,
    },
    /// A queue recovery declares again was not on the broker any more: it
    /// was declared anew, empty, and what it held there is gone (a classic
    /// queue whose node died, or one the broker had not yet written to disk
    /// when it was killed). Queues that go with their connection (exclusive,
    /// auto-delete) are not reported.
    QueueRecreated {
        /// The queue.
        queue: String,
        /// The broker it was declared on, password masked.
        broker: String,
    },
    /// Publishes never confirmed on the lost connection were published again.
    PublishesResent {
        /// How many.
        count: usize,
    },
    /// The connection to the broker was lost.
    ConnectionLost {
        /// The broker, password masked.
        broker: String,
        /// Why.
        reason: String,
    },
    /// The broker stopped accepting publishes (RabbitMQ's resource alarms);
    /// publishing waits until [`Event::Unblocked`].
    Blocked {
        /// The broker's reason, e.g. `low on memory`.
        reason: String,
    },
    /// The broker accepts publishes again.
    Unblocked,
    /// The broker cancelled a consumer (its queue was deleted, or failed
    /// over in a cluster).
    ConsumerCancelled {
        /// The consumer tag.
        consumer_tag: String,
    },
    /// A mandatory message came back unroutable and no publish waited for
    /// it (the producer does not use confirms).
    MessageReturned {
        /// The exchange it was published to.
        exchange: String,
        /// Its routing key.
        routing_key: String,
        /// The broker's reply, e.g. `312 NO_ROUTE`.
        reply: String,
    },
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::Connected { broker } => write!(f, "connected to {broker}"),
            Event::RecoveryStarted { broker, reason } => {
                write!(f, "recovering the connection to {broker} ({reason})")
            }
            Event::Recovered { broker, took } => write!(f, "recovered on {broker} in {took:?}"),
            Event::RecoveryFailed { reason } => write!(f, "recovery gave up: {reason}"),
            Event::TopologyRecoveryFailed { entity, reason } => {
                write!(f, "could not restore {entity}: {reason}")
            }
            Event::QueueRenamed { old, new } => write!(f, "server-named queue {old} is now {new}"),
            Event::QueueRecreated { queue, broker } => write!(
                f,
                "queue {queue} was not on {broker} any more: declared again, empty (what it held there is gone)"
            ),
            Event::PublishesResent { count } => {
                write!(f, "published {count} unconfirmed messages again")
            }
            Event::ConnectionLost { broker, reason } => {
                write!(f, "connection to {broker} lost: {reason}")
            }
            Event::Blocked { reason } => write!(f, "publishing blocked by the broker: {reason}"),
            Event::Unblocked => f.write_str("publishing unblocked"),
            Event::ConsumerCancelled { consumer_tag } => {
                write!(f, "consumer {consumer_tag} cancelled by the broker")
            }
            Event::MessageReturned {
                exchange,
                routing_key,
                reply,
            } => write!(f, "message to '{exchange}' with key '{routing_key}' returned: {reply}"),
        }
    }
}

/// Where transports report events; cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct Events {
    sender: tokio::sync::broadcast::Sender<Event>,
    /// When set, events pass only while it is true (a warm standby's
    /// connection stays silent until it takes over).
    gate: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
}

impl Events {
    pub(crate) fn new() -> Events {
        let (sender, _) = tokio::sync::broadcast::channel(256);
        Events { sender, gate: None }
    }

    /// The same subscribers behind a gate, closed until the returned flag
    /// is set.
    pub(crate) fn gated(&self) -> (Events, std::sync::Arc<std::sync::atomic::AtomicBool>) {
        let gate = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let events = Events {
            sender: self.sender.clone(),
            gate: Some(gate.clone()),
        };
        (events, gate)
    }

    pub(crate) fn emit(&self, event: Event) {
        if let Some(gate) = &self.gate
            && !gate.load(std::sync::atomic::Ordering::Acquire)
        {
            tracing::debug!(%event, "standby event");
            return;
        }
        match &event {
            Event::ConnectionLost { .. }
            | Event::Blocked { .. }
            | Event::RecoveryFailed { .. }
            | Event::TopologyRecoveryFailed { .. }
            | Event::QueueRecreated { .. } => tracing::warn!(%event),
            _ => tracing::info!(%event),
        }
        // Nobody listening is fine.
        let _ = self.sender.send(event);
    }

    pub(crate) fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Event> {
        self.sender.subscribe()
    }
}
