#!/usr/bin/env python3
"""Write the hand-made seed inputs of the fuzz targets into fuzz/seeds/.

The frames are what a RabbitMQ 3.x/4.x broker sends a client (handshake,
deliveries, confirms, closes), encoded here from the AMQP 0-9-1 spec so the
fuzzer starts from inputs that get past the first length checks. Run it
from anywhere: `python3 fuzz/gen_seeds.py`. Files are named `hand-*` so they
can be told apart from the minimised corpus that `cargo fuzz cmin` adds.
"""

import os
import struct

SEEDS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "seeds")

FRAME_METHOD, FRAME_HEADER, FRAME_BODY, FRAME_HEARTBEAT = 1, 2, 3, 8
FRAME_END = b"\xce"


def u8(n):
    return struct.pack(">B", n)


def u16(n):
    return struct.pack(">H", n)


def u32(n):
    return struct.pack(">I", n)


def u64(n):
    return struct.pack(">Q", n)


def shortstr(s):
    b = s.encode() if isinstance(s, str) else s
    return u8(len(b)) + b


def longstr(s):
    b = s.encode() if isinstance(s, str) else s
    return u32(len(b)) + b


# Field values: (type code, payload) pairs, built by these helpers.
def v_bool(b):
    return b"t" + u8(1 if b else 0)


def v_str(s):
    return b"S" + longstr(s)


def v_table(pairs):
    return b"F" + table(pairs)


def table(pairs):
    body = b"".join(shortstr(k) + v for k, v in pairs)
    return u32(len(body)) + body


def array(values):
    body = b"".join(values)
    return b"A" + u32(len(body)) + body


def frame(kind, channel, payload):
    return u8(kind) + u16(channel) + u32(len(payload)) + payload + FRAME_END


def method(channel, class_id, method_id, args=b""):
    return frame(FRAME_METHOD, channel, u16(class_id) + u16(method_id) + args)


def header(channel, body_size, flags, props=b"", class_id=60):
    payload = u16(class_id) + u16(0) + u64(body_size) + u16(flags) + props
    return frame(FRAME_HEADER, channel, payload)


def body(channel, data):
    return frame(FRAME_BODY, channel, data)


HEARTBEAT = frame(FRAME_HEARTBEAT, 0, b"")

# Every field type RabbitMQ or the spec defines, once.
EVERY_TYPE = [
    ("bool", b"t\x01"),
    ("i8", b"b\xff"),
    ("u8", b"B\xff"),
    ("i16-rabbit", b"s\xff\xfe"),
    ("i16-spec", b"U\x80\x00"),
    ("u16", b"u\xff\xfe"),
    ("i32", b"I" + struct.pack(">i", -123456)),
    ("u32", b"i\xff\xff\xff\xff"),
    ("i64", b"l" + struct.pack(">q", -(1 << 40))),
    ("u64", b"L" + struct.pack(">Q", 1 << 62)),
    ("f32", b"f" + struct.pack(">f", 1.5)),
    ("f64", b"d" + struct.pack(">d", -2.25)),
    ("decimal", b"D\x02" + struct.pack(">i", -1234)),
    ("text", v_str("héllo")),
    ("not-utf8", b"S" + longstr(b"\xc3\x28")),
    ("bytes", b"x" + longstr(b"\x00\x01\xff")),
    ("array", array([b"I\x00\x00\x00\x01", v_str("x"), b"V", array([b"t\x00"])])),
    ("timestamp", b"T" + u64(1_700_000_000)),
    ("nested", v_table([("deep", v_table([("n", b"B\x07")]))])),
    ("void", b"V"),
]

RABBIT_CAPABILITIES = v_table([
    ("publisher_confirms", v_bool(True)),
    ("exchange_exchange_bindings", v_bool(True)),
    ("basic.nack", v_bool(True)),
    ("consumer_cancel_notify", v_bool(True)),
    ("connection.blocked", v_bool(True)),
    ("consumer_priorities", v_bool(True)),
    ("authentication_failure_close", v_bool(True)),
    ("per_consumer_qos", v_bool(True)),
    ("direct_reply_to", v_bool(True)),
])

SERVER_PROPERTIES = table([
    ("capabilities", RABBIT_CAPABILITIES),
    ("cluster_name", v_str("rabbit@fuzz")),
    ("copyright", v_str("Copyright (c) 2007-2024 Broadcom Inc and/or its subsidiaries")),
    ("information", v_str("Licensed under the MPL 2.0. Website: https://rabbitmq.com")),
    ("platform", v_str("Erlang/OTP 26.2.5")),
    ("product", v_str("RabbitMQ")),
    ("version", v_str("3.13.7")),
])

