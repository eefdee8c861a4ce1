//! `amqp://` and `amqps://`: kelp's own AMQP 0-9-1 engine on tokio.
//!
//! `amq-protocol` is used only as the method codec, inside [`codec`]; the
//! connection and channel state machines, confirms, content assembly,
//! heartbeats and batching of writes are kelp's, because failover needs full
//! control over channels, confirms and topology, and speed needs control
//! over writes.

mod codec;
mod connection;
mod handshake;
mod reader;
mod shared;
mod socket;
#[cfg(feature = "tls")]
mod tls;
mod wire;
mod writer;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use amq_protocol::protocol::AMQPClass;
use codec::{methods, short};
use shared::{ChannelShared, Conn, ReaderCmd, Reply};


use super::confirm::{self, PendingConfirm};
use crate::transport::api::{Capabilities, Confirm, Transport, TransportChannel};
use crate::transport::types::{BindArgs, ConnectOptions, ConsumeArgs, Delivery, DeliverySender, ExchangeDeclare, OutgoingMessage, QueueDeclare, QueueDeclareOk};
use crate::url::BrokerUrl;
use crate::content::text::SharedStr;
use crate::error::{Error, ErrorKind, Result};

/// Fuzzing entry points (see `fuzz/`): they decode untrusted bytes with the
/// connection reader's own functions. Each returns what it decoded, so that
/// `tests/fuzz_corpus.rs` can check the hand-written seeds still decode; the
/// asserts inside are the fuzzers' oracles.
#[doc(hidden)]
pub(crate) mod fuzzing {
    use bytes::{BufMut, Bytes, BytesMut};

    use super::codec::{self, Frame, Method, methods};
    use super::wire;
    use crate::error::Result;
    use amq_protocol::protocol::AMQPClass;

    /// Read every frame out of `data` as the connection reader does after
    /// the handshake: methods and content headers decoded, and
    /// connection.start's server properties converted as the handshake
    /// converts them. Returns how many whole frames were read.
    pub fn read_frames(data: &[u8]) -> Result<usize> {
        let mut buf = BytesMut::from(data);
        let mut count = 0;
        while let Some(frame) = codec::read_frame(&mut buf, super::handshake::CLIENT_FRAME_MAX)? {
            if let Frame::Method(_, Method::Other(AMQPClass::Connection(methods::connection::AMQPMethod::Start(start)))) =
                &frame
            {
                let _ = codec::from_amqp_table(&start.server_properties);
            }
            // The reader puts unexpected frames into error messages.
            let _ = format!("{frame:?}");
            count += 1;
        }
        Ok(count)
    }

    /// Decode a field table. Whatever decodes must encode (kelp writes
    /// received headers back out when it republishes), read back, and
    /// encode to the same bytes again.
    pub fn field_table(data: &[u8]) -> Result<usize> {
        let table = wire::decode_table(&Bytes::copy_from_slice(data))?;
        let encoded = wire::encode_table(&table)
            .unwrap_or_else(|e| panic!("a table kelp decoded does not encode: {e}"));
        let again = wire::decode_table(&encoded)
            .unwrap_or_else(|e| panic!("a table kelp encoded does not decode: {e}"));
        let encoded_again = wire::encode_table(&again)
            .unwrap_or_else(|e| panic!("a table kelp decoded does not encode: {e}"));
        assert_eq!(encoded, encoded_again, "a field table changes on its second trip");
        Ok(table.len())
    }

    /// Decode a content header payload. The properties must survive being
    /// written out again (as a republished message's are) and read back.
    pub fn content_header(data: &[u8]) -> Result<u64> {
        let header = codec::parse_content_header(&Bytes::copy_from_slice(data))?;
        let mut payload = BytesMut::new();
        payload.put_u16(60);
        payload.put_u16(0);
        payload.put_u64(header.body_size);
        codec::put_properties(&mut payload, &header.properties)
            .unwrap_or_else(|e| panic!("properties kelp decoded do not encode: {e}"));
        let again = codec::parse_content_header(&payload.freeze())
            .unwrap_or_else(|e| panic!("properties kelp encoded do not decode: {e}"));
        assert_eq!(again.body_size, header.body_size);
        // Headers are compared as bytes: a NaN float is never equal to itself.
        let (mut before, mut after) = (header.properties, again.properties);
        let headers_before = wire::encode_table(&std::mem::take(&mut before.headers));
        let headers_after = wire::encode_table(&std::mem::take(&mut after.headers));
        assert_eq!(before, after, "properties change on a round trip");
        assert_eq!(headers_before.ok(), headers_after.ok(), "headers change on a round trip");
        Ok(header.body_size)
    }
}

