#!/usr/bin/env bash
# Builds the upstream programs of the local control plane (etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler, kubelet) from the Go module proxy at
# the versions pinned in hack/tools/go.mod, into a cache folder keyed by those
# pins, and points _output/tools at it. A second run with the same pins only
# checks that the binaries are there.
#
# Usage: hack/build-tools.sh [program ...]   (default: etcd kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl)
# Env:   GUILDNET_TOOLS_CACHE  cache root (default ${XDG_CACHE_HOME:-$HOME/.cache}/guildnet/tools)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
tools="$root/hack/tools"
k8s_version=$(awk '$1=="k8s.io/kubernetes"{print $2}' "$tools/go.mod")
# Bump recipe when the build flags below change, so cached binaries are rebuilt.
recipe=1
key=$( (cat "$tools/go.mod" "$tools/go.sum"; echo "recipe=$recipe") | sha256sum | cut -c1-16)
cache_root=${GUILDNET_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/guildnet/tools}
bin="$cache_root/$key/bin"
mkdir -p "$bin" "$root/_output"
ln -sfn "$cache_root/$key" "$root/_output/tools"

programs=("$@")
[ ${#programs[@]} -gt 0 ] || programs=(etcd kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl)

# Without these stamps /version says v0.0.0-master and `kubectl version` fails.
major=${k8s_version#v}; major=${major%%.*}
minor=${k8s_version#v*.}; minor=${minor%%.*}
ldflags="-s -w \
 -X k8s.io/component-base/version.gitVersion=$k8s_version \
 -X k8s.io/component-base/version.gitMajor=$major \
 -X k8s.io/component-base/version.gitMinor=$minor \
 -X k8s.io/component-base/version.gitTreeState=clean \
 -X k8s.io/component-base/version.buildDate=1970-01-01T00:00:00Z \
 -X k8s.io/client-go/pkg/version.gitVersion=$k8s_version"

for p in "${programs[@]}"; do
  case "$p" in
    etcd) pkg=go.etcd.io/etcd/server/v3 ;;
    kube-apiserver|kube-controller-manager|kube-scheduler|kubelet|kubectl) pkg=k8s.io/kubernetes/cmd/$p ;;
    *) echo "build-tools: unknown program '$p' (known: etcd kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl)" >&2; exit 2 ;;
  esac
  if [ -x "$bin/$p" ]; then
    echo "build-tools: $p $k8s_version is cached in $bin"
    continue
  fi
  echo "build-tools: building $p from $pkg (a cold Go build cache takes minutes; kube-apiserver ~4 min on 2 cores) ..."
  start=$(date +%s)
  (cd "$tools" && CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$bin/.$p.tmp" "$pkg")
  mv "$bin/.$p.tmp" "$bin/$p"
  echo "build-tools: built $p in $(( $(date +%s) - start ))s"
done
