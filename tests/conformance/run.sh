#!/usr/bin/env bash
# Runs the vendor-SDK conformance tests against crm-mocks; exits 0 when all pass, 1 otherwise:
#   CRM_MOCKS=build/bin/crm-mocks tests/conformance/run.sh [FILE.test.mjs ...]
# The SDKs come from npm as package-lock.json pins them; installed here when missing.
set -uo pipefail
# CRM_MOCKS may be relative to the caller's directory: resolve it before leaving it.
if [ -z "${CRM_MOCKS:-}" ] || [ ! -x "$CRM_MOCKS" ]; then
  echo "conformance: set CRM_MOCKS to the crm-mocks binary, e.g. build/bin/crm-mocks" >&2
  exit 1
fi
export CRM_MOCKS="$(cd "$(dirname "$CRM_MOCKS")" && pwd)/$(basename "$CRM_MOCKS")"
cd "$(dirname "$0")" || exit 1

# npm writes node_modules/.package-lock.json last, so its absence also means an interrupted install.
install_sdks() {
  [ -f node_modules/.package-lock.json ] && return 0
  echo "conformance: installing the SDKs from package-lock.json (npm ci)" >&2
  npm ci --no-audit --no-fund --loglevel=error
}
if [ ! -f node_modules/.package-lock.json ]; then
  # ctest may start both test files at once: one npm ci at a time.
  if command -v flock >/dev/null; then
    (flock 9 && install_sdks) 9>"${TMPDIR:-/tmp}/crmbridge-conformance-npm.lock" || exit 1
  else
    install_sdks || exit 1
  fi
fi

if [ "$#" -eq 0 ]; then set -- *.test.mjs; fi
node --test "$@" || exit 1