/// A connection to a RabbitMQ (or other AMQP 0-9-1) broker.
pub(crate) struct AmqpTransport {
    conn: Arc<Conn>,
}

/// A channel on an AMQP connection.
#[derive(Clone)]
pub(crate) struct AmqpChannel {
    shared: Arc<ChannelShared>,
}

fn unexpected_reply(what: &str, got: &Reply) -> Error {
    let got = match got {
        Reply::Method(m) => format!("{m:?}"),
        Reply::Get(_) => "basic.get-ok".to_owned(),
    };
    Error::new(ErrorKind::Protocol, format!("expected {what}, the broker answered {got}"))
}

impl Transport for AmqpTransport {
    type Channel = AmqpChannel;

    async fn connect(url: &BrokerUrl, options: &ConnectOptions) -> Result<AmqpTransport> {
        let conn = connection::connect(url, options, options.events.clone()).await?;
        Ok(AmqpTransport { conn })
    }

    async fn open_channel(&self, confirms: confirm::SharedConfirms) -> Result<AmqpChannel> {
        self.open(confirms, true).await
    }

    fn is_open(&self) -> bool {
        self.conn.is_open()
    }

    fn closed(&self) -> impl std::future::Future<Output = Error> + Send + 'static {
        let conn = self.conn.clone();
        async move {
            let mut shutdown = conn.subscribe_shutdown();
            let _ = shutdown.wait_for(|down| *down).await;
            conn.closed_error()
        }
    }

    async fn close(&self) -> Result<()> {
        self.conn.close().await
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            publisher_confirms: true,
            topic: true,
            fanout: true,
            headers: true,
            priorities: true,
            strict_priorities: true,
            message_ttl: true,
            exchange_bindings: true,
            max_length: true,
            checks_exchanges: true,
            direct_reply_to: true,
        }
    }
}

impl Drop for AmqpTransport {
    fn drop(&mut self) {
        self.conn.close_in_background();
    }
}

impl AmqpChannel {
    async fn call(&self, method: AMQPClass) -> Result<Reply> {
        self.shared.call(method).await
    }
}

/// The methods of one class, for brevity below.
use methods::{basic, confirm as confirm_class, exchange, queue};

impl AmqpTransport {
    /// Open a channel; with `take_over`, it takes over `confirms` at once,
    /// otherwise when [`AmqpChannel::adopt`]ed.
    pub(crate) async fn open(&self, confirms: confirm::SharedConfirms, take_over: bool) -> Result<AmqpChannel> {
        let id = self.conn.allocate_channel()?;
        let shared = Arc::new(ChannelShared::new(id, self.conn.clone(), confirms, take_over));
        self.conn.command(ReaderCmd::Register(shared.clone()))?;
        let reply = shared
            .call(AMQPClass::Channel(methods::channel::AMQPMethod::Open(methods::channel::Open {})))
            .await?;
        match reply {
            Reply::Method(AMQPClass::Channel(methods::channel::AMQPMethod::OpenOk(_))) => {
                Ok(AmqpChannel { shared })
            }
            other => Err(unexpected_reply("channel.open-ok", &other)),
        }
    }
}

impl AmqpChannel {
    /// Take over the confirms given at open (a channel prepared ahead).
    pub(crate) fn adopt(&self) {
        self.shared.adopt();
    }
}

impl TransportChannel for AmqpChannel {
    fn is_open(&self) -> bool {
        self.shared.is_open()
    }

    async fn close(&self) -> Result<()> {
        if !self.shared.is_open() {
            return Ok(());
        }
        let reply = self
            .call(AMQPClass::Channel(methods::channel::AMQPMethod::Close(methods::channel::Close {
                reply_code: 200,
                reply_text: short("closed by the application")?,
                class_id: 0,
                method_id: 0,
            })))
            .await;
        match reply {
            Ok(Reply::Method(AMQPClass::Channel(methods::channel::AMQPMethod::CloseOk(_)))) => Ok(()),
            Ok(other) => Err(unexpected_reply("channel.close-ok", &other)),
            // Already closed by the broker or with the connection: done.
            Err(_) => Ok(()),
        }
    }

