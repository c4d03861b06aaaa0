package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strings"

	"golang.org/x/sys/unix"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/log"
)

// A group takes a sandbox of the warm pool (warmpool.go) when it is placed
// on the address of one and can use a sandbox made for no group in
// particular (apiv1.Warmable). What the runtime made for the pool and is
// the group's own is set when it takes it: its cgroup's limits (the
// group's size, before its first container starts), its hostname (in the
// sandbox's UTS namespace), and its /etc/hostname and /etc/resolv.conf,
// which the agent writes and mounts into each container (as it does
// /etc/hosts). The container's HOSTNAME and log directory come from the
// sandbox config each CreateContainer carries, the group's.

// claim gives group g the pool's ready sandbox on g's address (nil: none),
// recording the take on disk first: an agent started again knows it even
// before the group's first container exists.
func (p *warmPool) claim(g *apiv1.ContainerGroup) *warmSandbox {
	key := g.Status.VSwitchID + "_" + g.Status.IP
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, w := range p.sandboxes {
		if w.key() == key && w.ready && w.group == "" && !w.removing {
			if err := p.a.recordTake(w.id, take{group: g.Metadata.ID}); err != nil {
				return nil
			}
			w.group = g.Metadata.ID
			p.claims[g.Metadata.ID] = w.id
			cp := *w
			return &cp
		}
	}
	return nil
}

// giveUp ends group's take of sandbox w, which the group could not be
// given: it is nobody's and is removed.
func (p *warmPool) giveUp(ctx context.Context, group string, w *warmSandbox) {
	p.mu.Lock()
	if cur := p.sandboxes[w.id]; cur != nil {
		cur.removing, cur.ready, cur.group = true, false, ""
	}
	if p.claims[group] == w.id {
		delete(p.claims, group)
	}
	p.a.dropTake(w.id)
	p.mu.Unlock()
	cp := *w
	cp.group = ""
	p.remove(ctx, cp, "the group that took it could not be given it")
}

// prepared records that group's sandbox was made the group's.
func (p *warmPool) prepared(group string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	w := p.sandboxes[p.claims[group]]
	if w == nil {
		return nil
	}
	w.prepared = true
	return p.a.recordTake(w.id, take{group: group, prepared: true})
}

// take is a file per taken sandbox in takesDir: the group that took it,
// and whether the sandbox was made the group's.
type take struct {
	group    string
	prepared bool
}

// takesDir holds the takes.
func (a *Agent) takesDir() string { return filepath.Join(a.cfg.StateDir, "warm-taken") }

func (a *Agent) recordTake(sandbox string, t take) error {
	if err := os.MkdirAll(a.takesDir(), 0o700); err != nil {
		return fmt.Errorf("record a take of a warm sandbox: %w", err)
	}
	data := t.group
	if t.prepared {
		data += "\nprepared"
	}
	if err := os.WriteFile(filepath.Join(a.takesDir(), sandbox), []byte(data), 0o600); err != nil {
		return fmt.Errorf("record a take of a warm sandbox: %w", err)
	}
	return nil
}

func (a *Agent) dropTake(sandbox string) { _ = os.Remove(filepath.Join(a.takesDir(), sandbox)) }

// readTakes are the takes on disk, by sandbox.
func (a *Agent) readTakes() map[string]take {
	out := map[string]take{}
	entries, _ := os.ReadDir(a.takesDir())
	for _, e := range entries {
		if data, err := os.ReadFile(filepath.Join(a.takesDir(), e.Name())); err == nil {
			group, rest, _ := strings.Cut(strings.TrimSpace(string(data)), "\n")
			out[e.Name()] = take{group: group, prepared: rest == "prepared"}
		}
	}
	return out
}

// claimOf is the sandbox group took, nil when it took none.
func (p *warmPool) claimOf(group string) *warmSandbox {
	if p == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	w := p.sandboxes[p.claims[group]]
	if w == nil {
		return nil
	}
	cp := *w
	return &cp
}

// groupOf is the group that took sandbox id ("": none).
func (p *warmPool) groupOf(id string) string {
	if p == nil {
		return ""
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if w := p.sandboxes[id]; w != nil {
		return w.group
	}
	return ""
}

// forget drops what the pool knew of group's sandbox, once removed.
func (p *warmPool) forget(group string) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if id, ok := p.claims[group]; ok {
		delete(p.sandboxes, id)
		delete(p.claims, group)
		p.a.dropTake(id)
	}
}

