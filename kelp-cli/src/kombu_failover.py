"""Kombu's side of `kelp bench --failover`: publish with confirms through a
failover, the way Kombu's failover guide does it, and report every confirmed
publish with its wall-clock time.

Usage: python kombu_failover.py URLS QUEUE SECONDS HEARTBEAT
Prints one JSON object per line: {"confirmed": id, "at": unix_time} for each
confirmed publish, and {"error": text, "at": unix_time} for each failure.
Stops after SECONDS.
"""

import json
import sys
import time

from kombu import Connection, Producer, Queue


def main():
    urls, queue_name, seconds, heartbeat = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
    conn = Connection(
        urls,
        heartbeat=heartbeat,
        failover_strategy="round-robin",
        transport_options={"confirm_publish": True, "max_retries": 10, "interval_start": 0,
                           "interval_step": 0.2, "interval_max": 1},
    )
    queue = Queue(queue_name, durable=True)
    producer = Producer(conn)
    def errback(exc, interval):
        print(json.dumps({"error": repr(exc), "at": time.time()}), flush=True)

    policy = {"max_retries": 100, "interval_start": 0, "interval_step": 0.2, "interval_max": 1,
              "errback": errback}
    conn.connect()
    print(json.dumps({"connected": conn.as_uri(), "at": time.time()}), flush=True)
    end = time.time() + seconds
    n = 0
    while time.time() < end:
        message_id = f"kombu-{n}"
        try:
            producer.publish(
                {"n": n},
                routing_key=queue_name,
                declare=[queue],
                delivery_mode=2,
                message_id=message_id,
                retry=True,
                retry_policy=policy,
                timeout=2,
                confirm_timeout=2,
            )
            print(json.dumps({"confirmed": message_id, "at": time.time()}), flush=True)
            n += 1
        except Exception as exc:  # noqa: BLE001 - report whatever Kombu raises
            print(json.dumps({"error": repr(exc), "at": time.time()}), flush=True)
            time.sleep(0.1)


if __name__ == "__main__":
    main()
