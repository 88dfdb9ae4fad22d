#!/usr/bin/env bash
# One command from a fresh Debian 12 machine: install packages, build, start Sluice on its defaults
# (data in ./data, listening on 127.0.0.1:8080). Arguments are passed to `sluice serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
./scripts/build.sh
exec ./build/sluice serve "$@"
