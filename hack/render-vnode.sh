#!/usr/bin/env bash
# Renders the virtual node's chart with its defaults (and the Secret the
# kustomization's users make) into deploy/vnode/eci-vnode.yaml.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/hack/build-helm.sh" > /dev/null
"$root/_output/helm/helm" template eci-vnode "$root/deploy/helm/eci-vnode" --namespace eci-system --include-crds \
  --set eci.existingSecret=eci-vnode > "$root/deploy/vnode/eci-vnode.yaml"
echo "render-vnode: deploy/vnode/eci-vnode.yaml"
