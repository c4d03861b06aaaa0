#!/usr/bin/env bash
# Runs the test bed outside tests: a local Kubernetes control plane (no nodes),
# containerd with CRI, and an OCI registry with the test images.
#   hack/local-cluster.sh up      start it in the background, print where things are
#   hack/local-cluster.sh down    stop it; nothing is left behind
#   hack/local-cluster.sh status  print where things are, if it runs
set -euo pipefail
source "$(dirname "$0")/lib.sh"
state=$ECI_OUT/local-cluster
pidfile=$state/eci.pid
info=$state/info

running() { [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }

print_info() {
  cat "$info"
  local kubeconfig kubectl
  kubeconfig=$(sed -n 's/^kubeconfig=//p' "$info")
  kubectl=$(sed -n 's/^kubectl=//p' "$info")
  if [ -n "$kubeconfig" ]; then
    echo
    echo "Try:"
    echo "  export KUBECONFIG=$kubeconfig"
    echo "  $kubectl get namespaces"
  fi
}

case "${1:-}" in
up)
  eci::need_root "hack/local-cluster.sh up" up
  if running; then
    echo "local-cluster: already running (pid $(cat "$pidfile"))"; print_info; exit 0
  fi
  cd "$ECI_ROOT"
  hack/install-deps.sh
  hack/build-kube.sh
  hack/build-coredns.sh
  hack/build-metrics-server.sh
  hack/build.sh
  mkdir -p "$state"
  rm -f "$info"
  # HOSTS=N (make up): N-1 pool hosts besides this machine's containerd.
  echo "local-cluster: starting the control plane (etcd, apiserver, controller-manager, scheduler), containerd and the registry (about 20 s)"
  nohup "$ECI_OUT/bin/eci-devbed" --info-file "$info" --hosts "$(( ${HOSTS:-1} - 1 ))" > "$state/bed.log" 2>&1 < /dev/null &
  echo $! > "$pidfile"
  for _ in $(seq 1200); do
    [ -f "$info" ] && break
    if ! running; then
      echo "local-cluster: the bed failed to start:" >&2; tail -20 "$state/bed.log" >&2; exit 1
    fi
    sleep 0.1
  done
  [ -f "$info" ] || { echo "local-cluster: not ready after 120s; see $state/bed.log" >&2; exit 1; }
  echo "local-cluster: up (pid $(cat "$pidfile"), log $state/bed.log)"
  [ -n "${QUIET_INFO:-}" ] || print_info
  ;;
down)
  if ! running; then echo "local-cluster: not running"; rm -f "$pidfile"; exit 0; fi
  pid=$(cat "$pidfile")
  kill -TERM "$pid"
  for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid"; fi
  rm -f "$pidfile"
  echo "local-cluster: down"
  ;;
status)
  if running; then echo "local-cluster: running (pid $(cat "$pidfile"))"; print_info; else echo "local-cluster: not running"; exit 1; fi
  ;;
*)
  echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
