package testbed

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"text/template"
	"time"

	internalapi "k8s.io/cri-api/pkg/apis"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	remote "k8s.io/cri-client/pkg"
	"k8s.io/klog/v2"
)

const cniBinDir = "/usr/lib/cni"

// Containerd is the bed's containerd, serving CRI on its own socket.
type Containerd struct {
	// Endpoint is the CRI endpoint, unix:///.../containerd.sock.
	Endpoint string
	// Socket is the path of that socket; containerd's debug endpoints
	// (pprof) are on Socket + ".debug".
	Socket string
	// Root and State are containerd's own directories.
	Root, State string
	// LogDir is where tests should put CRI container logs (it is removed at Stop).
	LogDir string
	// CNIConfDir is containerd's CNI config dir; CNIBinDir an extra plugin dir
	// (after /usr/lib/cni) for the project's own plugins.
	CNIConfDir, CNIBinDir string
	// CertsDir is containerd's registry hosts directory (config_path): one
	// <registry>/hosts.toml each; the bed's registry has one.
	CertsDir string
	// CDIDir is containerd's only CDI spec directory (cdi_spec_dirs), empty
	// at start: a test writes the devices it pretends to have there
	// (containerd reads specs as they change).
	CDIDir string

	Runtime internalapi.RuntimeService
	Images  internalapi.ImageManagerService

	proc *process
}

// containerdBinary finds containerd: $CONTAINERD_BIN, or containerd in PATH or
// /usr/local/bin, where hack/install-deps.sh puts it.
func containerdBinary() (string, error) {
	if p := os.Getenv("CONTAINERD_BIN"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("CONTAINERD_BIN=%s: %w; unset it, or run hack/install-deps.sh (make deps)", p, err)
		}
		return p, nil
	}
	if p, err := exec.LookPath("containerd"); err == nil {
		return p, nil
	}
	if _, err := os.Stat("/usr/local/bin/containerd"); err == nil {
		return "/usr/local/bin/containerd", nil
	}
	return "", fmt.Errorf("containerd is not installed: run hack/install-deps.sh (make deps)")
}

var containerdConfig = template.Must(template.New("config").Parse(`version = 4
root = '{{.Root}}'
state = '{{.State}}'
imports = []
# NRI would listen on a machine-wide socket shared with other containerds.
disabled_plugins = ['io.containerd.nri.v1.nri']

[plugins]
  [plugins.'io.containerd.server.v1.grpc']
    address = '{{.Socket}}'
  [plugins.'io.containerd.server.v1.ttrpc']
    address = '{{.Socket}}.ttrpc'
  # pprof for benchmarks, on a socket of the bed's own.
  [plugins.'io.containerd.server.v1.debug']
    address = '{{.Socket}}.debug'

  [plugins.'io.containerd.grpc.v1.cri']
    disable_tcp_service = true
    stream_server_address = '127.0.0.1'
    stream_server_port = '0'

  [plugins.'io.containerd.cri.v1.images']
    snapshotter = 'overlayfs'
    [plugins.'io.containerd.cri.v1.images'.pinned_images]
      sandbox = '{{.PauseImage}}'
    [plugins.'io.containerd.cri.v1.images'.registry]
      config_path = '{{.CertsDir}}'

  [plugins.'io.containerd.cri.v1.runtime']
    restrict_oom_score_adj = true
    tolerate_missing_hugetlb_controller = true
    disable_hugetlb_controller = false
    netns_mounts_under_state_dir = true
    cdi_spec_dirs = ['{{.CDIDir}}']
    # This kind of machine has cgroup v1 only (docs/dependencies.md).
    ignore_deprecation_warnings = ['io.containerd.deprecation/cgroup-v1']
    # containerd's CPU-rate sampler reads every container's and sandbox's
    # cgroups each second by default (45% of containerd's CPU during a
    # 100-pod burst on 200 sandboxes; docs/fast-start.md); the agent takes
    # its groups' CPU rate from their cgroups itself.
    stats_collect_period = '10s'
    [plugins.'io.containerd.cri.v1.runtime'.cni]
      bin_dirs = ['{{.CNIBinDir}}', '{{.ExtraCNIBinDir}}']
      conf_dir = '{{.CNIConfDir}}'
    [plugins.'io.containerd.cri.v1.runtime'.containerd]
      default_runtime_name = 'runc'
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
        runtime_type = 'io.containerd.runc.v2'
        [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
          BinaryName = '{{.Runc}}'
          SystemdCgroup = false
      # A second handler name for the same runc, which tests ask for by
      # name as a RuntimeClass's handler (AltRuntimeHandler).
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.{{.AltHandler}}]
        runtime_type = 'io.containerd.runc.v2'
        [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.{{.AltHandler}}.options]
          BinaryName = '{{.Runc}}'
          SystemdCgroup = false
`))

