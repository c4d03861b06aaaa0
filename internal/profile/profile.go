package profile

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/eci-dev/eci/internal/sizes"
)

// The ConfigMap's keys (docs/spec.md section 2).
const (
	KeyVSwitchIDs      = "vSwitchIds"
	KeySecurityGroupID = "securityGroupId"
	KeyVpcID           = "vpcId"
	KeyEnableClusterIP = "enableClusterIp"
	KeyFeatureGates    = "featureGates"
	KeySelectors       = "selectors"
	// KeyDefaultSize is eci's own: the size of a pod that asks for no CPU
	// or memory ("0.5-1Gi"), over the virtual node's --default-size.
	KeyDefaultSize = "defaultSize"
)

// ConfigMapNamespace and ConfigMapName locate the profile.
const (
	ConfigMapNamespace = "kube-system"
	ConfigMapName      = "eci-profile"
)

// Policy says how a matched pod uses virtual nodes (burst).
type Policy string

const (
	// VirtualNodeOnly: the pod tolerates the virtual node and selects it.
	VirtualNodeOnly Policy = "virtualNodeOnly"
	// Fair: the pod tolerates the virtual node; the scheduler chooses.
	Fair Policy = "fair"
	// NormalNodePrefer: the pod is left to real nodes; once it has been
	// unschedulable for UnschedulableSeconds, it tolerates the virtual node.
	NormalNodePrefer Policy = "normalNodePrefer"
)

// DefaultUnschedulableSeconds is how long a normalNodePrefer pod waits for a
// real node by default.
const DefaultUnschedulableSeconds = 30

// Profile is the parsed ConfigMap.
type Profile struct {
	VSwitchIDs      []string
	SecurityGroupID string
	VpcID           string
	EnableClusterIP bool
	FeatureGates    map[string]bool
	Selectors       []Selector
	DefaultSize     sizes.Size // zero: the virtual node's
	// Ignored are keys the profile does not know (kept by other tools).
	Ignored []string
}

// Selector is one entry of the selectors key.
type Selector struct {
	Name              string                `json:"name"`
	NamespaceSelector *metav1.LabelSelector `json:"namespaceSelector,omitempty"`
	ObjectSelector    *metav1.LabelSelector `json:"objectSelector,omitempty"`
	Effect            Effect                `json:"effect,omitzero"`
	// Policy: virtualNodeOnly (default), fair or normalNodePrefer.
	Policy Policy `json:"policy,omitempty"`
	// UnschedulableSeconds: how long a normalNodePrefer pod waits for a real
	// node (default 30).
	UnschedulableSeconds int `json:"unschedulableSeconds,omitempty"`
}

