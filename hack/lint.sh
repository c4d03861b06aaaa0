#!/usr/bin/env bash
# No tracked file over 1 MiB, gofmt and go vet always; golangci-lint too unless
# --fast (it is built from the Go module proxy into _output/tools on first use).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ECI_ROOT"
GOLANGCI_VERSION=${GOLANGCI_VERSION:-v2.15.0}

# Nothing a build produces goes into git: refuse tracked files over 1 MiB.
large=$(git ls-files -z | xargs -0 -r stat -c '%s %n' 2>/dev/null | awk '$1 > 1048576 {print}')
if [ -n "$large" ]; then
  echo "lint: tracked files over 1 MiB (build outputs belong in _output/, ignored):" >&2
  echo "$large" >&2; exit 1
fi

unformatted=$(gofmt -l $(git ls-files '*.go') 2>/dev/null || true)
if [ -n "$unformatted" ]; then
  echo "lint: gofmt would change:" >&2; echo "$unformatted" >&2; exit 1
fi
go vet ./...
( cd hack/kube && go vet ./... )
echo "lint: gofmt and go vet clean"
[ "${1:-}" = "--fast" ] && exit 0

lint=$ECI_OUT/tools/golangci-lint-$GOLANGCI_VERSION
if [ ! -x "$lint" ]; then
  echo "lint: building golangci-lint $GOLANGCI_VERSION from the Go module proxy (once)"
  mkdir -p "$ECI_OUT/tools/gobin"
  GOBIN=$ECI_OUT/tools/gobin go install "github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$GOLANGCI_VERSION"
  mv "$ECI_OUT/tools/gobin/golangci-lint" "$lint"
fi
"$lint" run ./...
echo "lint: golangci-lint clean"
