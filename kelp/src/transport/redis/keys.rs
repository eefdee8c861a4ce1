//! Key names and transport options of Kombu's Redis transport, so kelp and
//! Kombu share queues, bindings, unacked records and fanout channels.

use std::time::Duration;

use crate::url::BrokerUrl;
use crate::content::value::{FieldTable, Value};
use crate::error::{Error, Result};

/// Kombu's separator inside binding members and priority-bucket names.
pub(crate) const SEP: &str = "\x06\x16";

/// Transport options (Kombu's `transport_options` for Redis) plus kelp's own.
#[derive(Clone, Debug)]
pub(crate) struct RedisOptions {
    /// `global_keyprefix`: put in front of every key and fanout channel.
    pub(crate) keyprefix: String,
    /// `visibility_timeout`: an unacked message older than this is restored.
    pub(crate) visibility_timeout: Duration,
    /// `priority_steps`: the priority buckets, ascending, starting at 0.
    pub(crate) priority_steps: Vec<u8>,
    /// `fanout_prefix`: the fanout channel prefix (`/{db}.` by default).
    pub(crate) fanout_prefix: String,
    /// `fanout_patterns`: fanout channels carry the routing key.
    pub(crate) fanout_patterns: bool,
    /// `polling_interval`: how long a consumer blocks before looking at
    /// every queue and priority bucket again.
    pub(crate) polling_interval: Duration,
    /// `reliable_fetch` (kelp): move messages atomically into a processing
    /// list of the consumer's own before recording them as unacked, so a
    /// consumer killed at any instant loses nothing.
    pub(crate) reliable_fetch: bool,
    /// `unacked_restore_interval`: how often a consumer sweeps for
    /// messages whose visibility timeout passed.
    pub(crate) unacked_restore_interval: Duration,
    /// `unacked_mutex_expire`: the sweep lock's lifetime.
    pub(crate) unacked_mutex_expire: Duration,
    /// `master_name`: the Sentinel master to follow (`sentinel://` URLs).
    pub(crate) master_name: Option<String>,
    /// `confirm_replicas` (kelp): a publish counts as confirmed only once
    /// this many replicas have it (Redis's `WAIT`); 0: when the master has it.
    pub(crate) confirm_replicas: u32,
    /// `confirm_replicas_timeout` (kelp): how long `WAIT` may take.
    pub(crate) confirm_replicas_timeout: Duration,
}

