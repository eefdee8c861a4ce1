#!/usr/bin/env python3
"""Python Kombu as the peer of kelp's interop tests (kelp/tests/kombu_interop.rs
over AMQP, kelp/tests/kombu_redis_interop.rs over Redis).

publish URL QUEUE [--options JSON] [--exchange NAME --exchange-type TYPE]
    Reads one JSON object per line on stdin, each a message to publish with
    Kombu's Producer.publish to QUEUE through the default exchange:
    {"body": ..., "serializer": "json", "compression": null, "headers": {},
     "priority": 5, "expiration": 60.0, "correlation_id": "...",
     "reply_to": "...", "message_id": "...", "timestamp": 1700000000,
     "bytes_body": "<base64>", "routing_key": "..."}
    ("bytes_body" replaces "body" with raw bytes, for the raw serializer;
    "routing_key" replaces QUEUE as the routing key.)
    With --exchange, Kombu first declares that exchange (of --exchange-type,
    default direct) in its own process (a Kombu publisher on Redis only
    knows the type of an exchange it declared) and publishes to it.
    Confirms are on (AMQP), so every message is on the broker when this
    exits 0. Prints {"published": N}.

consume URL QUEUE COUNT ACCEPT [options]
    Consumes COUNT messages from QUEUE with kombu.Consumer (ACCEPT is a
    comma-separated accept list), acks each and prints one JSON line per
    message: the decoded body (bytes as {"__bytes__": "<base64>"}), the
    content type and encoding, headers, properties and delivery info as Kombu
    sees them. A message Kombu refuses to decode is printed as
    {"decode_error": "<exception class>: ..."} and rejected.
    Options:
      --options JSON    Kombu transport_options (e.g. global_keyprefix).
      --bind EX:TYPE:KEY
                        declare QUEUE bound to exchange EX (of TYPE) with
                        KEY (repeatable); without it QUEUE is not declared.
      --ready           print {"ready": true} once consuming has started
                        (on Redis: after the first poll, so fanout queues are
                        subscribed), before any message line.
      --linger SECONDS  after COUNT messages, keep consuming this long; any
                        extra message is printed too (so "exactly COUNT" is
                        checkable).
      --until-idle SECONDS
                        ignore COUNT: consume until no message came for this
                        long.
      --prefetch N      basic.qos prefetch count.
      --delay SECONDS   sleep this long in the callback before acking.
      --requeue         requeue every message instead of acking it.

declare URL EXCHANGE TYPE [--options JSON] QUEUE=KEY...
    Declares EXCHANGE of TYPE and each QUEUE bound to it with KEY, as Kombu
    does (on Redis: the binding sets with Kombu's patterns). Prints
    {"declared": N}.

restore URL [--options JSON]
    Redis only: runs Kombu's own restore of overdue unacked messages once
    (channel.qos.restore_visible, what a Celery worker's event loop calls
    every few seconds) and prints {"restored": N}, N the unacked records it
    put back in their queues.

Errors go to stderr with a non-zero exit status.
"""

import base64
import datetime
import decimal
import json
import socket
import sys
import time
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


def parse_options(args, flags=("ready", "requeue"), repeatable=("bind",)):
    """Split ARGS into positional arguments and --options."""
    positional, options = [], {}
    i = 0
    while i < len(args):
        arg = args[i]
        if arg.startswith("--"):
            key = arg[2:].replace("-", "_")
            if key in flags:
                options[key] = True
                i += 1
                continue
            if i + 1 >= len(args):
                sys.exit(f"kombu peer: {arg} needs a value")
            if key in repeatable:
                options.setdefault(key, []).append(args[i + 1])
            else:
                options[key] = args[i + 1]
            i += 2
        else:
            positional.append(arg)
            i += 1
    return positional, options


def transport_options(options, **extra):
    result = dict(extra)
    if "options" in options:
        result.update(json.loads(options["options"]))
    return result


