#!/usr/bin/env bash
# The project's test command (make test, and so CI): installs what is missing,
# builds the Kubernetes binaries and eci, checks formatting and vet, then runs
# every test. The integration tests start the real test bed (root needed).
# Extra arguments go to `go test` (for example: make test ARGS=-run=TestX is
# hack/test.sh -run TestX).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
eci::need_root "make test"
cd "$ECI_ROOT"
start=$(date +%s)
hack/install-deps.sh
hack/build-kube.sh
hack/build-coredns.sh
hack/build-metrics-server.sh
hack/build-helm.sh
hack/build.sh
hack/lint.sh --fast
echo "test: running go test (setup took $(( $(date +%s) - start ))s)"
go test -count=1 -timeout 30m "$@" ./...
# Short fuzzing runs on top of the seed corpora: the API's create body, and
# the virtual node's pod -> group translation. Counted in executions, not
# seconds: a duration races the fuzzing coordinator's own deadline on a
# loaded machine and fails with "context deadline exceeded" and no input
# (golang/go#75804; seen in this project's CI).
go test -run '^$' -fuzz FuzzCreateBody -fuzztime "${FUZZTIME:-8000x}" ./internal/control
go test -run '^$' -fuzz FuzzPodToGroup -fuzztime "${FUZZTIME:-8000x}" ./internal/vnode
