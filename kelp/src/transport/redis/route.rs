//! Where a message goes: the queues bound to an exchange (direct or topic,
//! from Kombu's binding sets) or its fanout channel, and exchange types.

use super::keys::parse_member;
use super::shared::{Shared, lock};
use crate::transport::routing::topic_matches;
use crate::content::exchange::ExchangeKind;
use crate::error::Result;

impl Shared {
    /// The queues a message to `exchange` with `routing_key` goes to, or the
    /// fanout channel it is published on.
    pub(super) async fn route(&self, exchange: &str, routing_key: &str) -> Result<Route> {
        if exchange.is_empty() {
            return Ok(Route::Queues(vec![routing_key.to_owned()]));
        }
        let kind = self.exchange_kind(exchange).await?;
        if matches!(kind, Some(ExchangeKind::Fanout)) {
            return Ok(Route::Fanout(self.keys.fanout_channel(exchange, routing_key)));
        }
        let members: Vec<String> =
            self.query(redis::cmd("SMEMBERS").arg(self.keys.binding(exchange)), "reading bindings").await?;
        let bindings: Vec<(&str, &str, &str)> = members.iter().filter_map(|m| parse_member(m)).collect();
        let topic = match kind {
            Some(ExchangeKind::Topic) => true,
            Some(_) => false,
            None => bindings.iter().any(|(_, pattern, _)| !pattern.is_empty()),
        };
        let mut queues: Vec<String> = Vec::new();
        for (key, _, queue) in bindings {
            let hit = if topic { topic_matches(key, routing_key) } else { key == routing_key };
            if hit && !queues.iter().any(|q| q == queue) {
                queues.push(queue.to_owned());
            }
        }
        Ok(Route::Queues(queues))
    }

    /// The type of `exchange`: declared on this connection, or recorded in
    /// Redis by another kelp process; `None` for one only Kombu declared.
    pub(super) async fn exchange_kind(&self, exchange: &str) -> Result<Option<ExchangeKind>> {
        if let Some(kind) = lock(&self.exchanges).get(exchange) {
            return Ok(Some(kind.clone()));
        }
        let record: Option<String> =
            self.query(redis::cmd("HGET").arg(self.keys.exchange_records()).arg(exchange), "looking up an exchange").await?;
        let Some(kind) = record.as_deref().and_then(exchange_kind_of) else { return Ok(None) };
        lock(&self.exchanges).insert(exchange.to_owned(), kind.clone());
        Ok(Some(kind))
    }
}

/// The exchange type recorded in `_kelp.exchanges` (`type=topic ...`).
fn exchange_kind_of(record: &str) -> Option<ExchangeKind> {
    let kind = record.split_whitespace().next()?.strip_prefix("type=")?;
    Some(match kind {
        "direct" => ExchangeKind::Direct,
        "topic" => ExchangeKind::Topic,
        "fanout" => ExchangeKind::Fanout,
        _ => return None,
    })
}

pub(super) enum Route {
    Queues(Vec<String>),
    Fanout(String),
}
