//! [`Settings`]: how a supervisor connects and recovers, fixed when the
//! connection is built.

use std::time::Duration;

use super::failover::FailoverStrategy;
use super::retry::RetryPolicy;
use crate::content::value::FieldTable;
use crate::error::Result;
use crate::event::Events;
use crate::transport::ConnectOptions;
use crate::url::BrokerUrl;

/// Kombu's default connect timeout.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Within the 5 to 20 s RabbitMQ recommends: a frozen broker is left about
/// 12 s after its last byte (RabbitMQ's own default of 60 s would take a
/// minute or more, which a service notices as an outage).
const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(10);

/// A connection's settings; the model's builder fills them in.
#[derive(Debug)]
pub(crate) struct Settings {
    /// Never empty (checked by the builder).
    pub(crate) urls: Vec<BrokerUrl>,
    pub(crate) strategy: FailoverStrategy,
    pub(crate) connect_timeout: Option<Duration>,
    /// `Some(None)`: heartbeats turned off explicitly.
    pub(crate) heartbeat: Option<Option<Duration>>,
    pub(crate) connection_name: Option<String>,
    pub(crate) transport_options: FieldTable,
    pub(crate) retry: RetryPolicy,
    /// Recover automatically when the connection is lost.
    pub(crate) recovery: bool,
    pub(crate) max_unconfirmed: usize,
    /// See `ConnectOptions::confirm_timeout`.
    pub(crate) confirm_timeout: Option<Duration>,
    /// Keep a warm standby connection.
    pub(crate) standby: bool,
}

impl Settings {
    /// What the transport of `url` connects with.
    pub(crate) fn connect_options(&self, url: &BrokerUrl, events: Events, client: &str) -> Result<ConnectOptions> {
        let heartbeat = match self.heartbeat {
            Some(explicit) => explicit,
            None => match url.query_param("heartbeat") {
                Some(_) => url.heartbeat()?,
                None => Some(DEFAULT_HEARTBEAT),
            },
        };
        Ok(ConnectOptions {
            connect_timeout: self
                .connect_timeout
                .or(url.connect_timeout()?)
                .unwrap_or(DEFAULT_CONNECT_TIMEOUT),
            heartbeat,
            connection_name: self.connection_name.clone(),
            transport_options: self.transport_options.clone(),
            events,
            keep_unconfirmed: self.recovery,
            max_unconfirmed: self.max_unconfirmed,
            publish_wait: self.retry.deadline.unwrap_or(Duration::from_secs(60)),
            confirm_timeout: self.confirm_timeout,
            client: client.to_owned(),
        })
    }
}
