package agent

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	apiv1 "github.com/eci-dev/eci/api/v1"
)

// A memory-medium emptyDir is a tmpfs the agent mounts at the volume's
// directory, sized by its sizeLimit (or the group's memory); what is written
// there counts against the group's memory, as with the kubelet. Mounts are
// found again from /proc/self/mountinfo, so a restarted agent neither mounts
// twice nor forgets to unmount.

// ensureTmpfs mounts a tmpfs of sizeMiB at dir unless one is there.
func ensureTmpfs(dir string, sizeMiB int64) error {
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return err
	}
	mounted, err := mountsUnder(dir)
	if err != nil {
		return err
	}
	for _, m := range mounted {
		if m == dir {
			return nil
		}
	}
	opts := fmt.Sprintf("size=%dm,mode=1777", sizeMiB)
	if err := syscall.Mount("tmpfs", dir, "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV, opts); err != nil {
		return fmt.Errorf("mount a %d MiB tmpfs at %s: %w", sizeMiB, dir, err)
	}
	return nil
}

// memoryVolumeSize is the size of a memory emptyDir: its sizeLimit, or the
// group's memory.
func memoryVolumeSize(g *apiv1.ContainerGroup, v apiv1.Volume) int64 {
	if v.EmptyDir.SizeLimitMiB > 0 {
		return v.EmptyDir.SizeLimitMiB
	}
	if g.Status.MemoryMiB > 0 {
		return g.Status.MemoryMiB
	}
	return 64
}

// ensureNFS mounts an NFS export at dir unless it is mounted: NFSv4.1 by
// the kernel's own client (no mount helper), the server resolved first,
// hard mounts as the kubelet's defaults.
func ensureNFS(dir string, v *apiv1.NFSVolume) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	mounted, err := mountsUnder(dir)
	if err != nil {
		return err
	}
	if len(mounted) > 0 && mounted[0] == dir {
		return nil
	}
	addrs, err := net.LookupHost(v.Server)
	if err != nil || len(addrs) == 0 {
		return fmt.Errorf("NFS server %q: %w", v.Server, err)
	}
	var flags uintptr = syscall.MS_NOSUID | syscall.MS_NODEV
	if v.ReadOnly {
		flags |= syscall.MS_RDONLY
	}
	source := v.Server + ":" + v.Path
	opts := "vers=4.1,hard,timeo=600,retrans=2,addr=" + addrs[0]
	if err := syscall.Mount(source, dir, "nfs4", flags, opts); err != nil {
		if err == syscall.ENODEV {
			return fmt.Errorf("mount NFS %s: this host's kernel has no NFS client (nfs4 file system unknown): %w", source, err)
		}
		return fmt.Errorf("mount NFS %s: %w", source, err)
	}
	return nil
}

// unmountUnder unmounts every mount at or below dir, deepest first.
func unmountUnder(dir string) error {
	mounted, err := mountsUnder(dir)
	if err != nil {
		return err
	}
	for i := len(mounted) - 1; i >= 0; i-- {
		if err := syscall.Unmount(mounted[i], syscall.MNT_DETACH); err != nil && err != syscall.EINVAL && err != syscall.ENOENT {
			return fmt.Errorf("unmount %s: %w", mounted[i], err)
		}
	}
	return nil
}

// mountsUnder lists the mount points at or below dir, shallowest first.
func mountsUnder(dir string) ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	dir = filepath.Clean(dir)
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && (fields[4] == dir || strings.HasPrefix(fields[4], dir+"/")) {
			out = append(out, fields[4])
		}
	}
	sort.Slice(out, func(i, j int) bool { return len(out[i]) < len(out[j]) })
	return out, sc.Err()
}
