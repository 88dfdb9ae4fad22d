#!/usr/bin/env bash
# Installs every Debian 12 package Sluice needs to build, test and run. Run as root (or with sudo available).
#   scripts/install-deps.sh          what building and running Sluice needs
#   scripts/install-deps.sh --test   also the test tools: Debian's Chromium and Node.js, ClickHouse and ZooKeeper
#                                    (the loopback cluster), and the npm packages in tests/node (Mixpanel's
#                                    official SDKs, playwright-core, Azurite) pinned by its lockfile
set -euo pipefail
cd "$(dirname "$0")/.."
WITH_TEST_TOOLS=0
[ "${1:-}" = "--test" ] && WITH_TEST_TOOLS=1

PACKAGES=(
  build-essential cmake ninja-build pkg-config git ca-certificates curl openssl python3
  libssl-dev libcurl4-openssl-dev zlib1g-dev libdeflate-dev libisal-dev libzstd-dev libexpat1-dev
  librocksdb-dev libsimdjson-dev
  libboost1.81-dev libboost-json1.81-dev libboost-url1.81-dev
  libfmt-dev libspdlog-dev libcli11-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  clang libclang-rt-14-dev
  libzookeeper-mt-dev
  libgeoip-dev geoip-database
)
if [ "$WITH_TEST_TOOLS" = "1" ]; then
  PACKAGES+=(chromium)
  # The loopback scale-out cluster of the `cluster` tests and scripts/cluster.sh (docs/scale-out.md): Debian's
  # ClickHouse 18.16 and ZooKeeper 3.8 (Java), run as plain processes; their services are not used.
  PACKAGES+=(clickhouse-server clickhouse-client zookeeper)
  # Node.js and npm run the test oracles; a machine that already has a newer Node keeps it.
  command -v node >/dev/null || PACKAGES+=(nodejs)
  command -v npm >/dev/null || PACKAGES+=(npm)
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null; then SUDO="sudo"; else
    echo "install-deps: run as root (apt-get needs it), or install sudo" >&2; exit 1
  fi
fi

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PACKAGES[@]} packages already installed"
else
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if [ "$WITH_TEST_TOOLS" = "1" ]; then
  # Exactly the versions in tests/node/package-lock.json; nothing downloads a browser (Debian's Chromium is used).
  if ! (cd tests/node && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error >/dev/null); then
    echo "install-deps: npm ci in tests/node failed: the npm registry must be reachable for the test tools" >&2
    exit 1
  fi
  echo "install-deps: test tools in tests/node/node_modules"
fi
