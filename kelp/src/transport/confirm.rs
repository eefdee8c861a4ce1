//! Publisher confirms: one queue of publishes per channel, resolved by the
//! broker's acks and nacks (with `multiple`), with no task and no allocation
//! per message. The published message is kept (a reference count, not a
//! copy) until it is confirmed, to match returns and to publish again what
//! was never confirmed when the connection is replaced.
//!
//! Each publish has a *ticket* (its place in this queue, for the waiting
//! [`PendingConfirm`]) and a *wire* sequence number (the broker's delivery
//! tag on the current channel). A new connection restarts wire numbers at 1;
//! tickets stay, so a confirmation survives a failover.
//!
//! Only the broker channel that is *attached* (the newest one) may track
//! publishes or settle them: a publisher that still holds the dead channel
//! of the previous connection, or that channel's late cleanup, must not take
//! or shift the new channel's delivery tags (a publish written to a dead
//! socket would otherwise be confirmed by the ack meant for the next one).

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use crate::content::message::ReturnedMessage;
use crate::transport::types::OutgoingMessage;
use crate::error::{Error, ErrorKind, Result};

enum State {
    Waiting(Option<Waker>),
    Done(Result<()>),
    /// The outcome was taken, or nobody waits for it any more.
    Gone,
}

struct Slot {
    state: State,
    /// Its delivery tag on the current channel; `None` once that channel is
    /// gone and the message waits to be published again.
    wire: Option<u64>,
    /// When it was last written (the stall watchdog's measure).
    sent: std::time::Instant,
    /// Kept until confirmed: for matching returns, and for re-publishing.
    message: Option<OutgoingMessage>,
    returned: Option<ReturnedMessage>,
    abandoned: bool,
}

/// The unconfirmed publishes of one channel.
#[derive(Default)]
pub(crate) struct Confirms {
    /// Ticket of `slots[0]`.
    base: u64,
    next_ticket: u64,
    /// The next delivery tag on the current channel.
    next_wire: u64,
    slots: VecDeque<Slot>,
    /// Slots still waiting for the broker.
    waiting: usize,
    /// Wakes publishers waiting for room (see [`Confirms::waiting`]).
    room: Option<Arc<tokio::sync::Notify>>,
    /// The broker channel whose delivery tags these are (0: none).
    owner: u64,
}

/// A process-wide unique id for a broker channel, to attach it to a
/// [`Confirms`].
pub(crate) fn next_owner() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

pub(crate) type SharedConfirms = Arc<Mutex<Confirms>>;

pub(crate) fn lock(confirms: &Mutex<Confirms>) -> MutexGuard<'_, Confirms> {
    confirms.lock().unwrap_or_else(|e| e.into_inner())
}

impl Confirms {
    fn next_wire(&mut self) -> u64 {
        self.next_wire = self.next_wire.max(1);
        let wire = self.next_wire;
        self.next_wire += 1;
        wire
    }

    /// Make `owner` the channel whose delivery tags these are. Publishes
    /// sent on the previous one wait to be sent again (see [`detach`]).
    ///
    /// [`detach`]: Confirms::detach
    pub(crate) fn attach(&mut self, owner: u64) {
        self.detach();
        self.owner = owner;
    }

    /// Record a publish about to be written on channel `owner`; returns its
    /// ticket, or `None` when that channel is no longer the attached one
    /// (its connection was replaced: the publish must go on the new one).
    pub(crate) fn track(&mut self, owner: u64, message: OutgoingMessage) -> Option<u64> {
        if self.owner != owner {
            return None;
        }
        self.next_ticket = self.next_ticket.max(1);
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        if self.slots.is_empty() {
            self.base = ticket;
        }
        let wire = Some(self.next_wire());
        self.waiting += 1;
        self.slots.push_back(Slot {
            state: State::Waiting(None),
            wire,
            sent: std::time::Instant::now(),
            message: Some(message),
            returned: None,
            abandoned: false,
        });
        Some(ticket)
    }

    /// Undo the last `track` (its frames could not be encoded).
    pub(crate) fn untrack_last(&mut self) {
        if self.slots.pop_back().is_some() {
            self.next_ticket -= 1;
            self.next_wire -= 1;
            self.waiting -= 1;
        }
    }

    fn slot(&mut self, ticket: u64) -> Option<&mut Slot> {
        let index = usize::try_from(ticket.checked_sub(self.base)?).ok()?;
        self.slots.get_mut(index)
    }

    /// The channel these publishes went out on is gone with its connection:
    /// they wait, unconfirmed, to be published again on the next one (whose
    /// delivery tags start at 1).
    pub(crate) fn detach(&mut self) {
        for slot in &mut self.slots {
            slot.wire = None;
        }
        self.next_wire = 1;
        self.owner = 0;
    }

