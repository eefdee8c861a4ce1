//! `kelp publish` and `kelp consume`.

use std::io::Write;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use clap::Args;
use serde_json::{Map, Value as Json, json};

use kelp::{
    Accept, Compression, Connection, DeliveryMode, Exchange, ExchangeKind, Message, Properties,
    Queue, Serializer, Value,
};

use crate::CliError;

/// The URL option shared by every command: `$KELP_URL`, else `memory://`.
#[derive(Args, Debug, Clone)]
pub struct UrlArg {
    /// Broker URL, or several separated by `;` for failover.
    #[arg(long, env = "KELP_URL", default_value = "memory://")]
    pub url: String,
}

/// Options of `kelp publish`.
#[derive(Args, Debug, Clone)]
pub struct PublishArgs {
    #[command(flatten)]
    pub url: UrlArg,
    /// Exchange to publish to ("" is the default exchange, routing by queue name).
    #[arg(long, default_value = "")]
    pub exchange: String,
    /// Type of the exchange, declared (durable) when it is not the default one.
    #[arg(long, value_parser = ["direct", "topic", "fanout", "headers"], default_value = "direct")]
    pub exchange_type: String,
    /// Routing key (with the default exchange it defaults to --queue).
    #[arg(long)]
    pub routing_key: Option<String>,
    /// Declare this durable queue and bind it to the exchange with the routing key.
    #[arg(long)]
    pub queue: Option<String>,
    /// Serializer for BODY: raw and text send its text as it is.
    #[arg(long, value_parser = ["json", "msgpack", "yaml", "raw", "text"], default_value = "json")]
    pub serializer: String,
    /// Compression: zlib (gzip), bzip2, lzma (xz), zstd or brotli.
    #[arg(long)]
    pub compression: Option<String>,
    /// A header, KEY=VALUE (the value is sent as text). Repeatable.
    #[arg(long = "header", value_name = "KEY=VALUE")]
    pub headers: Vec<String>,
    /// Publish the body this many times.
    #[arg(long, default_value_t = 1)]
    pub count: u64,
    /// Do not wait for publisher confirms.
    #[arg(long)]
    pub no_confirm: bool,
    /// Transient messages (delivery mode 1) instead of persistent.
    #[arg(long)]
    pub transient: bool,
    /// The message body, as JSON text (raw/text: any text).
    pub body: String,
}

/// Options of `kelp consume`.
#[derive(Args, Debug, Clone)]
pub struct ConsumeArgs {
    #[command(flatten)]
    pub url: UrlArg,
    /// Queue to consume from (declared durable if it does not exist).
    #[arg(long)]
    pub queue: String,
    /// Exit 0 after this many messages.
    #[arg(long)]
    pub count: Option<u64>,
    /// Give up after this many seconds: a failure when --count messages did
    /// not arrive in time, the normal end otherwise.
    #[arg(long)]
    pub timeout: Option<f64>,
    /// Consume without acknowledgements.
    #[arg(long)]
    pub no_ack: bool,
    /// Unacknowledged messages in flight.
    #[arg(long, default_value_t = 100)]
    pub prefetch: u16,
    /// Accepted serializers or content types, comma separated.
    #[arg(long, value_delimiter = ',')]
    pub accept: Option<Vec<String>>,
}

