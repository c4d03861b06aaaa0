// Package scheduler decides where a container group runs. It is pure: a
// read-only Snapshot of hosts and vSwitches and a Request go in, a Decision (or
// a NoCapacityError that says what was missing) comes out. It does no I/O;
// the server commits a decision in one etcd transaction, which fails if the
// snapshot it was made from has changed, so concurrent placements never
// over-commit a host or give one IP twice.
package scheduler

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"

	"github.com/eci-dev/eci/internal/sizes"
)

// Policy chooses among the hosts that fit.
type Policy string

const (
	// Spread puts a group on the host with the most free vCPU (then memory):
	// groups spread over the pool.
	Spread Policy = "spread"
	// Binpack puts a group on the host with the least free vCPU that still
	// fits: hosts fill up one by one and others stay empty.
	Binpack Policy = "binpack"
)

// Resources is what a host has or what a group takes.
type Resources struct {
	MilliCPU  int64
	MemoryMiB int64
	GPU       int
	Pods      int
}

// Host is one host as placement sees it.
type Host struct {
	Name        string
	Zone        string
	Allocatable Resources
	Allocated   Resources
	// Schedulable is false for hosts that are not Ready, cordoned or draining.
	Schedulable bool
	// RuntimeHandlers the host runs groups with (its first is its default).
	RuntimeHandlers []string
	// Warm counts the host's ready sandboxes of its warm pool by vSwitch.
	Warm map[string]int
	// Images the host holds (as containerd names them), with their size
	// and the tenants a private one is for.
	Images map[string]Image
	// Data are the data caches the host holds, by id: their size.
	Data map[string]int64
}

// Image is an image a host holds.
type Image struct {
	Size int64
	// PrivateTo: the tenants that pulled it with a credential; only their
	// groups run the host's copy. Empty: anyone's.
	PrivateTo []string
}

// UsableBy tells whether tenant's groups run the host's copy of i.
func (i Image) UsableBy(tenant string) bool {
	return len(i.PrivateTo) == 0 || slices.Contains(i.PrivateTo, tenant)
}

// held is how many bytes of req's images and data caches h holds (for
// req's tenant).
func (h Host) held(req Request) int64 {
	var n int64
	for _, img := range req.Images {
		if i, ok := h.Images[img]; ok && i.UsableBy(req.Tenant) {
			n += i.Size
		}
	}
	for _, id := range req.DataCaches {
		n += h.Data[id]
	}
	return n
}

func (h Host) free() Resources {
	return Resources{
		MilliCPU:  h.Allocatable.MilliCPU - h.Allocated.MilliCPU,
		MemoryMiB: h.Allocatable.MemoryMiB - h.Allocated.MemoryMiB,
		GPU:       h.Allocatable.GPU - h.Allocated.GPU,
		Pods:      h.Allocatable.Pods - h.Allocated.Pods,
	}
}

// Fits: size, gpu GPUs and one more group fit in r.
func (r Resources) Fits(size sizes.Size, gpu int) bool {
	return r.MilliCPU >= size.MilliCPU && r.MemoryMiB >= size.MemoryMiB && r.GPU >= gpu && r.Pods >= 1
}

// VSwitch is one vSwitch as placement sees it.
type VSwitch struct {
	ID   string
	Zone string
	// FreeIPs is how many addresses are left.
	FreeIPs int
}

// Snapshot is the state placement reads.
type Snapshot struct {
	Hosts     []Host
	VSwitches []VSwitch
}

// Request is what one group needs.
type Request struct {
	// Sizes to try in order (already rounded to supported sizes).
	Sizes []sizes.Size
	GPU   int
	// RuntimeHandler, when set, is one the host must offer (a pod's
	// runtimeClassName: kata, gvisor).
	RuntimeHandler string
	// VSwitchIDs allowed, in the user's order; empty allows every vSwitch.
	VSwitchIDs []string
	// Ordered tries the vSwitches in order (VSwitchOrdered); otherwise their
	// order is shuffled with Seed so groups spread over zones.
	Ordered bool
	Seed    uint64
	// Warm: the group can take a sandbox of a warm pool; a host with one
	// ready on the vSwitch is preferred to any other that fits, and a
	// vSwitch with one to the others (unless Ordered).
	Warm bool
	// Images of the group (as containerd names them): a host holding more
	// of them, by size, is preferred to any other that fits (it starts
	// without pulling them), before a warm sandbox. Tenant is the group's:
	// another tenant's private images count for nothing.
	Images []string
	Tenant string
	// DataCaches the group mounts, by id: a host holding them counts their
	// size as it counts images' (it starts without fetching them).
	DataCaches []string
}

// Decision is where a group goes.
type Decision struct {
	Host    string
	Zone    string
	VSwitch string
	Size    sizes.Size
}

// NoCapacityError says, per size tried, what was missing.
type NoCapacityError struct {
	Reasons []string
}

func (e *NoCapacityError) Error() string {
	return "no capacity: " + strings.Join(e.Reasons, "; ")
}

