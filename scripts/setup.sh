#!/usr/bin/env bash
# Installs what crmbridge needs from Debian 12 when it is missing, then configures and builds it
# into ./build. Safe to run again: it only does what is not done yet.
#
#   scripts/setup.sh            install packages if needed, configure, build
#   BUILD_DIR=out scripts/setup.sh
#   JOBS=4 scripts/setup.sh     parallel build jobs (default 2)

# --help: the comment above (to its first blank line), and nothing run.
case "${1:-}" in -h|--help) sed -n '2,/^$/s/^# \{0,1\}//p' "$0"; exit 0 ;; esac
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD_DIR=${BUILD_DIR:-build}
JOBS=${JOBS:-2}

# Build tools and libraries, all from Debian's archive (nothing is downloaded at configure time).
PACKAGES=(
  build-essential cmake pkg-config curl
  openssl  # its tests make certificates as an administrator would (openssl req)
  libcpprest-dev libssl-dev libboost-system-dev
  nlohmann-json3-dev libspdlog-dev libfmt-dev libyaml-cpp-dev libsqlite3-dev
  libcli11-dev libcpp-httplib-dev libgtest-dev libgmock-dev
  libpq-dev   # the PostgreSQL state store's client library
  libjemalloc-dev  # the allocator of crmbridge's programs (CRMBRIDGE_MALLOC in CMakeLists.txt)
  prometheus-cpp-dev  # the metrics' registry and text format
  postgresql  # its tests start a throwaway server of their own (initdb, postgres); no service is used
  chromium  # renders the HTML onboarding report in its test (headless, offline)
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Node.js and npm run the vendor-SDK conformance tests; a node already on the PATH (from Debian
# or elsewhere) is used as it is.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then missing+=(nodejs npm); fi
if ((${#missing[@]})); then
  echo "setup: installing missing Debian packages: ${missing[*]}"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "setup: need root or sudo to install packages" >&2; exit 1; }
    SUDO="sudo"
  fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

CMAKE_ARGS=(-DCMAKE_BUILD_TYPE=RelWithDebInfo)
# CI treats warnings as errors; local builds only show them.
if [ "${CI:-}" = "true" ]; then CMAKE_ARGS+=(-DCRMBRIDGE_WERROR=ON); fi

if [ ! -f "$BUILD_DIR/CMakeCache.txt" ]; then
  cmake -S . -B "$BUILD_DIR" "${CMAKE_ARGS[@]}" >/dev/null
else
  cmake -S . -B "$BUILD_DIR" "${CMAKE_ARGS[@]}" >/dev/null
fi
echo "setup: building in $BUILD_DIR with $JOBS jobs"
cmake --build "$BUILD_DIR" -j "$JOBS"

# The vendors' SDKs for the conformance tests, exactly as package-lock.json pins them.
conformance=tests/conformance
if [ ! -d "$conformance/node_modules" ] || [ "$conformance/package-lock.json" -nt "$conformance/node_modules" ]; then
  echo "setup: installing the vendor SDKs for the conformance tests (npm ci)"
  (cd "$conformance" && npm ci --no-audit --no-fund --loglevel=error) && touch "$conformance/node_modules"
fi
