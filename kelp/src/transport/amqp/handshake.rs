//! The handshake: protocol header, connection.start (the login:
//! PLAIN, AMQPLAIN or EXTERNAL), connection.tune, connection.open.

use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::codec::{self, Frame, Method, PROTOCOL_HEADER, methods, read_frame, short};
use super::socket::{ReadSide, WriteSide, io_error};
use super::wire;
use crate::error::reply_code;
use crate::transport::types::ConnectOptions;
use crate::url::BrokerUrl;
use crate::content::value::{FieldTable, Value};
use crate::error::{Error, ErrorKind, Result};

use amq_protocol::protocol::AMQPClass;

/// What kelp asks for; the broker may lower them.
const CLIENT_CHANNEL_MAX: u16 = 2047;
pub(super) const CLIENT_FRAME_MAX: u32 = 131_072;

/// The negotiated limits.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Tune {
    pub(crate) channel_max: u16,
    pub(crate) frame_max: u32,
    pub(crate) heartbeat: Option<Duration>,
}

async fn read_handshake_frame(read: &mut ReadSide, buf: &mut BytesMut, url: &BrokerUrl) -> Result<Frame> {
    loop {
        // A broker refusing our protocol version answers with a protocol
        // header of its own; read as a frame, its "AMQP" would make a
        // frame size of over a gigabyte. So look for it first.
        if buf.starts_with(b"AMQP") {
            if buf.len() >= 8 {
                return Err(Error::new(
                    ErrorKind::Protocol,
                    format!(
                        "{url} does not speak AMQP 0-9-1 (it offered protocol {}.{}.{})",
                        buf[5], buf[6], buf[7]
                    ),
                ));
            }
        } else if let Some(frame) = read_frame(buf, 0)? {
            return Ok(frame);
        }
        let n = read
            .read_buf(buf)
            .await
            .map_err(|e| io_error(url, "lost the connection to", e))?;
        if n == 0 {
            return Err(Error::connection(format!(
                "{url} closed the connection during the handshake"
            )));
        }
    }
}

fn expect_connection_method(frame: Frame, url: &BrokerUrl) -> Result<methods::connection::AMQPMethod> {
    match frame {
        Frame::Method(0, Method::Other(AMQPClass::Connection(method))) => Ok(method),
        other => Err(Error::new(
            ErrorKind::Protocol,
            format!("unexpected frame from {url} during the handshake: {other:?}"),
        )),
    }
}

fn handshake_close_error(close: &methods::connection::Close, url: &BrokerUrl, stage: &str) -> Error {
    let text = close.reply_text.as_str().to_owned();
    let kind = match close.reply_code {
        reply_code::ACCESS_REFUSED if stage == "login" => ErrorKind::Authentication,
        _ => ErrorKind::Connection,
    };
    Error::new(kind, format!("{url} refused the {stage}: {} {text}", close.reply_code))
        .with_reply(close.reply_code, text)
}

fn client_properties(options: &ConnectOptions) -> FieldTable {
    let capabilities: FieldTable = [
        "publisher_confirms",
        "consumer_cancel_notify",
        "connection.blocked",
        "basic.nack",
        "authentication_failure_close",
        "per_consumer_qos",
        "exchange_exchange_bindings",
    ]
    .into_iter()
    .map(|c| (c.to_owned(), Value::Bool(true)))
    .collect();
    let mut props = FieldTable::new();
    props.insert("product".into(), Value::from("kelp"));
    props.insert("version".into(), Value::from(env!("CARGO_PKG_VERSION")));
    props.insert("platform".into(), Value::from("Rust"));
    props.insert("information".into(), Value::from("https://github.com/kelp-rs/kelp"));
    props.insert("capabilities".into(), Value::Map(capabilities));
    if let Some(name) = &options.connection_name {
        props.insert("connection_name".into(), Value::from(name.as_str()));
    }
    props
}

/// Negotiate as RabbitMQ clients do: the smaller non-zero value wins.
fn negotiate<T: Ord + Default + Copy>(client: T, server: T) -> T {
    let zero = T::default();
    if client == zero || server == zero {
        client.max(server)
    } else {
        client.min(server)
    }
}

