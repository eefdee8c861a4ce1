//! Sockets: plain TCP halves without a lock, TLS through tokio's split.

use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

#[cfg(feature = "tls")]
use super::tls;
use crate::url::BrokerUrl;
use crate::error::{Error, Result};

pub(crate) enum ReadSide {
    Tcp(tokio::net::tcp::OwnedReadHalf),
    #[cfg(feature = "tls")]
    Tls(tokio::io::ReadHalf<tls::TlsStream>),
}

pub(crate) enum WriteSide {
    Tcp(tokio::net::tcp::OwnedWriteHalf),
    #[cfg(feature = "tls")]
    Tls(tokio::io::WriteHalf<tls::TlsStream>),
}

impl AsyncRead for ReadSide {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            ReadSide::Tcp(r) => Pin::new(r).poll_read(cx, buf),
            #[cfg(feature = "tls")]
            ReadSide::Tls(r) => Pin::new(r).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for WriteSide {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            WriteSide::Tcp(w) => Pin::new(w).poll_write(cx, buf),
            #[cfg(feature = "tls")]
            WriteSide::Tls(w) => Pin::new(w).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            WriteSide::Tcp(w) => Pin::new(w).poll_write_vectored(cx, bufs),
            #[cfg(feature = "tls")]
            WriteSide::Tls(w) => Pin::new(w).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            WriteSide::Tcp(w) => w.is_write_vectored(),
            #[cfg(feature = "tls")]
            WriteSide::Tls(w) => w.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            WriteSide::Tcp(w) => Pin::new(w).poll_flush(cx),
            #[cfg(feature = "tls")]
            WriteSide::Tls(w) => Pin::new(w).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            WriteSide::Tcp(w) => Pin::new(w).poll_shutdown(cx),
            #[cfg(feature = "tls")]
            WriteSide::Tls(w) => Pin::new(w).poll_shutdown(cx),
        }
    }
}

pub(super) fn io_error(url: &BrokerUrl, what: &str, e: std::io::Error) -> Error {
    Error::connection(format!("{what} {url}")).with_source(e)
}

/// TCP connect to the first address of `url`'s host that accepts, with
/// keepalive on (a dead peer is noticed even with heartbeats off).
pub(super) async fn connect_tcp(url: &BrokerUrl, port: u16) -> Result<TcpStream> {
    let addresses = tokio::net::lookup_host((url.host(), port))
        .await
        .map_err(|e| io_error(url, "cannot resolve", e))?;
    let mut last = None;
    for address in addresses {
        let socket = if address.is_ipv4() {
            tokio::net::TcpSocket::new_v4()
        } else {
            tokio::net::TcpSocket::new_v6()
        };
        let attempt = match socket {
            Ok(socket) => {
                let _ = socket.set_keepalive(true);
                socket.connect(address).await
            }
            Err(e) => Err(e),
        };
        match attempt {
            Ok(stream) => return Ok(stream),
            Err(e) => last = Some(e),
        }
    }
    Err(match last {
        Some(e) => io_error(url, "cannot connect to", e),
        None => Error::connection(format!("{url}: the host name resolves to no address")),
    })
}

/// The socket's halves: TLS for `amqps://`, plain TCP otherwise.
#[cfg(feature = "tls")]
pub(crate) async fn split(tcp: TcpStream, url: &BrokerUrl) -> Result<(ReadSide, WriteSide)> {
    if url.is_tls() {
        let stream = tls::connect(tcp, url).await?;
        let (r, w) = tokio::io::split(stream);
        return Ok((ReadSide::Tls(r), WriteSide::Tls(w)));
    }
    let (r, w) = tcp.into_split();
    Ok((ReadSide::Tcp(r), WriteSide::Tcp(w)))
}

/// The socket's halves (`amqps://` was refused before connecting).
#[cfg(not(feature = "tls"))]
pub(crate) async fn split(tcp: TcpStream, _url: &BrokerUrl) -> Result<(ReadSide, WriteSide)> {
    let (r, w) = tcp.into_split();
    Ok((ReadSide::Tcp(r), WriteSide::Tcp(w)))
}
