#!/usr/bin/env bash
# make up: the main job on one machine. Today it starts the local Kubernetes
# control plane, containerd and the registry (hack/local-cluster.sh up); the
# virtual node that turns it into a serverless cluster, and the sample
# workloads, come with `eci up` (issue #6).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
"$ECI_ROOT/hack/local-cluster.sh" up
echo
echo "Note: 'eci up' (server + agent + virtual node) is not built yet; the cluster has"
echo "no nodes, so pods stay Pending until it is. Stop everything with: make down"
