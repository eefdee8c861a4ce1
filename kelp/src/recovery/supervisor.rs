//! [`Supervisor`]: owns the broker connection of one kelp connection. It
//! connects lazily through the broker list by the failover strategy,
//! watches the connection, and when it is lost reconnects by the retry
//! policy and replays the [`Registry`] before anyone sees the new
//! connection. The model's handles point at it, so they survive a failover.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Instant;

use super::active::{Active, PreparedChannel, lock};
use super::channel::ChannelCore;
use super::registry::Registry;
use super::restore::{report_recreated, restore};
use super::retry::retry_loop;
use super::settings::Settings;
use super::standby::Standby;
use super::subscription::ConsumerRecord;
use super::topology::Topology;
use crate::error::{Error, Result};
use crate::event::{Event, Events};
use crate::transport::confirm;
use crate::transport::{AnyTransport, CancelReason, ConsumerEvent};
use crate::url::BrokerUrl;

/// The supervisor of one connection.
pub(crate) struct Supervisor {
    pub(crate) settings: Settings,
    /// Serializes connection attempts; holds the broker tried last.
    link: tokio::sync::Mutex<Option<usize>>,
    active: RwLock<Option<Arc<Active>>>,
    /// Bumped on every new broker connection; channels compare it to know
    /// they must reopen.
    generation: AtomicU64,
    registry: Arc<Registry>,
    events: Events,
    /// The warm standby connection, when one is open.
    standby: Mutex<Option<Standby>>,
    /// Set by `close()`: a lost connection is then not recovered.
    closed_by_app: AtomicBool,
    /// The connection's default channel, created on first use.
    default_channel: Mutex<Option<Arc<ChannelCore>>>,
    /// Keys of what was declared on the current broker connection (the
    /// model's "maybe declare" cache), cleared on every (re)connect.
    declared: Mutex<HashSet<String>>,
    /// This connection's name for the transports, the same across reconnects.
    client: String,
}

impl Supervisor {
    pub(crate) fn new(settings: Settings) -> Supervisor {
        Supervisor {
            settings,
            link: tokio::sync::Mutex::new(None),
            active: RwLock::new(None),
            generation: AtomicU64::new(0),
            registry: Arc::default(),
            events: Events::new(),
            standby: Mutex::new(None),
            closed_by_app: AtomicBool::new(false),
            default_channel: Mutex::new(None),
            declared: Mutex::new(HashSet::new()),
            client: crate::content::ids::uuid4(),
        }
    }

    pub(crate) fn urls(&self) -> &[BrokerUrl] {
        &self.settings.urls
    }

    pub(crate) fn events(&self) -> &Events {
        &self.events
    }