CONNECTION_START = method(
    0, 10, 10,
    u8(0) + u8(9) + SERVER_PROPERTIES + longstr("AMQPLAIN PLAIN") + longstr("en_US"),
)
CONNECTION_TUNE = method(0, 10, 30, u16(2047) + u32(131072) + u16(60))
CONNECTION_OPEN_OK = method(0, 10, 41, shortstr(""))

# Basic properties, every flag set, in spec order.
ALL_PROPS_FLAGS = 0xFFFC
ALL_PROPS = (
    shortstr("application/json")
    + shortstr("utf-8")
    + table([("compression", v_str("application/x-gzip")), ("x-death", array([v_table([("count", b"l" + u64(1))])]))])
    + u8(2)
    + u8(5)
    + shortstr("corr-1")
    + shortstr("amq.rabbitmq.reply-to.g1h2AA5yZXBseUAxAAAX")
    + shortstr("60000")
    + shortstr("9c2b6f0e-2f1e-4c59-9d0c-6b0ac4d2f7a1")
    + u64(1_700_000_000)
    + shortstr("task")
    + shortstr("guest")
    + shortstr("celery")
    + shortstr("")
)
# What Kombu/py-amqp sends for a JSON task: type, encoding, headers, mode, priority.
KOMBU_PROPS_FLAGS = 0x8000 | 0x4000 | 0x2000 | 0x1000 | 0x0800
KOMBU_PROPS = (
    shortstr("application/json") + shortstr("utf-8") + table([]) + u8(2) + u8(0)
)

BODY = b'{"name": "cat.mp4", "size": 1048576}'


def deliver(channel, tag, delivery_tag, redelivered, exchange, routing_key):
    return method(
        channel, 60, 60,
        shortstr(tag) + u64(delivery_tag) + u8(redelivered) + shortstr(exchange) + shortstr(routing_key),
    )


FRAMES = {
    "handshake": CONNECTION_START + CONNECTION_TUNE + CONNECTION_OPEN_OK,
    "connection-start": CONNECTION_START,
    "heartbeat": HEARTBEAT,
    "heartbeats": HEARTBEAT * 3,
    "deliver": (
        deliver(1, "amq.ctag-abc", 1, 0, "media", "video")
        + header(1, len(BODY), KOMBU_PROPS_FLAGS, KOMBU_PROPS)
        + body(1, BODY)
    ),
    "deliver-all-properties": (
        deliver(1, "amq.ctag-abc", 2, 1, "", "q")
        + header(1, len(BODY), ALL_PROPS_FLAGS, ALL_PROPS)
        + body(1, BODY)
    ),
    "deliver-split-body": (
        deliver(3, "c", 7, 0, "ex", "rk")
        + header(3, 10, 0)
        + body(3, b"01234")
        + HEARTBEAT
        + body(3, b"56789")
    ),
    "deliver-empty-body": deliver(1, "c", 9, 0, "ex", "rk") + header(1, 0, 0),
    "get-ok": (
        method(1, 60, 71, u64(5) + u8(0) + shortstr("ex") + shortstr("rk") + u32(12))
        + header(1, 2, 0)
        + body(1, b"hi")
    ),
    "get-empty": method(1, 60, 72, shortstr("")),
    "return": (
        method(1, 60, 50, u16(312) + shortstr("NO_ROUTE") + shortstr("ex") + shortstr("nowhere"))
        + header(1, 1, 0x8000, shortstr("text/plain"))
        + body(1, b"x")
    ),
    "confirms": (
        method(1, 60, 80, u64(1) + u8(0))
        + method(1, 60, 80, u64(10) + u8(1))
        + method(1, 60, 120, u64(11) + u8(0))
    ),
    "channel-open-ok": method(1, 20, 11, longstr("")),
    "confirm-select-ok": method(1, 85, 11),
    "qos-ok": method(1, 60, 11),
    "consume-ok": method(1, 60, 21, shortstr("amq.ctag-abc")),
    "broker-cancel": method(1, 60, 30, shortstr("amq.ctag-abc") + u8(0)),
    "cancel-ok": method(1, 60, 31, shortstr("amq.ctag-abc")),
    "queue-declare-ok": method(1, 50, 11, shortstr("amq.gen-JzTY20BRgKO-HjmUJj0wLg") + u32(3) + u32(1)),
    "queue-purge-ok": method(1, 50, 31, u32(42)),
    "exchange-declare-ok": method(1, 40, 11),
    "channel-flow": method(1, 20, 20, u8(1)),
    "channel-close": method(
        1, 20, 40,
        u16(404) + shortstr("NOT_FOUND - no queue 'missing' in vhost '/'") + u16(50) + u16(10),
    ),
    "channel-close-ok": method(1, 20, 41),
    "connection-close": method(
        0, 10, 50,
        u16(320) + shortstr("CONNECTION_FORCED - broker forced connection closure with reason 'shutdown'")
        + u16(0) + u16(0),
    ),
    "connection-blocked": method(0, 10, 60, shortstr("low on memory")) + method(0, 10, 61),
    # Methods a broker does not send but the decoder accepts: these carry
    # field tables through amq-protocol's parser.
    "queue-declare-args": method(
        1, 50, 10,
        u16(0) + shortstr("q") + u8(0b0010)
        + table([("x-max-length", b"I" + u32(5)), ("x-queue-type", v_str("quorum"))]),
    ),
    "basic-consume-args": method(
        1, 60, 20,
        u16(0) + shortstr("q") + shortstr("tag") + u8(0) + table([("x-priority", b"I" + u32(10))]),
    ),
    "every-field-type": method(1, 40, 10, u16(0) + shortstr("ex") + shortstr("topic") + u8(0) + table(EVERY_TYPE)),
}