/// `kelp publish`: exit 0 only when every message was confirmed.
pub async fn publish(args: PublishArgs) -> Result<(), CliError> {
    let serializer = Serializer::from_name(&args.serializer)?;
    let compression = args.compression.as_deref().map(Compression::from_name).transpose()?;
    let body = encode_body(&args.body, &serializer)?;
    let mut headers = Vec::with_capacity(args.headers.len());
    for header in &args.headers {
        let (key, value) = header
            .split_once('=')
            .ok_or_else(|| CliError::usage(format!("--header needs KEY=VALUE, got '{header}'")))?;
        headers.push((key.to_owned(), value.to_owned()));
    }
    let routing_key = match (&args.routing_key, &args.queue) {
        (Some(key), _) => key.clone(),
        (None, Some(queue)) if args.exchange.is_empty() => queue.clone(),
        (None, _) => String::new(),
    };

    let conn = Connection::new(&args.url.url)?;
    let channel = conn.default_channel().await?;
    let exchange = Exchange::new(args.exchange.clone(), ExchangeKind::from_name(&args.exchange_type));
    if let Some(queue) = &args.queue {
        let mut queue = Queue::new(queue.clone());
        if !exchange.name.is_empty() {
            queue = queue.exchange(exchange.clone()).routing_key(routing_key.clone());
        }
        queue.declare(&channel).await?;
    }
    let producer = channel
        .producer()
        .exchange(exchange)
        .routing_key(routing_key)
        .confirms(!args.no_confirm)
        .build()
        .await?;
    let mode = if args.transient {
        DeliveryMode::Transient
    } else {
        DeliveryMode::Persistent
    };
    let mut pending = std::collections::VecDeque::new();
    for _ in 0..args.count {
        let mut publish = producer
            .publish_bytes(body.clone())
            .content_type(serializer.content_type().to_owned())
            .content_encoding(serializer.content_encoding().to_owned())
            .delivery_mode(mode);
        if let Some(method) = compression {
            publish = publish.compression(method);
        }
        for (key, value) in &headers {
            publish = publish.header(key.clone(), value.clone());
        }
        pending.push_back(publish.enqueue().await?);
        if pending.len() >= 1024
            && let Some(confirmation) = pending.pop_front() {
                confirmation.await?;
            }
    }
    for confirmation in pending {
        confirmation.await?;
    }
    conn.close().await?;
    Ok(())
}

/// BODY is JSON text; raw and text send the text's bytes unchanged.
fn encode_body(text: &str, serializer: &Serializer) -> Result<Bytes, CliError> {
    match serializer.name() {
        "raw" | "text" => Ok(Bytes::copy_from_slice(text.as_bytes())),
        _ => {
            let value: Json = serde_json::from_str(text)
                .map_err(|e| CliError::usage(format!("BODY is not valid JSON ({e}); use --serializer text for plain text")))?;
            Ok(serializer.encode(&value)?)
        }
    }
}

/// `kelp consume`: one JSON line per message on stdout, acked after printing.
pub async fn consume(args: ConsumeArgs) -> Result<(), CliError> {
    consume_to(args, &mut std::io::stdout()).await
}

/// `kelp consume` writing its lines to `out` (flushed after each message,
/// before the ack, so a line is never lost when the process dies).
pub async fn consume_to(args: ConsumeArgs, out: &mut (dyn Write + Send)) -> Result<(), CliError> {
    let conn = Connection::new(&args.url.url)?;
    let channel = conn.default_channel().await?;
    let queue = Queue::new(args.queue.clone());
    // Use the queue as it exists; declare it (durable, as publish does) only if missing.
    if let Err(e) = queue.inspect(&channel).await {
        if !e.is_not_found() {
            return Err(e.into());
        }
        queue.declare(&channel).await?;
    }
    let mut builder = channel
        .consumer([queue])
        .auto_declare(false)
        .no_ack(args.no_ack)
        .prefetch_count(args.prefetch);
    if let Some(accept) = &args.accept {
        builder = builder.accept(Accept::new(accept)?);
    }
    let mut consumer = builder.build().await?;
    let deadline = args
        .timeout
        .map(|secs| {
            if secs.is_finite() && secs >= 0.0 {
                Ok(tokio::time::Instant::now() + Duration::from_secs_f64(secs))
            } else {
                Err(CliError::usage(format!("--timeout must be a non-negative number, got {secs}")))
            }
        })
        .transpose()?;
    let mut received = 0u64;
    while args.count.is_none_or(|n| received < n) {
        let next = match deadline {
            Some(deadline) => match tokio::time::timeout_at(deadline, consumer.next()).await {
                Ok(next) => next,
                Err(_) => {
                    return match args.count {
                        Some(n) => Err(CliError::failure(format!(
                            "timed out after {}s: received {received} of {n} messages from '{}'",
                            args.timeout.unwrap_or_default(),
                            args.queue
                        ))),
                        None => Ok(()),
                    };
                }
            },
            None => consumer.next().await,
        };
        let Some(message) = next else {
            return Err(CliError::failure(format!("the consumer of '{}' was closed", args.queue)));
        };
        let message = message?;
        let line = render(&message)?;
        writeln!(out, "{line}")
            .and_then(|()| out.flush())
            .map_err(|e| CliError::failure(format!("cannot write the message out: {e}")))?;
        message.ack().await?;
        received += 1;
    }
    consumer.cancel().await?;
    conn.close().await?;
    Ok(())
}