    /// [`detach`](Confirms::detach), if `owner` is still the attached
    /// channel (a newer one may have taken over already).
    pub(crate) fn detach_from(&mut self, owner: u64) {
        if self.owner == owner {
            self.detach();
        }
    }

    /// Messages that must be published again, in their original order.
    pub(crate) fn unsent(&self) -> Vec<(u64, OutgoingMessage)> {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.wire.is_none() && matches!(s.state, State::Waiting(_)))
            .filter_map(|(i, s)| Some((self.base + i as u64, s.message.clone()?)))
            .collect()
    }

    /// `ticket` was just published again: give it the next delivery tag.
    pub(crate) fn resent(&mut self, ticket: u64) {
        let wire = self.next_wire();
        if let Some(slot) = self.slot(ticket) {
            slot.wire = Some(wire);
            slot.sent = std::time::Instant::now();
        }
    }

    /// The delivery tag `ticket` has on the current channel, if it was sent
    /// there.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn wire_of(&self, ticket: u64) -> Option<u64> {
        let index = usize::try_from(ticket.checked_sub(self.base)?).ok()?;
        self.slots.get(index)?.wire
    }

    /// Resolve the publish with delivery tag `wire` on channel `owner` (a
    /// transport that confirms each publish by its own answer, as Redis
    /// does): `outcome` sees the message, to tell an unroutable one.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn settle_wire(&mut self, owner: u64, wire: u64, outcome: impl FnOnce(&OutgoingMessage) -> Result<()>) {
        if self.owner != owner {
            return;
        }
        let slot = self.slots.iter_mut().find(|s| s.wire == Some(wire));
        if let Some(slot) = slot {
            let result = match &slot.message {
                Some(message) => outcome(message),
                None => Ok(()),
            };
            Self::resolve(&mut self.waiting, slot, result);
        }
        self.compact();
        if let Some(room) = &self.room {
            room.notify_waiters();
        }
    }

    /// Publishes waiting for their confirm.
    pub(crate) fn waiting(&self) -> usize {
        self.waiting
    }

    /// For the stall watchdog: how long the oldest publish written on
    /// channel `owner` has waited for its confirm, if one waits. Looks at
    /// the front only: confirmed publishes leave from there.
    pub(crate) fn stall_probe(&self, owner: u64) -> Option<std::time::Duration> {
        if self.owner != owner {
            return None;
        }
        let oldest = self.slots.iter().find(|s| matches!(s.state, State::Waiting(_)))?;
        oldest.wire.map(|_| oldest.sent.elapsed())
    }

    /// A notifier woken whenever publishes are confirmed (to wait for room).
    pub(crate) fn room(&mut self) -> Arc<tokio::sync::Notify> {
        self.room.get_or_insert_with(|| Arc::new(tokio::sync::Notify::new())).clone()
    }

    fn resolve(waiting: &mut usize, slot: &mut Slot, outcome: Result<()>) {
        if !matches!(slot.state, State::Waiting(_)) {
            return;
        }
        *waiting -= 1;
        slot.message = None;
        let outcome = match (outcome, slot.returned.take()) {
            (Ok(()), Some(returned)) => Err(unroutable(returned)),
            (outcome, _) => outcome,
        };
        if slot.abandoned {
            slot.state = State::Gone;
            return;
        }
        if let State::Waiting(Some(waker)) = std::mem::replace(&mut slot.state, State::Done(outcome)) {
            waker.wake();
        }
    }

    /// Resolve by delivery tag: every publish up to `tag` with `multiple`,
    /// else the one with that tag. Tags of the current channel increase
    /// along the queue, so the scan stops at the first later one.
    fn settle(&mut self, tag: u64, multiple: bool, outcome: impl Fn() -> Result<()>) {
        for slot in &mut self.slots {
            let Some(wire) = slot.wire else { continue };
            if wire > tag {
                break;
            }
            if multiple || wire == tag {
                Self::resolve(&mut self.waiting, slot, outcome());
                if !multiple {
                    break;
                }
            }
        }
        self.compact();
        if let Some(room) = &self.room {
            room.notify_waiters();
        }
    }

    /// basic.ack from the broker on channel `owner`.
    pub(crate) fn ack(&mut self, owner: u64, tag: u64, multiple: bool) {
        if self.owner == owner {
            self.settle(tag, multiple, || Ok(()));
        }
    }

    /// basic.nack from the broker on channel `owner`.
    pub(crate) fn nack(&mut self, owner: u64, tag: u64, multiple: bool) {
        if self.owner != owner {
            return;
        }
        self.settle(tag, multiple, || {
            Err(Error::new(
                ErrorKind::Nacked,
                "the broker refused the message (basic.nack): a queue is full or failed",
            ))
        });
    }

    /// A `basic.return`: attach it to the oldest unconfirmed mandatory
    /// publish of that exchange, routing key and body (returns come in
    /// publish order, before the publish's ack). Gives the message back when
    /// nothing waits for it.
    pub(crate) fn returned(&mut self, owner: u64, returned: ReturnedMessage) -> Option<ReturnedMessage> {
        if self.owner != owner {
            return Some(returned);
        }
        let matching = self.slots.iter_mut().find(|slot| {
            slot.returned.is_none()
                && matches!(slot.state, State::Waiting(_))
                && slot.wire.is_some()
                && slot.message.as_ref().is_some_and(|m| {
                    m.mandatory
                        && m.exchange == returned.exchange
                        && m.routing_key == returned.routing_key
                        && m.content.body == returned.body
                })
        });
        match matching {
            Some(slot) => {
                slot.returned = Some(returned);
                None
            }
            None => Some(returned),
        }
    }

    /// Fail the publishes sent on the channel that is closing (those
    /// detached from an earlier channel keep waiting to be sent again);
    /// returns the messages whose fate is unknown.
    pub(crate) fn fail_wired(&mut self, owner: u64, error: &Error) -> Vec<OutgoingMessage> {
        let mut unknown = Vec::new();
        if self.owner != owner {
            return unknown;
        }
        for slot in &mut self.slots {
            if slot.wire.is_none() {
                continue;
            }
            if let Some(message) = slot.message.take() {
                unknown.push(message);
            }
            Self::resolve(&mut self.waiting, slot, Err(error.clone_for_waiters()));
        }
        self.compact();
        if let Some(room) = &self.room {
            room.notify_waiters();
        }
        unknown
    }

    /// Fail every unconfirmed publish (the channel or connection died);
    /// returns the messages whose fate is unknown.
    pub(crate) fn fail_all(&mut self, error: &Error) -> Vec<OutgoingMessage> {
        let mut unknown = Vec::new();
        for slot in &mut self.slots {
            if let Some(message) = slot.message.take() {
                unknown.push(message);
            }
            Self::resolve(&mut self.waiting, slot, Err(error.clone_for_waiters()));
        }
        self.compact();
        if let Some(room) = &self.room {
            room.notify_waiters();
        }
        unknown
    }

    fn compact(&mut self) {
        while matches!(self.slots.front(), Some(Slot { state: State::Gone, .. })) {
            self.slots.pop_front();
            self.base += 1;
        }
    }

}

