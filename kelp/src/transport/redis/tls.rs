//! `rediss://`: TLS through redis-rs's rustls support, with Kombu's
//! `ssl_*` query options (CA, client certificate and key, no verification).
//! Without the `tls` feature, a `rediss://` URL is refused by name.

use redis::{ConnectionAddr, ConnectionInfo};

use crate::error::{Error, Result};
use crate::url::BrokerUrl;

/// The TLS address of `host:port`, verifying the server unless the URL
/// says `ssl_cert_reqs=none` or `ssl_check_hostname=false`.
#[cfg(feature = "tls")]
pub(super) fn address(url: &BrokerUrl, host: String, port: u16) -> Result<ConnectionAddr> {
    let _ = tokio_rustls::rustls::crypto::ring::default_provider().install_default();
    let ssl = url.ssl_options();
    let insecure = ssl
        .iter()
        .any(|(k, v)| (*k == "cert_reqs" && *v == "none") || (*k == "check_hostname" && *v == "false"));
    Ok(ConnectionAddr::TcpTls { host, port, insecure, tls_params: None })
}

#[cfg(not(feature = "tls"))]
pub(super) fn address(url: &BrokerUrl, _host: String, _port: u16) -> Result<ConnectionAddr> {
    Err(Error::feature_missing(url, "tls"))
}

/// A client with the URL's CA and client certificate, when it names them.
#[cfg(feature = "tls")]
pub(super) fn client(url: &BrokerUrl, info: ConnectionInfo) -> Result<redis::RedisResult<redis::Client>> {
    let ssl = url.ssl_options();
    let file = |name: &str| -> Result<Option<Vec<u8>>> {
        match ssl.iter().find(|(k, _)| *k == name) {
            None => Ok(None),
            Some((_, path)) => std::fs::read(path)
                .map(Some)
                .map_err(|e| Error::config(format!("cannot read ssl_{name} '{path}' for {url}: {e}"))),
        }
    };
    let (ca, cert, key) = (file("ca_certs")?, file("certfile")?, file("keyfile")?);
    if ca.is_none() && cert.is_none() {
        return Ok(redis::Client::open(info));
    }
    let client_tls = match (cert, key) {
        (Some(client_cert), Some(client_key)) => Some(redis::ClientTlsConfig { client_cert, client_key }),
        (None, None) => None,
        _ => return Err(Error::config(format!("{url}: ssl_certfile and ssl_keyfile go together"))),
    };
    Ok(redis::Client::build_with_tls(info, redis::TlsCertificates { client_tls, root_cert: ca }))
}

#[cfg(not(feature = "tls"))]
pub(super) fn client(url: &BrokerUrl, _info: ConnectionInfo) -> Result<redis::RedisResult<redis::Client>> {
    Err(Error::feature_missing(url, "tls"))
}
