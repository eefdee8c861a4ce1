//! Fanout consumers: a pub/sub subscription per consumer of a queue bound
//! to a fanout exchange, best-effort as in Kombu.

use std::sync::{Arc, Weak};

use bytes::Bytes;

use super::envelope;
use super::fetch::Popped;
use super::shared::{ChannelInner, FANOUT_TAG, Shared, Unacked, lock};
use crate::transport::types::ConsumerEvent;
use crate::content::text::SharedStr;
use crate::error::{Error, Result};

/// Subscribe to `patterns` (PSUBSCRIBE, as Kombu's fanout consumers do).
pub(super) async fn subscribe(shared: &Shared, patterns: &[String]) -> Result<redis::aio::PubSubStream> {
    let mut pubsub = shared.client.get_async_pubsub().await.map_err(|e| shared.error(e, "subscribing to fanout messages"))?;
    for pattern in patterns {
        pubsub.psubscribe(pattern).await.map_err(|e| shared.error(e, "subscribing to fanout messages"))?;
    }
    Ok(pubsub.into_on_message())
}

/// Deliver the fanout messages of one consumer's subscription (best-effort
/// by nature, as in Kombu: nothing is kept for a consumer that is away).
pub(super) async fn subscribe_loop(channel: Weak<ChannelInner>, consumer_tag: SharedStr, mut stream: redis::aio::PubSubStream) {
    loop {
        let next = std::future::poll_fn(|cx| futures_core::Stream::poll_next(std::pin::Pin::new(&mut stream), cx)).await;
        let Some(inner) = channel.upgrade() else { return };
        let Some(message) = next else {
            inner.shared.fail(Error::connection(format!("lost the fanout subscription to {}", inner.shared.broker)));
            return;
        };
        let raw = Bytes::copy_from_slice(message.get_payload_bytes());
        let Ok(decoded) = envelope::decode(&raw) else {
            tracing::warn!(channel = message.get_channel_name(), "a fanout message is not a Kombu envelope; skipped");
            continue;
        };
        let mut state = lock(&inner.state);
        let Some(consumer) = state.consumers.iter().find(|c| c.tag == consumer_tag) else { return };
        let (no_ack, epoch, sink) = (consumer.no_ack, consumer.epoch, consumer.sink.clone());
        let queue = consumer.queue.clone();
        // Not recorded in Redis (Kombu's fanout is not either): an ack
        // settles it here, a requeue puts it in the queue's list.
        let source: Arc<str> = Arc::from(inner.shared.keys.bucket(&queue, 0));
        let popped = Popped { source: source.clone(), raw: raw.clone(), tag: String::new(), decoded: Some(decoded) };
        let delivery = inner.delivery(&mut state, popped, Some((&consumer_tag, no_ack, epoch)));
        if !no_ack {
            let local = format!("{FANOUT_TAG}{}", crate::content::ids::uuid4());
            state.unacked.insert(delivery.info.delivery_tag, Unacked { tag: local, source, raw });
        }
        drop(state);
        let _ = sink.send(ConsumerEvent::Delivery(delivery));
    }
}