    async fn exchange_declare(&self, args: &ExchangeDeclare) -> Result<()> {
        let reply = self
            .call(AMQPClass::Exchange(exchange::AMQPMethod::Declare(exchange::Declare {
                exchange: short(&args.name)?,
                kind: short(args.kind.as_str())?,
                passive: args.passive,
                durable: args.durable,
                auto_delete: args.auto_delete,
                internal: args.internal,
                nowait: false,
                arguments: codec::to_amqp_table(&args.arguments)?,
            })))
            .await?;
        match reply {
            Reply::Method(AMQPClass::Exchange(exchange::AMQPMethod::DeclareOk(_))) => Ok(()),
            other => Err(unexpected_reply("exchange.declare-ok", &other)),
        }
    }

    async fn exchange_delete(&self, name: &str, if_unused: bool) -> Result<()> {
        let reply = self
            .call(AMQPClass::Exchange(exchange::AMQPMethod::Delete(exchange::Delete {
                exchange: short(name)?,
                if_unused,
                nowait: false,
            })))
            .await?;
        match reply {
            Reply::Method(AMQPClass::Exchange(exchange::AMQPMethod::DeleteOk(_))) => Ok(()),
            other => Err(unexpected_reply("exchange.delete-ok", &other)),
        }
    }

    async fn exchange_bind(&self, args: &BindArgs) -> Result<()> {
        let reply = self
            .call(AMQPClass::Exchange(exchange::AMQPMethod::Bind(exchange::Bind {
                destination: short(&args.destination)?,
                source: short(&args.source)?,
                routing_key: short(&args.routing_key)?,
                nowait: false,
                arguments: codec::to_amqp_table(&args.arguments)?,
            })))
            .await?;
        match reply {
            Reply::Method(AMQPClass::Exchange(exchange::AMQPMethod::BindOk(_))) => Ok(()),
            other => Err(unexpected_reply("exchange.bind-ok", &other)),
        }
    }

    async fn exchange_unbind(&self, args: &BindArgs) -> Result<()> {
        let reply = self
            .call(AMQPClass::Exchange(exchange::AMQPMethod::Unbind(exchange::Unbind {
                destination: short(&args.destination)?,
                source: short(&args.source)?,
                routing_key: short(&args.routing_key)?,
                nowait: false,
                arguments: codec::to_amqp_table(&args.arguments)?,
            })))
            .await?;
        match reply {
            Reply::Method(AMQPClass::Exchange(exchange::AMQPMethod::UnbindOk(_))) => Ok(()),
            other => Err(unexpected_reply("exchange.unbind-ok", &other)),
        }
    }

    async fn queue_declare(&self, args: &QueueDeclare) -> Result<QueueDeclareOk> {
        let reply = self
            .call(AMQPClass::Queue(queue::AMQPMethod::Declare(queue::Declare {
                queue: short(&args.name)?,
                passive: args.passive,
                durable: args.durable,
                exclusive: args.exclusive,
                auto_delete: args.auto_delete,
                nowait: false,
                arguments: codec::to_amqp_table(&args.arguments)?,
            })))
            .await?;
        match reply {
            Reply::Method(AMQPClass::Queue(queue::AMQPMethod::DeclareOk(ok))) => Ok(QueueDeclareOk {
                name: ok.queue.as_str().to_owned(),
                message_count: ok.message_count,
                consumer_count: ok.consumer_count,
            }),
            other => Err(unexpected_reply("queue.declare-ok", &other)),
        }
    }

    async fn queue_bind(&self, args: &BindArgs) -> Result<()> {
        let reply = self
            .call(AMQPClass::Queue(queue::AMQPMethod::Bind(queue::Bind {
                queue: short(&args.destination)?,
                exchange: short(&args.source)?,
                routing_key: short(&args.routing_key)?,
                nowait: false,
                arguments: codec::to_amqp_table(&args.arguments)?,
            })))
            .await?;
        match reply {
            Reply::Method(AMQPClass::Queue(queue::AMQPMethod::BindOk(_))) => Ok(()),
            other => Err(unexpected_reply("queue.bind-ok", &other)),
        }
    }

    async fn queue_unbind(&self, args: &BindArgs) -> Result<()> {
        let reply = self
            .call(AMQPClass::Queue(queue::AMQPMethod::Unbind(queue::Unbind {
                queue: short(&args.destination)?,
                exchange: short(&args.source)?,
                routing_key: short(&args.routing_key)?,
                arguments: codec::to_amqp_table(&args.arguments)?,
            })))
            .await?;
        match reply {
            Reply::Method(AMQPClass::Queue(queue::AMQPMethod::UnbindOk(_))) => Ok(()),
            other => Err(unexpected_reply("queue.unbind-ok", &other)),
        }
    }