impl RedisOptions {
    pub(crate) fn parse(url: &BrokerUrl, table: &FieldTable) -> Result<RedisOptions> {
        let db = url.redis_db().unwrap_or(0);
        let seconds = |key: &str, default: f64| -> Result<Duration> {
            match table.get(key) {
                None => Ok(Duration::from_secs_f64(default)),
                Some(v) => v
                    .as_f64()
                    .or_else(|| v.as_i64().map(|i| i as f64))
                    .filter(|s| s.is_finite() && *s >= 0.0 && *s < 1e9)
                    .map(Duration::from_secs_f64)
                    .ok_or_else(|| bad(key, "a number of seconds")),
            }
        };
        let flag = |key: &str, default: bool| -> Result<bool> {
            match table.get(key) {
                None => Ok(default),
                Some(Value::Bool(b)) => Ok(*b),
                Some(v) => v.as_i64().map(|i| i != 0).ok_or_else(|| bad(key, "true or false")),
            }
        };
        let priority_steps = match table.get("priority_steps") {
            None => vec![0, 3, 6, 9],
            Some(Value::Array(items)) => {
                let mut steps = items
                    .iter()
                    .map(|v| v.as_i64().and_then(|i| u8::try_from(i).ok()).filter(|p| *p <= 9))
                    .collect::<Option<Vec<u8>>>()
                    .ok_or_else(|| bad("priority_steps", "a list of priorities 0 to 9"))?;
                steps.sort_unstable();
                steps.dedup();
                if steps.first() != Some(&0) {
                    steps.insert(0, 0);
                }
                steps
            }
            Some(_) => return Err(bad("priority_steps", "a list of priorities 0 to 9")),
        };
        let fanout_prefix = match table.get("fanout_prefix") {
            None | Some(Value::Bool(true)) => format!("/{db}."),
            Some(Value::Bool(false)) => String::new(),
            Some(Value::String(s)) => s.replace("{db}", &db.to_string()),
            Some(_) => return Err(bad("fanout_prefix", "true, false or a prefix")),
        };
        let keyprefix = match table.get("global_keyprefix") {
            None => String::new(),
            Some(v) => v.as_str().ok_or_else(|| bad("global_keyprefix", "text"))?.to_owned(),
        };
        let master_name = match table.get("master_name") {
            None => None,
            Some(v) => Some(v.as_str().ok_or_else(|| bad("master_name", "text"))?.to_owned()),
        };
        let polling_interval = seconds("polling_interval", 0.1)?.max(Duration::from_millis(10));
        let confirm_replicas = match table.get("confirm_replicas") {
            None => 0,
            Some(v) => v
                .as_i64()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| bad("confirm_replicas", "a number of replicas"))?,
        };
        Ok(RedisOptions {
            keyprefix,
            visibility_timeout: seconds("visibility_timeout", 3600.0)?,
            priority_steps,
            fanout_prefix,
            fanout_patterns: flag("fanout_patterns", true)?,
            polling_interval,
            reliable_fetch: flag("reliable_fetch", true)?,
            unacked_restore_interval: seconds("unacked_restore_interval", 10.0)?
                .max(Duration::from_millis(50)),
            unacked_mutex_expire: seconds("unacked_mutex_expire", 300.0)?.max(Duration::from_secs(1)),
            master_name,
            confirm_replicas,
            confirm_replicas_timeout: seconds("confirm_replicas_timeout", 5.0)?.max(Duration::from_millis(1)),
        })
    }
}

fn bad(key: &str, expected: &str) -> Error {
    Error::config(format!("the Redis transport option '{key}' must be {expected}"))
}

/// Builds every key name from the options.
#[derive(Clone, Debug)]
pub(crate) struct Keys {
    prefix: String,
    steps: Vec<u8>,
    fanout_prefix: String,
    fanout_patterns: bool,
}

impl Keys {
    pub(crate) fn new(options: &RedisOptions) -> Keys {
        Keys {
            prefix: options.keyprefix.clone(),
            steps: options.priority_steps.clone(),
            fanout_prefix: options.fanout_prefix.clone(),
            fanout_patterns: options.fanout_patterns,
        }
    }

    /// The priority bucket Kombu files priority `p` under: the largest step
    /// not above it.
    pub(crate) fn step_of(&self, priority: u8) -> u8 {
        self.steps.iter().copied().filter(|s| *s <= priority).max().unwrap_or(0)
    }

    /// The list holding `queue`'s messages of priority bucket `step`.
    pub(crate) fn bucket(&self, queue: &str, step: u8) -> String {
        format!("{}{queue}{}", self.prefix, Keys::bucket_suffix(step))
    }

    /// What follows the queue name in the key of bucket `step`.
    pub(crate) fn bucket_suffix(step: u8) -> String {
        if step == 0 { String::new() } else { format!("{SEP}{step}") }
    }

    /// The prefix of every key.
    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Every bucket of `queue`, highest priority (bucket 0) first.
    pub(crate) fn buckets(&self, queue: &str) -> Vec<String> {
        self.steps.iter().map(|s| self.bucket(queue, *s)).collect()
    }

    /// The keys a consumer of `queues` pops from, in Kombu's order: bucket 0
    /// of every queue, then the next bucket of every queue, and so on.
    pub(crate) fn fetch_order(&self, queues: &[&str]) -> Vec<String> {
        self.steps
            .iter()
            .flat_map(|s| queues.iter().map(move |q| self.bucket(q, *s)))
            .collect()
    }

