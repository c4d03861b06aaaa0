#!/usr/bin/env bash
# Builds the eci binary into _output/bin/eci, with eci-cni and eci-devbed.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ECI_ROOT"
version=${ECI_VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo v0.0.0-dev)}
go build -trimpath -ldflags "-X github.com/eci-dev/eci/internal/version.Version=$version" -o "$ECI_BIN" ./cmd/eci
# The CNI IPAM plugin: small and quick to start, the runtime runs it per sandbox.
go build -trimpath -ldflags "-s -w" -o "$ECI_OUT/bin/eci-cni" ./cmd/eci-cni
# The test bed outside tests (hack/local-cluster.sh): its own command, so that
# eci links neither internal/testbed nor the testing package.
go build -trimpath -o "$ECI_OUT/bin/eci-devbed" ./hack/devbed
echo "build: $ECI_BIN, $ECI_OUT/bin/eci-cni and $ECI_OUT/bin/eci-devbed ($version)"
