//! [`Active`]: one live broker connection, as the supervisor hands it out.
//! Each new connection is a new generation; channels compare generations
//! to know they must reopen.

use std::sync::{Arc, Mutex, MutexGuard};

use crate::event::Events;
use crate::transport::{AnyChannel, AnyTransport};

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A broker channel opened ahead on a warm standby for one supervised
/// channel, with the QoS and confirm mode the channel had then: when the
/// standby takes over, the channel adopts it instead of opening one (two
/// round trips fewer between noticing a dead broker and publishing again).
pub(crate) struct PreparedChannel {
    /// The supervised channel it was opened for.
    pub(crate) owner: u64,
    pub(crate) channel: AnyChannel,
    pub(crate) settings: ChannelSettings,
}

/// What every broker channel of a supervised channel gets when it opens.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct ChannelSettings {
    /// `basic.qos`: prefetch count and global flag.
    pub(crate) qos: Option<(u16, bool)>,
    /// Publisher confirms.
    pub(crate) confirm: bool,
}

/// The broker connection in use.
pub(crate) struct Active {
    pub(crate) transport: Arc<AnyTransport>,
    /// A warm standby that already holds the whole recorded topology.
    pub(crate) topology_declared: bool,
    pub(crate) url_index: usize,
    pub(crate) generation: u64,
    pub(crate) events: Events,
    /// The broker's URL, password masked, for events and logs.
    pub(crate) broker: String,
    /// Channels the warm standby opened ahead, until their owners adopt them.
    pub(crate) prepared: Mutex<Vec<PreparedChannel>>,
}

impl Active {
    /// The channel prepared for `owner`, if it has these settings.
    pub(crate) fn take_prepared(&self, owner: u64, settings: ChannelSettings) -> Option<AnyChannel> {
        let mut prepared = lock(&self.prepared);
        let index = prepared.iter().position(|p| p.owner == owner)?;
        let candidate = &prepared[index];
        if candidate.settings != settings || !candidate.channel.is_open() {
            return None; // closed with the other leftovers after the restore
        }
        Some(prepared.swap_remove(index).channel)
    }
}