    async fn queue_purge(&self, name: &str) -> Result<u32> {
        let reply = self
            .call(AMQPClass::Queue(queue::AMQPMethod::Purge(queue::Purge {
                queue: short(name)?,
                nowait: false,
            })))
            .await?;
        match reply {
            Reply::Method(AMQPClass::Queue(queue::AMQPMethod::PurgeOk(ok))) => Ok(ok.message_count),
            other => Err(unexpected_reply("queue.purge-ok", &other)),
        }
    }

    async fn queue_delete(&self, name: &str, if_unused: bool, if_empty: bool) -> Result<u32> {
        let reply = self
            .call(AMQPClass::Queue(queue::AMQPMethod::Delete(queue::Delete {
                queue: short(name)?,
                if_unused,
                if_empty,
                nowait: false,
            })))
            .await?;
        match reply {
            Reply::Method(AMQPClass::Queue(queue::AMQPMethod::DeleteOk(ok))) => Ok(ok.message_count),
            other => Err(unexpected_reply("queue.delete-ok", &other)),
        }
    }

    async fn qos(&self, prefetch_count: u16, global: bool) -> Result<()> {
        let reply = self
            .call(AMQPClass::Basic(basic::AMQPMethod::Qos(basic::Qos {
                prefetch_count,
                global,
            })))
            .await?;
        match reply {
            Reply::Method(AMQPClass::Basic(basic::AMQPMethod::QosOk(_))) => Ok(()),
            other => Err(unexpected_reply("basic.qos-ok", &other)),
        }
    }

    async fn confirm_select(&self) -> Result<()> {
        if self.shared.confirm_mode.load(Ordering::Acquire) {
            return Ok(());
        }
        // Confirm mode starts for the broker with the select itself: every
        // publish written after it gets a delivery tag, so it must be
        // tracked, even before the select-ok is back. Marked as the select
        // is queued, under the same lock as publishes take: a publish
        // tracked by the old mode would shift every later tag by one, and
        // a broker ack would then confirm a message it never acked.
        let reply = self
            .shared
            .call_marking(AMQPClass::Confirm(confirm_class::AMQPMethod::Select(confirm_class::Select { nowait: false })), || {
                self.shared.confirm_mode.store(true, Ordering::Release)
            })
            .await?;
        match reply {
            Reply::Method(AMQPClass::Confirm(confirm_class::AMQPMethod::SelectOk(_))) => Ok(()),
            other => Err(unexpected_reply("confirm.select-ok", &other)),
        }
    }

    async fn publish(&self, message: OutgoingMessage) -> Result<Confirm> {
        let conn = &self.shared.conn;
        if conn.must_wait() {
            conn.wait_unblocked().await?;
            conn.wait_drained().await?;
        }
        self.shared.check_open()?;
        let id = self.shared.id;
        let frame_max = conn.tune.frame_max;
        let confirming = self.shared.confirm_mode.load(Ordering::Acquire);
        if confirming && confirm::lock(&self.shared.confirms).waiting() >= conn.max_unconfirmed {
            self.wait_for_room().await?;
        }
        let seq = conn.send(|out| {
            // The sequence number is taken under the outbound lock, so it is
            // the order in which the broker sees the publishes; the mode is
            // read there too (a confirm.select may have been queued since).
            let seq = match self.shared.confirm_mode.load(Ordering::Acquire) {
                true => match confirm::lock(&self.shared.confirms).track(self.shared.owner, message.clone()) {
                    Some(seq) => Some(seq),
                    // A newer channel took over (this one's connection is
                    // gone): nothing was written; publish there instead.
                    None => return Err(Error::connection("the channel was replaced after a reconnect")),
                },
                false => None,
            };
            let written = codec::put_publish(
                out,
                id,
                &message.exchange,
                &message.routing_key,
                message.mandatory,
                &message.content.properties,
                &message.content.body,
                frame_max,
            );
            if let Err(e) = written {
                if seq.is_some() {
                    confirm::lock(&self.shared.confirms).untrack_last();
                }
                return Err(e);
            }
            Ok(seq)
        })?;
        Ok(match seq {
            Some(seq) => Confirm::Tracked(PendingConfirm::new(self.shared.confirms.clone(), seq)),
            None => Confirm::ready(Ok(())),
        })
    }

    fn resend(&self, unsent: Vec<(u64, OutgoingMessage)>) -> Result<()> {
        self.shared.check_open()?;
        let id = self.shared.id;
        let frame_max = self.shared.conn.tune.frame_max;
        self.shared.conn.send(|out| {
            for (ticket, message) in &unsent {
                codec::put_publish(
                    out,
                    id,
                    &message.exchange,
                    &message.routing_key,
                    message.mandatory,
                    &message.content.properties,
                    &message.content.body,
                    frame_max,
                )?;
                confirm::lock(&self.shared.confirms).resent(*ticket);
            }
            Ok(())
        })
    }

