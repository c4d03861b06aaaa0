#!/usr/bin/env bash
# Builds CoreDNS from its Go module (hack/coredns: the plugins a cluster's DNS
# needs) into _output/coredns/coredns, for the test bed's and make up's cluster
# DNS. Does nothing when the binary is up to date: a stamp records the hash of
# hack/coredns's sources and the Go version it was built with.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${COREDNS_BIN_DIR:-$root/_output/coredns}
src=$root/hack/coredns

want=$( (cat "$src/go.mod" "$src/go.sum" "$src/main.go"; go version) | sha256sum | cut -d' ' -f1)
have=$(cat "$out/.stamp" 2>/dev/null || true)
if [ "$want" = "$have" ] && [ -x "$out/coredns" ]; then
  echo "build-coredns: up to date in $out"
  exit 0
fi
mkdir -p "$out"
cd "$src"
start=$(date +%s)
echo "build-coredns: building CoreDNS into $out (the first build takes 2-4 minutes on 2 cores)"
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$out/coredns" .
echo "$want" > "$out/.stamp"
echo "build-coredns: done in $(( $(date +%s) - start ))s"
