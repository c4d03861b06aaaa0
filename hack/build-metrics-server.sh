#!/usr/bin/env bash
# Builds metrics-server, unchanged, from its Go module (hack/metrics-server
# pins the version as a Go tool) into _output/metrics-server/metrics-server,
# for the test bed's and make up's resource metrics (kubectl top, the
# HorizontalPodAutoscaler). Does nothing when the binary is up to date: a
# stamp records the hash of the module files and the Go version.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${METRICS_SERVER_BIN_DIR:-$root/_output/metrics-server}
src=$root/hack/metrics-server

want=$( (cat "$src/go.mod" "$src/go.sum"; go version) | sha256sum | cut -d' ' -f1)
have=$(cat "$out/.stamp" 2>/dev/null || true)
if [ "$want" = "$have" ] && [ -x "$out/metrics-server" ]; then
  echo "build-metrics-server: up to date in $out"
  exit 0
fi
mkdir -p "$out"
cd "$src"
start=$(date +%s)
echo "build-metrics-server: building metrics-server into $out (the first build takes 5-7 minutes on 2 cores)"
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$out/metrics-server" sigs.k8s.io/metrics-server/cmd/metrics-server
echo "$want" > "$out/.stamp"
echo "build-metrics-server: done in $(( $(date +%s) - start ))s"
