#!/usr/bin/env bash
# One command from a fresh Debian 12 machine: install packages, build with warnings as errors, run the whole
# test suite (unit + integration against real servers on 127.0.0.1), then the unit tests and the in-process API
# test again under AddressSanitizer + UndefinedBehaviorSanitizer. Set SLUICE_SKIP_SANITIZE=1 to skip the sanitizer pass locally.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh --test

# moto (the AWS protocol server the integration tests start) is not packaged in Debian; the machine image
# ships it (see docs/operations.md#tests).
if ! python3 -c 'import moto, boto3' 2>/dev/null; then
  echo "test: python3 cannot import moto and boto3, which the integration tests need as the local AWS server." >&2
  echo "      They come with the project's machine image (moto 5.x, boto3); PyPI is not reachable here." >&2
  exit 1
fi

./scripts/build.sh -DSLUICE_WERROR=ON
ctest --test-dir build --output-on-failure -j 2 --timeout 600

if [ "${SLUICE_SKIP_SANITIZE:-0}" != "1" ]; then
  # The sanitizer pass builds only the test binaries it runs (the unit tests and the in-process API test), at
  # -O1 with light debug info: enough for useful ASan/UBSan reports, and it keeps CI well under 30 minutes.
  SANITIZED_TESTS=(common_test ingest_test store_test http_server_test http_transport_test aws_test
                   objstore_unit_test api_test expr_test pipeline_dataplane_test pipeline_engine_test
                   cloudimport_unit_test cloudimport_api_test console_api_test profiles_api_test
                   gcp_test objstore_gcs_unit_test azure_test clickhouse_test coord_test storage_access_test
                   jobs_test project_registry_test)
  cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG="-O1 -g1" \
        -DSLUICE_SANITIZE=ON -DSLUICE_WERROR=ON -DSLUICE_BUILD_BENCH=OFF >/dev/null
  cmake --build build-asan -j "${JOBS:-2}" --target "${SANITIZED_TESTS[@]}"
  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
    ctest --test-dir build-asan --output-on-failure -j 2 -E '_NOT_BUILT$' -LE 'node|cluster' --timeout 600
fi
