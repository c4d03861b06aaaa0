#!/usr/bin/env bash
# Builds the real Kubernetes control plane (kube-apiserver, kube-controller-manager,
# kube-scheduler), a kubelet, kubectl, kube-proxy (the benchmarks' reference for
# the agents' Service rules) and an etcd server from the Go module proxy into
# _output/kube/bin. Does nothing when the binaries are up to date: a stamp records the
# hash of hack/kube's sources and the Go version they were built with.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${KUBE_BIN_DIR:-$root/_output/kube/bin}
src=$root/hack/kube
bins=(kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl kube-proxy etcd)

want=$( (cat "$src/go.mod" "$src/go.sum" "$src/tools.go" "$src/etcd/main.go"; go version) | sha256sum | cut -d' ' -f1)
have=$(cat "$out/.stamp" 2>/dev/null || true)
missing=0
for b in "${bins[@]}"; do [ -x "$out/$b" ] || missing=1; done
if [ "$want" = "$have" ] && [ $missing = 0 ]; then
  echo "build-kube: up to date in $out"
  exit 0
fi

mkdir -p "$out"
cd "$src"
start=$(date +%s)
echo "build-kube: building ${bins[*]} into $out (first build takes 5-11 minutes on 2 cores)"
export CGO_ENABLED=0
ldflags="-s -w -X k8s.io/component-base/version.gitVersion=v1.35.4 -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=35"
go build -trimpath -ldflags "$ldflags" -o "$out/" \
  k8s.io/kubernetes/cmd/kube-apiserver \
  k8s.io/kubernetes/cmd/kube-controller-manager \
  k8s.io/kubernetes/cmd/kube-scheduler \
  k8s.io/kubernetes/cmd/kubelet \
  k8s.io/kubernetes/cmd/kubectl \
  k8s.io/kubernetes/cmd/kube-proxy
go build -trimpath -ldflags "-s -w" -o "$out/etcd" ./etcd
echo "$want" > "$out/.stamp"
echo "build-kube: done in $(( $(date +%s) - start ))s"
