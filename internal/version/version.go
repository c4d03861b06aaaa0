// Package version reports what eci binary this is. Version is set at link time
// by the Makefile (-X); the commit comes from the Go toolchain's VCS stamp.
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Version is the release of eci, set with -ldflags "-X .../version.Version=...".
var Version = "v0.0.0-dev"

// Info describes the running binary.
type Info struct {
	Version   string `json:"version"`
	Commit    string `json:"commit,omitempty"`
	Modified  bool   `json:"modified,omitempty"`
	GoVersion string `json:"goVersion"`
	Platform  string `json:"platform"`
}

// Get returns the version information of the running binary.
func Get() Info {
	info := Info{Version: Version, GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				info.Commit = s.Value
			case "vcs.modified":
				info.Modified = s.Value == "true"
			}
		}
	}
	return info
}

// String is the one-line form printed by `eci version`.
func (i Info) String() string {
	commit := i.Commit
	if len(commit) > 12 {
		commit = commit[:12]
	}
	if commit == "" {
		commit = "unknown"
	}
	if i.Modified {
		commit += "-dirty"
	}
	return fmt.Sprintf("eci %s (commit %s, %s, %s)", i.Version, commit, i.GoVersion, i.Platform)
}
