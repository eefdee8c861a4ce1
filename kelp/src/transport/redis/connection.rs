//! The connection: [`RedisTransport`], kelp's `Transport` on Redis
//! (connecting, opening channels, closing).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use redis::AsyncConnectionConfig;
use tokio::sync::{Notify, watch};

use super::channel::RedisChannel;
use super::client::{auth_refused, client_for, name_connection};
use super::health::{ALIVE_TTL, HEALTH_CHECK, health_check};
use super::keys::{Keys, RedisOptions};
use super::publish::publish_writer;
use super::scripts;
use super::shared::{ChannelInner, ChannelState, Shared, lock};
use crate::transport::api::{Capabilities, Transport};
use crate::transport::confirm;
use crate::transport::types::ConnectOptions;
use crate::url::{BrokerUrl, TransportKind};
use crate::error::{Error, ErrorKind, Result};

/// How long a command may wait for its reply before the connection is
/// considered dead.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection to one Redis server (the master, for Sentinel URLs).
pub(crate) struct RedisTransport {
    shared: Arc<Shared>,
}

impl Transport for RedisTransport {
    type Channel = RedisChannel;

    async fn connect(url: &BrokerUrl, options: &ConnectOptions) -> Result<RedisTransport> {
        let redis_options = RedisOptions::parse(url, &options.transport_options)?;
        let timeout = options.connect_timeout;
        let client = client_for(url, &redis_options, timeout).await?;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(RESPONSE_TIMEOUT));
        let connected = tokio::time::timeout(timeout, client.get_multiplexed_async_connection_with_config(&config)).await;
        let mut cmd = match connected {
            Err(_) => return Err(Error::timeout(format!("connecting to {url} took longer than {timeout:?}"))),
            Ok(Err(e)) if auth_refused(&e) => {
                return Err(Error::new(ErrorKind::Authentication, format!("{url} refused the credentials")).with_source(e));
            }
            Ok(Err(e)) => return Err(Error::connection(format!("cannot connect to {url}")).with_source(e)),
            Ok(Ok(conn)) => conn,
        };
        // A server that wants a password accepts the connection and refuses
        // the first command: ask one now, so connect() says so.
        if let Err(e) = redis::cmd("PING").query_async::<String>(&mut cmd).await {
            if auth_refused(&e) {
                return Err(Error::new(ErrorKind::Authentication, format!("{url} refused the credentials")).with_source(e));
            }
            return Err(Error::connection(format!("{url} did not answer a PING")).with_source(e));
        }
        // Redis names may not hold spaces.
        let client_name: Option<String> =
            options.connection_name.as_ref().map(|n| n.chars().map(|c| if c.is_whitespace() { '-' } else { c }).collect());
        if let Err(e) = name_connection(&mut cmd, client_name.as_deref()).await {
            return Err(Error::connection(format!("cannot name the connection to {url}")).with_source(e));
        }
        if url.transport() == TransportKind::Sentinel {
            // A Sentinel may name a master that has just been demoted.
            let role: Vec<redis::Value> = redis::cmd("ROLE")
                .query_async(&mut cmd)
                .await
                .map_err(|e| Error::connection(format!("cannot ask {url}'s master for its role")).with_source(e))?;
            if !matches!(role.first(), Some(redis::Value::BulkString(r)) if r == b"master") {
                return Err(Error::connection(format!("the master Sentinel {url} named is not a master (yet)")));
            }
        }
        // The publish script goes by EVALSHA in pipelines: load it first.
        for (what, source) in [("publish", scripts::PUBLISH_SOURCE), ("liveness", scripts::ALIVE_SOURCE)] {
            if let Err(e) = redis::cmd("SCRIPT").arg("LOAD").arg(source).query_async::<String>(&mut cmd).await {
                return Err(Error::connection(format!("cannot load kelp's {what} script into {url}")).with_source(e));
            }
        }
        // PING at the heartbeat interval, at most Kombu's 25 s health check.
        let ping_every = options.heartbeat.unwrap_or(HEALTH_CHECK).min(HEALTH_CHECK);
        let (down, _) = watch::channel(false);
        let (writer, jobs) = tokio::sync::mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            client,
            cmd,
            keys: Keys::new(&redis_options),
            options: redis_options,
            connect_timeout: timeout,
            client_name,
            broker: url.to_string(),
            events: options.events.clone(),
            exchanges: Mutex::new(HashMap::new()),
            fanout_bindings: Mutex::new(HashMap::new()),
            expires: Mutex::new(HashMap::new()),
            auto_delete: Mutex::new(HashSet::new()),
            exclusive: Mutex::new(HashSet::new()),
            down,
            failure: Mutex::new(None),
            channels: Mutex::new(Vec::new()),
            writer,
            // The client's name first: a later connection of the same
            // client finds what this one leaves (see `give_back_predecessors`).
            owner: format!("{}.{}", options.client, crate::content::ids::uuid4()),
            alive_ttl: ALIVE_TTL,
            fetches: std::sync::atomic::AtomicU64::new(0),
            keep_unconfirmed: options.keep_unconfirmed,
            max_unconfirmed: options.max_unconfirmed,
            publish_wait: options.publish_wait,
            idle_sweep: Mutex::new(None),
        });
        let mut alive = redis::pipe();
        shared.refresh_alive(&mut alive);
        shared.pipe::<()>(&alive, "announcing the connection").await?;
        match shared.give_back_predecessors(&options.client).await {
            Ok(0) => {}
            Ok(moved) => tracing::info!(broker = %shared.broker, moved, "gave back what this client's lost connection had taken"),
            Err(e) => tracing::warn!(error = %e, "cannot give back what this client's lost connection had taken"),
        }
        tokio::spawn(publish_writer(Arc::downgrade(&shared), jobs));
        tracing::debug!(broker = %shared.broker, "connected to Redis");
        tokio::spawn(health_check(Arc::downgrade(&shared), ping_every));
        Ok(RedisTransport { shared })
    }

    async fn open_channel(&self, confirms: confirm::SharedConfirms) -> Result<RedisChannel> {
        self.shared.conn()?;
        // From now on this channel's answers settle them; what a lost
        // connection's channel left unanswered waits to be sent again.
        let owner = confirm::next_owner();
        confirm::lock(&confirms).attach(owner);
        let inner = Arc::new(ChannelInner {
            shared: self.shared.clone(),
            open: AtomicBool::new(true),
            closed_with: Mutex::new(None),
            state: Mutex::new(ChannelState::default()),
            wake: Arc::new(Notify::new()),
            confirms,
            owner,
        });
        let mut channels = lock(&self.shared.channels);
        channels.retain(|c| c.strong_count() > 0);
        channels.push(Arc::downgrade(&inner));
        Ok(RedisChannel { inner })
    }

    fn closed(&self) -> impl std::future::Future<Output = Error> + Send + 'static {
        let shared = self.shared.clone();
        let mut down = self.shared.down.subscribe();
        async move {
            let _ = down.wait_for(|d| *d).await;
            shared.closed_error()
        }
    }

    fn is_open(&self) -> bool {
        self.shared.is_open()
    }

    async fn close(&self) -> Result<()> {
        let channels: Vec<_> = lock(&self.shared.channels).iter().filter_map(Weak::upgrade).collect();
        for channel in channels {
            channel.close().await;
        }
        let exclusive: Vec<String> = lock(&self.shared.exclusive).iter().cloned().collect();
        for queue in exclusive {
            let _ = self.shared.delete_queue(&queue).await;
        }
        // Anything a fetch still had on its way is given back by the next
        // sweep of any consumer, not an hour later.
        let alive = self.shared.keys.alive(&self.shared.owner);
        let _: Result<i64> = self.shared.query(redis::cmd("DEL").arg(alive), "closing").await;
        self.shared.fail(Error::closed(format!("the connection to {} was closed", self.shared.broker)));
        Ok(())
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            publisher_confirms: true,
            topic: true,
            fanout: true,
            headers: false,
            priorities: true,
            strict_priorities: false,
            message_ttl: false,
            exchange_bindings: false,
            max_length: false,
            checks_exchanges: false,
            direct_reply_to: false,
        }
    }
}

impl Drop for RedisTransport {
    fn drop(&mut self) {
        self.shared.fail(Error::closed(format!("the connection to {} was dropped", self.shared.broker)));
    }
}
