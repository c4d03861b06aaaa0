package vnode

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/profile"
	"github.com/eci-dev/eci/internal/resolvconf"
)

// annotations applies the pod annotations of docs/spec.md section 6 that the
// instance service supports. A malformed one refuses the pod, quoting it and
// the expected form; the service's own validation names the field for
// values that parse but are not allowed.
func annotations(pod *corev1.Pod, s *apiv1.ContainerGroupSpec) error {
	a := pod.Annotations
	list := func(key string) []string { return profile.SplitList(a[key]) }
	if _, ok := a[AnnUseSpecs]; ok {
		s.Specs = list(AnnUseSpecs)
	}
	if _, ok := a[AnnVSwitch]; ok {
		s.VSwitchIDs = list(AnnVSwitch)
	}
	if v, ok := a[AnnScheduleStrat]; ok {
		s.ScheduleStrategy = apiv1.ScheduleStrategy(v)
	}
	if _, ok := a[AnnSecurityGroup]; ok {
		s.SecurityGroupIDs = list(AnnSecurityGroup)
	}
	s.PrivateIPAddress = a[AnnPrivateIP]
	s.EIPID = a[AnnEIPInstanceID]
	s.ImageCacheID = a[AnnIMCID]
	autoIMC := true
	for _, f := range []struct {
		key string
		to  *bool
	}{{AnnWithEIP, &s.WithEIP}, {AnnEnableIPv6, &s.EnableIPv6}, {AnnAutoIMC, &autoIMC}, {AnnIMCPerfectMatch, &s.ImageCachePerfectMatch}} {
		if v, ok := a[f.key]; ok {
			on, err := strconv.ParseBool(v)
			if err != nil {
				return refuse("InvalidAnnotation", "annotation %s=%q is not valid: expected true or false", f.key, v)
			}
			*f.to = on
		}
	}
	s.DisableImageCacheMatch = !autoIMC && s.ImageCacheID == "" // a pinned cache is matched whatever eci-auto-imc says
	if _, ok := a[AnnPlainHTTP]; ok {
		s.PlainHTTPRegistries = list(AnnPlainHTTP)
	}
	if _, ok := a[AnnInsecure]; ok {
		s.InsecureRegistries = list(AnnInsecure)
	}
	if v, ok := a[AnnFailStrategy]; ok {
		s.FailStrategy = apiv1.FailStrategy(v)
	}
	// A named type: the service sizes the instance by it (and refuses a
	// name it does not offer, naming those it does).
	s.InstanceType = a[AnnInstanceType]
	if err := numericAnnotations(a, s); err != nil {
		return err
	}
	if err := spotAnnotations(a, s); err != nil {
		return err
	}
	return jsonAnnotations(pod, s)
}

// numericAnnotations applies the annotations that carry numbers and tags.
func numericAnnotations(a map[string]string, s *apiv1.ContainerGroupSpec) error {
	if v, ok := a[AnnMaxPending]; ok {
		n, err := strconv.Atoi(v)
		if err != nil {
			return refuse("InvalidAnnotation", "annotation %s=%q is not valid: expected minutes, an integer from 10 to 1440", AnnMaxPending, v)
		}
		s.MaxPendingMinutes = n
	}
	if v, ok := a[AnnExtraEphemeral]; ok {
		q, err := resource.ParseQuantity(v)
		if err != nil || q.Sign() < 0 {
			return refuse("InvalidAnnotation", "annotation %s=%q is not valid: expected a size such as 50Gi", AnnExtraEphemeral, v)
		}
		s.ExtraEphemeralStorage = int((q.Value() + (1<<30 - 1)) >> 30)
	}
	for _, b := range []struct {
		keys []string
		to   *int64
	}{
		{[]string{AnnIngressBandwidth, AnnECIIngressBandwidth}, &s.IngressBandwidth},
		{[]string{AnnEgressBandwidth, AnnECIEgressBandwidth}, &s.EgressBandwidth},
	} {
		for _, k := range b.keys {
			v, ok := a[k]
			if !ok {
				continue
			}
			q, err := resource.ParseQuantity(v)
			if err != nil || q.Sign() <= 0 {
				return refuse("InvalidAnnotation", "annotation %s=%q is not valid: expected bits per second such as 10M (1k to 32G)", k, v)
			}
			*b.to = q.Value()
		}
	}
	if v, ok := a[AnnCustomTags]; ok {
		s.Tags = map[string]string{}
		for _, kv := range profile.SplitList(a[AnnCustomTags]) {
			k, val, found := strings.Cut(kv, ":")
			if !found || k == "" {
				return refuse("InvalidAnnotation", "annotation %s=%q is not valid: expected \"key:value,key:value\" (up to 3)", AnnCustomTags, v)
			}
			s.Tags[k] = val
		}
		if len(s.Tags) > 3 {
			return refuse("InvalidAnnotation", "annotation %s=%q has %d tags: at most 3 are allowed", AnnCustomTags, v, len(s.Tags))
		}
	}
	return nil
}

