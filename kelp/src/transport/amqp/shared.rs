//! What the connection's tasks and its handles share: the connection's
//! state ([`Conn`]), each channel's ([`ChannelShared`]), and what the
//! handles tell the reader task ([`ReaderCmd`]) and hear back ([`Reply`]).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, mpsc, oneshot, watch};

use super::codec::{self, Outbound, methods, short};
use super::handshake::Tune;
use crate::transport::confirm::{self, SharedConfirms};
use crate::event::{Event, Events};
use crate::transport::types::{ConnectOptions, Delivery, DeliverySender};
use crate::content::text::SharedStr;
use crate::error::{Error, ErrorKind, Result};

use amq_protocol::protocol::AMQPClass;

/// Publishing pauses while this much is queued for a slow socket, so memory
/// stays bounded when publishing without confirms.
const HIGH_WATER: usize = 16 * 1024 * 1024;

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A reply the reader hands to a waiting method call.
pub(crate) enum Reply {
    Method(AMQPClass),
    Get(Option<Delivery>),
}

pub(crate) enum ReaderCmd {
    Register(Arc<ChannelShared>),
    Expect(u16, oneshot::Sender<Result<Reply>>),
    AddConsumer(u16, SharedStr, DeliverySender, u64),
}

/// State shared by the connection's tasks and handles.
pub(crate) struct Conn {
    pub(crate) broker: String,
    pub(crate) tune: Tune,
    /// Unconfirmed publishes outlive a lost connection (see `Confirms::detach`).
    keep_unconfirmed: bool,
    pub(crate) max_unconfirmed: usize,
    pub(crate) publish_wait: Duration,
    pub(super) out: Mutex<Outbound>,
    /// Bytes waiting for the writer; publishers wait above [`HIGH_WATER`].
    pub(super) queued: AtomicUsize,
    /// Signalled after every write.
    pub(super) drained: Notify,
    pub(super) writer_wake: Notify,
    reader: mpsc::UnboundedSender<ReaderCmd>,
    pub(super) shutdown: watch::Sender<bool>,
    failure: Mutex<Option<Error>>,
    ids: Mutex<IdPool>,
    pub(super) blocked: AtomicBool,
    pub(super) unblocked: Notify,
    closing: AtomicBool,
    pub(super) close_ok: Mutex<Option<oneshot::Sender<()>>>,
    pub(super) events: Events,
    epoch: Instant,
    pub(super) last_read_ms: AtomicU64,
    pub(super) last_write_ms: AtomicU64,
    /// See `ConnectOptions::confirm_timeout`.
    pub(super) confirm_timeout: Option<Duration>,
    /// The channels' confirms, for the stall watchdog (see [`Conn::stalled`]).
    watched: Mutex<Vec<Watched>>,
}

/// One channel's confirms as the stall watchdog last saw them.
struct Watched {
    confirms: Weak<std::sync::Mutex<confirm::Confirms>>,
    owner: u64,
    /// Since when publishes have waited without a break (and unblocked).
    since_ms: u64,
}

struct IdPool {
    next: u16,
    max: u16,
    free: Vec<u16>,
}

impl IdPool {
    fn take(&mut self) -> Option<u16> {
        if let Some(id) = self.free.pop() {
            return Some(id);
        }
        if self.next == 0 || self.next > self.max {
            return None;
        }
        let id = self.next;
        self.next = self.next.wrapping_add(1);
        Some(id)
    }
}

