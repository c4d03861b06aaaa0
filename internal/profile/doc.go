// Package profile is eci-profile: the rules that send pods to virtual nodes
// without editing workloads (docs/spec.md section 2).
//
// profile.go parses the ConfigMap kube-system/eci-profile (vSwitchIds,
// securityGroupId, vpcId, enableClusterIp, featureGates, selectors) into a
// Profile, with errors that name the key, the line and the field. match.go
// decides what a new pod gets: which selectors match (namespaceSelector and
// objectSelector), their effects (annotations and labels, never overwriting),
// and whether and how it goes to the virtual node (the alibabacloud.com/eci
// label, or a selector's policy: virtualNodeOnly, fair, normalNodePrefer).
// patch.go turns that into a JSON patch; webhook.go serves it as a mutating
// admission webhook; source.go keeps the last good profile from the
// ConfigMap's informer and records an Event when an edit is refused;
// overflow.go is the controller that lets a normalNodePrefer pod onto the
// virtual node once real nodes have had no room for it for a while.
//
// The vnode (internal/vnode/webhook.go) serves the webhook with a CA it
// keeps in a Secret and keeps its MutatingWebhookConfiguration up to date.
package profile