    /// The queue a bucket key belongs to.
    pub(crate) fn queue_of<'k>(&self, key: &'k str) -> &'k str {
        let key = key.strip_prefix(self.prefix.as_str()).unwrap_or(key);
        match key.rsplit_once(SEP) {
            Some((queue, step)) if step.parse::<u8>().is_ok() => queue,
            _ => key,
        }
    }

    pub(crate) fn binding(&self, exchange: &str) -> String {
        format!("{}_kombu.binding.{exchange}", self.prefix)
    }

    pub(crate) fn binding_permanent(&self, exchange: &str) -> String {
        format!("{}_kombu.binding_permanent.{exchange}", self.prefix)
    }

    /// The pattern that finds every binding set (for queue deletion).
    pub(crate) fn binding_pattern(&self) -> String {
        format!("{}_kombu.binding.*", glob_escape(&self.prefix))
    }

    pub(crate) fn unacked(&self) -> String {
        format!("{}unacked", self.prefix)
    }

    pub(crate) fn unacked_index(&self) -> String {
        format!("{}unacked_index", self.prefix)
    }

    pub(crate) fn unacked_mutex(&self) -> String {
        format!("{}unacked_mutex", self.prefix)
    }

    /// kelp's registry of consumers' processing lists (a hash: processing
    /// list → `owner SEP source list`), so any live consumer can give back
    /// the messages of one that died between taking and recording them.
    pub(crate) fn processing_registry(&self) -> String {
        format!("{}_kelp.processing", self.prefix)
    }

    /// The processing list of fetch loop `fetcher` for messages taken from
    /// the list `source`.
    pub(crate) fn processing(&self, fetcher: &str, source: &str) -> String {
        format!("{}_kelp.processing{SEP}{fetcher}{SEP}{source}", self.prefix)
    }

    /// What connection `owner` has recorded as unacked and not yet acked (a
    /// hash: delivery tag → `recorded-at SEP source list`): when the owner
    /// dies or loses its connection, its deliveries go back at once, as
    /// RabbitMQ requeues a lost channel's, not after the visibility timeout.
    pub(crate) fn held(&self, owner: &str) -> String {
        format!("{}_kelp.held{SEP}{owner}", self.prefix)
    }

    /// The connections that may have a [`Keys::held`] hash (a set of owners).
    pub(crate) fn holders(&self) -> String {
        format!("{}_kelp.holders", self.prefix)
    }

    /// The key whose presence says connection `owner` is alive (it expires
    /// when the owner stops refreshing it).
    pub(crate) fn alive(&self, owner: &str) -> String {
        format!("{}{}", self.alive_prefix(), owner)
    }

    /// Set when a successor of connection `owner` gave back what it held:
    /// `owner` is dead for good, whatever its late writes say.
    pub(crate) fn gone(&self, owner: &str) -> String {
        format!("{}_kelp.gone{SEP}{owner}", self.prefix)
    }

    pub(crate) fn alive_prefix(&self) -> String {
        format!("{}_kelp.alive{SEP}", self.prefix)
    }

    /// kelp's own record of declared queues and their properties (Kombu
    /// keeps none), so a passive declaration finds an empty queue and a
    /// conflicting redeclaration fails as on RabbitMQ.
    pub(crate) fn queue_records(&self) -> String {
        format!("{}_kelp.queues", self.prefix)
    }

    /// kelp's own record of declared exchanges and their types, so every
    /// kelp process routes an exchange by its real type (a Kombu process
    /// only knows the exchanges it declared itself).
    pub(crate) fn exchange_records(&self) -> String {
        format!("{}_kelp.exchanges", self.prefix)
    }

    /// The pub/sub patterns that receive every fanout message to
    /// `exchange`, whatever routing key Kombu's `fanout_patterns` put in
    /// the channel name (a fanout exchange ignores routing keys).
    pub(crate) fn fanout_patterns(&self, exchange: &str) -> [String; 2] {
        let base = glob_escape(&format!("{}{}{exchange}", self.prefix, self.fanout_prefix));
        [base.clone(), format!("{base}/*")]
    }

    /// The pub/sub channel a fanout message to `exchange` goes to.
    pub(crate) fn fanout_channel(&self, exchange: &str, routing_key: &str) -> String {
        if !routing_key.is_empty() && self.fanout_patterns {
            format!("{}{}{exchange}/{routing_key}", self.prefix, self.fanout_prefix)
        } else {
            format!("{}{}{exchange}", self.prefix, self.fanout_prefix)
        }
    }

    /// A binding-set member: `<routing_key>SEP<pattern>SEP<queue>`.
    pub(crate) fn member(routing_key: &str, pattern: &str, queue: &str) -> String {
        format!("{routing_key}{SEP}{pattern}{SEP}{queue}")
    }
}

