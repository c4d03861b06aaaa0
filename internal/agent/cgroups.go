package agent

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"time"
)

// cgroupRoot is where cgroup hierarchies are mounted.
const cgroupRoot = "/sys/fs/cgroup"

// removeCgroup removes the cgroup a group's sandbox and containers lived under,
// in every hierarchy this agent sees (cgroup v1: one per controller; v2: one).
// The runtime removes the containers' own cgroups, not their parent.
func removeCgroup(rel string) error {
	var dirs []string
	if entries, err := os.ReadDir(cgroupRoot); err == nil {
		for _, e := range entries {
			if e.IsDir() && e.Type()&fs.ModeSymlink == 0 {
				dirs = append(dirs, filepath.Join(cgroupRoot, e.Name(), rel))
			}
		}
	}
	dirs = append(dirs, filepath.Join(cgroupRoot, rel)) // cgroup v2
	var last error
	for attempt := 0; attempt < 50; attempt++ {
		last = nil
		for _, d := range dirs {
			if err := rmdirTree(d); err != nil {
				last = err
			}
		}
		if last == nil {
			return nil
		}
		time.Sleep(20 * time.Millisecond) // tasks still exiting
	}
	return fmt.Errorf("remove cgroup %s: %w", rel, last)
}

// rmdirTree removes a cgroup directory and its children, deepest first
// (cgroup directories are removed with rmdir, never by deleting files).
func rmdirTree(root string) error {
	if _, err := os.Stat(root); os.IsNotExist(err) {
		return nil
	}
	var dirs []string
	_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	sort.Slice(dirs, func(i, j int) bool { return len(dirs[i]) > len(dirs[j]) })
	for _, d := range dirs {
		if err := os.Remove(d); err != nil && !os.IsNotExist(err) {
			return err
		}
	}
	return nil
}
