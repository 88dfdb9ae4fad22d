#!/usr/bin/env bash
# Builds (Release) and runs every benchmark, printing events/s, MB/s, CPU seconds per million events and peak RSS.
#   ./scripts/bench.sh            full sizes (the ingest run sends 5 million events: a few minutes)
#   QUICK=1 ./scripts/bench.sh    small sizes, for a smoke run
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/build.sh >/dev/null
B=build/bench
EVENTS=5000000
[ "${QUICK:-0}" = "1" ] && EVENTS=200000

run() { echo; echo "### $*"; "$@"; }

run $B/ingest/ingest_parse_bench --benchmark_counters_tabular=true
run $B/store/bench_store
run $B/aws/aws_sign_bench --benchmark_counters_tabular=true
run $B/objstore/upload_bench
run $B/pipeline/bench_export   # 5M events (QUICK=1: 500k), local dir + moto
# The whole server exporting one imported day (type=local): events per server CPU-second, ratio to isa-l alone.
run $B/pipeline/bench_export_process --events 300000 --runs $([ "${QUICK:-0}" = "1" ] && echo 1 || echo 3)
run $B/cloudimport/import_bench --events $(( EVENTS < 2000000 ? EVENTS : 2000000 ))   # gzip NDJSON in moto
run $B/load/bench_ingest_load --events "$EVENTS" --connections 8 --server-core 0
run $B/cluster/bench_cluster --nodes 3 --events $([ "${QUICK:-0}" = "1" ] && echo 30000 || echo 300000)  # ClickHouse 1x2 + ZooKeeper
