#!/usr/bin/env python3
"""Python Kombu peer of kelp's AMQP and Redis benchmarks.

Runs one workload against RabbitMQ (py-amqp, the default) or, with
``--transport redis``, against Redis through Kombu's Redis transport
(redis-py; the URL comes from ``--url`` or ``KELP_BENCH_BROKER_URL``), and
prints one JSON object on stdout:

    {"name": "kombu", "workload": "publish", "messages": N, "size": S,
     "elapsed_ns": ..., "cpu_ns": ..., "latencies_ns": [sorted...],
     "notes": [...], "versions": {...}}

or, on failure, {"error": "..."} with a non-zero exit status.

Only needs ``kombu`` (which brings ``amqp``, py-amqp): ``pip install kombu``.

Workloads (same parameters as the Rust peers in ``benches/src``):

publish
    N persistent messages of SIZE bytes to a fresh durable queue through the
    default exchange, with publisher confirms (Kombu transport option
    ``confirm_publish``). py-amqp waits for the broker's confirm inside every
    ``basic_publish``: one message in flight, whatever --window says.
    Latencies: the duration of each ``Producer.publish`` call, i.e.
    publish->confirm.
consume
    The queue is pre-filled with N messages (without confirms, then checked
    with a passive declare until the broker holds all N; not timed), then a
    ``kombu.Consumer`` with ``prefetch_count`` and manual acks drains it
    through ``Connection.drain_events``; every message is acked with
    ``message.ack()``. Timed from ``Consumer.consume()`` to the last ack.
    No latencies.
round_trip
    Publisher and consumer on two channels of one connection (no confirms):
    publish one persistent message, ``drain_events`` until the consumer
    receives it, record, ack; 100 unmeasured warm-up round trips first.
    Latencies: the round trips.

On Redis (``--transport redis``) the same workloads run on Kombu's virtual
transport: publish is one ``LPUSH`` round trip per ``Producer.publish`` (there
are no publisher confirms; the LPUSH reply is the confirm), or with
``--batch`` Kombu 5.7's ``Producer.batch(max_size=window)``, which buffers the
LPUSHes in a redis-py pipeline flushed every ``window`` messages (latencies
are then the duration of each ``publish`` call, not publish->stored).
Consume is ``BRPOP`` one message at a time, recorded in the ``unacked`` hash
and ``unacked_index`` zset (one pipeline round trip), acked with ZREM+HDEL
(another), ``prefetch_count`` bounding the unacked. round_trip is AMQP only.

CPU time is ``resource.getrusage(RUSAGE_SELF)`` user + system over the timed
part, for the whole interpreter.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time

ROUND_TRIP_WARMUP = 100
STEP_TIMEOUT = 60.0


def fail(message: str, status: int = 2) -> None:
    print(json.dumps({"error": message}))
    sys.stdout.flush()
    sys.exit(status)


try:
    import amqp
    import kombu
    from kombu import Connection, Consumer, Producer, Queue
except ImportError as exc:  # pragma: no cover - depends on the environment
    fail(f"kombu is not importable by {sys.executable} ({exc}); install it with `pip install kombu`", 3)


def cpu_ns() -> int:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return int((usage.ru_utime + usage.ru_stime) * 1e9)


def connect(args: argparse.Namespace, confirm: bool) -> Connection:
    if args.transport == "redis":
        conn = Connection(args.url, connect_timeout=10)
        try:
            conn.connect()
        except Exception as exc:  # noqa: BLE001 - any failure means "not reachable"
            fail(f"kombu: cannot connect to Redis at {conn.as_uri()} ({exc!r})")
        return conn
    conn = Connection(
        hostname=args.host,
        port=args.port,
        userid=args.user,
        password=args.password,
        virtual_host=args.vhost,
        transport="pyamqp",
        connect_timeout=10,
        transport_options={"confirm_publish": confirm},
    )
    try:
        conn.connect()
    except Exception as exc:  # noqa: BLE001 - any failure means "not reachable"
        fail(f"kombu: cannot connect to RabbitMQ at amqp://{args.host}:{args.port}/ ({exc!r})")
    return conn


def queue_name(workload: str) -> str:
    return f"kelp-bench-kombu-{workload}-{os.getpid()}-{time.time_ns()}"


def fresh_queue(channel, name: str) -> None:
    channel.queue_declare(queue=name, durable=True, auto_delete=False)
    channel.queue_purge(queue=name)


def delete_queue(channel, name: str) -> None:
    # On Redis a queue declared without a binding is not deleted by
    # queue_delete (Kombu deletes per binding): purge its lists first.
    channel.queue_purge(queue=name)
    channel.queue_delete(queue=name)


def publish_args(size: int) -> tuple[bytes, dict]:
    body = b"k" * size
    # Raw bytes: no serializer, as the Rust peers send them.
    options = {
        "content_type": "application/octet-stream",
        "content_encoding": "binary",
        "delivery_mode": 2,
    }
    return body, options


def versions(args) -> dict:
    found = {"python": sys.version.split()[0], "kombu": kombu.__version__}
    if args.transport == "redis":
        import redis

        found["redis-py"] = redis.__version__
    else:
        found["amqp"] = amqp.__version__
    return found


def result(workload, args, messages, elapsed_ns, cpu, latencies, notes):
    latencies.sort()
    return {
        "name": "kombu-batch" if args.batch and workload == "publish" else "kombu",
        "workload": workload,
        "messages": messages,
        "size": args.size,
        "elapsed_ns": elapsed_ns,
        "cpu_ns": cpu,
        "latencies_ns": latencies,
        "notes": notes,
        "versions": versions(args),
    }


def run_publish(args):
    conn = connect(args, confirm=True)
    channel = conn.channel()
    name = queue_name("publish")
    fresh_queue(channel, name)
    producer = Producer(channel, routing_key=name)
    body, options = publish_args(args.size)
    latencies = []
    clock = time.perf_counter_ns

    cpu0 = cpu_ns()
    start = clock()
    if args.batch:
        with producer.batch(max_size=args.window):
            for _ in range(args.messages):
                sent = clock()
                producer.publish(body, routing_key=name, **options)
                latencies.append(clock() - sent)
    else:
        for _ in range(args.messages):
            sent = clock()
            producer.publish(body, routing_key=name, **options)
            latencies.append(clock() - sent)
    elapsed = clock() - start
    cpu = cpu_ns() - cpu0

    if args.transport == "redis":
        _, held, _ = channel.queue_declare(queue=name, passive=True)
        if held != args.messages:
            fail(f"kombu: the queue holds {held} messages after publishing, expected {args.messages}")
    delete_queue(channel, name)
    conn.release()
    if args.transport == "redis" and args.batch:
        notes = [f"Producer.batch(max_size={args.window}): LPUSHes buffered in a redis-py pipeline"]
    elif args.transport == "redis":
        notes = ["one LPUSH round trip per Producer.publish (one in flight)"]
    else:
        notes = [
            "py-amqp confirms each publish synchronously (one in flight); "
            f"the window of {args.window} does not apply",
        ]
    return result("publish", args, args.messages, elapsed, cpu, latencies, notes)


def fill(channel, name: str, count: int, size: int) -> None:
    """Publish `count` messages without confirms and wait until the broker holds them."""
    producer = Producer(channel, routing_key=name)
    body, options = publish_args(size)
    for _ in range(count):
        producer.publish(body, routing_key=name, **options)
    deadline = time.monotonic() + STEP_TIMEOUT
    while True:
        _, held, _ = channel.queue_declare(queue=name, passive=True)
        if held >= count:
            return
        if time.monotonic() > deadline:
            fail(f"kombu: the queue holds {held} messages after filling, expected {count}")
        time.sleep(0.01)


def run_consume(args):
    conn = connect(args, confirm=False)
    setup = conn.channel()
    name = queue_name("consume")
    fresh_queue(setup, name)
    fill(setup, name, args.messages, args.size)

    channel = conn.channel()
    queue = Queue(name, durable=True, auto_delete=False, no_declare=True)
    received = 0
    bad_size = []

    def on_message(message):
        nonlocal received
        if len(message.body) != args.size:
            bad_size.append(len(message.body))
        message.ack()
        received += 1

    consumer = Consumer(channel, queues=[queue], on_message=on_message,
                        prefetch_count=args.prefetch, no_ack=False, auto_declare=False)
    clock = time.perf_counter_ns

    cpu0 = cpu_ns()
    start = clock()
    consumer.consume()
    while received < args.messages:
        conn.drain_events(timeout=STEP_TIMEOUT)
    elapsed = clock() - start
    cpu = cpu_ns() - cpu0

    if bad_size:
        fail(f"kombu: got a {bad_size[0]} byte body, expected {args.size}")
    consumer.cancel()
    delete_queue(setup, name)
    conn.release()
    notes = [f"Consumer(on_message=..., prefetch_count={args.prefetch}), message.ack() per message"]
    return result("consume", args, args.messages, elapsed, cpu, [], notes)


def run_round_trip(args):
    conn = connect(args, confirm=False)
    publisher = conn.channel()
    name = queue_name("round_trip")
    fresh_queue(publisher, name)
    producer = Producer(publisher, routing_key=name)
    body, options = publish_args(args.size)

    channel = conn.channel()
    queue = Queue(name, durable=True, auto_delete=False, no_declare=True)
    arrivals = []

    def on_message(message):
        arrivals.append((time.perf_counter_ns(), message))

    consumer = Consumer(channel, queues=[queue], on_message=on_message,
                        prefetch_count=args.prefetch, no_ack=False, auto_declare=False)
    consumer.consume()
    clock = time.perf_counter_ns
    latencies = []
    cpu0 = cpu_ns()
    start = clock()
    for i in range(ROUND_TRIP_WARMUP + args.round_trips):
        if i == ROUND_TRIP_WARMUP:
            cpu0 = cpu_ns()
            start = clock()
        sent = clock()
        producer.publish(body, routing_key=name, **options)
        while not arrivals:
            conn.drain_events(timeout=STEP_TIMEOUT)
        received, message = arrivals.pop()
        if i >= ROUND_TRIP_WARMUP:
            latencies.append(received - sent)
        message.ack()
    elapsed = clock() - start
    cpu = cpu_ns() - cpu0

    consumer.cancel()
    publisher.queue_delete(queue=name)
    conn.release()
    notes = [f"{ROUND_TRIP_WARMUP} warm-up round trips not measured"]
    return result("round_trip", args, args.round_trips, elapsed, cpu, latencies, notes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("workload", choices=["publish", "consume", "round_trip"])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5672)
    parser.add_argument("--user", default="guest")
    parser.add_argument("--password", default=os.environ.get("KELP_BENCH_PASSWORD", "guest"))
    parser.add_argument("--vhost", default="/")
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--size", type=int, default=100)
    parser.add_argument("--window", type=int, default=1_000)
    parser.add_argument("--prefetch", type=int, default=1_000)
    parser.add_argument("--round-trips", type=int, default=2_000)
    parser.add_argument("--transport", choices=["amqp", "redis"], default="amqp")
    parser.add_argument("--url", default=os.environ.get("KELP_BENCH_BROKER_URL", "redis://127.0.0.1:6379/0"),
                        help="the Redis URL (with --transport redis)")
    parser.add_argument("--batch", action="store_true",
                        help="publish through Producer.batch(max_size=window) (Redis only)")
    args = parser.parse_args()
    if args.transport == "redis" and args.workload == "round_trip":
        fail("kombu: the round_trip workload is AMQP only")
    if args.batch and args.transport != "redis":
        fail("kombu: --batch is for --transport redis")

    runners = {"publish": run_publish, "consume": run_consume, "round_trip": run_round_trip}
    try:
        report = runners[args.workload](args)
    except SystemExit:
        raise
    except Exception as exc:  # noqa: BLE001 - report any failure as JSON
        import traceback

        traceback.print_exc(file=sys.stderr)
        fail(f"kombu: {args.workload} failed: {exc!r}")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
