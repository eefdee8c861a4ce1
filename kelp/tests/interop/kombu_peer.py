#!/usr/bin/env python3
"""Python Kombu as the peer of kelp's interop tests (kelp/tests/kombu_interop.rs).

publish URL QUEUE
    Reads one JSON object per line on stdin, each a message to publish with
    Kombu's Producer.publish to QUEUE through the default exchange:
    {"body": ..., "serializer": "json", "compression": null, "headers": {},
     "priority": 5, "expiration": 60.0, "correlation_id": "...",
     "reply_to": "...", "message_id": "...", "bytes_body": "<base64>"}
    ("bytes_body" replaces "body" with raw bytes, for the raw serializer.)
    Confirms are on, so every message is on the broker when this exits 0.
    Prints {"published": N}.

consume URL QUEUE COUNT ACCEPT
    Consumes COUNT messages from QUEUE with kombu.Consumer (ACCEPT is a
    comma-separated accept list), acks each and prints one JSON line per
    message: the decoded body (bytes as {"__bytes__": "<base64>"}), the
    content type and encoding, headers, properties and delivery info as Kombu
    sees them. A message Kombu refuses to decode is printed as
    {"decode_error": "<exception class>: ..."} and rejected.

Errors go to stderr with a non-zero exit status.
"""

import base64
import datetime
import decimal
import json
import socket
import sys
import uuid

from kombu import Connection, Consumer, Exchange, Producer, Queue

TIMEOUT = 30.0


def jsonable(value):
    """Python values Kombu decodes, as JSON the Rust side can compare."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"__bytes__": base64.b64encode(bytes(value)).decode()}
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return {"__datetime__": value.isoformat()}
    if isinstance(value, (decimal.Decimal, uuid.UUID)):
        return str(value)
    return value


def publish(url, queue_name):
    published = 0
    with Connection(url, transport_options={"confirm_publish": True}) as conn:
        producer = Producer(conn.channel(), exchange=Exchange(""), auto_declare=False)
        for line in sys.stdin:
            if not line.strip():
                continue
            spec = json.loads(line)
            body = spec.get("body")
            if "bytes_body" in spec:
                body = base64.b64decode(spec["bytes_body"])
            kwargs = {
                key: spec[key]
                for key in ("priority", "expiration", "correlation_id", "reply_to",
                            "message_id", "compression", "content_type",
                            "content_encoding")
                if spec.get(key) is not None
            }
            producer.publish(
                body,
                routing_key=queue_name,
                serializer=spec.get("serializer", "json"),
                headers=spec.get("headers") or {},
                delivery_mode=2,
                **kwargs,
            )
            published += 1
    print(json.dumps({"published": published}), flush=True)


def consume(url, queue_name, count, accept):
    seen = []

    def on_message(body, message):
        seen.append(describe(message, body))
        message.ack()

    def on_decode_error(message, exc):
        seen.append({"decode_error": f"{type(exc).__name__}: {exc}",
                     "content_type": message.content_type})
        message.reject()

    with Connection(url) as conn:
        queue = Queue(queue_name, no_declare=True)
        with Consumer(conn.channel(), queues=[queue], accept=accept.split(","),
                      callbacks=[on_message], on_decode_error=on_decode_error):
            while len(seen) < count:
                try:
                    conn.drain_events(timeout=TIMEOUT)
                except socket.timeout:
                    sys.exit(f"kombu peer: {len(seen)} of {count} messages after {TIMEOUT} s")
    for item in seen:
        print(json.dumps(item), flush=True)


def describe(message, body):
    info = message.delivery_info
    return {
        "body": jsonable(body),
        "content_type": message.content_type,
        "content_encoding": message.content_encoding,
        "headers": jsonable(message.headers),
        "properties": jsonable({k: v for k, v in message.properties.items()
                                if k != "application_headers"}),
        "delivery_info": {
            "exchange": info.get("exchange"),
            "routing_key": info.get("routing_key"),
            "redelivered": info.get("redelivered"),
        },
    }


def main(argv):
    if len(argv) >= 3 and argv[0] == "publish":
        publish(argv[1], argv[2])
    elif len(argv) == 5 and argv[0] == "consume":
        consume(argv[1], argv[2], int(argv[3]), argv[4])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
