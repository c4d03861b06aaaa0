// Package testbed starts the real parts that eci's integration and end-to-end
// tests run against, on this machine:
//
//   - a Kubernetes control plane: etcd, kube-apiserver (token auth, RBAC,
//     service-account keys it generates), kube-controller-manager and
//     kube-scheduler, built from the Go module proxy by hack/build-kube.sh;
//   - a project-owned containerd with its CRI plugin, on its own config, root,
//     state, socket and CNI network, running in private PID and mount namespaces
//     where every cgroup v1 hierarchy (hugetlb included) is mounted;
//   - an OCI registry served from the test process, holding images built in Go
//     from Debian's busybox-static (a busybox image and a sandbox "pause" image),
//     which containerd really pulls.
//
// A bed takes a slot (0-63) guarded by a lock file, so beds of parallel test
// binaries never share a bridge, an address range or a directory. Each slot owns
// fixed ranges inside 198.18.0.0/15 (see Network). A slot whose previous owner
// died (a killed test run) is cleaned when it is taken again: its processes,
// links and cgroups are removed, so a killed run never breaks the next one.
//
// Tests use New(t, opts), which stops the bed in t.Cleanup. `eci-devbed`
// (hack/devbed) runs the same bed outside tests (hack/local-cluster.sh).
package testbed
