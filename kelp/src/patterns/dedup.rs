//! [`Deduplicator`]: drop the duplicates that at-least-once delivery allows.
//!
//! After a failover kelp publishes again what the lost broker never
//! confirmed, so a consumer may see a message twice. Producers that set
//! message ids (`ProducerBuilder::auto_message_id`) let consumers recognise
//! the second copy; this helper remembers the last `capacity` ids seen.

use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;

use crate::model::message::Message;

/// Remembers recent message ids; cheap enough to call on every message.
///
/// # Examples
///
/// ```
/// # async fn demo() -> kelp::Result<()> {
/// use kelp::{Connection, Deduplicator, Queue};
/// let conn = Connection::new("memory://")?;
/// let channel = conn.default_channel().await?;
/// Queue::new("dedup-doc").declare(&channel).await?;
/// let producer = conn.producer().routing_key("dedup-doc").build().await?;
/// producer.publish("once").message_id("id-1").send().await?;
/// producer.publish("once").message_id("id-1").send().await?; // a duplicate
/// let seen = Deduplicator::new(10_000);
/// let mut fresh = 0;
/// while let Some(m) = Queue::new("dedup-doc").get(&channel, false).await? {
///     if seen.is_new(&m) {
///         fresh += 1;
///     }
///     m.ack().await?;
/// }
/// assert_eq!(fresh, 1);
/// # Ok(()) }
/// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
/// ```
#[derive(Debug)]
pub struct Deduplicator {
    capacity: usize,
    seen: Mutex<Seen>,
}

#[derive(Debug, Default)]
struct Seen {
    ids: HashSet<String>,
    order: VecDeque<String>,
}

impl Deduplicator {
    /// Remember up to `capacity` ids (the oldest are forgotten first).
    ///
    /// # Examples
    ///
    /// ```
    /// // Size it for the messages that can arrive between a publish and its
    /// // duplicate: a few seconds' worth is plenty.
    /// let seen = kelp::Deduplicator::new(50_000);
    /// assert!(seen.is_new_id("order-1"));
    /// ```
    pub fn new(capacity: usize) -> Deduplicator {
        Deduplicator {
            capacity: capacity.max(1),
            seen: Mutex::new(Seen::default()),
        }
    }

    /// True the first time a message id is seen (and for messages without
    /// an id, which cannot be recognised).
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn demo() -> kelp::Result<()> {
    /// use kelp::{Connection, Deduplicator, Queue};
    ///
    /// let conn = Connection::new("memory://")?;
    /// let mut consumer = conn.consumer([Queue::new("is-new-doc")]).build().await?;
    /// let producer = conn.producer().routing_key("is-new-doc").auto_message_id(true).build().await?;
    /// producer.publish("charge card").send().await?;
    ///
    /// let seen = Deduplicator::new(1_000);
    /// let message = consumer.next().await.expect("a message")?;
    /// assert!(seen.is_new(&message));
    /// assert!(!seen.is_new(&message)); // a second copy would be skipped
    /// message.ack().await?;
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    pub fn is_new(&self, message: &Message) -> bool {
        match message.properties().message_id.as_deref() {
            Some(id) => self.is_new_id(id),
            None => true,
        }
    }

    /// True the first time `id` is seen.
    ///
    /// # Examples
    ///
    /// ```
    /// let seen = kelp::Deduplicator::new(2);
    /// assert!(seen.is_new_id("a"));
    /// assert!(!seen.is_new_id("a"));
    /// seen.is_new_id("b");
    /// seen.is_new_id("c"); // "a" is forgotten to make room
    /// assert!(seen.is_new_id("a"));
    /// ```
    pub fn is_new_id(&self, id: &str) -> bool {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.ids.contains(id) {
            return false;
        }
        if seen.order.len() >= self.capacity
            && let Some(oldest) = seen.order.pop_front() {
                seen.ids.remove(&oldest);
            }
        seen.ids.insert(id.to_owned());
        seen.order.push_back(id.to_owned());
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_a_bounded_window() {
        let d = Deduplicator::new(2);
        assert!(d.is_new_id("a"));
        assert!(!d.is_new_id("a"));
        assert!(d.is_new_id("b"));
        assert!(d.is_new_id("c")); // forgets "a"
        assert!(d.is_new_id("a"));
        assert!(!d.is_new_id("c"));
    }
}