    /// The broker connection in use, if any (it may have died since).
    pub(crate) fn active(&self) -> Option<Arc<Active>> {
        self.active.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub(crate) fn is_connected(&self) -> bool {
        self.active().is_some_and(|a| a.transport.is_open())
    }

    /// True once the application closed this connection (pools replace it).
    pub(crate) fn is_closed_by_app(&self) -> bool {
        self.closed_by_app.load(Ordering::Acquire)
    }

    /// The URL of the broker in use (or the first one when not connected).
    pub(crate) fn current_url(&self) -> &BrokerUrl {
        let index = self.active().map_or(0, |a| a.url_index);
        // `urls` is never empty (checked by the builder), so this always finds one.
        &self.settings.urls[index.min(self.settings.urls.len() - 1)]
    }

    /// Change the topology record (the standby follows).
    pub(crate) fn record(&self, f: impl FnOnce(&mut Topology)) {
        self.registry.record(f);
    }

    /// A channel's QoS or confirm mode changed: the standby follows.
    pub(crate) fn channel_settings_changed(&self) {
        self.registry.touch();
    }

    /// A new supervised channel, reopened after every reconnect.
    pub(crate) fn new_channel(&self) -> Arc<ChannelCore> {
        let core = ChannelCore::new();
        self.registry.register_core(&core);
        core
    }

    /// The default channel, created on first use.
    pub(crate) fn default_channel(&self) -> Arc<ChannelCore> {
        lock(&self.default_channel).get_or_insert_with(|| self.new_channel()).clone()
    }

    pub(crate) fn register_consumer(&self, record: &Arc<ConsumerRecord>) {
        self.registry.register_consumer(record);
    }

    /// A subscription ended for good: stop re-consuming it.
    pub(crate) fn forget_consumer(&self, record: &Arc<ConsumerRecord>) {
        self.registry.forget_consumer(record);
    }

    /// True when a lost connection is recovered automatically.
    pub(crate) fn recovers(&self) -> bool {
        self.settings.recovery
    }

    /// Was `key` declared on the current broker connection?
    pub(crate) fn is_declared(&self, key: &str) -> bool {
        lock(&self.declared).contains(key)
    }

    /// Remember `key` as declared, unless a reconnect after `generation`
    /// cleared the cache meanwhile.
    pub(crate) fn mark_declared(&self, key: String, generation: u64) {
        if self.generation() == generation || generation == 0 {
            lock(&self.declared).insert(key);
        }
    }

    pub(crate) fn clear_declared(&self) {
        lock(&self.declared).clear();
    }

    /// The live broker connection, connecting first if needed.
    pub(crate) async fn transport(self: &Arc<Self>) -> Result<Arc<Active>> {
        if let Some(active) = self.active()
            && active.transport.is_open()
        {
            return Ok(active);
        }
        let mut link = self.link.lock().await;
        if let Some(active) = self.active()
            && active.transport.is_open()
        {
            return Ok(active);
        }
        let active = Arc::new(self.connect_cycle(&mut link).await?);
        // Restore before anyone else sees the new connection: a publisher
        // that got it early would publish before its queue is declared
        // again, and the broker confirms (and drops) an unroutable message.
        // Until then other operations wait on the link lock.
        if active.generation > 1 {
            restore(&self.registry, &active).await;
        }
        *self.active.write().unwrap_or_else(|e| e.into_inner()) = Some(active.clone());
        self.closed_by_app.store(false, Ordering::Release);
        self.supervise(&active);
        self.prepare_standby(&active);
        Ok(active)
    }

    /// Close the broker link, the standby and the subscriptions, and forget
    /// the topology record. The next operation connects again.
    pub(crate) async fn close(&self) -> Result<()> {
        self.closed_by_app.store(true, Ordering::Release);
        let _link = self.link.lock().await;
        lock(&self.default_channel).take();
        let active = self.active.write().unwrap_or_else(|e| e.into_inner()).take();
        self.clear_declared();
        self.registry.clear();
        // Nothing will publish them again: end their waits.
        let closed = Error::closed("the connection was closed by the application");
        for core in self.registry.live_cores() {
            confirm::lock(&core.confirms).fail_all(&closed);
        }
        let standby = lock(&self.standby).take();
        if let Some(standby) = standby {
            let _ = standby.transport.close().await;
        }
        if let Some(active) = active {
            active.transport.close().await?;
        }
        Ok(())
    }

    /// Watch the connection; when it is lost (not closed by the
    /// application), recover it in the background.
    fn supervise(self: &Arc<Self>, active: &Arc<Active>) {
        if !self.settings.recovery {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let closed = active.transport.closed();
        let generation = active.generation;
        let supervisor: Weak<Supervisor> = Arc::downgrade(self);
        runtime.spawn(async move {
            let reason = closed.await;
            // The connection may be dropped meanwhile: then there is nobody
            // to recover for.
            let Some(supervisor) = supervisor.upgrade() else { return };
            if supervisor.is_closed_by_app() || supervisor.generation() != generation {
                return;
            }
            supervisor.recover(reason).await;
        });
    }

    /// Reconnect by the retry policy, restoring everything on the way.
    async fn recover(self: &Arc<Self>, reason: Error) {
        let started = Instant::now();
        self.events.emit(Event::RecoveryStarted {
            broker: self.current_url().to_string(),
            reason: reason.to_string(),
        });
        match retry_loop(&self.settings.retry, || self.transport()).await {
            Ok(active) => self.events.emit(Event::Recovered {
                broker: active.broker.clone(),
                took: started.elapsed(),
            }),
            Err(error) => {
                if self.is_closed_by_app() {
                    return;
                }
                self.events.emit(Event::RecoveryFailed { reason: error.to_string() });
                self.give_up(&error);
            }
        }
    }

    /// Recovery failed: end the waits that depended on it, so that nothing
    /// hangs. (The record stays: a later reconnect still restores it.)
    fn give_up(&self, error: &Error) {
        for record in self.registry.live_consumers() {
            let _ = record.sink.send(ConsumerEvent::Cancelled(
                record.tag.clone(),
                CancelReason::RecoveryFailed(error.to_string()),
            ));
        }
        for core in self.registry.live_cores() {
            confirm::lock(&core.confirms).fail_all(error);
        }
    }

    /// The warm standby as the new connection, if it is still alive.
    fn take_standby(&self, last: &mut Option<usize>) -> Option<Active> {
        let standby = lock(&self.standby).take()?;
        if !standby.transport.is_open() {
            return None;
        }
        let url_index = standby.url_index;
        *last = Some(url_index);
        let takeover = standby.take_over(self.registry.version());
        let active = self.new_active(url_index, takeover.transport, takeover.topology_declared, takeover.prepared);
        tracing::debug!(broker = %active.broker, "the warm standby takes over");
        self.events.emit(Event::Connected { broker: active.broker.clone() });
        report_recreated(&self.events, &active.broker, takeover.recreated);
        Some(active)
    }

    /// A new broker connection becomes the next generation: channels of
    /// older ones reopen, the "maybe declare" cache starts empty.
    fn new_active(
        &self,
        url_index: usize,
        transport: Arc<AnyTransport>,
        topology_declared: bool,
        prepared: Vec<PreparedChannel>,
    ) -> Active {
        self.clear_declared();
        let generation = self.generation.fetch_add(1, Ordering::AcqRel) + 1;
        Active {
            transport,
            topology_declared,
            url_index,
            generation,
            events: self.events.clone(),
            broker: self.settings.urls[url_index].to_string(),
            prepared: Mutex::new(prepared),
        }
    }

    /// Open the warm standby in the background: a connection to the broker
    /// the strategy would try next, with the recorded topology declared on
    /// it and kept declared as the application declares more.
    fn prepare_standby(self: &Arc<Self>, active: &Arc<Active>) {
        let urls = &self.settings.urls;
        if !self.settings.standby || urls.len() < 2 {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let order = self.settings.strategy.cycle(urls, Some(active.url_index));
        let Some(index) = order.into_iter().find(|&i| i != active.url_index) else {
            return;
        };
        if lock(&self.standby).as_ref().is_some_and(|s| s.url_index == index && s.transport.is_open()) {
            return;
        }
        let generation = active.generation;
        let supervisor: Weak<Supervisor> = Arc::downgrade(self);
        runtime.spawn(async move {
            let Some(this) = supervisor.upgrade() else { return };
            let url = this.settings.urls[index].clone();
            let (events, gate) = this.events.gated();
            // A client id of its own: the standby may reach the very broker
            // the active connection uses (two addresses of one Redis), and
            // must not take the active connection for a lost predecessor.
            let client = format!("{}-standby", this.client);
            let Ok(options) = this.settings.connect_options(&url, events, &client) else { return };
            let registry = this.registry.clone();
            // Connecting may take a while: hold nothing alive meanwhile.
            drop(this);
            let Some(standby) = Standby::open(index, &url, &options, gate, &registry).await else {
                return;
            };
            let Some(this) = supervisor.upgrade() else { return };
            if this.generation() != generation || this.is_closed_by_app() {
                let _ = standby.transport.close().await;
                return;
            }
            tracing::debug!(broker = %url, "warm standby ready");
            let follow = standby.follow(&registry);
            let previous = lock(&this.standby).replace(standby);
            if let Some(previous) = previous {
                let _ = previous.transport.close().await;
            }
            // Follow the topology without keeping the connection or the
            // standby alive: when either goes, so does this task.
            drop((this, registry));
            follow.await;
        });
    }

    /// Try every broker once, in the strategy's order.
    async fn connect_cycle(&self, last: &mut Option<usize>) -> Result<Active> {
        if let Some(active) = self.take_standby(last) {
            return Ok(active);
        }
        let urls = &self.settings.urls;
        let order = self.settings.strategy.cycle(urls, *last);
        let mut failures = Vec::new();
        let mut last_error = None;
        for index in order {
            let url = &urls[index];
            *last = Some(index);
            let options = self.settings.connect_options(url, self.events.clone(), &self.client)?;
            let attempt = tokio::time::timeout(options.connect_timeout, AnyTransport::connect(url, &options));
            let error = match attempt.await {
                Ok(Ok(transport)) => {
                    tracing::debug!(broker = %url, "connected");
                    return Ok(self.new_active(index, Arc::new(transport), false, Vec::new()));
                }
                Ok(Err(e)) => e,
                Err(_) => Error::timeout(format!(
                    "connecting to {url} took longer than {:?}",
                    options.connect_timeout
                )),
            };
            tracing::warn!(broker = %url, error = %error, "connection attempt failed");
            if error.is_fatal() {
                return Err(error);
            }
            failures.push(format!("{url}: {error}"));
            last_error = Some(error);
        }
        match last_error {
            Some(error) if failures.len() == 1 => Err(error),
            Some(error) => Err(Error::new(
                error.kind(),
                format!("could not connect to any broker: {}", failures.join("; ")),
            )),
            None => Err(Error::config("a connection needs at least one broker URL")),
        }
    }
}
