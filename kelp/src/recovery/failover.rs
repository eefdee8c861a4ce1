//! The order in which a connection tries its brokers.

use std::fmt;
use std::sync::Arc;

use crate::url::BrokerUrl;

/// A user-supplied strategy: given the URLs and the index of the broker that
/// was used (or tried) last, return the index to try next.
///
/// Build one with [`FailoverStrategy::custom`].
pub type CustomFailover = Arc<dyn Fn(&[BrokerUrl], Option<usize>) -> usize + Send + Sync>;

/// How a connection with several broker URLs picks the next one.
///
/// Within one cycle through the list every broker is tried once, at once;
/// back-off only grows after a full cycle (Kombu's `completes_cycle`). The
/// built-in strategies try the broker used last at the end of the cycle: it
/// just failed, and a frozen broker that still accepts TCP connections
/// would otherwise cost a whole connect timeout before the next one.
///
/// # Examples
///
/// ```
/// use kelp::{Connection, FailoverStrategy};
///
/// // Spread clients over the cluster instead of all starting on the first node.
/// let conn = Connection::builder("amqp://node-1//;amqp://node-2//;amqp://node-3//")
///     .failover_strategy(FailoverStrategy::Shuffle)
///     .build()?;
/// assert_eq!(conn.urls().len(), 3);
/// # Ok::<(), kelp::Error>(())
/// ```
#[derive(Clone, Default)]
#[non_exhaustive]
pub enum FailoverStrategy {
    /// The next URL after the current one, wrapping around (Kombu's default).
    #[default]
    RoundRobin,
    /// A fresh random permutation per cycle: no broker repeats within a cycle
    /// (Kombu's `shuffle` may repeat one); the one used last comes last.
    Shuffle,
    /// Always prefer the first healthy URL in list order, so the connection
    /// fails back to the primary when it returns; only the broker that just
    /// failed waits until the end of the cycle.
    PriorityOrder,
    /// A user closure choosing the next index (taken modulo the list length).
    Custom(CustomFailover),
}

impl FailoverStrategy {
    /// A custom strategy from a closure.
    ///
    /// # Examples
    ///
    /// ```
    /// use kelp::{Connection, FailoverStrategy};
    ///
    /// // Prefer brokers in the local data centre: try "eu-" hosts first.
    /// let local_first = FailoverStrategy::custom(|urls, last| {
    ///     let start = last.map_or(0, |i| i + 1);
    ///     (start..start + urls.len())
    ///         .map(|i| i % urls.len())
    ///         .find(|&i| urls[i].host().starts_with("eu-"))
    ///         .unwrap_or(start % urls.len())
    /// });
    /// let conn = Connection::builder("amqp://us-1//;amqp://eu-1//")
    ///     .failover_strategy(local_first)
    ///     .build()?;
    /// # let _ = conn;
    /// # Ok::<(), kelp::Error>(())
    /// ```
    pub fn custom<F>(f: F) -> FailoverStrategy
    where
        F: Fn(&[BrokerUrl], Option<usize>) -> usize + Send + Sync + 'static,
    {
        FailoverStrategy::Custom(Arc::new(f))
    }

    /// The strategy for a Kombu name: `round-robin`, `shuffle`, `priority`.
    ///
    /// # Examples
    ///
    /// ```
    /// use kelp::FailoverStrategy;
    ///
    /// let strategy = FailoverStrategy::from_name("priority")?;
    /// assert!(matches!(strategy, FailoverStrategy::PriorityOrder));
    /// assert!(FailoverStrategy::from_name("random").unwrap_err().is_config());
    /// # Ok::<(), kelp::Error>(())
    /// ```
    pub fn from_name(name: &str) -> crate::error::Result<FailoverStrategy> {
        match name {
            "round-robin" | "round_robin" | "roundrobin" => Ok(FailoverStrategy::RoundRobin),
            "shuffle" => Ok(FailoverStrategy::Shuffle),
            "priority" | "priority-order" | "priority_order" | "in-order" => {
                Ok(FailoverStrategy::PriorityOrder)
            }
            other => Err(crate::error::Error::config(format!(
                "unknown failover strategy '{other}' (known: round-robin, shuffle, priority)"
            ))),
        }
    }

    /// The indices to try in the next cycle, each once; `last` is the broker
    /// in use (or tried) last.
    pub(crate) fn cycle(&self, urls: &[BrokerUrl], last: Option<usize>) -> Vec<usize> {
        let n = urls.len();
        if n == 0 {
            return Vec::new();
        }
        match self {
            FailoverStrategy::RoundRobin => {
                let start = last.map_or(0, |i| (i + 1) % n);
                (0..n).map(|k| (start + k) % n).collect()
            }
            FailoverStrategy::Shuffle => {
                let mut order: Vec<usize> = (0..n).collect();
                fastrand::shuffle(&mut order);
                last_to_the_end(order, last)
            }
            FailoverStrategy::PriorityOrder => last_to_the_end((0..n).collect(), last),
            FailoverStrategy::Custom(f) => {
                // Ask the closure n times; keep its choices in order, without
                // repeats, then add any index it never chose so that one
                // cycle still tries every broker.
                let mut order = Vec::with_capacity(n);
                let mut previous = last;
                for _ in 0..n {
                    let next = f(urls, previous) % n;
                    if !order.contains(&next) {
                        order.push(next);
                    }
                    previous = Some(next);
                }
                for i in 0..n {
                    if !order.contains(&i) {
                        order.push(i);
                    }
                }
                order
            }
        }
    }
}

/// Move the broker used last (if any) behind all the others.
fn last_to_the_end(mut order: Vec<usize>, last: Option<usize>) -> Vec<usize> {
    if let Some(position) = last.and_then(|l| order.iter().position(|&i| i == l)) {
        let index = order.remove(position);
        order.push(index);
    }
    order
}

impl fmt::Debug for FailoverStrategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FailoverStrategy::RoundRobin => "RoundRobin",
            FailoverStrategy::Shuffle => "Shuffle",
            FailoverStrategy::PriorityOrder => "PriorityOrder",
            FailoverStrategy::Custom(_) => "Custom",
        })
    }
}

#[cfg(test)]
mod tests;