impl Conn {
    /// The state of a connection whose handshake is done; `reader` is the
    /// reader task's command queue.
    pub(super) fn new(
        broker: String,
        tune: Tune,
        options: &ConnectOptions,
        reader: mpsc::UnboundedSender<ReaderCmd>,
        events: Events,
    ) -> Conn {
        let (shutdown, _) = watch::channel(false);
        Conn {
            broker,
            tune,
            keep_unconfirmed: options.keep_unconfirmed,
            max_unconfirmed: options.max_unconfirmed.max(1),
            publish_wait: options.publish_wait,
            out: Mutex::new(Outbound::new()),
            queued: AtomicUsize::new(0),
            drained: Notify::new(),
            writer_wake: Notify::new(),
            reader,
            shutdown,
            failure: Mutex::new(None),
            ids: Mutex::new(IdPool {
                next: 1,
                max: tune.channel_max,
                free: Vec::new(),
            }),
            blocked: AtomicBool::new(false),
            unblocked: Notify::new(),
            closing: AtomicBool::new(false),
            close_ok: Mutex::new(None),
            events,
            epoch: Instant::now(),
            last_read_ms: AtomicU64::new(0),
            last_write_ms: AtomicU64::new(0),
            confirm_timeout: options.confirm_timeout,
            watched: Mutex::new(Vec::new()),
        }
    }

    /// Watch a channel's confirms for stalls.
    fn watch(&self, confirms: &SharedConfirms, owner: u64) {
        let mut watched = lock(&self.watched);
        watched.retain(|w| w.confirms.strong_count() > 0);
        watched.push(Watched { confirms: Arc::downgrade(confirms), owner, since_ms: self.now_ms() });
    }

    /// The stall watchdog, called periodically: how long the oldest publish
    /// of some channel has waited for its confirm, if that is longer than
    /// the confirm timeout. A broker cut off from its cluster keeps the
    /// connection alive and confirms nothing, or, with a quorum queue whose
    /// leader froze, a confirm every few seconds (measured: one per 5 s on
    /// RabbitMQ 3.10, for 30 s), so the age of the oldest publish decides, not whether
    /// any confirm arrived. Time spent blocked (a resource alarm) does not
    /// count: the wait is measured from the later of the publish and the
    /// end of the block.
    pub(super) fn stalled(&self) -> Option<Duration> {
        let limit = self.confirm_timeout?.as_millis() as u64;
        let now = self.now_ms();
        let blocked = self.blocked.load(Ordering::Acquire);
        let mut worst = None;
        let mut watched = lock(&self.watched);
        watched.retain(|w| w.confirms.strong_count() > 0);
        for w in watched.iter_mut() {
            let Some(confirms) = w.confirms.upgrade() else { continue };
            let oldest = confirm::lock(&confirms).stall_probe(w.owner);
            match oldest {
                Some(age) if !blocked => {
                    let waited = (age.as_millis() as u64).min(now.saturating_sub(w.since_ms));
                    if waited > limit {
                        worst = worst.max(Some(waited));
                    }
                }
                _ => w.since_ms = now,
            }
        }
        worst.map(Duration::from_millis)
    }

    pub(super) fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    pub(crate) fn is_open(&self) -> bool {
        !*self.shutdown.borrow() && !self.closing.load(Ordering::Acquire)
    }

    /// The error that closed the connection (or a generic one).
    pub(crate) fn closed_error(&self) -> Error {
        match &*lock(&self.failure) {
            Some(e) => e.clone_for_waiters(),
            None => Error::connection(format!("the connection to {} is closed", self.broker)),
        }
    }

    /// Queue frames for the writer. `encode` runs under the outbound lock:
    /// frames of concurrent callers never interleave.
    pub(crate) fn send<T>(&self, encode: impl FnOnce(&mut Outbound) -> Result<T>) -> Result<T> {
        if *self.shutdown.borrow() {
            return Err(self.closed_error());
        }
        let (value, wake) = {
            let mut out = lock(&self.out);
            let was_empty = out.is_empty();
            let value = encode(&mut out)?;
            self.queued.store(out.len(), Ordering::Relaxed);
            (value, was_empty)
        };
        // The writer only sleeps on an empty buffer, so only the first
        // frame after it emptied needs to wake it.
        if wake {
            self.writer_wake.notify_one();
        }
        Ok(value)
    }

