// Package control is the instance service's logic, independent of HTTP: what
// creating, placing, updating and deleting a container group means, the state
// machine of docs/spec.md section 5 (statemachine.go: every move of a group is an
// event applied through one table), hosts and their leases, vSwitches and
// their addresses, tenants, tokens and events.
//
// Everything it stores goes through internal/store (never etcd's client
// directly: transactions are store.Commit of a collection's conditions and
// writes), so every write is an etcd transaction and a restarted server loses
// nothing. Two daemons run on the
// elected leader only: the Placer (Scheduling groups onto hosts, one
// transaction per decision: the group, the host's usage and the IP key
// together, so a host is never over-committed and an IP never given twice) and
// the Monitor (host leases: a host that stops renewing becomes NotReady and its
// groups Failed with reason HostLost; stuck graceful deletions complete;
// groups pending too long fail).
//
// Errors are errdefs kinds wrapped with %w; internal/server maps them to HTTP.
package control
