#!/usr/bin/env bash
# Builds the portal UI into portal/ui/dist/, which is checked in and embedded
# into guildnet-portal (embed.go). Run it after changing anything under src/
# and commit dist/ with the change; verify.sh tells when that was forgotten.
#
# Needs node and npm (packages come from the npm registry, pinned by
# package-lock.json). Usage: portal/ui/build.sh
set -euo pipefail
cd "$(dirname "$0")"

npm ci --no-audit --no-fund --loglevel=error
npm run --silent typecheck
node build.mjs dist
echo "build: portal/ui/dist: $(du -sb dist | cut -f1) bytes" >&2
