package control

import (
	"strings"

	apiv1 "github.com/eci-dev/eci/api/v1"
)

// The sums of the rest (usagefold.go). A tenant's hour past MaxFoldSums
// sums puts its further records in sums that keep only what has few
// values among them: a tag whose key has at most MaxRestValues values
// (team, not a job's id), the virtual node and the size likewise. Past
// MaxFoldSums such sums, one sum of the rest keeps none of them.

// MaxFoldSums bounds the sums of one tenant's hour and price period, and
// of its rest; MaxRestValues the values a tag, the node or the size may
// have among the rest's records to be kept on the rest's sums (a tenant
// giving each short group tags, a size or a node label of its own would
// otherwise keep a record for each).
const (
	MaxFoldSums   = 50
	MaxRestValues = 10
)

// isRest tells whether sum r is one of the rest.
func isRest(r *apiv1.UsageRecord) bool {
	return strings.Contains(strings.TrimPrefix(r.Metadata.ID, r.Metadata.Tenant+"/"), restMark)
}

// restDims is what the rest's sums of a slot keep.
type restDims struct {
	tags       map[string]bool
	node, size bool
}

// restDimsOf chooses what the sums of rest, records of slot sl, keep.
func restDimsOf(sl slot, rest []*apiv1.UsageRecord) restDims {
	values := map[string]map[string]bool{} // tag key: its values ("": none)
	nodes, sizes := map[string]bool{}, map[string]bool{}
	for _, r := range rest {
		for k := range r.Tags {
			values[k] = map[string]bool{}
		}
	}
	for _, r := range rest {
		for k, vs := range values {
			if len(vs) <= MaxRestValues {
				vs[r.Tags[k]] = true
			}
		}
		nodes[r.VirtualNode] = true
		sizes[r.InstanceType+"/"+r.InstanceSpec] = true
	}
	d := restDims{tags: map[string]bool{}, node: len(nodes) <= MaxRestValues, size: len(sizes) <= MaxRestValues}
	for k, vs := range values {
		if len(vs) <= MaxRestValues {
			d.tags[k] = true
		}
	}
	keys := map[string]bool{}
	for _, r := range rest {
		if k := d.key(sl, r); !keys[k.id()] {
			keys[k.id()] = true
			if len(keys) > MaxFoldSums {
				return restDims{}
			}
		}
	}
	return d
}

// key is the key of r's sum of the rest.
func (d restDims) key(sl slot, r *apiv1.UsageRecord) sumKey {
	k := sumKey{Tenant: sl.tenant, Hour: sl.hour, Period: sl.period, Rest: true}
	for t := range d.tags {
		if v, ok := r.Tags[t]; ok {
			if k.Tags == nil {
				k.Tags = map[string]string{}
			}
			k.Tags[t] = v
		}
	}
	if d.node {
		k.VirtualNode = r.VirtualNode
	}
	if d.size {
		k.InstanceType, k.InstanceSpec = r.InstanceType, r.InstanceSpec
	}
	return k
}
