// Package vnode is the virtual node: a node in one Kubernetes cluster, built
// on the virtual-kubelet library, whose pods run as container groups of the
// instance service.
//
// A pod bound to the node is translated into a group (translate.go: sizes,
// containers, probes, hooks, security context; volumes.go: emptyDir and NFS
// as they are, configMaps, secrets, downwardAPI and projected volumes as
// files payloads, service-account tokens from the TokenRequest API;
// annotations.go: the k8s.aliyun.com/ annotations) and created with the pod
// UID as client token, so that a retry or a restarted vnode never makes a
// second one. What an instance can't do (hostPath, hostNetwork, DaemonSet
// pods, ...) fails the pod with a reason and an Event that names the
// alternative.
//
// The vnode watches its cluster's groups (a label carries the cluster id, so
// two clusters on one service never see each other's) and pushes every
// change to the pod's status through the virtual-kubelet notifier (status.go
// maps states, conditions and container statuses). Deleting a pod deletes
// its group with the pod's grace period; the pod is finished once the group
// is gone.
//
// The kubelet API (logs, exec, attach, stats) is served by virtual-kubelet's
// handlers over the provider's methods (streams.go), which reach the group
// through the instance service. Only callers with a client certificate of
// the cluster CA (the apiserver) are let in.
package vnode
