#!/usr/bin/env bash
# Runs the benchmarks (Go benchmarks named Benchmark*) on the real test bed and
# prints their figures. BENCH selects benchmarks (a -bench regexp), COUNT repeats;
# each package may take BENCH_TIMEOUT (90m: the e2e package holds the pod
# bursts and the 10,000-pod node).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
eci::need_root "make bench" bench
cd "$ECI_ROOT"
hack/install-deps.sh
hack/build-kube.sh
hack/build-coredns.sh
hack/build-metrics-server.sh
hack/build-helm.sh
go test -run '^$' -bench "${BENCH:-.}" -benchtime "${BENCHTIME:-1x}" -count "${COUNT:-1}" -timeout "${BENCH_TIMEOUT:-90m}" ./...
