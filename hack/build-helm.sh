#!/usr/bin/env bash
# Builds helm v3, unchanged, from its Go module (hack/helm pins the version
# as a Go tool) into _output/helm/helm, for the e2e test that installs the
# virtual node's chart (deploy/helm/eci-vnode) into the test bed's cluster.
# Does nothing when the binary is up to date: a stamp records the hash of
# the module files and the Go version.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${HELM_BIN_DIR:-$root/_output/helm}
src=$root/hack/helm

want=$( (cat "$src/go.mod" "$src/go.sum"; go version) | sha256sum | cut -d' ' -f1)
have=$(cat "$out/.stamp" 2>/dev/null || true)
if [ "$want" = "$have" ] && [ -x "$out/helm" ]; then
  echo "build-helm: up to date in $out"
  exit 0
fi
mkdir -p "$out"
cd "$src"
start=$(date +%s)
echo "build-helm: building helm into $out (the first build takes 5-7 minutes on 2 cores)"
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$out/helm" helm.sh/helm/v3/cmd/helm
echo "$want" > "$out/.stamp"
echo "build-helm: done in $(( $(date +%s) - start ))s"
