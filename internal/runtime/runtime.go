// Package runtime holds the implementations of what the host agent needs of
// a container runtime (agent.Runtime, the subset of the Kubernetes CRI API it
// calls, with CRI's own types): NewCRI connects to a real runtime
// (containerd's CRI plugin); NewFake is an in-memory runtime for
// control-plane and scale tests, never the only test of a feature.
package runtime
