package agent

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/imageref"
)

// Registry settings reach containerd through its hosts directory
// (config_path: one <registry>/hosts.toml each), which it reads at every
// pull. The agent writes two kinds there, each marked as its own:
//
//   - mirrors (--registry-mirror): an air-gapped site points docker.io, or
//     any registry, at its own;
//   - plain-http and insecure (no TLS verification) registries that groups
//     ask for: a registry's transport is the host's, so a group's file is
//     there only during that group's own pull (pullguard.go).
//
// A hosts.toml the agent did not write (the operator's) is never touched,
// and a group's plain-http or insecure wish for such a registry, or for a
// mirrored one, is refused with a message saying why.

const (
	markMirror = "# written by the eci agent: --registry-mirror\n"
	markGroup  = "# written by the eci agent: a group's plainHttpRegistries/insecureRegistries; removed when no group needs it\n"
)

// pullAuth is the group's credential for image's registry, if it has one.
func pullAuth(g *apiv1.ContainerGroup, image string) *runtimeapi.AuthConfig {
	return credentialFor(g.Spec.ImageRegistryCredentials, image)
}

// credentialFor is the credential among creds for image's registry, if any.
func credentialFor(creds []apiv1.RegistryCredential, image string) *runtimeapi.AuthConfig {
	host, err := imageref.RegistryOf(image)
	if err != nil {
		return nil
	}
	for _, c := range creds {
		if imageref.Registry(c.Server) == host {
			// containerd sends it only to the host of the server's URL
			// (not to a mirror), and finds no host in one without a
			// scheme ("reg:5000" is a path to url.Parse): given a URL.
			if host == "docker.io" {
				host = "registry-1.docker.io"
			}
			return &runtimeapi.AuthConfig{Username: c.Username, Password: c.Password, ServerAddress: "https://" + host}
		}
	}
	return nil
}

// writeMirrors writes the hosts.toml of every mirrored registry.
func (a *Agent) writeMirrors() error {
	for reg, mirrors := range a.cfg.RegistryMirrors {
		var b strings.Builder
		b.WriteString(markMirror)
		fmt.Fprintf(&b, "server = %q\n", upstream(reg))
		for _, m := range mirrors {
			fmt.Fprintf(&b, "\n[host.%q]\n  capabilities = [\"pull\", \"resolve\"]\n", strings.TrimRight(m, "/"))
		}
		if err := a.writeHosts(imageref.Registry(reg), b.String(), markMirror); err != nil {
			return err
		}
	}
	return nil
}

func upstream(reg string) string {
	if imageref.Registry(reg) == "docker.io" {
		return "https://registry-1.docker.io"
	}
	return "https://" + imageref.Registry(reg)
}

// withTransport runs pull with reg's transport as g asks (wish: "http",
// "insecure" or "" for the host's own). A pull that changes the transport
// runs alone among the pulls from reg (pullguard.go), its setting written
// before and removed after; a setting that can't be removed stops every
// later pull from reg until it can.
func (a *Agent) withTransport(reg, wish string, pull func() error) error {
	if wish != "" {
		// Refused before the registry is locked: a refused wish holds
		// nobody's pulls up.
		switch {
		case a.cfg.RegistryConfigDir == "":
			return errNoRegistryDir
		case !a.cfg.AllowInsecureRegistries:
			return errors.New("plainHttpRegistries/insecureRegistries: this host's agent does not allow them (--allow-insecure-registries is off)")
		case a.operatorConfigured(reg):
			return fmt.Errorf("registry %s is configured by the host's operator or a mirror: a group can't change it", reg)
		}
	}
	unlock := a.pulls.lock(reg, wish != "")
	defer unlock()
	if wish == "" {
		// No pull changes reg now: a group's file here was left by a
		// stopped agent, or could not be removed.
		if err := a.removeWish(reg); err != nil {
			return err
		}
		return pull()
	}
	if err := a.writeHosts(reg, markGroup+registryHostsTOML(reg, wish), markGroup); err != nil {
		return err
	}
	err := pull()
	if rerr := a.removeWish(reg); rerr != nil && err == nil {
		err = rerr
	}
	return err
}

