#!/usr/bin/env bash
# Make sure the brokers kelp's tests talk to are running on this machine:
# RabbitMQ on 127.0.0.1:5672 and Redis on 127.0.0.1:6379 (Debian packages).
# Starts whichever is down and waits until it answers; fails loudly otherwise.
set -euo pipefail

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

if ! port_open 6379; then
  echo "brokers: starting redis-server on 127.0.0.1:6379" >&2
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
fi
for _ in $(seq 1 50); do port_open 6379 && break; sleep 0.2; done
port_open 6379 || { echo "brokers: Redis did not come up on 127.0.0.1:6379" >&2; exit 1; }

if ! port_open 5672; then
  echo "brokers: starting RabbitMQ (rabbitmq-server -detached)" >&2
  rabbitmq-server -detached
fi
timeout 120 rabbitmqctl await_startup >/dev/null 2>&1 || true
for _ in $(seq 1 120); do port_open 5672 && break; sleep 1; done
port_open 5672 || { echo "brokers: RabbitMQ did not come up on 127.0.0.1:5672" >&2; exit 1; }
echo "brokers: RabbitMQ and Redis are up" >&2