    pub(crate) fn subscribe_shutdown(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    pub(crate) fn command(&self, cmd: ReaderCmd) -> Result<()> {
        self.reader.send(cmd).map_err(|_| self.closed_error())
    }

    /// Stop everything with `error` (the first error wins).
    pub(crate) fn fail(&self, error: Error) {
        {
            let mut failure = lock(&self.failure);
            if failure.is_some() {
                return;
            }
            if error.kind() != ErrorKind::Closed {
                self.events.emit(Event::ConnectionLost {
                    broker: self.broker.clone(),
                    reason: error.to_string(),
                });
            }
            *failure = Some(error);
        }
        self.shutdown.send_replace(true);
        self.unblocked.notify_waiters();
        self.drained.notify_waiters();
        self.writer_wake.notify_one();
    }

    pub(crate) fn allocate_channel(&self) -> Result<u16> {
        lock(&self.ids).take().ok_or_else(|| {
            Error::new(
                ErrorKind::LimitExceeded,
                format!(
                    "all {} channels of the connection to {} are in use",
                    self.tune.channel_max, self.broker
                ),
            )
        })
    }

    pub(super) fn release_channel(&self, id: u16) {
        lock(&self.ids).free.push(id);
    }

    /// Wait while the broker blocks publishing (connection.blocked).
    pub(crate) async fn wait_unblocked(&self) -> Result<()> {
        while self.blocked.load(Ordering::Acquire) {
            let notified = self.unblocked.notified();
            if !self.blocked.load(Ordering::Acquire) {
                break;
            }
            if *self.shutdown.borrow() {
                return Err(self.closed_error());
            }
            notified.await;
        }
        if *self.shutdown.borrow() {
            return Err(self.closed_error());
        }
        Ok(())
    }

    /// Wait while the writer is far behind (see [`HIGH_WATER`]).
    pub(crate) async fn wait_drained(&self) -> Result<()> {
        while self.queued.load(Ordering::Relaxed) > HIGH_WATER {
            let drained = self.drained.notified();
            if self.queued.load(Ordering::Relaxed) <= HIGH_WATER {
                break;
            }
            if *self.shutdown.borrow() {
                return Err(self.closed_error());
            }
            drained.await;
        }
        Ok(())
    }

    /// True when publishing must wait (blocked by the broker, or the
    /// writer far behind).
    pub(crate) fn must_wait(&self) -> bool {
        self.blocked.load(Ordering::Relaxed) || self.queued.load(Ordering::Relaxed) > HIGH_WATER
    }

    /// Close cleanly: connection.close, wait for close-ok (briefly), stop.
    pub(crate) async fn close(&self) -> Result<()> {
        if self.closing.swap(true, Ordering::AcqRel) || *self.shutdown.borrow() {
            return Ok(());
        }
        let (tx, rx) = oneshot::channel();
        *lock(&self.close_ok) = Some(tx);
        let sent = self.send(|out| {
            codec::put_method(
                &mut out.head,
                0,
                AMQPClass::Connection(methods::connection::AMQPMethod::Close(
                    methods::connection::Close {
                        reply_code: 200,
                        reply_text: short("closed by the application")?,
                        class_id: 0,
                        method_id: 0,
                    },
                )),
            )
        });
        if sent.is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(3), rx).await;
        }
        self.fail(Error::closed(format!("the connection to {} was closed by the application", self.broker)));
        Ok(())
    }

    /// Begin closing without waiting (from a destructor).
    pub(crate) fn close_in_background(self: &Arc<Self>) {
        if !self.is_open() {
            return;
        }
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                let conn = self.clone();
                runtime.spawn(async move {
                    let _ = conn.close().await;
                });
            }
            Err(_) => self.fail(Error::closed("the connection was dropped")),
        }
    }
}

/// A channel as both sides see it.
pub(crate) struct ChannelShared {
    pub(crate) id: u16,
    pub(crate) conn: Arc<Conn>,
    open: AtomicBool,
    closed_with: Mutex<Option<Error>>,
    /// AMQP allows one synchronous method in flight per channel.
    rpc: tokio::sync::Mutex<()>,
    pub(crate) confirms: SharedConfirms,
    /// This channel's id as the owner of `confirms`.
    pub(crate) owner: u64,
    pub(crate) confirm_mode: AtomicBool,
}