// Place picks a size, a vSwitch and a host for req.
func Place(snap Snapshot, req Request, policy Policy) (Decision, error) {
	vsws, missing := candidateVSwitches(snap, req)
	if req.Warm && !req.Ordered {
		sort.SliceStable(vsws, func(i, j int) bool { return warmIn(snap.Hosts, vsws[i].ID) && !warmIn(snap.Hosts, vsws[j].ID) })
	}
	var reasons []string
	if len(missing) > 0 {
		reasons = append(reasons, "vSwitch "+strings.Join(missing, ", ")+" does not exist")
	}
	if len(vsws) == 0 && len(missing) == 0 {
		reasons = append(reasons, "no vSwitch is configured")
	}
	for _, size := range req.Sizes {
		var sizeReasons []string
		for _, vsw := range vsws {
			// Without a free IP, only a host with a warm sandbox there
			// (it has its address) can take the group.
			warmOnly := vsw.FreeIPs <= 0
			if warmOnly && !(req.Warm && warmIn(snap.Hosts, vsw.ID)) {
				sizeReasons = append(sizeReasons, fmt.Sprintf("vSwitch %s (%s) has no free IP", vsw.ID, vsw.Zone))
				continue
			}
			host, why := pickHost(snap.Hosts, vsw, size, req, policy, warmOnly)
			if host != "" {
				return Decision{Host: host, Zone: vsw.Zone, VSwitch: vsw.ID, Size: size}, nil
			}
			sizeReasons = append(sizeReasons, why)
		}
		if len(sizeReasons) > 0 {
			reasons = append(reasons, fmt.Sprintf("for %s: %s", size, strings.Join(dedupe(sizeReasons), ", ")))
		}
	}
	return Decision{}, &NoCapacityError{Reasons: reasons}
}

// candidateVSwitches returns the allowed vSwitches in the order to try, and the
// requested ones that don't exist.
func candidateVSwitches(snap Snapshot, req Request) ([]VSwitch, []string) {
	byID := make(map[string]VSwitch, len(snap.VSwitches))
	for _, v := range snap.VSwitches {
		byID[v.ID] = v
	}
	var out []VSwitch
	var missing []string
	if len(req.VSwitchIDs) == 0 {
		out = append(out, snap.VSwitches...)
		sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	} else {
		for _, id := range req.VSwitchIDs {
			if v, ok := byID[id]; ok {
				out = append(out, v)
			} else {
				missing = append(missing, id)
			}
		}
	}
	if !req.Ordered {
		r := rand.New(rand.NewPCG(req.Seed, req.Seed^0x9e3779b97f4a7c15))
		r.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	}
	return out, missing
}

// warmIn tells whether a host has a ready warm sandbox on vSwitch vsw.
func warmIn(hosts []Host, vsw string) bool {
	for _, h := range hosts {
		if h.Warm[vsw] > 0 && h.Schedulable {
			return true
		}
	}
	return false
}

// pickHost chooses a host of vsw's zone that fits size (with req's GPUs
// and runtime handler), or says why none does.
func pickHost(hosts []Host, vsw VSwitch, size sizes.Size, req Request, policy Policy, warmOnly bool) (string, string) {
	zone := vsw.Zone
	best, gpu := -1, req.GPU
	var top score
	inZone, ready, full, handler := 0, 0, 0, 0
	var largest Resources
	for i, h := range hosts {
		if h.Zone != zone {
			continue
		}
		inZone++
		if !h.Schedulable || (warmOnly && h.Warm[vsw.ID] <= 0) {
			continue
		}
		ready++
		if req.RuntimeHandler != "" && !slices.Contains(h.RuntimeHandlers, req.RuntimeHandler) {
			continue
		}
		handler++
		free := h.free()
		if free.MilliCPU > largest.MilliCPU || (free.MilliCPU == largest.MilliCPU && free.MemoryMiB > largest.MemoryMiB) {
			largest = free
		}
		if !free.Fits(size, gpu) {
			if free.MilliCPU >= size.MilliCPU && free.MemoryMiB >= size.MemoryMiB && free.GPU >= gpu && free.Pods < 1 {
				full++
			}
			continue
		}
		sc := score{held: h.held(req), warm: req.Warm && h.Warm[vsw.ID] > 0, free: free, name: h.Name}
		if best < 0 || sc.beats(top, policy) {
			best, top = i, sc
		}
	}
	if best >= 0 {
		return hosts[best].Name, ""
	}
	switch {
	case inZone == 0:
		return "", fmt.Sprintf("no host in %s", zone)
	case ready == 0:
		return "", fmt.Sprintf("no ready, schedulable host in %s", zone)
	case handler == 0:
		return "", fmt.Sprintf("no ready host in %s offers runtime handler %q", zone, req.RuntimeHandler)
	case full > 0 && full == handler:
		return "", fmt.Sprintf("every host in %s with room for %v vCPU / %v GiB runs as many groups as it may", zone, size.VCPU(), size.GiB())
	case gpu > 0:
		return "", fmt.Sprintf("no host in %s has %v vCPU, %v GiB and %d GPU free", zone, size.VCPU(), size.GiB(), gpu)
	default:
		return "", fmt.Sprintf("no host in %s has %v vCPU / %v GiB free (most free: %v vCPU / %v GiB)",
			zone, size.VCPU(), size.GiB(), float64(largest.MilliCPU)/1000, float64(largest.MemoryMiB)/1024)
	}
}

// score is what orders the hosts that fit a group: the bytes of its images
// they hold, then a warm sandbox, then the policy on their free room, then
// the name.
type score struct {
	held int64
	warm bool
	free Resources
	name string
}

func (a score) beats(b score, policy Policy) bool {
	switch {
	case a.held != b.held:
		return a.held > b.held
	case a.warm != b.warm:
		return a.warm
	case a.free != b.free:
		return better(a.free, b.free, policy)
	}
	return a.name < b.name
}

// better tells whether free a is preferred to b under policy.
func better(a, b Resources, policy Policy) bool {
	if policy == Binpack {
		if a.MilliCPU != b.MilliCPU {
			return a.MilliCPU < b.MilliCPU
		}
		return a.MemoryMiB < b.MemoryMiB
	}
	if a.MilliCPU != b.MilliCPU {
		return a.MilliCPU > b.MilliCPU
	}
	return a.MemoryMiB > b.MemoryMiB
}

func dedupe(in []string) []string {
	seen := map[string]bool{}
	out := in[:0]
	for _, s := range in {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}
