#!/usr/bin/env bash
# make down: stops `eci up` (make up), then the local cluster; nothing is left
# behind (the instances' sandboxes go with the bed's containerd).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
pidfile=$ECI_OUT/local-cluster/eci-up.pid
if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
  pid=$(cat "$pidfile")
  kill -TERM "$pid"
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
  echo "down: eci up stopped"
fi
rm -f "$pidfile"
for hpid in "$ECI_OUT"/local-cluster/agent-h*.pid; do
  [ -f "$hpid" ] || continue
  kill -TERM "$(cat "$hpid")" 2>/dev/null || true
  rm -f "$hpid"
done
"$(dirname "$0")/local-cluster.sh" down
