package vnode

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// Every k8s.aliyun.com/ annotation of docs/spec.md section 6 is read
// (annotations.go), written back by the node, or not supported yet: a pod
// that carries one of those gets a Warning Event naming it, what happens
// instead and what to use, never a silent drop. A k8s.aliyun.com/eci-
// annotation the node does not know at all (a typo) gets one too.
// docs/annotations.md lists them with their state and test.

// readAnnotations are those the node translates (annotations.go,
// translate.go, fixedip.go).
var readAnnotations = []string{
	AnnUseSpecs, AnnVSwitch, AnnScheduleStrat, AnnSecurityGroup, AnnPrivateIP, AnnCustomTags, AnnCustomHosts, AnnCustomDNS,
	AnnExtraEphemeral, AnnMaxPending, AnnFailStrategy, AnnPlainHTTP, AnnInsecure, AnnFixedIP, AnnFixedIPRetain, AnnWithEIP,
	AnnEIPInstanceID, AnnEnableIPv6, AnnECIIngressBandwidth, AnnECIEgressBandwidth, AnnSpotStrategy, AnnSpotPriceLimit, AnnSpotDuration, AnnInstanceType,
	AnnAutoIMC, AnnIMCID, AnnIMCPerfectMatch, AnnDataCacheBucket,
}

// writtenAnnotations are the node's to write; a pod's own value is
// replaced.
var writtenAnnotations = writtenBackKeys

// unsupportedAnnotations: what happens instead, and what to use.
var unsupportedAnnotations = map[string]string{
	"eci-instance-family":    "no instance families: the size comes from eci-use-specs or the containers' resources",
	"eci-compute-category":   "one compute category: every instance runs on the pool's hosts",
	"eci-gpu-driver-version": "the host's GPU driver is used: GPUs are given by nvidia.com/gpu limits",
	"eip-bandwidth":          "an EIP's bandwidth is not limited by this annotation: use kubernetes.io/egress-bandwidth and ingress-bandwidth",
	"eci-ntp-server":         "the instance keeps the host's clock (a container shares its kernel's time)",
	"eci-core-pattern":       "the host's kernel.core_pattern applies (it is not per instance)",
}

// annotationWarnings are the Warning Events for pod's annotations that do
// nothing, one per annotation, in name order.
func annotationWarnings(pod *corev1.Pod) []string {
	var names []string
	for k := range pod.Annotations {
		if strings.HasPrefix(k, annPrefix) {
			names = append(names, k)
		}
	}
	sort.Strings(names)
	var out []string
	for _, k := range names {
		short := strings.TrimPrefix(k, annPrefix)
		switch {
		case slices.Contains(readAnnotations, k) || slices.Contains(writtenAnnotations, k) || k == annPrefix+"vnode":
		case unsupportedAnnotations[short] != "":
			out = append(out, fmt.Sprintf("annotation %s is not supported and has no effect: %s (docs/annotations.md)", k, unsupportedAnnotations[short]))
		case strings.HasPrefix(short, "eci-"):
			out = append(out, fmt.Sprintf("annotation %s is not one eci knows and has no effect (a typo? docs/annotations.md lists them)", k))
		}
	}
	return out
}
