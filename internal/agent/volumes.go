package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	apiv1 "github.com/eci-dev/eci/api/v1"
)

// Volumes live in <StateDir>/groups/<id>/volumes/<name> and are bind-mounted
// into the containers. A files volume is written the way the kubelet's
// AtomicWriter does it, so that a payload update is seen by the containers
// at once and whole: the files go into a fresh timestamped directory, the
// "..data" symlink is swapped to it with one rename, and every visible name is
// a symlink through "..data".

const (
	dataLink    = "..data"
	payloadMark = "..payload"
)

func (a *Agent) groupDir(id string) string { return filepath.Join(a.cfg.StateDir, "groups", id) }

func (a *Agent) volumeDir(id, name string) string {
	return filepath.Join(a.groupDir(id), "volumes", name)
}

// ensureVolumes makes every volume of g exist on the host and brings files
// volumes up to their current payload; errDataFetching while a data cache
// it mounts is being fetched to the host.
func (a *Agent) ensureVolumes(ctx context.Context, g *apiv1.ContainerGroup) error {
	if err := a.writeHostsFile(g); err != nil {
		return fmt.Errorf("/etc/hosts: %w", err)
	}
	var fetching error
	for _, v := range g.Spec.Volumes {
		dir := a.volumeDir(g.Metadata.ID, v.Name)
		switch {
		case v.EmptyDir != nil && v.EmptyDir.Medium == "Memory":
			if err := ensureTmpfs(dir, memoryVolumeSize(g, v)); err != nil {
				return fmt.Errorf("volume %s: %w", v.Name, err)
			}
		case v.EmptyDir != nil:
			if err := os.MkdirAll(dir, 0o777); err != nil {
				return fmt.Errorf("volume %s: %w", v.Name, err)
			}
			if err := os.Chmod(dir, 0o777); err != nil {
				return err
			}
		case v.Files != nil:
			if err := writePayload(dir, v.Files); err != nil {
				return fmt.Errorf("volume %s: %w", v.Name, err)
			}
		case v.NFS != nil:
			if err := ensureNFS(dir, v.NFS); err != nil {
				return fmt.Errorf("volume %s: %w", v.Name, err)
			}
		case v.DataCache != nil:
			switch err := a.data.ensure(ctx, v.DataCache, g.Metadata.ID); {
			case errors.Is(err, errDataFetching):
				fetching = err // (the others' fetches start meanwhile)
			case err != nil:
				return fmt.Errorf("volume %s: %w", v.Name, err)
			}
		}
	}
	return fetching
}

// writePayload makes dir hold exactly files, atomically; nothing is written
// when it already does.
func writePayload(dir string, files *apiv1.FilesVolume) error {
	data, _ := json.Marshal(files)
	sum := sha256.Sum256(data)
	mark := hex.EncodeToString(sum[:])
	if cur, err := os.ReadFile(filepath.Join(dir, payloadMark)); err == nil && string(cur) == mark {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	ts := filepath.Join(dir, ".."+time.Now().UTC().Format("2006_01_02_15_04_05.000000000"))
	if err := os.MkdirAll(ts, 0o755); err != nil {
		return err
	}
	mode := os.FileMode(0o644)
	if files.DefaultMode != nil {
		mode = os.FileMode(*files.DefaultMode)
	}
	top := map[string]bool{}
	for _, f := range files.Files {
		p := filepath.Join(ts, filepath.Clean(f.Path))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		m := mode
		if f.Mode != nil {
			m = os.FileMode(*f.Mode)
		}
		if err := os.WriteFile(p, f.Content, m); err != nil {
			return err
		}
		if err := os.Chmod(p, m); err != nil {
			return err
		}
		top[firstElem(filepath.Clean(f.Path))] = true
	}
	// Swap ..data in one rename.
	tmpLink := filepath.Join(dir, "..data_tmp"+strconv.FormatInt(time.Now().UnixNano(), 10))
	if err := os.Symlink(filepath.Base(ts), tmpLink); err != nil {
		return err
	}
	old, _ := os.Readlink(filepath.Join(dir, dataLink))
	if err := os.Rename(tmpLink, filepath.Join(dir, dataLink)); err != nil {
		return err
	}
	// Visible names point through ..data; names no longer in the payload go.
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		name := e.Name()
		if len(name) >= 2 && name[:2] == ".." {
			continue
		}
		if !top[name] {
			_ = os.Remove(filepath.Join(dir, name))
		}
	}
	for name := range top {
		link := filepath.Join(dir, name)
		if _, err := os.Lstat(link); err == nil {
			continue
		}
		if err := os.Symlink(filepath.Join(dataLink, name), link); err != nil {
			return err
		}
	}
	if old != "" && old != filepath.Base(ts) {
		_ = os.RemoveAll(filepath.Join(dir, old))
	}
	return os.WriteFile(filepath.Join(dir, payloadMark), []byte(mark), 0o644)
}