FIELD_TABLES = {
    "empty": table([]),
    "every-type": table(EVERY_TYPE),
    "server-properties": SERVER_PROPERTIES,
    "x-death": table([
        ("x-death", array([v_table([
            ("count", b"l" + u64(1)),
            ("reason", v_str("expired")),
            ("queue", v_str("work")),
            ("time", b"T" + u64(1_700_000_000)),
            ("exchange", v_str("")),
            ("routing-keys", array([v_str("work")])),
        ])])),
        ("x-first-death-reason", v_str("expired")),
    ]),
    "kombu-headers": table([
        ("compression", v_str("application/x-gzip")),
        ("lang", v_str("py")),
        ("task", v_str("proj.tasks.add")),
        ("id", v_str("9c2b6f0e-2f1e-4c59-9d0c-6b0ac4d2f7a1")),
        ("retries", b"I" + u32(0)),
        ("eta", b"V"),
        ("argsrepr", v_str("(2, 2)")),
    ]),
}

CONTENT_HEADERS = {
    "none": u16(60) + u16(0) + u64(0) + u16(0),
    "all-properties": u16(60) + u16(0) + u64(len(BODY)) + u16(ALL_PROPS_FLAGS) + ALL_PROPS,
    "kombu": u16(60) + u16(0) + u64(len(BODY)) + u16(KOMBU_PROPS_FLAGS) + KOMBU_PROPS,
    # Bit 0: another flag word follows (nothing is defined there for basic).
    "continued-flags": u16(60) + u16(0) + u64(1) + u16(0x8001) + u16(0x0001) + u16(0) + shortstr("text/plain"),
    "headers-every-type": u16(60) + u16(0) + u64(3) + u16(0x2000) + table(EVERY_TYPE),
}

URLS = {
    "amqp-default": "amqp://guest:guest@localhost:5672//",
    "amqps-list": "amqps://u:p%40x@h/%2Fv?heartbeat=10;amqp://b",
    "redis": "redis://:pw@localhost:6379/0",
    "memory": "memory://",
    "amqp-options": "amqp://u:p@h:5673/v?ssl=1&ssl_cert_reqs=CERT_REQUIRED&ssl_ca_certs=%2Fca.pem&connect_timeout=2.5&login_method=AMQPLAIN",
    "ipv6": "amqp://[fe80::1%25eth0]:5672/vhost",
    "pyamqp": "pyamqp://user@Host.Example.COM",
    "rediss": "rediss://h/15?ssl_check_hostname=false",
    "redis-socket": "redis+socket://:pw@/var/run/redis.sock?virtual_host=2",
    "sentinel-list": "sentinel://:pw@s1:26379/1; sentinel://s2;sentinel://s3:26380;",
    "odd-escapes": "amqp://us%40er:p%2F%3Aq@h/%zz%C3%BC?a=b+c&a=%FF",
}


def write(target, name, data):
    directory = os.path.join(SEEDS, target)
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "hand-" + name), "wb") as f:
        f.write(data)


def main():
    for name, data in FRAMES.items():
        write("frames", name, data)
    for name, data in FIELD_TABLES.items():
        write("field_table", name, data)
    for name, data in CONTENT_HEADERS.items():
        write("content_header", name, data)
    for name, text in URLS.items():
        write("url", name, text.encode())


if __name__ == "__main__":
    main()
