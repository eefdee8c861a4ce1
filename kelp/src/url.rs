//! Broker URLs with Kombu's semantics. (Contract stub.)

use std::fmt;
use std::time::Duration;

use crate::Result;

/// Which transport a URL names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TransportKind {
    /// `memory://`
    Memory,
    /// `amqp://`, `amqps://`, `pyamqp://`
    Amqp,
    /// `redis://`, `rediss://`, `redis+socket://`
    Redis,
    /// `sentinel://`
    Sentinel,
}

/// A parsed broker URL.
#[derive(Clone, PartialEq, Eq)]
pub struct BrokerUrl {
    _p: (),
}

impl BrokerUrl {
    /// Parse one URL.
    pub fn parse(_s: &str) -> Result<BrokerUrl> { todo!() }
    /// Parse a `;`-separated list of URLs.
    pub fn parse_list(_s: &str) -> Result<Vec<BrokerUrl>> { todo!() }
    /// The transport.
    pub fn transport(&self) -> TransportKind { todo!() }
    /// The scheme as written.
    pub fn scheme(&self) -> &str { todo!() }
    /// True for TLS schemes or `ssl=true`.
    pub fn is_tls(&self) -> bool { todo!() }
    /// The host.
    pub fn host(&self) -> &str { todo!() }
    /// The port, explicit or the scheme's default.
    pub fn port(&self) -> Option<u16> { todo!() }
    /// The user id.
    pub fn userid(&self) -> Option<&str> { todo!() }
    /// The password.
    pub fn password(&self) -> Option<&str> { todo!() }
    /// The virtual host after Kombu's rules.
    pub fn virtual_host(&self) -> &str { todo!() }
    /// A query option.
    pub fn query_param(&self, _key: &str) -> Option<&str> { todo!() }
    /// All query options in order.
    pub fn query(&self) -> &[(String, String)] { todo!() }
    /// `heartbeat=` in seconds.
    pub fn heartbeat(&self) -> Result<Option<Duration>> { todo!() }
    /// `connect_timeout=` in seconds.
    pub fn connect_timeout(&self) -> Result<Option<Duration>> { todo!() }
    /// The URL, with the password masked as `**` unless asked for.
    pub fn as_uri(&self, _include_password: bool) -> String { todo!() }
}

impl fmt::Display for BrokerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str(&self.as_uri(false)) }
}

impl fmt::Debug for BrokerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { write!(f, "BrokerUrl({})", self.as_uri(false)) }
}

impl std::str::FromStr for BrokerUrl {
    type Err = crate::Error;
    fn from_str(s: &str) -> Result<BrokerUrl> { BrokerUrl::parse(s) }
}
