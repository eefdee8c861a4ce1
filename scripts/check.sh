#!/usr/bin/env bash
# The checks beside the test suite (CI runs both): clippy and rustdoc
# without warnings, kelp built with no default features and with each
# feature alone, and the tests of the AMQP-only and Redis-only builds.
# The layering (no import loops, no upward imports) is checked by
# kelp/tests/architecture.rs, part of the suite. Extra arguments: none.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*" >&2; }

step "clippy, every target and feature, warnings denied"
cargo clippy --workspace --all-targets --all-features --locked -- -D warnings

step "rustdoc, every feature, warnings denied"
RUSTDOCFLAGS="-D warnings" cargo doc -p kelp --all-features --no-deps --locked

step "kelp with no default features, and with each feature alone"
cargo check -p kelp --no-default-features --locked
for feature in amqp redis tls blocking msgpack yaml zlib bzip2 lzma zstd brotli; do
  step "kelp --features $feature"
  cargo check -p kelp --no-default-features --features "$feature" --locked
done
step "kelp-cli without its bench feature links no test support"
if cargo tree -p kelp-cli -e normal --locked | grep -q kelp-test-support; then
  echo "check: the kelp binary links kelp-test-support" >&2
  exit 1
fi

# The transports' own suites in builds that have only that transport (the
# slow fault suites run once, with every feature, in scripts/test.sh).
scripts/brokers.sh
KELP_PYTHON="$(scripts/python-env.sh)"
export KELP_PYTHON
step "tests of an AMQP-only build"
cargo test -p kelp --no-default-features --features amqp --locked \
  --lib --test amqp --test amqp_engine --test memory --test patterns --test pools --test worker --test architecture
step "tests of a Redis-only build"
cargo test -p kelp --no-default-features --features redis --locked \
  --lib --test redis --test redis_transport --test memory --test patterns --test pools --test worker