// AltRuntimeHandler is a runtime handler the bed's containerd offers
// besides runc (runc again, under another name).
const AltRuntimeHandler = "test-alt"

var cniConfig = template.Must(template.New("cni").Parse(`{
  "cniVersion": "1.0.0",
  "name": "eci-bed",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "{{.Bridge}}",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "{{.IPAMDir}}",
        "ranges": [[{"subnet": "{{.Subnet}}"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    }
  ]
}
`))

var registryHosts = template.Must(template.New("hosts").Parse(`server = "http://{{.}}"

[host."http://{{.}}"]
  capabilities = ["pull", "resolve"]
`))

func (b *Bed) startContainerd(ctx context.Context) (*Containerd, error) {
	return b.startContainerdIn(ctx, "", filepath.Join(b.Dir, "containerd"))
}

// startContainerdIn starts a containerd with its directories under dir, in
// network namespace netns ("": the bed's, with the bed's CNI network for a
// kubelet's pods; else a pool host's, whose network is its agent's).
func (b *Bed) startContainerdIn(ctx context.Context, netns, dir string) (*Containerd, error) {
	bin, err := containerdBinary()
	if err != nil {
		return nil, err
	}
	runc, err := exec.LookPath("runc")
	if err != nil {
		return nil, fmt.Errorf("runc is not installed: run hack/install-deps.sh (make deps)")
	}
	c := &Containerd{
		Root:   filepath.Join(dir, "root"),
		State:  filepath.Join(dir, "state"),
		Socket: filepath.Join(dir, "containerd.sock"),
		LogDir: filepath.Join(dir, "pod-logs"),
	}
	c.Endpoint = "unix://" + c.Socket
	cniConfDir := filepath.Join(dir, "net.d")
	c.CNIConfDir, c.CNIBinDir = cniConfDir, filepath.Join(dir, "cni-bin")
	certsDir := filepath.Join(dir, "certs.d")
	c.CertsDir, c.CDIDir = certsDir, filepath.Join(dir, "cdi")
	configPath, err := b.writeContainerdConfig(c, dir, runc, netns == "")
	if err != nil {
		return nil, err
	}
	mounts, err := cgroupMountScript()
	if err != nil {
		return nil, err
	}
	v2 := mounts == ""
	// sh stays PID 1 of the new PID namespace (it reaps orphaned shims); when it
	// dies, the kernel kills every process in the namespace, and the private
	// mount namespace (overlay snapshots, netns mounts) goes with them.
	// The bed's cgroup parent exists in every hierarchy before anything runs, so
	// a kubelet can take it as its --cgroup-root.
	mounts += fmt.Sprintf("for d in /sys/fs/cgroup/*; do if [ -d \"$d\" ] && [ ! -L \"$d\" ]; then mkdir -p \"$d%s\"; fi; done\n", b.CgroupParent)
	// containerd and its shims weigh less than the control plane (cgroups.go).
	mounts += runtimeCgroupScript(b.CgroupParent, v2)
	script := mounts + fmt.Sprintf("%s --config %s --log-level warn &\npid=$!\ntrap 'kill -TERM $pid' TERM INT\nwait $pid\n", bin, configPath)
	scriptPath := filepath.Join(dir, "run.sh")
	if err := os.WriteFile(scriptPath, []byte(script), 0o755); err != nil {
		return nil, err
	}
	// containerd's mount namespace is a slave of the bed's directory, made a
	// shared mount: what an agent mounts there (memory emptyDirs) reaches the
	// containers, as when both share the host's namespace; nothing mounted
	// inside containerd's namespace leaks out.
	if err := b.shareDir(); err != nil {
		return nil, err
	}
	name := "containerd"
	if netns != "" {
		name += "-" + netns
	}
	c.proc, err = b.startProcessIn(netns, name, "unshare",
		"--pid", "--fork", "--kill-child=SIGKILL", "--mount-proc",
		"--mount", "--propagation", "slave", "sh", scriptPath)
	if err != nil {
		return nil, err
	}
	// A pool host's network is ready once its agent wrote its config.
	if err := c.waitCRI(ctx, netns == ""); err != nil {
		return nil, err
	}
	return c, nil
}

// shareDir makes the bed's directory a shared mount, once.
func (b *Bed) shareDir() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.sharedDir {
		return nil
	}
	if err := shareMount(b.Dir); err != nil {
		return err
	}
	b.sharedDir = true
	return nil
}

