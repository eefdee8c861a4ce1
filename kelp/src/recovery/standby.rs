//! The warm standby: a second connection, to the broker the failover
//! strategy would pick next, with the recorded topology declared there and
//! one channel per supervised channel open ahead, so that a failover skips
//! connecting, creating queues and opening channels.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use super::active::{PreparedChannel, lock};
use super::registry::Registry;
use super::restore::{declare_topology, prepare_channels};
use crate::event::Events;
use crate::transport::{AnyTransport, ConnectOptions};
use crate::url::BrokerUrl;

/// A connection held ready to take over.
pub(crate) struct Standby {
    pub(crate) url_index: usize,
    pub(crate) transport: Arc<AnyTransport>,
    /// Opened when it takes over; until then its events are not the
    /// application's business.
    events_gate: Arc<AtomicBool>,
    /// The registry version it holds in full, `u64::MAX` before the first
    /// complete declaration.
    declared_version: Arc<AtomicU64>,
    /// A channel per supervised channel, opened ahead.
    prepared: Arc<Mutex<Vec<PreparedChannel>>>,
    /// Its connection's events, behind the gate.
    events: Events,
    /// Queues it found gone and declared anew: reported when it takes over.
    recreated: Arc<Mutex<Vec<String>>>,
}

/// What a standby hands over when it takes over.
pub(crate) struct Takeover {
    pub(crate) transport: Arc<AnyTransport>,
    /// It already holds the whole recorded topology.
    pub(crate) topology_declared: bool,
    pub(crate) prepared: Vec<PreparedChannel>,
    /// Queues the standby found gone and declared anew, empty.
    pub(crate) recreated: Vec<String>,
}

impl Standby {
    /// Connect to `url` (with `options`, whose events go through `gate`)
    /// and declare the registry's topology and channels there.
    pub(crate) async fn open(
        url_index: usize,
        url: &BrokerUrl,
        options: &ConnectOptions,
        gate: Arc<AtomicBool>,
        registry: &Registry,
    ) -> Option<Standby> {
        let attempt = tokio::time::timeout(options.connect_timeout, AnyTransport::connect(url, options)).await;
        let transport = match attempt {
            Ok(Ok(transport)) => Arc::new(transport),
            Ok(Err(e)) => {
                tracing::debug!(broker = %url, error = %e, "no warm standby");
                return None;
            }
            Err(_) => {
                tracing::debug!(broker = %url, "no warm standby: the connect timed out");
                return None;
            }
        };
        let declared_version = Arc::new(AtomicU64::new(u64::MAX));
        let version = registry.version();
        let declared = declare_topology(registry, &transport, true, &options.events).await;
        if declared.complete {
            declared_version.store(version, Ordering::Release);
        }
        let recreated = Arc::new(Mutex::new(declared.recreated));
        let prepared: Arc<Mutex<Vec<PreparedChannel>>> = Arc::default();
        prepare_channels(registry, &transport, &prepared, &gate).await;
        Some(Standby {
            url_index,
            transport,
            events_gate: gate,
            declared_version,
            prepared,
            events: options.events.clone(),
            recreated,
        })
    }

    /// Take over as the connection in use: its events become the
    /// application's.
    pub(crate) fn take_over(self, registry_version: u64) -> Takeover {
        self.events_gate.store(true, Ordering::Release);
        Takeover {
            topology_declared: self.declared_version.load(Ordering::Acquire) == registry_version,
            prepared: std::mem::take(&mut *lock(&self.prepared)),
            recreated: std::mem::take(&mut *lock(&self.recreated)),
            transport: self.transport,
        }
    }

    /// Follow the registry (declaring what the application declares, opening
    /// channels for new ones) until the standby closes, takes over, or the
    /// registry goes. Holds neither the standby nor the registry alive.
    pub(crate) fn follow(&self, registry: &Arc<Registry>) -> impl Future<Output = ()> + Send + 'static {
        let changed = registry.changed();
        let registry: Weak<Registry> = Arc::downgrade(registry);
        let transport = Arc::downgrade(&self.transport);
        let mut closed = self.transport.closed();
        let gate = self.events_gate.clone();
        let declared_version = self.declared_version.clone();
        let prepared = self.prepared.clone();
        let events = self.events.clone();
        let recreated = self.recreated.clone();
        async move {
            loop {
                tokio::select! {
                    _ = &mut closed => return,
                    _ = changed.notified() => {}
                }
                if gate.load(Ordering::Acquire) {
                    return; // it took over; recovery declares everything
                }
                let (Some(registry), Some(transport)) = (registry.upgrade(), transport.upgrade()) else {
                    return;
                };
                let version = registry.version();
                if declared_version.load(Ordering::Acquire) != version {
                    let declared = declare_topology(&registry, &transport, true, &events).await;
                    lock(&recreated).extend(declared.recreated);
                    if declared.complete {
                        declared_version.store(version, Ordering::Release);
                    }
                }
                prepare_channels(&registry, &transport, &prepared, &gate).await;
            }
        }
    }
}
