#!/usr/bin/env bash
# kelp's whole test suite, set-up included: starts the brokers the tests need
# (RabbitMQ, Redis) and the Python Kombu peer of the interop tests, then runs
# every test, doc test and example build of the workspace. Extra arguments go
# to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
scripts/brokers.sh
KELP_PYTHON="$(scripts/python-env.sh)"
export KELP_PYTHON
export KELP_BENCH_PYTHON="${KELP_BENCH_PYTHON:-$KELP_PYTHON}"
cargo test --workspace --all-features --locked "$@"
