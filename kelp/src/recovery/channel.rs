//! [`ChannelCore`]: a supervised channel. It outlives each broker channel:
//! when the broker closes one (a 404, a 406) or the connection is replaced,
//! the next operation opens a fresh one on the current connection with the
//! same QoS and confirm mode, and publishes again what the old one never
//! confirmed.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use super::active::{Active, ChannelSettings, PreparedChannel, lock};
use crate::error::Result;
use crate::event::Event;
use crate::transport::confirm::{self, SharedConfirms};
use crate::transport::{AnyChannel, AnyTransport};

/// One supervised channel; the model's `Channel` handles point at it.
pub(crate) struct ChannelCore {
    /// Tells the channels prepared on a warm standby apart.
    id: u64,
    slot: RwLock<Option<Slot>>,
    reopen: tokio::sync::Mutex<()>,
    qos: Mutex<Option<(u16, bool)>>,
    confirm: AtomicBool,
    /// Publishes not yet confirmed; outlives each broker channel, so they
    /// are published again after a reconnect.
    pub(crate) confirms: SharedConfirms,
}

/// The broker channel in use, and the connection generation it belongs to.
#[derive(Clone)]
struct Slot {
    channel: AnyChannel,
    generation: u64,
}

/// Give a freshly opened broker channel its QoS and confirm mode.
async fn configure(channel: &AnyChannel, settings: ChannelSettings) -> Result<()> {
    if let Some((prefetch, global)) = settings.qos {
        channel.qos(prefetch, global).await?;
    }
    if settings.confirm {
        channel.confirm_select().await?;
    }
    Ok(())
}

impl ChannelCore {
    /// A channel with no broker channel yet (the supervisor's
    /// `new_channel` also registers it for recovery and the standby).
    pub(crate) fn new() -> Arc<ChannelCore> {
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        Arc::new(ChannelCore {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            slot: RwLock::new(None),
            reopen: tokio::sync::Mutex::new(()),
            qos: Mutex::new(None),
            confirm: AtomicBool::new(false),
            confirms: SharedConfirms::default(),
        })
    }

    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// The QoS and confirm mode every broker channel of this core gets.
    pub(crate) fn settings(&self) -> ChannelSettings {
        ChannelSettings {
            qos: *lock(&self.qos),
            confirm: self.confirm.load(Ordering::Acquire),
        }
    }

    /// Remember a QoS setting for every broker channel to come.
    pub(crate) fn set_qos(&self, prefetch_count: u16, global: bool) {
        *lock(&self.qos) = Some((prefetch_count, global));
    }

    /// Turn confirm mode on for every broker channel to come; true when it
    /// was off until now.
    pub(crate) fn enable_confirms(&self) -> bool {
        !self.confirm.swap(true, Ordering::AcqRel)
    }

    pub(crate) fn is_confirm_mode(&self) -> bool {
        self.confirm.load(Ordering::Acquire)
    }

    /// Open a broker channel for this core on `active`, with its QoS and
    /// confirm mode, and publish again what was never confirmed.
    async fn open_on(&self, active: &Active) -> Result<AnyChannel> {
        let settings = self.settings();
        let channel = match active.take_prepared(self.id, settings) {
            // Opened on the warm standby with these settings already.
            Some(channel) => {
                channel.adopt();
                channel
            }
            None => {
                let channel = active.transport.open_channel(self.confirms.clone()).await?;
                configure(&channel, settings).await?;
                channel
            }
        };
        // Whatever still waits for a confirm went out on a channel that is
        // gone: delivery tags restart at 1 on this one.
        // (Opening the channel attached it to `confirms`, which detached
        // them from the old one.)
        let unsent = confirm::lock(&self.confirms).unsent();
        if !unsent.is_empty() {
            let count = unsent.len();
            channel.resend(unsent)?;
            tracing::info!(count, "published again what the lost connection never confirmed");
            active.events.emit(Event::PublishesResent { count });
        }
        *self.slot.write().unwrap_or_else(|e| e.into_inner()) = Some(Slot {
            channel: channel.clone(),
            generation: active.generation,
        });
        Ok(channel)
    }

    /// Open a broker channel for this core on a warm standby's `transport`,
    /// with the core's QoS and confirm mode, without taking over its
    /// confirms (see [`PreparedChannel`]). `None`: the transport has
    /// nothing to gain from it.
    pub(crate) async fn prepare_on(&self, transport: &AnyTransport) -> Result<Option<PreparedChannel>> {
        let settings = self.settings();
        let Some(channel) = transport.prepare_channel(self.confirms.clone()).await? else {
            return Ok(None);
        };
        if let Err(e) = configure(&channel, settings).await {
            let _ = channel.close().await;
            return Err(e);
        }
        Ok(Some(PreparedChannel { owner: self.id, channel, settings }))
    }

    /// The broker channel on `active`, opening it now if the current one
    /// belongs to an older connection or was closed.
    pub(crate) async fn reopen_on(&self, active: &Active) -> Result<AnyChannel> {
        let _reopening = self.reopen.lock().await;
        if let Some(channel) = self.current(active.generation) {
            return Ok(channel);
        }
        self.open_on(active).await
    }

    /// Replace the broker channel, keeping unconfirmed publishes to send
    /// again on the next one (after a nack, some brokers keep refusing on
    /// the same channel: RabbitMQ 3.10 does for a quorum queue that changed
    /// leader).
    pub(crate) async fn reset(&self) {
        let _reopening = self.reopen.lock().await;
        confirm::lock(&self.confirms).detach();
        let slot = self.slot.write().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(slot) = slot {
            let _ = slot.channel.close().await;
        }
    }

    /// Close the broker channel; the next operation opens a new one.
    pub(crate) async fn close(&self) -> Result<()> {
        let slot = self.slot.write().unwrap_or_else(|e| e.into_inner()).take();
        match slot {
            Some(slot) => slot.channel.close().await,
            None => Ok(()),
        }
    }

    /// The broker channel, if it is open and of connection `generation`.
    pub(crate) fn current(&self, generation: u64) -> Option<AnyChannel> {
        let slot = self.slot.read().unwrap_or_else(|e| e.into_inner());
        match &*slot {
            Some(s) if s.generation == generation && s.channel.is_open() => Some(s.channel.clone()),
            _ => None,
        }
    }
}