// spotAnnotations make a spot instance (docs/spec.md section 5): its
// strategy, price limit and protected hours; the service checks the
// combination.
func spotAnnotations(a map[string]string, s *apiv1.ContainerGroupSpec) error {
	s.SpotStrategy = apiv1.SpotStrategy(a[AnnSpotStrategy])
	if v, ok := a[AnnSpotPriceLimit]; ok {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || !(f > 0) || math.IsInf(f, 0) {
			return refuse("InvalidAnnotation", "annotation %s=%q is not valid: expected a price per hour above 0, such as 0.25", AnnSpotPriceLimit, v)
		}
		s.SpotPriceLimit = f
	}
	if v, ok := a[AnnSpotDuration]; ok {
		n, err := strconv.Atoi(v)
		if err != nil {
			return refuse("InvalidAnnotation", "annotation %s=%q is not valid: expected protected hours, an integer from 0 to 6", AnnSpotDuration, v)
		}
		s.SpotDurationHours = &n
	}
	return nil
}

// jsonAnnotations applies the annotations that carry JSON (custom hosts and
// DNS).
func jsonAnnotations(pod *corev1.Pod, s *apiv1.ContainerGroupSpec) error {
	a := pod.Annotations
	var hosts []struct {
		Host string `json:"host"`
		IP   string `json:"ip"`
	}
	if err := jsonAnnotation(pod, AnnCustomHosts, `a JSON list such as [{"host":"db","ip":"198.18.0.9"}]`, &hosts); err != nil {
		return err
	}
	for _, h := range hosts {
		s.HostAliases = append(s.HostAliases, apiv1.HostAlias{IP: h.IP, Hostnames: []string{h.Host}})
	}
	var dns corev1.PodDNSConfig // the annotation's JSON has its shape
	if _, ok := a[AnnCustomDNS]; ok {
		if err := jsonAnnotation(pod, AnnCustomDNS, `JSON such as {"nameservers":["198.18.0.10"],"searches":["svc.local"],"options":[{"name":"ndots","value":"2"}]}`, &dns); err != nil {
			return err
		}
		d := podDNSConfig(&dns)
		// The annotation's DNS is all of it when it names nameservers, as
		// dnsPolicy None; else it is merged into the host's, as Default.
		s.DNSConfig, s.DNSPolicy = d, apiv1.DNSDefault
		if len(d.Nameservers) > 0 {
			s.DNSPolicy = apiv1.DNSNone
		}
	}
	return nil
}

// dnsConfig is the pod's resolv.conf as the kubelet makes it: ClusterFirst
// uses the node's cluster DNS and the search path of the pod's namespace,
// the pod's dnsConfig merged in (policy None to the agent: the group's DNS
// is all of it); None only the pod's dnsConfig; Default the host's (the
// agent's --resolv-conf) with the pod's dnsConfig merged by the agent.
// ClusterFirst on a node with no cluster DNS falls back to Default, with the
// kubelet's MissingClusterDNS event. More than 3 nameservers together: the
// first 3, with the kubelet's DNSConfigForming event.
func (p *Provider) dnsConfig(pod *corev1.Pod) (apiv1.DNSPolicy, *apiv1.DNSConfig) {
	policy := pod.Spec.DNSPolicy
	if policy == "" {
		policy = corev1.DNSClusterFirst
	}
	own := podDNSConfig(pod.Spec.DNSConfig)
	clusterFirst := policy == corev1.DNSClusterFirst || policy == corev1.DNSClusterFirstWithHostNet
	switch {
	case clusterFirst && len(p.cfg.ClusterDNS) == 0:
		p.event(pod, corev1.EventTypeWarning, "MissingClusterDNS", fmt.Sprintf(
			"pod: %q. the virtual node does not have ClusterDNS IP configured (--cluster-dns) and cannot create Pod using %q policy. Falling back to %q policy.",
			pod.Namespace+"/"+pod.Name, policy, corev1.DNSDefault))
		return apiv1.DNSDefault, own
	case clusterFirst:
		dom := p.cfg.ClusterDomain
		d := resolvconf.Merge(&apiv1.DNSConfig{
			Nameservers: p.cfg.ClusterDNS,
			Searches:    []string{pod.Namespace + ".svc." + dom, "svc." + dom, dom},
			Options:     []apiv1.DNSOption{{Name: "ndots", Value: "5"}},
		}, own)
		p.fitLimits(pod, d)
		return apiv1.DNSNone, d
	case policy == corev1.DNSNone:
		return apiv1.DNSNone, own
	default:
		return apiv1.DNSDefault, own
	}
}

