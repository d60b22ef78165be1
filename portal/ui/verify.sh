#!/usr/bin/env bash
# For CI: type-checks src/ and test/, runs the unit tests (node's test
# runner), then fails when the checked-in portal/ui/dist/ is not what src/
# builds to: it builds into a temporary directory and compares the two byte
# for byte. After a "stale" failure, run portal/ui/build.sh and commit dist/.
#
# Needs node and npm. Usage: portal/ui/verify.sh
set -euo pipefail
cd "$(dirname "$0")"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

npm ci --no-audit --no-fund --loglevel=error
npm run --silent typecheck
npm test --silent
node build.mjs "$tmp/dist"
if ! diff -r dist "$tmp/dist" >"$tmp/diff" 2>&1; then
  echo "verify: portal/ui/dist is stale (it differs from a fresh build of src/):" >&2
  head -c 2000 "$tmp/diff" >&2 || true
  echo >&2
  echo "verify: run portal/ui/build.sh and commit portal/ui/dist" >&2
  exit 1
fi
echo "verify: portal/ui/dist is up to date" >&2
