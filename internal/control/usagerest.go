package control

import (
	"maps"
	"slices"
	"strings"
	"time"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/billing"
)

// Which sum each record goes to (usagefold.go). A tenant's hour (in one
// price period) has at most MaxFoldSums sums of its own keys, those of the
// most records first. Its further records go to sums of the rest, which
// keep only what has few values among them: a tag whose key has at most
// MaxRestValues values (team, not a job's id), the virtual node and the
// size likewise. Past MaxFoldSums sums of the rest, stored and new, one
// more keeps none of them.

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

// chooseSums gives each piece of the records to fold (split: the groups
// with parts) its sum. It returns
// the sums (read, or new) and the records' pieces, by the sums they go to.
func (s *Service) chooseSums(recs []*apiv1.UsageRecord, split map[string]bool, book *billing.Book, now time.Time) (map[string]*stored, map[string][][]*piece) {
	sums := map[string]*stored{}
	own, rest := map[slot]int{}, map[slot]int{} // the slots' stored sums
	for _, r := range recs {
		if r.IsSum() {
			sums[r.Metadata.ID] = &stored{sum: r, stored: true}
			name, _, _ := periodOf(book, r.Start)
			if sl := (slot{r.Metadata.Tenant, r.Start.Unix() / 3600 * 3600, name}); isRest(r) {
				rest[sl]++
			} else {
				own[sl]++
			}
		}
	}
	cutoff := now.Add(-s.opts.UsageDetail)
	var items [][]*piece
	fresh := map[slot]map[string][]*piece{} // pieces of sums not stored, by slot and id
	for _, r := range recs {
		pieces := piecesOf(r, book, cutoff, split)
		if pieces != nil {
			items = append(items, pieces)
		}
		for _, p := range pieces {
			if p.id = p.key.id(); sums[p.id] == nil {
				sl := p.key.slot()
				if fresh[sl] == nil {
					fresh[sl] = map[string][]*piece{}
				}
				fresh[sl][p.id] = append(fresh[sl][p.id], p)
			}
		}
	}
	for sl, byID := range fresh {
		ids := slices.SortedFunc(maps.Keys(byID), func(a, b string) int {
			if d := len(byID[b]) - len(byID[a]); d != 0 {
				return d
			}
			return strings.Compare(a, b)
		})
		var over []*piece
		for _, id := range ids {
			if own[sl] >= MaxFoldSums {
				over = append(over, byID[id]...)
				continue
			}
			own[sl]++
			sums[id] = &stored{sum: sumOf(&byID[id][0].key, byID[id][0], book, now)}
		}
		toRest(sl, over, MaxFoldSums-rest[sl], sums, book, now)
	}
	batches := map[string][][]*piece{}
	for _, pieces := range items {
		ids := make([]string, len(pieces))
		for i, p := range pieces {
			ids[i] = p.id
		}
		k := strings.Join(ids, " ")
		batches[k] = append(batches[k], pieces)
	}
	return sums, batches
}

// toRest sends the pieces over to sums of the rest of slot sl, making at
// most room new ones but for the one that keeps nothing.
func toRest(sl slot, over []*piece, room int, sums map[string]*stored, book *billing.Book, now time.Time) {
	if len(over) == 0 {
		return
	}
	d := restDimsOf(sl, over)
	fresh := map[string]bool{}
	for _, p := range over {
		k := d.key(sl, p.r)
		if id := k.id(); sums[id] == nil && !fresh[id] {
			if fresh[id] = true; len(fresh) > room {
				d = restDims{}
				break
			}
		}
	}
	for _, p := range over {
		k := d.key(sl, p.r)
		if p.id = k.id(); sums[p.id] == nil {
			sums[p.id] = &stored{sum: sumOf(&k, p, book, now)}
		}
	}
}

// restDims is what the rest's sums of a slot keep.
type restDims struct {
	tags       map[string]bool
	node, size bool
}

// restDimsOf chooses what the sums of the pieces over keep.
func restDimsOf(sl slot, over []*piece) restDims {
	values := map[string]map[string]bool{} // tag key: its values ("": none)
	nodes, sizes := map[string]bool{}, map[string]bool{}
	for _, p := range over {
		for k := range p.r.Tags {
			values[k] = map[string]bool{}
		}
	}
	for _, p := range over {
		for k, vs := range values {
			if len(vs) <= MaxRestValues {
				vs[p.r.Tags[k]] = true
			}
		}
		nodes[p.r.VirtualNode] = true
		sizes[p.r.InstanceType+"/"+p.r.InstanceSpec] = true
	}
	d := restDims{tags: map[string]bool{}, node: len(nodes) <= MaxRestValues, size: len(sizes) <= MaxRestValues}
	for k, vs := range values {
		if len(vs) <= MaxRestValues {
			d.tags[k] = true
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
