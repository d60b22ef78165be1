#!/usr/bin/env bash
# Makes guildnet-apiserver's serving certificate and the APIService caBundle,
# as artifacts/README.md ("With openssl") describes step by step:
#   1. a CA (5 years), 2. a serving certificate for
#   guildnet-apiserver.guildnet-system.svc (1 year), 3. the Secret
#   guildnet-apiserver-serving (kubectl, current context), 4. the caBundle
#   patch in artifacts/ca-bundle-patch.yaml.
#
# Usage: hack/gen-serving-certs.sh [--out DIR] [--no-apply]
#   --out DIR    keep ca.key/ca.crt/tls.* in DIR (default: a private temp dir, printed)
#   --no-apply   skip step 3 (print the kubectl command instead)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
out="" apply=1
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=${2:?--out needs a folder}; shift 2 ;;
    --no-apply) apply=0; shift ;;
    *) echo "gen-serving-certs: unknown argument '$1' (see the header of $0)" >&2; exit 2 ;;
  esac
done
command -v openssl >/dev/null || { echo "gen-serving-certs: openssl is required (apt-get install openssl)" >&2; exit 1; }
[ -n "$out" ] || out=$(mktemp -d)
mkdir -p "$out" && chmod 700 "$out" && cd "$out"
svc=guildnet-apiserver.guildnet-system.svc

openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 -sha256 -days 1825 \
  -subj "/CN=guildnet-apiserver-ca" -keyout ca.key -out ca.crt \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
  -subj "/CN=$svc" -keyout tls.key -out tls.csr 2>/dev/null
cat > tls.ext <<EXT
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:$svc, DNS:$svc.cluster.local
EXT
openssl x509 -req -in tls.csr -CA ca.crt -CAkey ca.key -CAcreateserial -sha256 -days 365 \
  -extfile tls.ext -out tls.crt 2>/dev/null
openssl verify -CAfile ca.crt -purpose sslserver -verify_hostname "$svc" tls.crt >/dev/null

secret_cmd="kubectl apply --server-side -f $root/artifacts/base/namespace.yaml && kubectl -n guildnet-system create secret tls guildnet-apiserver-serving --cert=$out/tls.crt --key=$out/tls.key --dry-run=client -o yaml | kubectl apply --server-side -f -"
if [ $apply -eq 1 ]; then
  bash -c "$secret_cmd"
else
  echo "gen-serving-certs: create the Secret with:"
  echo "  $secret_cmd"
fi

cat > "$root/artifacts/ca-bundle-patch.yaml" <<PATCH
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata:
  name: v1alpha1.guildnet.io
spec:
  caBundle: $(openssl base64 -A -in ca.crt)
PATCH
echo "gen-serving-certs: wrote artifacts/ca-bundle-patch.yaml; keys are in $out (store ca.key offline)"
