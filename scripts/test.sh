#!/usr/bin/env bash
# kelp's whole test suite, set-up included: starts the brokers the tests need
# (RabbitMQ, Redis), then runs every test, doc test and example build of the
# workspace. Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
scripts/brokers.sh
cargo test --workspace --locked "$@"