def publish(url, queue_name, options=None):
    options = options or {}
    published = 0
    topts = transport_options(options, confirm_publish=True)
    with Connection(url, transport_options=topts) as conn:
        channel = conn.channel()
        if "exchange" in options:
            exchange = Exchange(options["exchange"],
                                type=options.get("exchange_type", "direct"))
            exchange.declare(channel=channel)
        else:
            exchange = Exchange("")
        producer = Producer(channel, exchange=exchange, auto_declare=False)
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
                            "content_encoding", "timestamp")
                if spec.get(key) is not None
            }
            producer.publish(
                body,
                routing_key=spec.get("routing_key", queue_name),
                serializer=spec.get("serializer", "json"),
                headers=spec.get("headers") or {},
                delivery_mode=2,
                **kwargs,
            )
            published += 1
    print(json.dumps({"published": published}), flush=True)


def consume(url, queue_name, count, accept, options=None):
    options = options or {}
    seen = []
    delay = float(options.get("delay", 0))

    def on_message(body, message):
        seen.append(describe(message, body))
        if delay:
            time.sleep(delay)
        if options.get("requeue"):
            message.requeue()
        else:
            message.ack()

    def on_decode_error(message, exc):
        seen.append({"decode_error": f"{type(exc).__name__}: {exc}",
                     "content_type": message.content_type})
        message.reject()

    until_idle = options.get("until_idle")
    linger = float(options.get("linger", 0))
    with Connection(url, transport_options=transport_options(options)) as conn:
        channel = conn.channel()
        if options.get("bind"):
            bindings = []
            for spec in options["bind"]:
                ex_name, ex_type, key = spec.split(":", 2)
                bindings.append((Exchange(ex_name, type=ex_type), key))
            queue = Queue(queue_name, exchange=bindings[0][0],
                          routing_key=bindings[0][1])
            queue = queue.bind(channel)
            queue.declare()
            for exchange, key in bindings[1:]:
                queue.bind_to(exchange=exchange, routing_key=key)
        else:
            queue = Queue(queue_name, no_declare=True)
        prefetch = int(options["prefetch"]) if options.get("prefetch") else None
        with Consumer(channel, queues=[queue], accept=accept.split(","),
                      callbacks=[on_message], on_decode_error=on_decode_error,
                      prefetch_count=prefetch):
            if options.get("ready"):
                # One poll registers the BRPOP / PSUBSCRIBE of the queue on
                # Redis, so what is published after this line reaches it.
                try:
                    conn.drain_events(timeout=0.3)
                except socket.timeout:
                    pass
                print(json.dumps({"ready": True}), flush=True)
            if until_idle is not None:
                while True:
                    try:
                        conn.drain_events(timeout=float(until_idle))
                    except socket.timeout:
                        break
            else:
                while len(seen) < count:
                    try:
                        conn.drain_events(timeout=TIMEOUT)
                    except socket.timeout:
                        for item in seen:
                            print(json.dumps(item), file=sys.stderr)
                        sys.exit(f"kombu peer: {len(seen)} of {count} messages after {TIMEOUT} s")
                deadline = time.monotonic() + linger
                while linger and time.monotonic() < deadline:
                    try:
                        conn.drain_events(timeout=max(0.05, deadline - time.monotonic()))
                    except socket.timeout:
                        break
    for item in seen:
        print(json.dumps(item), flush=True)


def declare(url, exchange_name, exchange_type, bindings, options=None):
    options = options or {}
    with Connection(url, transport_options=transport_options(options)) as conn:
        channel = conn.channel()
        exchange = Exchange(exchange_name, type=exchange_type)
        exchange.declare(channel=channel)
        for binding in bindings:
            queue_name, key = binding.split("=", 1)
            Queue(queue_name, exchange=exchange, routing_key=key).bind(channel).declare()
    print(json.dumps({"declared": len(bindings)}), flush=True)


def restore(url, options=None):
    options = options or {}
    with Connection(url, transport_options=transport_options(options)) as conn:
        channel = conn.channel()
        client = channel.client
        before = client.hlen(channel.unacked_key)
        channel.qos.restore_visible(num=100000)
        after = client.hlen(channel.unacked_key)
    print(json.dumps({"restored": before - after}), flush=True)


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
    args, options = parse_options(argv)
    if len(args) == 3 and args[0] == "publish":
        publish(args[1], args[2], options)
    elif len(args) == 5 and args[0] == "consume":
        consume(args[1], args[2], int(args[3]), args[4], options)
    elif len(args) == 2 and args[0] == "restore":
        restore(args[1], options)
    elif len(args) >= 4 and args[0] == "declare":
        declare(args[1], args[2], args[3], args[4:], options)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
