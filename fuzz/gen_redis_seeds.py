#!/usr/bin/env python3
"""Write the hand-made seeds of the `redis_envelope` fuzz target into
fuzz/seeds/redis_envelope/: real envelopes that Kombu's Redis transport
LPUSHed, read back with LRANGE.

Needs kombu and redis-py (the repository's interop venv has both) and a
Redis server to publish to, given as a URL (use a scratch server: the
script flushes the database it is given):

    .venv-interop/bin/python fuzz/gen_redis_seeds.py redis://127.0.0.1:6390/0

Files are named `hand-kombu-*` so they can be told apart from the
minimised corpus that `cargo fuzz cmin` adds.
"""

import datetime
import os
import sys
import uuid

import kombu
import redis

SEEDS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "seeds", "redis_envelope")


# Envelopes other producers write, which kelp reads too: a numeric
# delivery tag, a body without body_encoding, numbers where text goes.
EDGES = {
    "numeric-tag": b'{"body": "aGk=", "headers": {}, "properties": {"body_encoding": "base64", "delivery_tag": 42, "delivery_info": {"exchange": "", "routing_key": "q"}}}',
    "plain-body": b'{"body": "{\\"a\\": 1}", "content-type": "application/json", "properties": {"priority": 3.0, "correlation_id": 17, "timestamp": 1.7e9}}',
    "minimal": b'{"properties": {}}',
}


def main():
    url = sys.argv[1]
    os.makedirs(SEEDS, exist_ok=True)
    for name, raw in EDGES.items():
        with open(os.path.join(SEEDS, f"hand-edge-{name}"), "wb") as f:
            f.write(raw)
    client = redis.Redis.from_url(url)
    client.flushdb()
    os.makedirs(SEEDS, exist_ok=True)
    with kombu.Connection(url) as conn:
        exchange = kombu.Exchange("seeds", type="direct")
        topic = kombu.Exchange("seeds.topic", type="topic")
        queue = kombu.Queue("seeds", exchange, routing_key="seeds", max_priority=9)
        tq = kombu.Queue("seeds.t", topic, routing_key="a.#")
        queue(conn.default_channel).declare()
        tq(conn.default_channel).declare()
        producer = conn.Producer(exchange=exchange, routing_key="seeds")
        cases = {
            "json": (({"hello": "world", "n": [1, 2.5, None, True]},), {}),
            "text": (("plain text é ✓",), {"serializer": None, "content_type": "text/plain", "content_encoding": "utf-8"}),
            "binary": ((bytes(range(256)),), {"content_type": "application/data", "content_encoding": "binary"}),
            "priority": (({"p": 7},), {"priority": 7}),
            "props": (
                ({"props": 1},),
                {
                    "correlation_id": str(uuid.uuid4()),
                    "reply_to": "replies",
                    "expiration": 60.5,
                    "message_id": "m-1",
                    "type": "kind",
                    "app_id": "seeds",
                    "user_id": "guest",
                    "timestamp": 1700000000,
                },
            ),
            "headers": (
                ({"h": 1},),
                {"headers": {"int": 3, "float": 1.5, "list": [1, "a"], "map": {"x": None}, "big": 2**63 + 5, "neg": -7}},
            ),
            "gzip": (({"zipped": "x" * 200},), {"compression": "zlib"}),
            "bz2": (({"bz2": "y" * 200},), {"compression": "bzip2"}),
            "transient": (({"t": 1},), {"delivery_mode": 1}),
            "yaml": (({"y": [1, 2]},), {"serializer": "yaml"}),
            "msgpack": (({"m": "p"},), {"serializer": "msgpack"}),
            "pickle-free-empty": (("",), {"serializer": None, "content_type": "text/plain", "content_encoding": "utf-8"}),
            "celery-task": (
                ([[2, 2], {}, {"callbacks": None, "errbacks": None, "chain": None, "chord": None}],),
                {
                    "headers": {
                        "lang": "py",
                        "task": "tasks.add",
                        "id": str(uuid.uuid4()),
                        "shadow": None,
                        "eta": datetime.datetime(2030, 1, 1).isoformat(),
                        "expires": None,
                        "group": None,
                        "retries": 0,
                        "timelimit": [None, None],
                        "root_id": None,
                        "parent_id": None,
                        "argsrepr": "(2, 2)",
                        "kwargsrepr": "{}",
                        "origin": "gen1@seeds",
                        "ignore_result": False,
                    },
                    "correlation_id": str(uuid.uuid4()),
                    "reply_to": str(uuid.uuid4()),
                },
            ),
        }
        for name, (args, kwargs) in cases.items():
            producer.publish(*args, **kwargs)
            raws = []
            for key in client.keys("seeds*"):
                if client.type(key) == b"list":
                    raws += client.lrange(key, 0, -1)
                    client.delete(key)
            assert len(raws) == 1, (name, raws)
            with open(os.path.join(SEEDS, f"hand-kombu-{name}"), "wb") as f:
                f.write(raws[0])
        conn.Producer(exchange=topic).publish({"topic": True}, routing_key="a.b.c")
        raw = client.lrange("seeds.t", 0, -1)
        assert len(raw) == 1, raw
        with open(os.path.join(SEEDS, "hand-kombu-topic"), "wb") as f:
            f.write(raw[0])
        # What Kombu's restore writes back: the unacked record's payload with
        # the redelivered marks (a consumer that takes a message and dies).
        producer.publish({"restored": 1})
        with kombu.Connection(url) as other:
            other.SimpleQueue(queue).get(timeout=5)  # not acked: restored at close
        raws = client.lrange("seeds", 0, -1)
        assert len(raws) == 1, raws
        with open(os.path.join(SEEDS, "hand-kombu-restored"), "wb") as f:
            f.write(raws[0])
    client.flushdb()
    print("wrote", len(os.listdir(SEEDS)), "files to", SEEDS)


if __name__ == "__main__":
    main()