fn unroutable(returned: ReturnedMessage) -> Error {
    Error::new(
        ErrorKind::Unroutable,
        format!(
            "no queue is bound to exchange '{}' with routing key '{}' ({} {})",
            returned.exchange, returned.routing_key, returned.reply_code, returned.reply_text
        ),
    )
    .with_reply(returned.reply_code, returned.reply_text.to_string())
    .with_returned(returned)
}

/// Resolves once the broker confirmed (or refused) one publish.
pub(crate) struct PendingConfirm {
    confirms: Arc<Mutex<Confirms>>,
    seq: u64,
    done: bool,
}

impl PendingConfirm {
    pub(crate) fn new(confirms: Arc<Mutex<Confirms>>, seq: u64) -> PendingConfirm {
        PendingConfirm {
            confirms,
            seq,
            done: false,
        }
    }
}

impl Future for PendingConfirm {
    type Output = Result<()>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(Err(Error::closed("confirmation polled after completion")));
        }
        let mut confirms = lock(&this.confirms);
        let Some(slot) = confirms.slot(this.seq) else {
            this.done = true;
            return Poll::Ready(Err(Error::closed("the confirmation was lost")));
        };
        match &mut slot.state {
            State::Waiting(waker) => {
                match waker {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    _ => *waker = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
            State::Done(_) => {
                let State::Done(outcome) = std::mem::replace(&mut slot.state, State::Gone) else {
                    return Poll::Pending;
                };
                confirms.compact();
                this.done = true;
                Poll::Ready(outcome)
            }
            State::Gone => {
                this.done = true;
                Poll::Ready(Err(Error::closed("the confirmation was lost")))
            }
        }
    }
}

impl Drop for PendingConfirm {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let mut confirms = lock(&self.confirms);
        if let Some(slot) = confirms.slot(self.seq) {
            slot.abandoned = true;
            if matches!(slot.state, State::Done(_)) {
                slot.state = State::Gone;
            }
        }
        confirms.compact();
    }
}

#[cfg(test)]
mod tests;
