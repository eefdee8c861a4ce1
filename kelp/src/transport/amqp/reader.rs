//! Reader: the reader task parses frames, hands replies to waiting method
//! calls, confirms to their publishes and deliveries to their consumers.
//! It owns the table of channel states, and no one else touches it.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::{Bytes, BytesMut};
use tokio::io::AsyncReadExt;
use tokio::sync::{mpsc, oneshot};

use super::codec::{self, ContentHeader, Frame, Method, methods, read_frame};
use crate::transport::confirm;
use super::shared::{ChannelShared, Conn, ReaderCmd, Reply, lock};
use super::socket::ReadSide;
use crate::error::reply_code;
use crate::event::Event;
use crate::content::message::{Content, DeliveryInfo, ReturnedMessage};
use crate::transport::types::{CancelReason, ConsumerEvent, Delivery, DeliverySender};
use rustc_hash::FxBuildHasher as FastHash;
use crate::content::text::SharedStr;
use crate::error::{Error, ErrorKind, Result};

use amq_protocol::protocol::AMQPClass;

enum Incoming {
    Deliver(codec::Deliver),
    Get(codec::GetOk),
    Return(codec::Return),
}

/// A message whose header or body frames are still coming.
struct Assembly {
    incoming: Incoming,
    header: Option<ContentHeader>,
    body: Option<Bytes>,
    parts: Option<BytesMut>,
}

struct ReaderChannel {
    shared: Arc<ChannelShared>,
    /// consumer tag → (sink, epoch)
    consumers: HashMap<SharedStr, (DeliverySender, u64), FastHash>,
    waiter: Option<oneshot::Sender<Result<Reply>>>,
    /// A reply read before its `Expect` command: the caller queues
    /// `Expect` before writing the request, but the reader may pick up the
    /// answer from the socket before it drains its command queue. Replies
    /// come in request order and a channel has one call at a time, so it
    /// belongs to the next `Expect`.
    early_reply: Option<Result<Reply>>,
    assembly: Option<Assembly>,
}

pub(super) struct Reader {
    conn: Arc<Conn>,
    commands: mpsc::UnboundedReceiver<ReaderCmd>,
    channels: HashMap<u16, ReaderChannel, FastHash>,
}

impl Reader {
    pub(super) fn new(conn: Arc<Conn>, commands: mpsc::UnboundedReceiver<ReaderCmd>) -> Reader {
        Reader {
            conn,
            commands,
            channels: HashMap::default(),
        }
    }

