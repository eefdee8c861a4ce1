#!/usr/bin/env bash
# The reliability campaign's long form: every scenario of
# kelp-cli/tests/campaign_rabbit.rs (3-node RabbitMQ cluster in network
# namespaces, quorum and classic queues) and campaign_redis.rs (Redis with
# Sentinel, client partitions) with 20 fault rounds each, then a 30-minute
# soak with a random fault every 20-60 s. Needs root (namespaces, nft, tc).
#
#   scripts/campaign.sh                      # everything (about 3 hours)
#   KELP_CAMPAIGN_SCENARIOS=minority,pause scripts/campaign.sh
#   KELP_CAMPAIGN_ROUNDS=5 KELP_SOAK_SECS=600 scripts/campaign.sh
#
# Each scenario's report (the checker's counts, recovery times, footprint)
# is printed as a table and kept as one JSON line per scenario in
# target/campaign/results.jsonl; the whole log is target/campaign/log.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
scripts/brokers.sh
export KELP_CAMPAIGN_ROUNDS="${KELP_CAMPAIGN_ROUNDS:-20}"
export KELP_SOAK_SECS="${KELP_SOAK_SECS:-1800}"
mkdir -p target/campaign
status=0
cargo test -p kelp-cli --locked --test campaign_rabbit --test campaign_redis -- --nocapture --test-threads=1 \
    2>&1 | tee target/campaign/log || status=$?
grep '^CAMPAIGN ' target/campaign/log | sed 's/^CAMPAIGN //' > target/campaign/results.jsonl || true
echo "campaign: $(wc -l < target/campaign/results.jsonl) scenario reports in target/campaign/results.jsonl (exit $status)"
exit "$status"