// removeWish removes a group's hosts.toml of reg, never the operator's or a
// mirror's.
func (a *Agent) removeWish(reg string) error {
	path, ok := a.registryHostsFile(reg)
	if !ok {
		return nil
	}
	cur, err := os.ReadFile(path)
	if err != nil || !bytes.HasPrefix(cur, []byte(markGroup)) {
		return nil
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("registry %s keeps a group's transport setting (%s can't be removed: %w): no pull from it until it can", reg, path, err)
	}
	_ = os.Remove(filepath.Dir(path)) // when empty
	return nil
}

// registryWishes maps each registry g wants plain-http or insecure to
// "http" or "insecure".
func registryWishes(g *apiv1.ContainerGroup) map[string]string {
	want := map[string]string{}
	for _, r := range g.Spec.InsecureRegistries {
		want[imageref.Registry(r)] = "insecure"
	}
	for _, r := range g.Spec.PlainHTTPRegistries {
		want[imageref.Registry(r)] = "http"
	}
	return want
}

func registryHostsTOML(reg, kind string) string {
	if kind == "http" {
		return fmt.Sprintf("server = \"http://%s\"\n\n[host.\"http://%s\"]\n  capabilities = [\"pull\", \"resolve\"]\n", reg, reg)
	}
	return fmt.Sprintf("server = \"https://%s\"\n\n[host.\"https://%s\"]\n  capabilities = [\"pull\", \"resolve\"]\n  skip_verify = true\n", reg, reg)
}

// registryHostsFile is reg's hosts.toml in the registry config dir; false when
// there is no dir, or reg is no host[:port] (it would name another path).
func (a *Agent) registryHostsFile(reg string) (string, bool) {
	if a.cfg.RegistryConfigDir == "" || strings.ContainsAny(reg, `/\`) || reg == "" || reg == "." || reg == ".." {
		return "", false
	}
	return filepath.Join(a.cfg.RegistryConfigDir, reg, "hosts.toml"), true
}

// writeHosts writes <dir>/<reg>/hosts.toml unless a file not carrying mark
// is there (the operator's, or a mirror's when mark is a group's).
func (a *Agent) writeHosts(reg, content, mark string) error {
	path, ok := a.registryHostsFile(reg)
	if !ok {
		return fmt.Errorf("registry %q is not a host[:port]", reg)
	}
	cur, err := os.ReadFile(path)
	switch {
	case err == nil && bytes.Equal(cur, []byte(content)):
		return nil
	case err == nil && !bytes.HasPrefix(cur, []byte(mark)):
		who := "the host's operator"
		if bytes.HasPrefix(cur, []byte(markMirror)) {
			who = "a registry mirror of this host"
		}
		return fmt.Errorf("registry %s is configured by %s (%s): a group can't change it", reg, who, path)
	case err != nil && !errors.Is(err, os.ErrNotExist):
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// pruneRegistries removes the group-asked hosts.toml files left by an agent
// that stopped during a pull: only where no pull holds the registry.
func (a *Agent) pruneRegistries() error {
	if a.cfg.RegistryConfigDir == "" {
		return nil
	}
	entries, err := os.ReadDir(a.cfg.RegistryConfigDir)
	if err != nil {
		return nil // nothing written yet
	}
	for _, e := range entries {
		cur, err := os.ReadFile(filepath.Join(a.cfg.RegistryConfigDir, e.Name(), "hosts.toml"))
		if err != nil || !bytes.HasPrefix(cur, []byte(markGroup)) {
			continue
		}
		l := a.pulls.registryLock(e.Name())
		if !l.TryLock() {
			continue // a pull uses the registry now
		}
		err = a.removeWish(e.Name())
		l.Unlock()
		if err != nil {
			return err
		}
	}
	return nil
}