// fitLimits cuts a composed ClusterFirst DNS to what a resolver reads (3
// nameservers, 32 search domains of 2048 characters), with the kubelet's
// DNSConfigForming events.
func (p *Provider) fitLimits(pod *corev1.Pod, d *apiv1.DNSConfig) {
	if len(d.Nameservers) > apiv1.MaxNameservers {
		d.Nameservers = d.Nameservers[:apiv1.MaxNameservers]
		p.event(pod, corev1.EventTypeWarning, "DNSConfigForming", fmt.Sprintf(
			"Nameserver limits were exceeded, some nameservers have been omitted, the applied nameserver line is: %s", strings.Join(d.Nameservers, " ")))
	}
	n := len(d.Searches)
	for len(d.Searches) > apiv1.MaxDNSSearches || len(strings.Join(d.Searches, " ")) > apiv1.MaxDNSSearchLength {
		d.Searches = d.Searches[:len(d.Searches)-1]
	}
	if len(d.Searches) < n {
		p.event(pod, corev1.EventTypeWarning, "DNSConfigForming", fmt.Sprintf(
			"Search Line limits were exceeded, some search paths have been omitted, the applied search line is: %s", strings.Join(d.Searches, " ")))
	}
}

// podDNSConfig is a pod's dnsConfig in the API's terms (nil: none).
func podDNSConfig(c *corev1.PodDNSConfig) *apiv1.DNSConfig {
	if c == nil {
		return nil
	}
	d := &apiv1.DNSConfig{Nameservers: slices.Clone(c.Nameservers), Searches: slices.Clone(c.Searches)}
	for _, o := range c.Options {
		opt := apiv1.DNSOption{Name: o.Name}
		if o.Value != nil {
			opt.Value = *o.Value
		}
		d.Options = append(d.Options, opt)
	}
	return d
}

// fixedIP applies eci-fixed-ip: a StatefulSet's pod keeps its address
// across its re-creation (its name is stable), keyed by the cluster, its
// namespace and name, for eci-fixed-ip-retain-hour hours after it goes.
func fixedIP(pod *corev1.Pod, cluster string, s *apiv1.ContainerGroupSpec) error {
	a := pod.Annotations
	v, ok := a[AnnFixedIP]
	if !ok {
		return nil
	}
	on, err := strconv.ParseBool(v)
	if err != nil {
		return refuse("InvalidAnnotation", "annotation %s=%q is not valid: expected true or false", AnnFixedIP, v)
	}
	if !on {
		return nil
	}
	if !slices.ContainsFunc(pod.OwnerReferences, func(o metav1.OwnerReference) bool { return o.Kind == "StatefulSet" }) {
		return refuse("FixedIPNotSupported", "annotation %s is for a StatefulSet's pods, whose names are stable; a pod of its own keeps one address with %s", AnnFixedIP, AnnPrivateIP)
	}
	key := strings.ToLower(cluster + "/" + pod.Namespace + "/" + pod.Name)
	if len(key) > 253 {
		sum := sha256.Sum256([]byte(key))
		key = "h/" + hex.EncodeToString(sum[:20])
	}
	s.FixedIPKey = key
	if h, ok := a[AnnFixedIPRetain]; ok {
		n, err := strconv.Atoi(h)
		if err != nil || n < 1 {
			return refuse("InvalidAnnotation", "annotation %s=%q is not valid: expected hours, an integer from 1 to %d", AnnFixedIPRetain, h, apiv1.MaxFixedIPRetainHours)
		}
		s.FixedIPRetainHours = n
	}
	return nil
}
