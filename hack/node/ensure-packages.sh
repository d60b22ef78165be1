#!/usr/bin/env bash
# Makes sure the Debian packages the local cluster's real node needs are
# installed: containerd and runc (the container runtime), the CNI plugins
# (pod networking on a bridge), iptables and iproute2 (the bridge and its
# NAT rules), and debootstrap (the code-server workspace image's root
# filesystem, see pkg/devenv/images).
#
# Idempotent: when every command is present it only prints their versions.
# As root it installs what is missing with apt-get (after apt-get update,
# since a fresh machine has no package lists). Not root: it says what is
# missing and exits 0, because the dev environment then runs without a node
# and says so itself (pkg/devenv: nodeUnavailable).
#
# Usage: hack/node/ensure-packages.sh
set -euo pipefail

log() { echo "ensure-node-packages: $*" >&2; }

# command -> package
declare -A pkg=(
  [containerd]=containerd
  [runc]=runc
  [iptables]=iptables
  [ip]=iproute2
  [debootstrap]=debootstrap
)
missing=()
for cmd in "${!pkg[@]}"; do
  if ! PATH="$PATH:/usr/sbin:/sbin" command -v "$cmd" >/dev/null 2>&1; then
    missing+=("${pkg[$cmd]}")
  fi
done
if [ ! -x /usr/lib/cni/bridge ] && [ ! -x /opt/cni/bin/bridge ]; then
  missing+=(containernetworking-plugins)
fi

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    log "missing ${missing[*]}; the local cluster runs without a node. As root:"
    log "  sudo apt-get update && sudo apt-get install -y --no-install-recommends ${missing[*]}"
    exit 0
  fi
  log "installing ${missing[*]} (apt-get update first: a fresh machine has no package lists) ..."
  start=$(date +%s)
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
  log "installed in $(( $(date +%s) - start ))s"
fi

log "$(containerd --version 2>/dev/null | awk '{print $1, $3}'), $(runc --version 2>/dev/null | head -1)"