/// The JSON line printed for a message.
pub fn render(message: &Message) -> Result<Json, CliError> {
    let body = render_body(message)?;
    let info = message.delivery_info();
    Ok(json!({
        "body": body,
        "content_type": message.content_type(),
        "content_encoding": message.content_encoding(),
        "headers": Json::Object(message.headers().iter().map(|(k, v)| (k.clone(), to_json(v))).collect()),
        "properties": render_properties(message.properties()),
        "delivery_info": {
            "exchange": info.exchange.as_str(),
            "routing_key": info.routing_key.as_str(),
            "redelivered": info.redelivered,
        },
    }))
}

/// JSON value for json/msgpack/yaml, a string for text, base64 for raw bytes.
fn render_body(message: &Message) -> Result<Json, CliError> {
    let payload = message.payload()?;
    Ok(match payload {
        Value::Bytes(bytes) => Json::String(base64::engine::general_purpose::STANDARD.encode(&bytes)),
        other => to_json(&other),
    })
}

fn render_properties(p: &Properties) -> Json {
    let mut map = Map::new();
    let mut put = |key: &str, value: Option<Json>| {
        if let Some(v) = value {
            map.insert(key.to_owned(), v);
        }
    };
    put("delivery_mode", p.delivery_mode.map(Json::from));
    put("priority", p.priority.map(Json::from));
    put("correlation_id", p.correlation_id.as_deref().map(Json::from));
    put("reply_to", p.reply_to.as_deref().map(Json::from));
    put("expiration", p.expiration.as_deref().map(Json::from));
    put("message_id", p.message_id.as_deref().map(Json::from));
    put("timestamp", p.timestamp.map(Json::from));
    put("type", p.kind.as_deref().map(Json::from));
    put("user_id", p.user_id.as_deref().map(Json::from));
    put("app_id", p.app_id.as_deref().map(Json::from));
    put("cluster_id", p.cluster_id.as_deref().map(Json::from));
    Json::Object(map)
}

/// A kelp value as plain JSON: bytes as base64, dates and UUIDs as text.
pub fn to_json(value: &Value) -> Json {
    match value {
        Value::Null => Json::Null,
        Value::Bool(b) => Json::Bool(*b),
        Value::Int(i) => Json::from(*i),
        Value::UInt(u) => Json::from(*u),
        Value::Timestamp(t) => Json::from(*t),
        Value::Float(f) => serde_json::Number::from_f64(*f).map_or(Json::Null, Json::Number),
        Value::String(s)
        | Value::Decimal(s)
        | Value::DateTime(s)
        | Value::Date(s)
        | Value::Time(s)
        | Value::Uuid(s) => Json::String(s.clone()),
        Value::Bytes(b) => Json::String(base64::engine::general_purpose::STANDARD.encode(b)),
        Value::Array(items) => Json::Array(items.iter().map(to_json).collect()),
        Value::Map(map) => Json::Object(map.iter().map(|(k, v)| (k.clone(), to_json(v))).collect()),
        _ => Json::String(value.to_string()),
    }
}