/// A binding-set member read back: (routing key, pattern, queue).
pub(crate) fn parse_member(member: &str) -> Option<(&str, &str, &str)> {
    let mut parts = member.splitn(3, SEP);
    Some((parts.next()?, parts.next()?, parts.next()?))
}

/// The regular expression Kombu's topic exchange stores for a binding key
/// (`kombu.transport.virtual.exchange.TopicExchange.key_to_pattern`), so
/// Kombu publishers route to bindings kelp made.
pub(crate) fn kombu_topic_pattern(binding_key: &str) -> String {
    let escaped: String = binding_key
        .chars()
        .flat_map(|c| {
            let keep = c.is_alphanumeric() || matches!(c, '.' | '#' | '*');
            let escape = (!keep).then_some('\\');
            escape.into_iter().chain(std::iter::once(c))
        })
        .collect();
    let words: Vec<&str> = escaped
        .split('.')
        .map(|w| match w {
            "*" => r"[^\.]+",
            "#" => ".*?",
            other => other,
        })
        .collect();
    format!("^{}$", words.join(r"\."))
}

fn glob_escape(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            let escape = matches!(c, '*' | '?' | '[' | ']' | '\\').then_some('\\');
            escape.into_iter().chain(std::iter::once(c))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(prefix: &str) -> Keys {
        let mut table = FieldTable::new();
        table.insert("global_keyprefix".into(), prefix.into());
        let url = BrokerUrl::parse("redis://localhost:6379/3").expect("url");
        Keys::new(&RedisOptions::parse(&url, &table).expect("options"))
    }

    #[test]
    fn buckets_follow_kombu() {
        let k = keys("");
        assert_eq!(k.bucket("q", 0), "q");
        assert_eq!(k.step_of(0), 0);
        assert_eq!(k.step_of(2), 0);
        assert_eq!(k.step_of(3), 3);
        assert_eq!(k.step_of(8), 6);
        assert_eq!(k.step_of(9), 9);
        assert_eq!(k.bucket("q", 6), "q\x06\x166");
        assert_eq!(k.fetch_order(&["a", "b"])[..3], ["a".to_owned(), "b".into(), "a\x06\x163".into()]);
        assert_eq!(k.queue_of("q\x06\x169"), "q");
        assert_eq!(k.queue_of("q"), "q");
        let p = keys("app:");
        assert_eq!(p.bucket("q", 3), "app:q\x06\x163");
        assert_eq!(p.queue_of("app:q\x06\x163"), "q");
        assert_eq!(p.binding("ex"), "app:_kombu.binding.ex");
        assert_eq!(p.unacked(), "app:unacked");
        assert_eq!(p.fanout_channel("ex", ""), "app:/3.ex");
        assert_eq!(p.fanout_channel("ex", "k"), "app:/3.ex/k");
        assert_eq!(p.fanout_patterns("e*x"), ["app:/3.e\\*x".to_owned(), "app:/3.e\\*x/*".into()]);
    }

    #[test]
    fn members_round_trip() {
        let m = Keys::member("a.*", "^a\\.[^\\.]+$", "q");
        assert_eq!(parse_member(&m), Some(("a.*", "^a\\.[^\\.]+$", "q")));
        assert_eq!(parse_member("nosep"), None);
    }

    #[test]
    fn topic_pattern_is_kombus() {
        // Values computed with kombu 5.7's TopicExchange().key_to_pattern.
        assert_eq!(kombu_topic_pattern("a.*.b"), r"^a\.[^\.]+\.b$");
        assert_eq!(kombu_topic_pattern("logs.#"), r"^logs\..*?$");
        assert_eq!(kombu_topic_pattern("a-b.c"), r"^a\-b\.c$");
        assert_eq!(kombu_topic_pattern(""), "^$");
    }
}
