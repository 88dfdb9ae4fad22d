#!/usr/bin/env bash
# Starts the loopback scale-out cluster the `cluster` tests use — ZooKeeper 3.8 and ClickHouse 18.16 from Debian
# (scripts/install-deps.sh --test), every server on 127.0.0.1 on free ports — and prints the URLs to give Sluice.
#
#   scripts/cluster.sh [start] [--shards N] [--replicas M] [--database DB]   (default 1 shard × 2 replicas)
#   scripts/cluster.sh status
#   scripts/cluster.sh stop
#
# The servers run under one supervisor process (build/tests/support/sluice_loopback_cluster, built on demand)
# whose PID is in $SLUICE_CLUSTER_DIR/cluster.pid (default /tmp/sluice-cluster); `stop` ends it by that PID and it
# stops every server by its PID. Data lives in $SLUICE_CLUSTER_DIR until the next start.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${SLUICE_CLUSTER_DIR:-/tmp/sluice-cluster}
TOOL=build/tests/support/sluice_loopback_cluster
cmd=${1:-start}
[ $# -gt 0 ] && shift

running_pid() {
  local pid
  pid=$(cat "$DIR/cluster.pid" 2>/dev/null) || return 1
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

case "$cmd" in
  start)
    if pid=$(running_pid); then
      echo "cluster.sh: already running (pid $pid):" >&2
      grep -v '^#' "$DIR/cluster.env"
      exit 0
    fi
    if [ ! -x "$TOOL" ]; then
      [ -f build/build.ninja ] || cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
      cmake --build build --target sluice_loopback_cluster >/dev/null
    fi
    rm -rf "$DIR"
    mkdir -p "$DIR"
    setsid "$TOOL" --dir "$DIR" "$@" >"$DIR/cluster.log" 2>&1 < /dev/null &
    echo $! >"$DIR/cluster.pid"
    # Bounded: the supervisor writes cluster.env once every server answers, or exits on failure.
    for _ in $(seq 1 900); do
      [ -f "$DIR/cluster.env" ] && break
      if ! running_pid >/dev/null; then
        echo "cluster.sh: the cluster did not start:" >&2
        cat "$DIR/cluster.log" >&2
        exit 1
      fi
      sleep 0.1
    done
    if [ ! -f "$DIR/cluster.env" ]; then
      echo "cluster.sh: not ready after 90 s; see $DIR/cluster.log" >&2
      kill "$(cat "$DIR/cluster.pid")" 2>/dev/null || true
      exit 1
    fi
    cat "$DIR/cluster.env"
    echo
    echo "Give Sluice: --store \"\$SLUICE_STORE\" --coordination \"\$SLUICE_COORDINATION\" after: . $DIR/cluster.env"
    echo "Stop with:   scripts/cluster.sh stop"
    ;;
  status)
    if pid=$(running_pid); then
      echo "running (pid $pid)"
      cat "$DIR/cluster.env" 2>/dev/null || true
    else
      echo "not running"
      exit 1
    fi
    ;;
  stop)
    if ! pid=$(running_pid); then
      echo "cluster.sh: not running"
      exit 0
    fi
    kill "$pid"
    # Bounded: the supervisor stops the servers (each with its own bounded wait) and exits.
    for _ in $(seq 1 600); do
      kill -0 "$pid" 2>/dev/null || { rm -f "$DIR/cluster.pid"; echo "stopped"; exit 0; }
      sleep 0.1
    done
    echo "cluster.sh: pid $pid still running after 60 s; sending SIGKILL (its servers die with it)" >&2
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$DIR/cluster.pid"
    ;;
  *)
    sed -n '2,12p' "$0" >&2
    exit 2
    ;;
esac