    pub(super) async fn run(mut self, mut read: ReadSide, mut buf: BytesMut) {
        let mut shutdown = self.conn.shutdown.subscribe();
        let error = loop {
            // Frames left in the buffer (the handshake's leftovers, or the
            // rest of the last read) first.
            loop {
                match read_frame(&mut buf, self.conn.tune.frame_max) {
                    Ok(Some(frame)) => {
                        if self.handle(frame).is_err() {
                            break;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        self.conn.fail(e);
                        break;
                    }
                }
            }
            if *shutdown.borrow() {
                break self.conn.closed_error();
            }
            if buf.capacity() - buf.len() < 8 * 1024 {
                buf.reserve(64 * 1024);
            }
            tokio::select! {
                biased;
                command = self.commands.recv() => match command {
                    Some(command) => self.command(command),
                    None => break Error::closed("the connection was dropped"),
                },
                _ = shutdown.changed() => {}
                read = read.read_buf(&mut buf) => match read {
                    Ok(0) => {
                        self.conn.fail(Error::connection(format!("{} closed the connection", self.conn.broker)));
                    }
                    Ok(_) => self.conn.last_read_ms.store(self.conn.now_ms(), Ordering::Relaxed),
                    Err(e) => {
                        self.conn.fail(Error::connection(format!("lost the connection to {}", self.conn.broker)).with_source(e));
                    }
                },
            }
        };
        self.conn.fail(error.clone_for_waiters());
        let error = self.conn.closed_error();
        let clean = error.kind() == ErrorKind::Closed;
        for (_, channel) in self.channels.drain() {
            channel.shared.closed(error.clone_for_waiters());
            if let Some(waiter) = channel.waiter {
                let _ = waiter.send(Err(error.clone_for_waiters()));
            }
            if !clean {
                for (tag, (sink, _)) in channel.consumers {
                    let _ = sink.send(ConsumerEvent::Cancelled(tag, CancelReason::ConnectionLost));
                }
            }
        }
    }

    fn command(&mut self, command: ReaderCmd) {
        match command {
            ReaderCmd::Register(shared) => {
                self.channels.insert(
                    shared.id,
                    ReaderChannel {
                        shared,
                        consumers: HashMap::default(),
                        waiter: None,
                        early_reply: None,
                        assembly: None,
                    },
                );
            }
            ReaderCmd::Expect(id, waiter) => match self.channels.get_mut(&id) {
                Some(channel) => match channel.early_reply.take() {
                    Some(reply) => {
                        let _ = waiter.send(reply);
                    }
                    None => channel.waiter = Some(waiter),
                },
                None => {
                    let _ = waiter.send(Err(Error::closed("the channel is closed")));
                }
            },
            ReaderCmd::AddConsumer(id, tag, sink, epoch) => {
                if let Some(channel) = self.channels.get_mut(&id) {
                    channel.consumers.insert(tag, (sink, epoch));
                }
            }
        }
    }

    /// Handle one frame; an error has already failed the connection.
    fn handle(&mut self, frame: Frame) -> std::result::Result<(), ()> {
        let result = match frame {
            Frame::Heartbeat => Ok(()),
            Frame::Method(0, Method::Other(AMQPClass::Connection(method))) => {
                self.connection_method(method);
                Ok(())
            }
            Frame::Method(id, method) => self.channel_method(id, method),
            Frame::Header(id, header) => self.content_header(id, header),
            Frame::Body(id, body) => self.content_body(id, body),
        };
        result.map_err(|e| self.conn.fail(e))
    }

    fn connection_method(&mut self, method: methods::connection::AMQPMethod) {
        use methods::connection::AMQPMethod as M;
        match method {
            M::Close(close) => {
                let _ = self.conn.send(|out| {
                    codec::put_method(
                        &mut out.head,
                        0,
                        AMQPClass::Connection(M::CloseOk(methods::connection::CloseOk {})),
                    )
                });
                let text = close.reply_text.as_str().to_owned();
                self.conn.fail(
                    Error::connection(format!(
                        "{} closed the connection: {} {text}",
                        self.conn.broker, close.reply_code
                    ))
                    .with_reply(close.reply_code, text),
                );
            }
            M::CloseOk(_) => {
                if let Some(tx) = lock(&self.conn.close_ok).take() {
                    let _ = tx.send(());
                }
            }
            M::Blocked(blocked) => {
                self.conn.blocked.store(true, Ordering::Release);
                self.conn.events.emit(Event::Blocked {
                    reason: blocked.reason.as_str().to_owned(),
                });
            }
            M::Unblocked(_) => {
                self.conn.blocked.store(false, Ordering::Release);
                self.conn.unblocked.notify_waiters();
                self.conn.events.emit(Event::Unblocked);
            }
            other => tracing::debug!(method = ?other, "ignored connection method"),
        }
    }

    fn channel(&mut self, id: u16) -> Result<&mut ReaderChannel> {
        self.channels.get_mut(&id).ok_or_else(|| {
            Error::new(ErrorKind::Protocol, format!("the broker used channel {id}, which is not open"))
                .with_reply(reply_code::CHANNEL_ERROR, "CHANNEL_ERROR")
        })
    }

    fn channel_method(&mut self, id: u16, method: Method) -> Result<()> {
        let conn = self.conn.clone();
        let channel = self.channel(id)?;
        match method {
            Method::Deliver(d) => channel.begin(Incoming::Deliver(d)),
            Method::GetOk(g) => channel.begin(Incoming::Get(g)),
            Method::Return(r) => channel.begin(Incoming::Return(r)),
            Method::Ack { delivery_tag, multiple } => {
                confirm::lock(&channel.shared.confirms).ack(channel.shared.owner, delivery_tag, multiple);
                Ok(())
            }
            Method::Nack { delivery_tag, multiple } => {
                confirm::lock(&channel.shared.confirms).nack(channel.shared.owner, delivery_tag, multiple);
                Ok(())
            }
            Method::Other(class) => self.other_method(id, class, &conn),
        }
    }

    fn other_method(&mut self, id: u16, class: AMQPClass, conn: &Arc<Conn>) -> Result<()> {
        use methods::basic::AMQPMethod as B;
        use methods::channel::AMQPMethod as C;
        match class {
            AMQPClass::Basic(B::GetEmpty(_)) => {
                self.reply(id, Ok(Reply::Get(None)));
            }
            AMQPClass::Basic(B::Cancel(cancel)) => {
                // The broker cancelled a consumer (its queue went away).
                let tag = SharedStr::from(cancel.consumer_tag.as_str());
                let channel = self.channel(id)?;
                if let Some((sink, _)) = channel.consumers.remove(&tag) {
                    let _ = sink.send(ConsumerEvent::Cancelled(tag.clone(), CancelReason::QueueDeleted));
                }
                conn.events.emit(Event::ConsumerCancelled {
                    consumer_tag: tag.to_string(),
                });
                if !cancel.nowait {
                    let _ = channel.shared.cast(AMQPClass::Basic(B::CancelOk(methods::basic::CancelOk {
                        consumer_tag: cancel.consumer_tag,
                    })));
                }
            }
            AMQPClass::Basic(B::CancelOk(ok)) => {
                let tag = SharedStr::from(ok.consumer_tag.as_str());
                self.channel(id)?.consumers.remove(&tag);
                self.reply(id, Ok(Reply::Method(AMQPClass::Basic(B::CancelOk(ok)))));
            }
            AMQPClass::Channel(C::Close(close)) => {
                let text = close.reply_text.as_str().to_owned();
                let error = Error::channel_closed(close.reply_code, text.clone());
                let _ = conn.send(|out| {
                    codec::put_method(&mut out.head, id, AMQPClass::Channel(C::CloseOk(methods::channel::CloseOk {})))
                });
                self.drop_channel(id, error);
            }
            AMQPClass::Channel(C::CloseOk(ok)) => {
                self.reply(id, Ok(Reply::Method(AMQPClass::Channel(C::CloseOk(ok)))));
                if let Some(channel) = self.channels.remove(&id) {
                    channel.shared.closed(Error::closed("the channel is closed"));
                    conn.release_channel(id);
                }
            }
            AMQPClass::Channel(C::Flow(flow)) => {
                self.channel(id)?.shared.cast(AMQPClass::Channel(C::FlowOk(methods::channel::FlowOk {
                    active: flow.active,
                })))?;
            }
            other => self.reply(id, Ok(Reply::Method(other))),
        }
        Ok(())
    }

    /// The broker closed a channel: everything on it ends with `error`.
    fn drop_channel(&mut self, id: u16, error: Error) {
        let Some(channel) = self.channels.remove(&id) else { return };
        channel.shared.closed(error.clone_for_waiters());
        if let Some(waiter) = channel.waiter {
            let _ = waiter.send(Err(error.clone_for_waiters()));
        }
        let (code, text) = (error.reply_code().unwrap_or(0), error.reply_text().unwrap_or("").to_owned());
        for (tag, (sink, _)) in channel.consumers {
            let _ = sink.send(ConsumerEvent::Cancelled(tag, CancelReason::ChannelClosed(code, text.clone())));
        }
        self.conn.release_channel(id);
    }

    fn reply(&mut self, id: u16, reply: Result<Reply>) {
        let Some(channel) = self.channels.get_mut(&id) else {
            tracing::debug!(channel = id, "a reply for a channel that is gone");
            return;
        };
        match channel.waiter.take() {
            Some(waiter) => {
                let _ = waiter.send(reply);
            }
            None => channel.early_reply = Some(reply),
        }
    }

    fn content_header(&mut self, id: u16, header: ContentHeader) -> Result<()> {
        let channel = self.channel(id)?;
        let assembly = channel.assembly.as_mut().ok_or_else(|| unexpected("a content header"))?;
        if assembly.header.is_some() {
            return Err(unexpected("a second content header"));
        }
        let empty = header.body_size == 0;
        assembly.header = Some(header);
        if empty {
            self.complete(id)?;
        }
        Ok(())
    }

    fn content_body(&mut self, id: u16, body: Bytes) -> Result<()> {
        let channel = self.channel(id)?;
        let assembly = channel.assembly.as_mut().ok_or_else(|| unexpected("a content body"))?;
        let expected = assembly
            .header
            .as_ref()
            .ok_or_else(|| unexpected("a body before its header"))?
            .body_size;
        // One frame carries the whole body: keep it as a slice of the read
        // buffer. Several: gather them.
        let have = match (&mut assembly.parts, &assembly.body) {
            (None, None) => {
                assembly.body = Some(body);
                assembly.body.as_ref().map_or(0, Bytes::len)
            }
            (parts, first) => {
                let gathered = parts.get_or_insert_with(|| {
                    let mut b = BytesMut::with_capacity(usize::try_from(expected).unwrap_or(0).min(64 << 20));
                    if let Some(first) = first {
                        b.extend_from_slice(first);
                    }
                    b
                });
                assembly.body = None;
                gathered.extend_from_slice(&body);
                gathered.len()
            }
        } as u64;
        if have > expected {
            return Err(unexpected("more body than the header announced"));
        }
        if have == expected {
            self.complete(id)?;
        }
        Ok(())
    }

    fn complete(&mut self, id: u16) -> Result<()> {
        let conn = self.conn.clone();
        let channel = self.channel(id)?;
        let Some(assembly) = channel.assembly.take() else {
            return Ok(());
        };
        let header = assembly.header.ok_or_else(|| unexpected("content without a header"))?;
        let body = match (assembly.body, assembly.parts) {
            (Some(body), _) => body,
            (None, Some(parts)) => parts.freeze(),
            (None, None) => Bytes::new(),
        };
        let content = Arc::new(Content {
            properties: header.properties,
            body,
        });
        match assembly.incoming {
            Incoming::Deliver(d) => {
                let delivered = match channel.consumers.get(&d.consumer_tag) {
                    Some((sink, epoch)) => sink
                        .send(ConsumerEvent::Delivery(Delivery {
                            info: DeliveryInfo {
                                exchange: d.exchange,
                                routing_key: d.routing_key,
                                redelivered: d.redelivered,
                                consumer_tag: Some(d.consumer_tag.clone()),
                                delivery_tag: d.delivery_tag,
                            },
                            content,
                            epoch: *epoch,
                        }))
                        .is_ok(),
                    None => false,
                };
                if !delivered {
                    // Its consumer is gone: give it back rather than hold it.
                    channel.consumers.remove(&d.consumer_tag);
                    let tag = d.delivery_tag;
                    let _ = conn.send(|out| {
                        codec::put_settle(&mut out.head, id, codec::Settle::Reject { tag, requeue: true });
                        Ok(())
                    });
                }
            }
            Incoming::Get(g) => {
                let delivery = Delivery {
                    info: DeliveryInfo {
                        exchange: g.exchange,
                        routing_key: g.routing_key,
                        redelivered: g.redelivered,
                        consumer_tag: None,
                        delivery_tag: g.delivery_tag,
                    },
                    content,
                    epoch: 0,
                };
                self.reply(id, Ok(Reply::Get(Some(delivery))));
            }
            Incoming::Return(r) => {
                let returned = ReturnedMessage {
                    reply_code: r.reply_code,
                    reply_text: r.reply_text,
                    exchange: r.exchange,
                    routing_key: r.routing_key,
                    properties: content.properties.clone(),
                    body: content.body.clone(),
                };
                if let Some(unclaimed) = confirm::lock(&channel.shared.confirms).returned(channel.shared.owner, returned) {
                    conn.events.emit(Event::MessageReturned {
                        exchange: unclaimed.exchange.to_string(),
                        routing_key: unclaimed.routing_key.to_string(),
                        reply: format!("{} {}", unclaimed.reply_code, unclaimed.reply_text),
                    });
                }
            }
        }
        Ok(())
    }
}

impl ReaderChannel {
    fn begin(&mut self, incoming: Incoming) -> Result<()> {
        if self.assembly.is_some() {
            return Err(unexpected("a new message before the last one was complete"));
        }
        self.assembly = Some(Assembly {
            incoming,
            header: None,
            body: None,
            parts: None,
        });
        Ok(())
    }
}

fn unexpected(what: &str) -> Error {
    Error::new(ErrorKind::Protocol, format!("the broker sent {what}"))
        .with_reply(reply_code::UNEXPECTED_FRAME, "UNEXPECTED_FRAME")
}
