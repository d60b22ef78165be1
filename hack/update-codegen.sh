#!/usr/bin/env bash
# Regenerates everything k8s.io/code-generator writes for the guildnet.io API:
# deepcopy, defaults and conversions next to the types in apis/ (Go needs
# methods in the types' package), and OpenAPI, clientset, listers, informers
# and apply configurations under generated/. Never edit those files by hand.
set -o errexit -o nounset -o pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
module=$(go list -m)
# `go list -m` names a module's folder only once it is in the module cache,
# which a fresh machine's is not.
go mod download k8s.io/code-generator
codegen_pkg=$(go list -m -f '{{.Dir}}' k8s.io/code-generator)
if [ -z "$codegen_pkg" ]; then
  echo "update-codegen: k8s.io/code-generator is not in the module cache after go mod download; check GOPROXY and GOFLAGS" >&2
  exit 1
fi
boilerplate="$root/hack/boilerplate.go.txt"
# shellcheck source=/dev/null
source "$codegen_pkg/kube_codegen.sh"

echo "codegen: deepcopy, defaults, conversion"
kube::codegen::gen_helpers --boilerplate "$boilerplate" "$root/apis"

echo "codegen: openapi"
kube::codegen::gen_openapi \
    --output-dir "$root/generated/openapi" \
    --output-pkg "$module/generated/openapi" \
    --output-model-name-file zz_generated.model_name.go \
    --report-filename "$root/hack/api-rule-violations.list" \
    --update-report \
    --boilerplate "$boilerplate" \
    "$root/apis"

echo "codegen: clientset, listers, informers, applyconfigurations"
schema=$(mktemp)
trap 'rm -f "$schema"' EXIT
go run ./hack/models-schema > "$schema"
kube::codegen::gen_client \
    --with-watch \
    --with-applyconfig \
    --applyconfig-openapi-schema "$schema" \
    --output-dir "$root/generated" \
    --output-pkg "$module/generated" \
    --boilerplate "$boilerplate" \
    "$root/apis"
