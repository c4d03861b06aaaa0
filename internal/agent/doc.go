// Package agent is eci agent: one per host. It registers the host with the
// control plane, renews its lease, watches the container groups placed on it,
// and makes them real through a Runtime (runtime.go; CRI on containerd).
//
// Reconciling is level-triggered and idempotent: for each group the agent
// compares the desired group (from the server's watch) with what the runtime
// has (sandboxes and containers carry the group id in their labels) and does
// the next step: run the sandbox, pull, create and start init containers in
// order and then the containers, restart exited ones by the restart policy
// with a kubelet-like back-off, stop and remove what is deleted, and report
// the state whenever it changes. A restarted agent therefore adopts what runs
// (nothing is created twice, nothing healthy is killed) and, once its watch has
// listed the host's groups, removes what no longer has one.
//
// Runtime events (CRI GetContainerEvents) trigger reconciles at once; a
// periodic resync is only the safety net.
package agent
