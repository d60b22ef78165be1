#!/usr/bin/env bash
# Makes sure Debian's Chromium is at /usr/bin/chromium, the only browser the
# browser tests use (playwright-core drives it; Playwright's own browser
# downloads cannot work here: they come from a CDN that is not reachable).
#
# Idempotent: when /usr/bin/chromium exists this only prints its version.
# As root it installs the `chromium` package with apt-get (after apt-get
# update, since a fresh machine has no package lists); otherwise it fails
# with the command to run.
#
# Usage: hack/browser/ensure-chromium.sh
set -euo pipefail

chromium=/usr/bin/chromium
log() { echo "ensure-chromium: $*" >&2; }

if [ ! -x "$chromium" ]; then
  if [ "$(id -u)" != 0 ]; then
    log "$chromium is missing; install Debian's chromium package as root:"
    log "  sudo apt-get update && sudo apt-get install -y --no-install-recommends chromium fonts-liberation"
    exit 1
  fi
  log "installing Debian's chromium (apt-get update first: a fresh machine has no package lists) ..."
  start=$(date +%s)
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  # fonts-liberation: without a Latin font the workbench screenshots show tofu boxes.
  apt-get install -y -qq --no-install-recommends chromium fonts-liberation >&2
  log "installed chromium in $(( $(date +%s) - start ))s"
fi

if [ ! -x "$chromium" ]; then
  log "$chromium is still missing after apt-get install chromium"
  exit 1
fi
log "$("$chromium" --version 2>/dev/null || echo "$chromium (version unknown)")"
