//! Reaching a Redis server: the client for a broker URL (address, TLS and
//! credentials, or the master a Sentinel names), the connection's name, and
//! telling refused credentials from other failures.

use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, ConnectionAddr, IntoConnectionInfo, RedisConnectionInfo};

use super::keys::RedisOptions;
use super::tls;
use crate::url::{BrokerUrl, TransportKind};
use crate::error::{Error, Result};

/// Did Redis refuse the credentials? redis-rs reports a missing password
/// (`NOAUTH`) as a plain server error, not as an authentication failure.
pub(super) fn auth_refused(e: &redis::RedisError) -> bool {
    e.kind() == redis::ErrorKind::AuthenticationFailed
        || e.code().is_some_and(|c| matches!(c, "NOAUTH" | "WRONGPASS"))
        || e.clone()
            .into_server_errors()
            .is_some_and(|errors| errors.iter().any(|(_, s)| matches!(s.code(), "NOAUTH" | "WRONGPASS")))
}

/// Name a Redis connection (CLIENT SETNAME), so operators and tests can
/// tell kelp's connections apart in CLIENT LIST.
pub(super) async fn name_connection(conn: &mut MultiplexedConnection, name: Option<&str>) -> redis::RedisResult<()> {
    let Some(name) = name else { return Ok(()) };
    redis::cmd("CLIENT").arg("SETNAME").arg(name).query_async(conn).await
}

/// A client for `url`: the address and credentials to connect to (asking a
/// Sentinel first for `sentinel://` URLs), with TLS for `rediss://`.
pub(super) async fn client_for(url: &BrokerUrl, options: &RedisOptions, timeout: Duration) -> Result<redis::Client> {
    let mut redis_settings = RedisConnectionInfo::default().set_db(i64::from(url.redis_db().unwrap_or(0)));
    if let Some(user) = url.userid().filter(|u| !u.is_empty()) {
        redis_settings = redis_settings.set_username(user);
    }
    if let Some(password) = url.password().filter(|p| !p.is_empty()) {
        redis_settings = redis_settings.set_password(password);
    }
    let addr = match url.transport() {
        TransportKind::Sentinel => {
            let (host, port) = ask_sentinel(url, options, timeout).await?;
            ConnectionAddr::Tcp(host, port)
        }
        _ => match url.socket_path() {
            Some(path) => ConnectionAddr::Unix(path.into()),
            None => {
                let host = url.host().to_owned();
                let port = url.port().unwrap_or(6379);
                if url.is_tls() {
                    tls::address(url, host, port)?
                } else {
                    ConnectionAddr::Tcp(host, port)
                }
            }
        },
    };
    let tls = url.is_tls() && url.socket_path().is_none() && url.transport() != TransportKind::Sentinel;
    let info = addr
        .into_connection_info()
        .map_err(|e| Error::config(format!("bad Redis address in {url}: {e}")))?
        .set_redis_settings(redis_settings);
    let built = if tls { tls::client(url, info)? } else { redis::Client::open(info) };
    built.map_err(|e| Error::config(format!("cannot set up a Redis client for {url}: {e}")))
}

/// Ask the Sentinel at `url` where the master `master_name` is.
async fn ask_sentinel(url: &BrokerUrl, options: &RedisOptions, timeout: Duration) -> Result<(String, u16)> {
    let name = options.master_name.as_deref().ok_or_else(|| {
        Error::config("a sentinel:// URL needs the transport option master_name (the monitored master)")
    })?;
    let sentinel = ConnectionAddr::Tcp(url.host().to_owned(), url.port().unwrap_or(26379))
        .into_connection_info()
        .map_err(|e| Error::config(format!("bad Sentinel address in {url}: {e}")))?;
    let client = redis::Client::open(sentinel).map_err(|e| Error::config(format!("bad Sentinel address: {e}")))?;
    let config = AsyncConnectionConfig::new().set_connection_timeout(Some(timeout)).set_response_timeout(Some(timeout));
    let mut conn = client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .map_err(|e| Error::connection(format!("cannot reach the Sentinel at {url}")).with_source(e))?;
    let master: Option<(String, u16)> = redis::cmd("SENTINEL")
        .arg("get-master-addr-by-name")
        .arg(name)
        .query_async(&mut conn)
        .await
        .map_err(|e| Error::connection(format!("the Sentinel at {url} did not answer")).with_source(e))?;
    master.ok_or_else(|| Error::connection(format!("the Sentinel at {url} knows no master named '{name}'")))
}