impl ChannelShared {
    /// A new channel; with `take_over`, it takes over `confirms` at once:
    /// what the previous channel left unconfirmed waits to be published
    /// again on this one. Without, it does so when [`adopt`]ed (a channel
    /// prepared on a warm standby).
    ///
    /// [`adopt`]: ChannelShared::adopt
    pub(crate) fn new(id: u16, conn: Arc<Conn>, confirms: SharedConfirms, take_over: bool) -> ChannelShared {
        let owner = confirm::next_owner();
        if take_over {
            confirm::lock(&confirms).attach(owner);
        }
        conn.watch(&confirms, owner);
        ChannelShared {
            owner,
            id,
            conn,
            open: AtomicBool::new(true),
            closed_with: Mutex::new(None),
            rpc: tokio::sync::Mutex::new(()),
            confirms,
            confirm_mode: AtomicBool::new(false),
        }
    }

    pub(crate) fn is_open(&self) -> bool {
        self.open.load(Ordering::Acquire) && self.conn.is_open()
    }

    /// Take over `confirms` now (see [`new`](ChannelShared::new)).
    pub(crate) fn adopt(&self) {
        confirm::lock(&self.confirms).attach(self.owner);
    }

    pub(crate) fn check_open(&self) -> Result<()> {
        if !self.conn.is_open() {
            return Err(self.conn.closed_error());
        }
        if !self.open.load(Ordering::Acquire) {
            return Err(match &*lock(&self.closed_with) {
                Some(e) => e.clone_for_waiters(),
                None => Error::closed("the channel is closed"),
            });
        }
        Ok(())
    }

    /// Mark closed; fail what waited on it.
    pub(super) fn closed(&self, error: Error) {
        self.open.store(false, Ordering::Release);
        let mut slot = lock(&self.closed_with);
        if slot.is_none() {
            *slot = Some(error.clone_for_waiters());
        }
        drop(slot);
        let mut confirms = confirm::lock(&self.confirms);
        if self.conn.keep_unconfirmed && matches!(error.kind(), ErrorKind::Connection | ErrorKind::Protocol) {
            // The connection died: keep them, to publish again on the next one.
            confirms.detach_from(self.owner);
            return;
        }
        let unknown = confirms.fail_wired(self.owner, &error);
        if !unknown.is_empty() {
            tracing::warn!(
                channel = self.id,
                count = unknown.len(),
                "publishes not confirmed before the channel closed: their fate is unknown"
            );
        }
    }

    /// Send a synchronous method and wait for the broker's reply.
    pub(crate) async fn call(&self, method: AMQPClass) -> Result<Reply> {
        self.call_marking(method, || {}).await
    }

    /// [`call`](Self::call), running `written` under the outbound lock as
    /// the method is queued: what is written after it on this channel is
    /// seen by the broker after it too.
    pub(crate) async fn call_marking(&self, method: AMQPClass, written: impl FnOnce()) -> Result<Reply> {
        let _one_at_a_time = self.rpc.lock().await;
        self.check_open()?;
        let (tx, rx) = oneshot::channel();
        self.conn.command(ReaderCmd::Expect(self.id, tx))?;
        self.conn.send(|out| {
            codec::put_method(&mut out.head, self.id, method)?;
            written();
            Ok(())
        })?;
        match rx.await {
            Ok(reply) => reply,
            Err(_) => Err(self.check_open().err().unwrap_or_else(|| self.conn.closed_error())),
        }
    }

    /// Send a method that has no reply.
    pub(crate) fn cast(&self, method: AMQPClass) -> Result<()> {
        self.check_open()?;
        self.conn
            .send(|out| codec::put_method(&mut out.head, self.id, method))
    }
}