// groupSandboxes are group id's sandboxes: those made for it, and the one
// it took from the warm pool.
func (a *Agent) groupSandboxes(ctx context.Context, id string, state *runtimeapi.PodSandboxStateValue) ([]*runtimeapi.PodSandbox, error) {
	sbs, err := a.cfg.Runtime.ListPodSandbox(ctx, &runtimeapi.PodSandboxFilter{LabelSelector: map[string]string{LabelGroup: id}, State: state})
	if err != nil {
		return nil, err
	}
	if w := a.pool.claimOf(id); w != nil {
		warm, err := a.cfg.Runtime.ListPodSandbox(ctx, &runtimeapi.PodSandboxFilter{Id: w.id, State: state})
		if err != nil {
			return nil, err
		}
		sbs = append(sbs, warm...)
	}
	return sbs, nil
}

// groupCgroup is the cgroup of group id's sandbox and containers: the
// warm sandbox's it took, else its own.
func (a *Agent) groupCgroup(id string) string {
	if w := a.pool.claimOf(id); w != nil {
		return a.cgroupOf(w.name)
	}
	return a.cgroupOf(id)
}

// prepareAgain makes the sandbox g took its own again when the agent
// stopped before it was (a take without "prepared"): false when it can't
// and the take was given up (the group gets a sandbox of its own).
func (a *Agent) prepareAgain(ctx context.Context, g *apiv1.ContainerGroup, sandboxID string) bool {
	w := a.pool.claimOf(g.Metadata.ID)
	if w == nil || w.id != sandboxID || w.prepared {
		return true
	}
	if err := a.prepareWarm(ctx, g, w); err != nil {
		log.G(ctx).Warn("warm pool: the group could not take its sandbox again; making its own", "group", g.Metadata.ID, "sandbox", short(w.id), "err", err)
		a.pool.giveUp(ctx, g.Metadata.ID, w)
		return false
	}
	if err := a.pool.prepared(g.Metadata.ID); err != nil {
		log.G(ctx).Warn("warm pool: record a prepared take", "group", g.Metadata.ID, "err", err)
	}
	return true
}

// takeWarm gives g (placed, never started) the pool's sandbox on its
// address when there is one: its id, or "" for a sandbox of its own.
func (a *Agent) takeWarm(ctx context.Context, g *apiv1.ContainerGroup, sbCfg *runtimeapi.PodSandboxConfig) string {
	if a.pool == nil || !apiv1.Warmable(&g.Spec) || g.Status.RunningAt != nil {
		return ""
	}
	w := a.pool.claim(g)
	if w == nil {
		return ""
	}
	if err := a.prepareWarm(ctx, g, w); err != nil {
		// Half the group's, it is nobody's now; the group gets its own.
		log.G(ctx).Warn("warm pool: the group could not take its sandbox; making its own", "group", g.Metadata.ID, "sandbox", short(w.id), "err", err)
		a.pool.giveUp(ctx, g.Metadata.ID, w)
		return ""
	}
	if err := a.pool.prepared(g.Metadata.ID); err != nil {
		log.G(ctx).Warn("warm pool: record a prepared take", "group", g.Metadata.ID, "err", err)
	}
	sbCfg.Linux.CgroupParent = a.cgroupOf(w.name)
	a.pool.poke() // the server refills the pool
	a.event(ctx, g, apiv1.EventNormal, "SandboxCreated", "sandbox "+short(w.id)+" taken from the host's warm pool")
	return w.id
}

// prepareWarm makes sandbox w group g's: its size, hostname and files.
func (a *Agent) prepareWarm(ctx context.Context, g *apiv1.ContainerGroup, w *warmSandbox) error {
	if err := limitCgroup(a.cgroupOf(w.name), g.Status.MilliCPU, g.Status.MemoryMiB, a.cfg.PidsLimit); err != nil {
		return fmt.Errorf("size the sandbox's cgroup: %w", err)
	}
	hostname := a.sandboxConfig(g).Hostname
	if err := a.writeWarmFiles(ctx, g, hostname); err != nil {
		return err
	}
	// The pause's pid as the agent sees it, from the sandbox's cgroup (the
	// runtime's own pid may be in another pid namespace).
	pid, err := cgroupPID(filepath.Join(a.cgroupOf(w.name), w.id))
	if err != nil {
		return fmt.Errorf("the sandbox's process: %w", err)
	}
	return setHostname(pid, w.id, hostname)
}

