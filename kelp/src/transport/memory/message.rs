//! A message as the broker stores it, and as a consumer receives it.

use std::sync::Arc;

use crate::content::message::{Content, DeliveryInfo};
use crate::content::text::SharedStr;
use crate::transport::types::Delivery;

/// A message as the broker stores it.
#[derive(Clone, Debug)]
pub(super) struct StoredMessage {
    pub(super) exchange: SharedStr,
    pub(super) routing_key: SharedStr,
    pub(super) content: Arc<Content>,
}

/// A delivery of `message` (its content is shared with the broker's unacked
/// record, not copied).
pub(super) fn to_delivery(
    message: StoredMessage,
    redelivered: bool,
    consumer_tag: Option<SharedStr>,
    delivery_tag: u64,
    epoch: u64,
) -> Delivery {
    Delivery {
        epoch,
        info: DeliveryInfo {
            exchange: message.exchange,
            routing_key: message.routing_key,
            redelivered,
            consumer_tag,
            delivery_tag,
        },
        content: message.content,
    }
}