// writeContainerdConfig makes containerd's directories and writes its
// config, the registry's hosts file and the bed's CNI network; it returns
// the config's path.
func (b *Bed) writeContainerdConfig(c *Containerd, dir, runc string, bedNetwork bool) (string, error) {
	cniConfDir, certsDir := c.CNIConfDir, c.CertsDir
	for _, d := range []string{c.Root, c.State, c.LogDir, cniConfDir, c.CNIBinDir, c.CDIDir, filepath.Join(certsDir, b.Registry.Host)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return "", err
		}
	}
	if err := renderFile(filepath.Join(certsDir, b.Registry.Host, "hosts.toml"), registryHosts, b.Registry.Host); err != nil {
		return "", err
	}
	if bedNetwork {
		if err := renderFile(filepath.Join(cniConfDir, "10-eci-bed.conflist"), cniConfig, map[string]string{
			"Bridge": b.Network.Bridge, "Subnet": b.Network.PodCIDR.String(), "IPAMDir": filepath.Join(dir, "ipam"),
		}); err != nil {
			return "", err
		}
	}
	configPath := filepath.Join(dir, "config.toml")
	if err := renderFile(configPath, containerdConfig, map[string]string{
		"Root": c.Root, "State": c.State, "Socket": c.Socket, "PauseImage": b.Registry.Pause,
		"CertsDir": certsDir, "CNIBinDir": cniBinDir, "ExtraCNIBinDir": c.CNIBinDir, "CNIConfDir": cniConfDir, "Runc": runc, "AltHandler": AltRuntimeHandler,
		"CDIDir": c.CDIDir,
	}); err != nil {
		return "", err
	}
	return configPath, nil
}

// waitCRI connects the bed's CRI clients and waits until containerd says
// every CRI condition holds (but NetworkReady, unless network).
func (c *Containerd) waitCRI(ctx context.Context, network bool) error {
	logger := klog.Background()
	return c.proc.waitReady(ctx, 30*time.Second, func(ctx context.Context) error {
		_, err := os.Stat(c.Socket)
		if err != nil {
			return err
		}
		if c.Runtime == nil {
			if c.Runtime, err = remote.NewRemoteRuntimeService(c.Endpoint, 10*time.Second, nil, &logger); err != nil {
				return err
			}
			if c.Images, err = remote.NewRemoteImageService(c.Endpoint, time.Minute, nil, &logger); err != nil {
				return err
			}
		}
		st, err := c.Runtime.Status(ctx, false)
		if err != nil {
			return err
		}
		for _, cond := range st.GetStatus().GetConditions() {
			if !cond.Status && (network || cond.Type != runtimeapi.NetworkReady) {
				return fmt.Errorf("CRI condition %s is false: %s %s", cond.Type, cond.Reason, cond.Message)
			}
		}
		return nil
	})
}

// namespacePID is the PID (seen from the host) of the first process of
// containerd's PID and mount namespaces, for nsenter.
func (c *Containerd) namespacePID() (int, error) {
	pid := c.proc.cmd.Process.Pid
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	if err != nil {
		return 0, err
	}
	var child int
	if _, err := fmt.Sscan(string(data), &child); err != nil {
		return 0, fmt.Errorf("unshare (pid %d) has no child: %w", pid, err)
	}
	return child, nil
}

// RemoveAllPods stops and removes every pod sandbox (and so its containers).
func (c *Containerd) RemoveAllPods(ctx context.Context) error {
	pods, err := c.Runtime.ListPodSandbox(ctx, &runtimeapi.PodSandboxFilter{})
	if err != nil {
		return err
	}
	var errs []string
	for _, p := range pods {
		if err := c.Runtime.StopPodSandbox(ctx, p.Id); err != nil {
			errs = append(errs, err.Error())
		}
		if err := c.Runtime.RemovePodSandbox(ctx, p.Id); err != nil {
			errs = append(errs, err.Error())
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("remove pods: %s", strings.Join(errs, "; "))
	}
	return nil
}

func renderFile(path string, t *template.Template, data any) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := t.Execute(f, data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// shareMount makes dir a shared mount (a bind mount on itself first).
func shareMount(dir string) error {
	if err := syscall.Mount(dir, dir, "", syscall.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind %s: %w", dir, err)
	}
	if err := syscall.Mount("", dir, "", syscall.MS_SHARED, ""); err != nil {
		return fmt.Errorf("make %s a shared mount: %w", dir, err)
	}
	return nil
}