// setHostname sets the hostname of process pid's UTS namespace, once it
// is sure the namespace is sandbox's: the process it opened is in the
// sandbox's cgroup (checked after the open: a pid reused meanwhile fails
// it), and the namespace is not the agent's own. The thread that enters it
// returns to its own namespace; one that could not is never given back to
// Go's scheduler and ends with its goroutine (a child started from that
// thread with a parent-death signal would get it: the test bed's daemons
// are).
func setHostname(pid int, sandbox, name string) error {
	errc := make(chan error, 1)
	go func() {
		goruntime.LockOSThread()
		err := inUTS(pid, sandbox, func() error { return unix.Sethostname([]byte(name)) })
		if !errors.Is(err, errStuckInNamespace) {
			goruntime.UnlockOSThread()
		}
		errc <- err
	}()
	return <-errc
}

var errStuckInNamespace = errors.New("could not return to the agent's UTS namespace")

// inUTS runs f in process pid's UTS namespace (the calling thread locked).
func inUTS(pid int, sandbox string, f func() error) error {
	own, err := os.Open("/proc/thread-self/ns/uts")
	if err != nil {
		return fmt.Errorf("this thread's UTS namespace: %w", err)
	}
	defer own.Close()
	target, err := os.Open(fmt.Sprintf("/proc/%d/ns/uts", pid))
	if err != nil {
		return fmt.Errorf("the sandbox's UTS namespace: %w", err)
	}
	defer target.Close()
	cg, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil || !strings.Contains(string(cg), sandbox) {
		return fmt.Errorf("process %d is not the sandbox's (its cgroups: %q)", pid, cg)
	}
	var ownSt, targetSt unix.Stat_t
	if err := unix.Fstat(int(own.Fd()), &ownSt); err != nil {
		return err
	}
	if err := unix.Fstat(int(target.Fd()), &targetSt); err != nil {
		return err
	}
	if ownSt.Ino == targetSt.Ino && ownSt.Dev == targetSt.Dev {
		return fmt.Errorf("process %d shares the agent's UTS namespace", pid)
	}
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWUTS); err != nil {
		return fmt.Errorf("enter the sandbox's UTS namespace: %w", err)
	}
	err = f()
	if unix.Setns(int(own.Fd()), unix.CLONE_NEWUTS) != nil {
		return errStuckInNamespace
	}
	return err
}

// The files of a group on a warm sandbox, in its directory.
func (a *Agent) hostnameFile(id string) string { return filepath.Join(a.groupDir(id), "etc-hostname") }
func (a *Agent) resolvFile(id string) string   { return filepath.Join(a.groupDir(id), "etc-resolv.conf") }

// writeWarmFiles writes g's /etc/hostname and /etc/resolv.conf as the
// runtime writes a sandbox's.
func (a *Agent) writeWarmFiles(ctx context.Context, g *apiv1.ContainerGroup, hostname string) error {
	if err := os.MkdirAll(a.groupDir(g.Metadata.ID), 0o755); err != nil {
		return fmt.Errorf("the group's files: %w", err)
	}
	if err := os.WriteFile(a.hostnameFile(g.Metadata.ID), []byte(hostname+"\n"), 0o644); err != nil {
		return fmt.Errorf("the group's /etc/hostname: %w", err)
	}
	if err := os.WriteFile(a.resolvFile(g.Metadata.ID), []byte(resolvConf(a.dnsConfigOf(ctx, g))), 0o644); err != nil {
		return fmt.Errorf("the group's /etc/resolv.conf: %w", err)
	}
	return nil
}

// resolvConf is a resolv.conf of d, as containerd writes one.
func resolvConf(d *runtimeapi.DNSConfig) string {
	var b strings.Builder
	if len(d.Searches) > 0 {
		b.WriteString("search " + strings.Join(d.Searches, " ") + "\n")
	}
	for _, s := range d.Servers {
		b.WriteString("nameserver " + s + "\n")
	}
	if len(d.Options) > 0 {
		b.WriteString("options " + strings.Join(d.Options, " ") + "\n")
	}
	return b.String()
}

// warmMounts are the files a container of a group on a warm sandbox gets
// from the agent rather than the runtime, unless it mounts them itself.
func (a *Agent) warmMounts(g *apiv1.ContainerGroup, c apiv1.Container, own map[string]bool) []*runtimeapi.Mount {
	if a.pool.claimOf(g.Metadata.ID) == nil {
		return nil
	}
	ro := c.SecurityContext != nil && c.SecurityContext.ReadOnlyRootFilesystem
	var out []*runtimeapi.Mount
	for _, f := range [][2]string{{"/etc/hostname", a.hostnameFile(g.Metadata.ID)}, {"/etc/resolv.conf", a.resolvFile(g.Metadata.ID)}} {
		if !own[f[0]] {
			out = append(out, &runtimeapi.Mount{ContainerPath: f[0], HostPath: f[1], Readonly: ro})
		}
	}
	return out
}
