#!/usr/bin/env bash
# Runs the vendor-SDK conformance tests against crm-mocks:
#   CRM_MOCKS=build/bin/crm-mocks tests/conformance/run.sh [FILE.test.mjs ...]
# The SDKs come from npm (package-lock.json); scripts/setup.sh installs them.
set -euo pipefail
cd "$(dirname "$0")"
: "${CRM_MOCKS:?set CRM_MOCKS to the crm-mocks binary, e.g. build/bin/crm-mocks}"
if [ ! -d node_modules ]; then
  echo "conformance: node_modules is missing; installing the SDKs from package-lock.json" >&2
  npm ci --no-audit --no-fund --loglevel=error
fi
if [ "$#" -eq 0 ]; then set -- *.test.mjs; fi
exec node --test "$@"
