//! [`DrillConfig`]: what a drill runs, and against which brokers.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use kelp::{Connection, ConnectionBuilder, Queue, RetryPolicy};

/// Adjusts the builder of every connection the drill opens (heartbeat,
/// warm standby, transport options...).
pub type ConnectionHook = Arc<dyn Fn(ConnectionBuilder) -> ConnectionBuilder + Send + Sync>;

/// What a drill does. Every field has a default; change what differs.
#[derive(Clone)]
#[non_exhaustive]
pub struct DrillConfig {
    /// Broker URLs (a `;` list fails over).
    pub url: String,
    /// The queue the drill owns (purged at the start).
    pub queue: String,
    /// Declare it as a quorum queue.
    pub quorum: bool,
    /// Publishing connections.
    pub producers: u32,
    /// Consuming connections (`basic.consume`); half take one message at a
    /// time (prefetch 1), half take [`prefetch`](Self::prefetch).
    pub consumers: u32,
    /// Connections reading with `basic.get`.
    pub getters: u32,
    /// The larger consumers' prefetch.
    pub prefetch: u16,
    /// Messages per second over all producers; `None`: as fast as the window allows.
    pub rate: Option<u32>,
    /// Publishes in flight per producer.
    pub window: usize,
    /// Body size in bytes (at least the id's length).
    pub size: usize,
    /// How long a publish may wait for its confirm before it counts as
    /// indeterminate.
    pub settle_timeout: Duration,
    /// The final drain ends after this long without a delivery...
    pub quiet: Duration,
    /// ...or after this long in all.
    pub drain_timeout: Duration,
    /// How often the drill samples its own memory, descriptors and tasks.
    pub sample_every: Duration,
    /// Applied to every connection's builder.
    pub connection: Option<ConnectionHook>,
}

impl DrillConfig {
    /// A drill of `queue` on the brokers of `url`.
    pub fn new(url: impl Into<String>, queue: impl Into<String>) -> DrillConfig {
        DrillConfig {
            url: url.into(),
            queue: queue.into(),
            quorum: false,
            producers: 2,
            consumers: 2,
            getters: 1,
            prefetch: 50,
            rate: Some(500),
            window: 100,
            size: 100,
            settle_timeout: Duration::from_secs(120),
            quiet: Duration::from_secs(5),
            drain_timeout: Duration::from_secs(300),
            sample_every: Duration::from_secs(5),
            connection: None,
        }
    }

    /// Declare the queue as a quorum queue (`x-queue-type=quorum`).
    pub fn quorum(mut self, on: bool) -> DrillConfig {
        self.quorum = on;
        self
    }

    /// How many producers, consumers and `basic.get` readers.
    pub fn clients(mut self, producers: u32, consumers: u32, getters: u32) -> DrillConfig {
        (self.producers, self.consumers, self.getters) = (producers, consumers, getters);
        self
    }

    /// Messages per second over all producers (`None`: unpaced).
    pub fn rate(mut self, rate: Option<u32>) -> DrillConfig {
        self.rate = rate;
        self
    }

    /// Body size in bytes.
    pub fn size(mut self, size: usize) -> DrillConfig {
        self.size = size;
        self
    }

    /// The final drain's quiet period and bound.
    pub fn drain(mut self, quiet: Duration, timeout: Duration) -> DrillConfig {
        (self.quiet, self.drain_timeout) = (quiet, timeout);
        self
    }

    /// How often to sample the drill's own footprint.
    pub fn sample_every(mut self, every: Duration) -> DrillConfig {
        self.sample_every = every;
        self
    }

    /// Adjust every connection's builder.
    pub fn connection<F>(mut self, hook: F) -> DrillConfig
    where
        F: Fn(ConnectionBuilder) -> ConnectionBuilder + Send + Sync + 'static,
    {
        self.connection = Some(Arc::new(hook));
        self
    }

    /// The queue as the drill declares it.
    pub(super) fn queue(&self) -> Queue {
        let queue = Queue::new(self.queue.clone()).durable(true);
        if self.quorum { queue.argument("x-queue-type", "quorum") } else { queue }
    }

    /// A connection as the drill opens them: retrying for as long as the
    /// drill may last (a drill waits out faults rather than give up).
    pub(super) fn connect(&self, name: &str) -> kelp::Result<Connection> {
        let patient = RetryPolicy::default().deadline(self.settle_timeout.max(Duration::from_secs(60)));
        let builder = Connection::builder(self.url.clone()).connection_name(name).retry_policy(patient);
        match &self.connection {
            Some(hook) => hook(builder).build(),
            None => builder.build(),
        }
    }
}

impl fmt::Debug for DrillConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may carry a password: show it as kelp does, masked.
        let urls = kelp::BrokerUrl::parse_list(&self.url)
            .map(|urls| urls.iter().map(|u| u.to_string()).collect::<Vec<_>>().join(";"))
            .unwrap_or_else(|_| "<unparsable>".to_owned());
        f.debug_struct("DrillConfig")
            .field("url", &urls)
            .field("queue", &self.queue)
            .field("quorum", &self.quorum)
            .field("producers", &self.producers)
            .field("consumers", &self.consumers)
            .field("getters", &self.getters)
            .field("rate", &self.rate)
            .finish_non_exhaustive()
    }
}
