#!/usr/bin/env bash
# Fails when the generated code in apis/ or generated/ is not what
# hack/update-codegen.sh makes from the current types. It regenerates into a
# copy of the tree, so the working tree is never touched.
set -o errexit -o nounset -o pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Copy what git knows about (tracked and untracked-but-not-ignored files).
(cd "$root" && git ls-files -z --cached --others --exclude-standard) |
  (cd "$root" && xargs -0 cp --parents -t "$tmp" 2>/dev/null || true)
# Generated files absent from the copy would hide a stale deletion; start clean.
(cd "$tmp" && "$tmp/hack/update-codegen.sh" >/dev/null)

status=0
for dir in apis generated hack/api-rule-violations.list; do
  if ! diff -Naupr "$root/$dir" "$tmp/$dir" >"$tmp/diff.txt" 2>&1; then
    echo "verify-codegen: $dir is out of date; run hack/update-codegen.sh and commit the result:" >&2
    head -n 60 "$tmp/diff.txt" >&2
    status=1
  fi
done
[ $status -eq 0 ] && echo "verify-codegen: generated code is up to date"
exit $status