    async fn consume(&self, args: ConsumeArgs, sink: DeliverySender) -> Result<SharedStr> {
        let conn = &self.shared.conn;
        conn.command(ReaderCmd::AddConsumer(self.shared.id, args.consumer_tag.clone(), sink, args.epoch))?;
        let reply = self
            .call(AMQPClass::Basic(basic::AMQPMethod::Consume(basic::Consume {
                queue: short(&args.queue)?,
                consumer_tag: short(&args.consumer_tag)?,
                no_local: false,
                no_ack: args.no_ack,
                exclusive: args.exclusive,
                nowait: false,
                arguments: codec::to_amqp_table(&args.arguments)?,
            })))
            .await?;
        match reply {
            Reply::Method(AMQPClass::Basic(basic::AMQPMethod::ConsumeOk(ok))) => {
                Ok(SharedStr::from(ok.consumer_tag.as_str()))
            }
            other => Err(unexpected_reply("basic.consume-ok", &other)),
        }
    }

    async fn cancel(&self, consumer_tag: &str) -> Result<()> {
        if !self.shared.is_open() {
            return Ok(());
        }
        let reply = self
            .call(AMQPClass::Basic(basic::AMQPMethod::Cancel(basic::Cancel {
                consumer_tag: short(consumer_tag)?,
                nowait: false,
            })))
            .await?;
        match reply {
            Reply::Method(AMQPClass::Basic(basic::AMQPMethod::CancelOk(_))) => Ok(()),
            other => Err(unexpected_reply("basic.cancel-ok", &other)),
        }
    }

    async fn get(&self, queue: &str, no_ack: bool) -> Result<Option<Delivery>> {
        let reply = self
            .call(AMQPClass::Basic(basic::AMQPMethod::Get(basic::Get {
                queue: short(queue)?,
                no_ack,
            })))
            .await?;
        match reply {
            Reply::Get(delivery) => Ok(delivery),
            other => Err(unexpected_reply("basic.get-ok or get-empty", &other)),
        }
    }

    async fn ack(&self, delivery_tag: u64, multiple: bool) -> Result<()> {
        self.settle(codec::Settle::Ack {
            tag: delivery_tag,
            multiple,
        })
    }

    async fn nack(&self, delivery_tag: u64, multiple: bool, requeue: bool) -> Result<()> {
        self.settle(codec::Settle::Nack {
            tag: delivery_tag,
            multiple,
            requeue,
        })
    }

    async fn reject(&self, delivery_tag: u64, requeue: bool) -> Result<()> {
        self.settle(codec::Settle::Reject {
            tag: delivery_tag,
            requeue,
        })
    }

    async fn recover(&self, requeue: bool) -> Result<()> {
        let reply = self
            .call(AMQPClass::Basic(basic::AMQPMethod::Recover(basic::Recover { requeue })))
            .await?;
        match reply {
            Reply::Method(AMQPClass::Basic(basic::AMQPMethod::RecoverOk(_))) => Ok(()),
            other => Err(unexpected_reply("basic.recover-ok", &other)),
        }
    }
}

impl AmqpChannel {
    /// The in-flight buffer is full: wait for confirms, up to the publish
    /// deadline, then fail rather than grow without bound.
    async fn wait_for_room(&self) -> Result<()> {
        let conn = &self.shared.conn;
        let deadline = tokio::time::Instant::now() + conn.publish_wait;
        loop {
            let room = {
                let mut confirms = confirm::lock(&self.shared.confirms);
                if confirms.waiting() < conn.max_unconfirmed {
                    return Ok(());
                }
                confirms.room()
            };
            let notified = room.notified();
            if confirm::lock(&self.shared.confirms).waiting() < conn.max_unconfirmed {
                return Ok(());
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Err(Error::new(
                    ErrorKind::LimitExceeded,
                    format!(
                        "{} publishes on this channel wait for their confirms and none came in {:?}",
                        conn.max_unconfirmed, conn.publish_wait
                    ),
                ));
            }
        }
    }

    /// Acks go straight into the outbound buffer: no round trip, no task.
    fn settle(&self, settle: codec::Settle) -> Result<()> {
        self.shared.check_open()?;
        let id = self.shared.id;
        self.shared.conn.send(|out| {
            codec::put_settle(&mut out.head, id, settle);
            Ok(())
        })
    }
}