pub(super) async fn handshake(
    read: &mut ReadSide,
    write: &mut WriteSide,
    buf: &mut BytesMut,
    url: &BrokerUrl,
    options: &ConnectOptions,
) -> Result<(Tune, FieldTable)> {
    let w = |e| io_error(url, "lost the connection to", e);
    write.write_all(PROTOCOL_HEADER).await.map_err(w)?;

    let start = match expect_connection_method(read_handshake_frame(read, buf, url).await?, url)? {
        methods::connection::AMQPMethod::Start(start) => start,
        other => {
            return Err(Error::new(ErrorKind::Protocol, format!("expected connection.start from {url}, got {other:?}")));
        }
    };
    let server_properties = codec::from_amqp_table(&start.server_properties).unwrap_or_default();
    let offered = String::from_utf8_lossy(start.mechanisms.as_bytes()).into_owned();
    let mechanism = url
        .login_method()
        .map(str::to_ascii_uppercase)
        .unwrap_or_else(|| "PLAIN".to_owned());
    if !offered.split_whitespace().any(|m| m == mechanism) {
        return Err(Error::new(
            ErrorKind::Authentication,
            format!("{url} does not offer the {mechanism} login method (it offers: {offered})"),
        ));
    }
    let user = url.userid().unwrap_or("guest");
    let password = url.password().unwrap_or("guest");
    let response: Vec<u8> = match mechanism.as_str() {
        "PLAIN" => format!("\0{user}\0{password}").into_bytes(),
        "AMQPLAIN" => {
            let table: FieldTable = [
                ("LOGIN".to_owned(), Value::from(user)),
                ("PASSWORD".to_owned(), Value::from(password)),
            ]
            .into_iter()
            .collect();
            // AMQPLAIN is a field table without its length prefix.
            wire::encode_table(&table)?.slice(4..).to_vec()
        }
        "EXTERNAL" => Vec::new(),
        other => {
            return Err(Error::config(format!(
                "unsupported login method '{other}' (kelp speaks PLAIN, AMQPLAIN and EXTERNAL)"
            )));
        }
    };
    let start_ok = methods::connection::StartOk {
        client_properties: codec::to_amqp_table(&client_properties(options))?,
        mechanism: short(&mechanism)?,
        response: codec::LongString::from(response),
        locale: short("en_US")?,
    };
    let mut out = BytesMut::new();
    codec::put_method(&mut out, 0, AMQPClass::Connection(methods::connection::AMQPMethod::StartOk(start_ok)))?;
    write.write_all(&out).await.map_err(w)?;

    let tune = {
        let frame = match read_handshake_frame(read, buf, url).await {
            Ok(frame) => frame,
            // Brokers without authentication_failure_close just hang up.
            Err(e) if e.is_connection() => {
                return Err(Error::new(
                    ErrorKind::Authentication,
                    format!("{url} closed the connection after the login: the credentials were probably refused"),
                ));
            }
            Err(e) => return Err(e),
        };
        match expect_connection_method(frame, url)? {
            methods::connection::AMQPMethod::Tune(tune) => tune,
            methods::connection::AMQPMethod::Close(close) => {
                return Err(handshake_close_error(&close, url, "login"));
            }
            methods::connection::AMQPMethod::Secure(_) => {
                return Err(Error::new(
                    ErrorKind::Authentication,
                    format!("{url} asked for a SASL challenge, which kelp does not answer"),
                ));
            }
            other => {
                return Err(Error::new(ErrorKind::Protocol, format!("expected connection.tune from {url}, got {other:?}")));
            }
        }
    };
    let heartbeat_secs = options
        .heartbeat
        .map_or(0u16, |d| u16::try_from(d.as_secs().max(1)).unwrap_or(u16::MAX));
    let negotiated = Tune {
        channel_max: negotiate(CLIENT_CHANNEL_MAX, tune.channel_max),
        frame_max: negotiate(CLIENT_FRAME_MAX, tune.frame_max).max(codec::FRAME_MIN_SIZE),
        heartbeat: match negotiate(heartbeat_secs, tune.heartbeat) {
            0 => None,
            secs => Some(Duration::from_secs(u64::from(secs))),
        },
    };
    let mut out = BytesMut::new();
    codec::put_method(
        &mut out,
        0,
        AMQPClass::Connection(methods::connection::AMQPMethod::TuneOk(methods::connection::TuneOk {
            channel_max: negotiated.channel_max,
            frame_max: negotiated.frame_max,
            heartbeat: negotiated.heartbeat.map_or(0, |d| d.as_secs() as u16),
        })),
    )?;
    codec::put_method(
        &mut out,
        0,
        AMQPClass::Connection(methods::connection::AMQPMethod::Open(methods::connection::Open {
            virtual_host: short(url.virtual_host())?,
        })),
    )?;
    write.write_all(&out).await.map_err(w)?;
    match expect_connection_method(read_handshake_frame(read, buf, url).await?, url)? {
        methods::connection::AMQPMethod::OpenOk(_) => Ok((negotiated, server_properties)),
        methods::connection::AMQPMethod::Close(close) => {
            Err(handshake_close_error(&close, url, "virtual host"))
        }
        other => Err(Error::new(ErrorKind::Protocol, format!("expected connection.open-ok from {url}, got {other:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpStream;

    /// The handshake's first read against a peer that sends `reply`.
    async fn first_handshake_frame(reply: &'static [u8]) -> Result<Frame> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let peer = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            socket.write_all(reply).await.unwrap();
            // Stay open until the client is done reading.
            let mut rest = Vec::new();
            let _ = socket.read_to_end(&mut rest).await;
        });
        let url = BrokerUrl::parse(&format!("amqp://127.0.0.1:{port}")).unwrap();
        let (r, write) = TcpStream::connect(("127.0.0.1", port)).await.unwrap().into_split();
        let mut read = ReadSide::Tcp(r);
        let result = read_handshake_frame(&mut read, &mut BytesMut::new(), &url).await;
        drop(write);
        peer.await.unwrap();
        result
    }

    #[tokio::test]
    async fn a_broker_offering_another_protocol_is_named_as_such() {
        // What an AMQP 1.0 broker answers to a 0-9-1 protocol header.
        let err = first_handshake_frame(b"AMQP\x00\x01\x00\x00").await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Protocol);
        assert!(err.message().contains("does not speak AMQP 0-9-1 (it offered protocol 1.0.0)"), "{err}");
        // A real first frame still reads.
        let frame = first_handshake_frame(b"\x08\x00\x00\x00\x00\x00\x00\xce").await.unwrap();
        assert!(matches!(frame, Frame::Heartbeat), "{frame:?}");
    }
}
