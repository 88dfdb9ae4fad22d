#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan+UBSan) and runs each for N seconds (default 60), starting from the
# committed seed corpus in fuzz/corpus/<target>/ (and the dictionary fuzz/<target>.dict when there is one). New
# inputs go to build-fuzz/corpus/<target>/ so the committed seeds stay small; crashes are written to
# build-fuzz/artifacts/<target>/ and fail the script.
#   scripts/fuzz.sh [seconds] [target...]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then targets=(fuzz_ingest_events fuzz_engage fuzz_where); fi
build=build-fuzz
jobs="${FUZZ_BUILD_JOBS:-2}"

CC=clang CXX=clang++ cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSLUICE_FUZZ=ON \
  -DSLUICE_BUILD_TESTS=OFF -DSLUICE_BUILD_BENCH=OFF >/dev/null
cmake --build "$build" -j"$jobs" --target "${targets[@]}"

status=0
for t in "${targets[@]}"; do
  mkdir -p "$build/corpus/$t" "$build/artifacts/$t"
  echo "== $t: ${seconds}s"
  dict=()
  if [ -f "fuzz/$t.dict" ]; then dict=(-dict="fuzz/$t.dict"); fi
  if ! "$build/fuzz/$t" "${dict[@]}" -max_total_time="$seconds" -print_final_stats=1 -max_len=65536 -timeout=10 \
      -rss_limit_mb=4096 -artifact_prefix="$build/artifacts/$t/" "$build/corpus/$t" "fuzz/corpus/$t"; then
    echo "!! $t found a problem; see $build/artifacts/$t/" >&2
    status=1
  fi
done
exit $status
