package agent

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	apiv1 "github.com/eci-dev/eci/api/v1"
)

// A volumeMount's subPath names a path inside a volume whose content the
// tenant controls: symlinks above all. Joined to the volume's directory and
// handed to the runtime, "ln -s / /data/x" with subPath x would mount the
// host's / into the container (CVE-2017-1002101 for the kubelet). So the
// agent resolves a subPath itself, as the kubelet does since: it opens the
// path with openat2 and RESOLVE_BENEATH from the volume's directory (no
// absolute symlink, no "..", no /proc magic link may take it out; relative
// symlinks inside the volume are followed, as the files of a configMap
// volume need), bind-mounts what it opened (through /proc/self/fd) at a
// path of its own, and gives the runtime that path. A symlink swapped in
// after the check changes nothing: the mount is of the inode that was
// opened. A subPath that does not exist is made as a directory, one
// component at a time under the same rule.

// subpathDir holds the bind mounts of a group's subPaths:
// <group>/subpaths/<container>/<mount index>.
func (a *Agent) subpathDir(id string) string { return filepath.Join(a.groupDir(id), "subpaths") }

// errEscapes is a subPath that leads outside its volume.
var errEscapes = errors.New("it leads outside the volume (through a symlink or ..)")

// bindSubpath resolves subPath inside volume dir and bind-mounts it at target
// (replacing what was mounted there), returning target; a subPath that does
// not exist is made unless create is false (a read-only volume: a data
// cache's copy is shared by the host's groups).
func bindSubpath(volume, subPath, target string, create bool) (string, error) {
	root, err := unix.Open(volume, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", fmt.Errorf("open the volume: %w", err)
	}
	defer func() { _ = unix.Close(root) }()
	fd, err := openBeneath(root, subPath)
	if errors.Is(err, unix.ENOENT) && create {
		if err = mkdirBeneath(root, subPath); err == nil {
			fd, err = openBeneath(root, subPath)
		}
	}
	if err != nil {
		return "", err
	}
	defer func() { _ = unix.Close(fd) }()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return "", err
	}
	if err := unix.Unmount(target, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return "", fmt.Errorf("unmount the previous subPath mount: %w", err)
	}
	if err := makeMountPoint(target, st.Mode&unix.S_IFMT == unix.S_IFDIR); err != nil {
		return "", err
	}
	source := "/proc/self/fd/" + strconv.Itoa(fd)
	if err := unix.Mount(source, target, "", unix.MS_BIND, ""); err != nil {
		return "", fmt.Errorf("bind-mount the subPath: %w", err)
	}
	return target, nil
}

// openBeneath opens p (relative) without leaving dir.
func openBeneath(dir int, p string) (int, error) {
	fd, err := unix.Openat2(dir, p, &unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS,
	})
	if errors.Is(err, unix.EXDEV) || errors.Is(err, unix.ELOOP) {
		return -1, errEscapes
	}
	return fd, err
}

// mkdirBeneath makes the missing directories of p, each created with mkdirat
// in a parent opened beneath dir, with dir's permissions (as the kubelet:
// a writable emptyDir gets writable subPaths).
func mkdirBeneath(dir int, p string) error {
	var st unix.Stat_t
	if err := unix.Fstat(dir, &st); err != nil {
		return err
	}
	perm := st.Mode & 0o777
	parts := strings.Split(filepath.Clean(p), "/")
	for i := range parts {
		prefix := strings.Join(parts[:i+1], "/")
		fd, err := openBeneath(dir, prefix)
		if err == nil {
			_ = unix.Close(fd)
			continue
		}
		if !errors.Is(err, unix.ENOENT) {
			return err
		}
		parent := dir
		if i > 0 {
			if parent, err = openBeneath(dir, strings.Join(parts[:i], "/")); err != nil {
				return err
			}
		}
		err = unix.Mkdirat(parent, parts[i], perm)
		if err == nil {
			err = chmodChild(parent, parts[i], perm) // mkdirat applied the umask
		}
		if parent != dir {
			_ = unix.Close(parent)
		}
		if err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("make the subPath: %w", err)
		}
	}
	return nil
}

// chmodChild sets the mode of directory name in parent, never through a
// symlink put there meanwhile.
func chmodChild(parent int, name string, perm uint32) error {
	fd, err := unix.Openat(parent, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer func() { _ = unix.Close(fd) }()
	return unix.Fchmod(fd, perm)
}

// makeMountPoint makes target a directory or an empty file to mount on.
func makeMountPoint(target string, dir bool) error {
	if err := os.MkdirAll(filepath.Dir(target), 0o700); err != nil {
		return err
	}
	if dir {
		_ = os.Remove(target) // a file left by an earlier attempt
		return os.MkdirAll(target, 0o700)
	}
	_ = os.Remove(target) // a directory left by an earlier attempt (empty)
	f, err := os.OpenFile(target, os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	return f.Close()
}

// subpathError says which mount of which container failed, and why.
func subpathError(c apiv1.Container, m apiv1.VolumeMount, err error) error {
	return fmt.Errorf("failed to prepare subPath %q of volume %q for container %q: %w", m.SubPath, m.Name, c.Name, err)
}