func firstElem(p string) string {
	for i := 0; i < len(p); i++ {
		if p[i] == '/' {
			return p[:i]
		}
	}
	return p
}

// mounts are c's volume mounts as CRI mounts; subPaths are resolved safely
// inside their volume and bind-mounted by the agent (subpath.go).
func (a *Agent) mounts(g *apiv1.ContainerGroup, c apiv1.Container) ([]*runtimeapi.Mount, error) {
	kinds := map[string]apiv1.Volume{}
	for _, v := range g.Spec.Volumes {
		kinds[v.Name] = v
	}
	var out []*runtimeapi.Mount
	own := map[string]bool{}
	for i, m := range c.VolumeMounts {
		own[filepath.Clean(m.MountPath)] = true
		host := a.volumeDir(g.Metadata.ID, m.Name)
		dc := kinds[m.Name].DataCache
		if dc != nil {
			var err error
			if host, err = a.data.path(dc.ID); err != nil {
				return nil, fmt.Errorf("volume %s: %w", m.Name, err)
			}
		}
		if m.SubPath != "" {
			target := filepath.Join(a.subpathDir(g.Metadata.ID), c.Name, strconv.Itoa(i))
			var err error
			if host, err = bindSubpath(host, m.SubPath, target, dc == nil); err != nil {
				return nil, subpathError(c, m, err)
			}
		}
		readonly := m.ReadOnly || kinds[m.Name].Files != nil || (kinds[m.Name].NFS != nil && kinds[m.Name].NFS.ReadOnly) || dc != nil
		out = append(out, &runtimeapi.Mount{ContainerPath: m.MountPath, HostPath: host, Readonly: readonly})
	}
	if !own["/etc/hosts"] {
		out = append(out, &runtimeapi.Mount{ContainerPath: "/etc/hosts", HostPath: a.hostsFile(g.Metadata.ID)})
	}
	return append(out, a.warmMounts(g, c, own)...), nil
}

func (a *Agent) hostsFile(id string) string { return filepath.Join(a.groupDir(id), "etc-hosts") }

// writeHosts writes the group's /etc/hosts as the kubelet does: localhost,
// the group's own name at its IP, then its hostAliases.
func (a *Agent) writeHostsFile(g *apiv1.ContainerGroup) error {
	hostname := g.Spec.Hostname
	if hostname == "" {
		hostname = g.Metadata.Name
	}
	var b strings.Builder
	b.WriteString("# Managed by the eci agent.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
	b.WriteString("fe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n")
	if g.Status.IP != "" {
		fmt.Fprintf(&b, "%s\t%s\n", g.Status.IP, hostname)
	}
	if len(g.Spec.HostAliases) > 0 {
		b.WriteString("\n# Entries added by hostAliases.\n")
		for _, h := range g.Spec.HostAliases {
			fmt.Fprintf(&b, "%s\t%s\n", h.IP, strings.Join(h.Hostnames, "\t"))
		}
	}
	path := a.hostsFile(g.Metadata.ID)
	if cur, err := os.ReadFile(path); err == nil && string(cur) == b.String() {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

// removeGroupFiles removes everything the agent keeps on the host for group
// id: its volumes, its logs and its cgroup.
func (a *Agent) removeGroupFiles(id string) error {
	if err := a.removeVolumes(id); err != nil {
		return err
	}
	if err := os.RemoveAll(filepath.Join(a.cfg.LogDir, id)); err != nil {
		return err
	}
	return a.removeCgroup(id)
}

// removeVolumes unmounts and removes the group's volumes.
func (a *Agent) removeVolumes(id string) error {
	if err := unmountUnder(a.groupDir(id)); err != nil {
		return err
	}
	return os.RemoveAll(a.groupDir(id))
}
