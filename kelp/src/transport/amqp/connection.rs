//! The AMQP connection engine: handshake, then three tasks per socket.
//!
//! - the **reader** owns the table of channel states (consumers, the
//!   pending method call, content being assembled) and is the only one to
//!   touch it, so deliveries take no lock on the way to their consumer;
//! - the **writer** drains everything queued since its last write and sends
//!   it in one vectored write (many publishes, one syscall);
//! - the **heartbeat** task sends heartbeats when the writer was idle and
//!   declares the broker dead after two of its heartbeats were missed
//!   (one silent interval: RabbitMQ beats every half interval), whatever
//!   the application is doing.
//!
//! Handles (channels, publishes, acks) encode their frames straight into the
//! shared outbound buffer and talk to the reader through a command queue.
//!
//! Beside this file: `socket` (the socket halves), `handshake`, `shared`
//! (the connection's and the channels' state, which handles and tasks
//! share), `reader`, and `writer` (with the heartbeat task).

use std::sync::Arc;

use bytes::BytesMut;
use tokio::sync::mpsc;

use super::handshake::handshake;
use super::reader::Reader;
use super::shared::Conn;
use super::socket::{connect_tcp, split};
use super::writer::{run_keeper, run_writer};
use crate::event::{Event, Events};
use crate::transport::types::ConnectOptions;
use crate::url::BrokerUrl;
use crate::error::Result;

/// Connect, authenticate, tune, open the virtual host, start the tasks.
pub(crate) async fn connect(url: &BrokerUrl, options: &ConnectOptions, events: Events) -> Result<Arc<Conn>> {
    #[cfg(not(feature = "tls"))]
    if url.is_tls() {
        return Err(crate::error::Error::feature_missing(url, "tls"));
    }
    let default_port = if url.is_tls() { 5671 } else { 5672 };
    let port = url.port().unwrap_or(default_port);
    let tcp = connect_tcp(url, port).await?;
    // Latency matters more than packet count: frames are already batched.
    let _ = tcp.set_nodelay(true);
    let (mut read, mut write) = split(tcp, url).await?;
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let (tune, server_properties) = handshake(&mut read, &mut write, &mut buf, url, options).await?;
    let text = |key: &str| server_properties.get(key).and_then(|v| v.as_str()).unwrap_or("?").to_owned();
    tracing::debug!(broker = %url, product = %text("product"), version = %text("version"), ?tune, "AMQP handshake done");

    let (reader_tx, reader_rx) = mpsc::unbounded_channel();
    let conn = Arc::new(Conn::new(url.to_string(), tune, options, reader_tx, events));
    tokio::spawn(Reader::new(conn.clone(), reader_rx).run(read, buf));
    tokio::spawn(run_writer(conn.clone(), write));
    tokio::spawn(run_keeper(conn.clone(), tune.heartbeat));
    conn.events.emit(Event::Connected {
        broker: conn.broker.clone(),
    });
    Ok(conn)
}