// Effect is what a matching selector adds to the pod.
type Effect struct {
	Annotations map[string]string `json:"annotations,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
}

// routes: a selector with a namespace or object selector decides by itself
// that a pod goes to virtual nodes; one with neither only adds its effect to
// pods bound for virtual nodes anyway.
func (s *Selector) routes() bool { return s.NamespaceSelector != nil || s.ObjectSelector != nil }

func (s *Selector) policy() Policy {
	if s.Policy == "" {
		return VirtualNodeOnly
	}
	return s.Policy
}

// Parse reads the ConfigMap's data. The error names the key and, for the
// selectors, the line, column or field.
func Parse(data map[string]string) (*Profile, error) {
	p := &Profile{}
	var errs []error
	for _, k := range slices.Sorted(maps.Keys(data)) {
		v := strings.TrimSpace(data[k])
		switch k {
		case KeyVSwitchIDs:
			p.VSwitchIDs = SplitList(v)
		case KeySecurityGroupID:
			p.SecurityGroupID = v
		case KeyVpcID:
			p.VpcID = v
		case KeyEnableClusterIP:
			if v == "" {
				continue
			}
			b, err := strconv.ParseBool(v)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %q is not true or false", k, v))
			}
			p.EnableClusterIP = b
		case KeyFeatureGates:
			gates, err := parseGates(v)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", k, err))
			}
			p.FeatureGates = gates
		case KeyDefaultSize:
			if v == "" {
				continue
			}
			size, err := sizes.Parse(v)
			if err == nil && !sizes.IsSupported(size) {
				err = fmt.Errorf("%q is not a supported size (docs/spec.md section 4: 0.25-0.5Gi, 0.5-1Gi, 1-2Gi, 2-4Gi, ...)", v)
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", k, err))
			}
			p.DefaultSize = size
		case KeySelectors:
			sels, err := parseSelectors(v) // its errors say selectors[i]
			if err != nil {
				errs = append(errs, err)
			}
			p.Selectors = sels
		default:
			p.Ignored = append(p.Ignored, k)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return p, nil
}

// SplitList reads a comma-separated value (a ConfigMap key, a pod
// annotation), blanks dropped.
func SplitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// parseGates reads "A=true,B=false".
func parseGates(v string) (map[string]bool, error) {
	gates := map[string]bool{}
	for _, kv := range SplitList(v) {
		k, val, ok := strings.Cut(kv, "=")
		b, err := strconv.ParseBool(strings.TrimSpace(val))
		if !ok || strings.TrimSpace(k) == "" || err != nil {
			return nil, fmt.Errorf("%q is not name=true or name=false", kv)
		}
		gates[strings.TrimSpace(k)] = b
	}
	return gates, nil
}

func parseSelectors(v string) ([]Selector, error) {
	if v == "" {
		return nil, nil
	}
	// The array first (a syntax error gets its line and column), then each
	// selector strictly (an unknown or mistyped field gets its index).
	dec := json.NewDecoder(strings.NewReader(v))
	var raws []json.RawMessage
	if err := dec.Decode(&raws); err != nil {
		return nil, fmt.Errorf("selectors: %w", jsonError(v, err))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("selectors: %s: more after the JSON array", position(v, dec.InputOffset()))
	}
	sels := make([]Selector, len(raws))
	for i, raw := range raws {
		d := json.NewDecoder(bytes.NewReader(raw))
		d.DisallowUnknownFields()
		if err := d.Decode(&sels[i]); err != nil {
			return nil, fmt.Errorf("selectors[%d]: %w", i, fieldError(err))
		}
	}
	names := map[string]bool{}
	var errs []error
	for i := range sels {
		s := &sels[i]
		where := fmt.Sprintf("selectors[%d]", i)
		if s.Name != "" {
			where = fmt.Sprintf("selectors[%d] (%s)", i, s.Name)
		}
		if err := s.validate(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", where, err))
		}
		if s.Name != "" && names[s.Name] {
			errs = append(errs, fmt.Errorf("%s: name: %q is used twice", where, s.Name))
		}
		names[s.Name] = true
	}
	return sels, errors.Join(errs...)
}

func (s *Selector) validate() error {
	var errs []error
	if s.Name == "" {
		errs = append(errs, errors.New("name: required"))
	}
	for field, ls := range map[string]*metav1.LabelSelector{"namespaceSelector": s.NamespaceSelector, "objectSelector": s.ObjectSelector} {
		if ls == nil {
			continue
		}
		if err := validateLabelSelector(ls); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", field, err))
		}
	}
	for k := range s.Effect.Annotations {
		if msgs := validation.IsQualifiedName(k); len(msgs) > 0 {
			errs = append(errs, fmt.Errorf("effect.annotations: key %q: %s", k, strings.Join(msgs, "; ")))
		}
	}
	for k, v := range s.Effect.Labels {
		if msgs := validation.IsQualifiedName(k); len(msgs) > 0 {
			errs = append(errs, fmt.Errorf("effect.labels: key %q: %s", k, strings.Join(msgs, "; ")))
		}
		if msgs := validation.IsValidLabelValue(v); len(msgs) > 0 {
			errs = append(errs, fmt.Errorf("effect.labels: value %q of %q: %s", v, k, strings.Join(msgs, "; ")))
		}
	}
	switch s.Policy {
	case "", VirtualNodeOnly, Fair, NormalNodePrefer:
	default:
		errs = append(errs, fmt.Errorf("policy: %q is not one of virtualNodeOnly, fair, normalNodePrefer", s.Policy))
	}
	if s.UnschedulableSeconds < 0 || s.UnschedulableSeconds > 86400 {
		errs = append(errs, fmt.Errorf("unschedulableSeconds: %d is not from 0 to 86400", s.UnschedulableSeconds))
	}
	if s.UnschedulableSeconds != 0 && s.policy() != NormalNodePrefer {
		errs = append(errs, errors.New("unschedulableSeconds: only for policy normalNodePrefer"))
	}
	return errors.Join(errs...)
}

func validateLabelSelector(ls *metav1.LabelSelector) error {
	for i, e := range ls.MatchExpressions {
		switch e.Operator {
		case metav1.LabelSelectorOpIn, metav1.LabelSelectorOpNotIn:
			if len(e.Values) == 0 {
				return fmt.Errorf("matchExpressions[%d]: operator %s needs values", i, e.Operator)
			}
		case metav1.LabelSelectorOpExists, metav1.LabelSelectorOpDoesNotExist:
			if len(e.Values) > 0 {
				return fmt.Errorf("matchExpressions[%d]: operator %s takes no values", i, e.Operator)
			}
		default:
			return fmt.Errorf("matchExpressions[%d]: operator %q is not one of In, NotIn, Exists, DoesNotExist", i, e.Operator)
		}
	}
	_, err := metav1.LabelSelectorAsSelector(ls)
	return err
}

// jsonError says where in the selectors' JSON the decoder stopped.
func jsonError(src string, err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Errorf("%s: %s", position(src, syn.Offset-1), syn.Error())
	case errors.As(err, &typ):
		return fmt.Errorf("%s: %s is not a JSON array of selectors", position(src, typ.Offset-1), typ.Value)
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return errors.New("empty or cut short: expected a JSON array of selectors")
	}
	return err
}

// fieldError names the field of one selector that did not decode.
func fieldError(err error) error {
	var typ *json.UnmarshalTypeError
	if errors.As(err, &typ) {
		return fmt.Errorf("%s: %s is not a %s", typ.Field, typ.Value, typ.Type)
	}
	if strings.HasPrefix(err.Error(), "json: unknown field") {
		return fmt.Errorf("%s (allowed: name, namespaceSelector, objectSelector, effect, policy, unschedulableSeconds)", strings.TrimPrefix(err.Error(), "json: "))
	}
	return err
}

// position is "line L, column C" of byte offset off in src.
func position(src string, off int64) string {
	if off > int64(len(src)) {
		off = int64(len(src))
	}
	before := []byte(src[:off])
	line := bytes.Count(before, []byte("\n")) + 1
	col := int(off) - bytes.LastIndexByte(before, '\n')
	return fmt.Sprintf("line %d, column %d", line, col)
}
