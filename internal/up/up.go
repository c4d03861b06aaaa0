// Package up runs the whole service on one machine: an eci server on an
// embedded etcd, an agent on this machine's containerd and, given a
// kubeconfig, a virtual node joined to that cluster. It is `eci up`.
package up

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"time"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/agent"
	"github.com/eci-dev/eci/internal/client"
	"github.com/eci-dev/eci/internal/cni"
	"github.com/eci-dev/eci/internal/errdefs"
	"github.com/eci-dev/eci/internal/log"
	"github.com/eci-dev/eci/internal/runtime"
	"github.com/eci-dev/eci/internal/server"
	"github.com/eci-dev/eci/internal/vnode"
)

// Config of a one-machine service.
type Config struct {
	// DataDir holds the server's etcd, the agent's state and the tokens.
	DataDir string
	// Listen is the server's API address (127.0.0.1:8443).
	Listen string
	// TunnelIP, when set, is the agent's address on the network between
	// the pool's hosts: other hosts' agents reach the server at Listen and
	// its instances through the tunnels (make up HOSTS=N).
	TunnelIP netip.Addr
	// EIPRange holds the addresses of the hosts' network the server gives
	// EIPs from (server.Config's; invalid: none).
	EIPRange netip.Prefix
	// PriceBookFile is the server's price book (server.Config's; empty:
	// the list prices).
	PriceBookFile string
	// CRIEndpoint is containerd's CRI socket; CNIConfDir and CNIBinDir are
	// its CNI directories (the agent writes its network config into the
	// first and the eci-cni plugin, from Plugin, into the second);
	// RegistryConfigDir its registry hosts directory.
	CRIEndpoint, CNIConfDir, CNIBinDir, Plugin, RegistryConfigDir string
	// LocalRegistries (host:port) may be on the machine's loopback address
	// (the local registry of make up).
	LocalRegistries []string
	// ResolvConf is the resolv.conf of groups with no DNS of their own
	// (agent.Config.ResolvConf); empty: none.
	ResolvConf string
	// CgroupParent and LogDir of the groups.
	CgroupParent, LogDir string
	// WarmPoolSize is how many ready sandboxes the agent keeps
	// (docs/fast-start.md); 0: none.
	WarmPoolSize int
	// PodCIDR is the vSwitch the groups get their IPs from; NetworkName
	// names the agent's network (its CNI network and nftables tables).
	PodCIDR, NetworkName string
	// PodIPv6CIDR, when set, makes that vSwitch dual stack (its ipv6Cidr):
	// groups with IPv6 get their IPv6 addresses from it.
	PodIPv6CIDR string
	// Overcommit multiplies the machine's CPU and memory offered to groups
	// (0: 1): one small machine then fits default-size pods (2 vCPU, 4 GiB);
	// each group's cgroup limits still hold.
	Overcommit float64
	// Kubeconfig, when set, joins that cluster with a virtual node named
	// NodeName reached by the apiserver at NodeIP:10250; ClientCAFile is the
	// cluster's CA (of the apiserver's kubelet client certificate).
	Kubeconfig, NodeName, NodeIP, ClientCAFile string
	// ClusterDNS and ClusterDomain make ClusterFirst pods' resolv.conf (the
	// vnode's --cluster-dns, --cluster-domain).
	ClusterDNS    []string
	ClusterDomain string
	// DefaultSize is the size of pods that ask for none ("0.5-1Gi"); empty:
	// chosen for the machine (defaultsize.go).
	DefaultSize string
}

// Run starts everything and serves until ctx ends. Every daemon logs with
// ctx's logger (internal/log).
func Run(ctx context.Context, cfg Config) error {
	if cfg.Kubeconfig != "" && (cfg.NodeIP == "" || cfg.ClientCAFile == "") {
		return errors.New("with --kubeconfig, --node-ip and --client-ca-file are required (where the apiserver reaches the virtual node, and its CA)")
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return err
	}
	if err := os.Remove(ReadyFile(cfg.DataDir)); err != nil && !os.IsNotExist(err) {
		return err
	}
	defer func() { _ = os.Remove(ReadyFile(cfg.DataDir)) }()
	listenHost, _, _ := net.SplitHostPort(cfg.Listen)
	scfg := server.Config{Addr: cfg.Listen, DataDir: filepath.Join(cfg.DataDir, "server"), Name: "eci-up", TLSNames: []string{listenHost}}
	scfg.Control.EIPRange, scfg.PriceBookFile = cfg.EIPRange, cfg.PriceBookFile
	srv, err := server.New(scfg)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	run := func(name string, f func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(ctx); err != nil && ctx.Err() == nil {
				errs <- fmt.Errorf("%s: %w", name, err)
				cancel()
			}
		}()
	}
	run("server", srv.Run)
	select {
	case <-srv.Ready():
	case <-srv.Done():
		return fmt.Errorf("server: %w", srv.Err())
	}
	daemons, err := prepare(ctx, cfg, srv)
	if err != nil {
		cancel()
		wg.Wait()
		return err
	}
	for _, d := range daemons {
		run(d.name, d.run)
	}
	for _, d := range daemons {
		select {
		case <-d.ready:
		case <-ctx.Done():
		}
	}
	if ctx.Err() == nil {
		// make up waits for this file: a node's Ready condition or a pod's
		// status in the apiserver may be stale, left by a process that died.
		if err := os.WriteFile(ReadyFile(cfg.DataDir), []byte(time.Now().UTC().Format(time.RFC3339)+"\n"), 0o644); err != nil {
			log.G(ctx).Warn("write the ready file", "err", err)
		}
		log.G(ctx).Info("eci up: serving", "api", srv.URL(), "adminConfig", filepath.Join(cfg.DataDir, "server", "admin.conf"), "vnode", cfg.Kubeconfig != "")
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// ReadyFile is written in the data dir once the server, the agent and the
// virtual node all serve, and removed when eci up starts and stops.
func ReadyFile(dataDir string) string { return filepath.Join(dataDir, "ready") }

type daemon struct {
	name  string
	run   func(context.Context) error
	ready <-chan struct{}
}

// prepare, with the server running, writes the admin's client config,
// bootstraps the service and builds the agent and (with a kubeconfig) the
// virtual node.
func prepare(ctx context.Context, cfg Config, srv *server.Server) ([]daemon, error) {
	admin, err := client.New(client.Config{Server: srv.URL(), Token: srv.AdminToken(), CAFile: srv.CAFile()})
	if err != nil {
		return nil, err
	}
	adminConf := filepath.Join(cfg.DataDir, "server", "admin.conf")
	if err := client.WriteConfigFile(adminConf, client.ConfigFile{Server: srv.URL(), Token: srv.AdminToken(), CAFile: srv.CAFile()}); err != nil {
		return nil, err
	}
	host, tenant, err := bootstrap(ctx, admin, cfg)
	if err != nil {
		return nil, err
	}
	machine, err := localHost(cfg)
	if err != nil {
		return nil, err
	}
	a, err := newAgent(ctx, cfg, srv, host, machine)
	if err != nil {
		return nil, err
	}
	daemons := []daemon{{"agent", a.Run, a.Ready()}}
	if cfg.Kubeconfig == "" {
		return daemons, nil
	}
	kube, err := vnode.KubeClient(cfg.Kubeconfig)
	if err != nil {
		return nil, err
	}
	eci, err := client.New(client.Config{Server: srv.URL(), Token: tenant, CAFile: srv.CAFile()})
	if err != nil {
		return nil, err
	}
	size, err := defaultSize(cfg.DefaultSize, machine.Spec.Allocatable)
	if err != nil {
		return nil, err
	}
	log.G(ctx).Info("pods that ask for no CPU or memory run at the default size", "size", size.String(), "chosen", cfg.DefaultSize == "")
	v, err := vnode.New(vnode.Config{DefaultSize: size, NodeName: cfg.NodeName, Kube: kube, ECI: eci, Taint: vnode.Taint(),
		InternalIP: cfg.NodeIP, ListenAddr: net.JoinHostPort(cfg.NodeIP, "10250"), ClientCAFile: cfg.ClientCAFile,
		RotateServerCertificates: true, CertDir: filepath.Join(cfg.DataDir, "vnode-pki"),
		ClusterDNS: cfg.ClusterDNS, ClusterDomain: cfg.ClusterDomain, ImageCaches: true,
		Profile: vnode.ProfileConfig{ListenAddr: net.JoinHostPort(cfg.NodeIP, "10251")}})
	if err != nil {
		return nil, err
	}
	if err := vnode.InstallImageCacheCRD(ctx, kube); err != nil {
		return nil, err
	}
	if err := vnode.InstallDataCacheCRD(ctx, kube); err != nil {
		return nil, err
	}
	return append(daemons, daemon{"vnode", v.Run, v.Ready()}), nil
}

// bootstrap makes what one machine needs: a vSwitch, a host token and the
// vnode's tenant with its token (kept in DataDir, so a restart reuses them).
func bootstrap(ctx context.Context, admin *client.Client, cfg Config) (hostToken, tenantToken string, err error) {
	if err := localVSwitch(ctx, admin, cfg); err != nil {
		return "", "", err
	}
	if _, err := admin.PutTenant(ctx, &apiv1.Tenant{Metadata: apiv1.ObjectMeta{Name: "default"}}); err != nil {
		return "", "", err
	}
	token := func(file string, spec apiv1.TokenSpec) (string, error) {
		path := filepath.Join(cfg.DataDir, file)
		if data, err := os.ReadFile(path); err == nil {
			return string(data), nil
		}
		tok, err := admin.CreateToken(ctx, &apiv1.Token{Spec: spec})
		if err != nil {
			return "", err
		}
		return tok.Status.Token, os.WriteFile(path, []byte(tok.Status.Token), 0o600)
	}
	hostName, _ := os.Hostname()
	if hostToken, err = token("host.token", apiv1.TokenSpec{Kind: apiv1.TokenHost, Host: hostName}); err != nil {
		return "", "", err
	}
	tenantToken, err = token("tenant.token", apiv1.TokenSpec{Kind: apiv1.TokenTenant, Tenant: "default"})
	return hostToken, tenantToken, err
}

// localVSwitch makes the groups' vSwitch, vsw-local: cfg.PodCIDR, and
// cfg.PodIPv6CIDR when set. A restart on the same data dir finds it: the
// same one is fine, other CIDRs are the operator's to resolve.
func localVSwitch(ctx context.Context, admin *client.Client, cfg Config) error {
	_, err := admin.CreateVSwitch(ctx, &apiv1.VSwitch{Metadata: apiv1.ObjectMeta{Name: "vsw-local"},
		Spec: apiv1.VSwitchSpec{Zone: "local", CIDR: cfg.PodCIDR, IPv6CIDR: cfg.PodIPv6CIDR}})
	if err != nil && !errdefs.IsAlreadyExists(err) {
		return fmt.Errorf("vSwitch %s: %w", cfg.PodCIDR, err)
	}
	if err == nil {
		return nil
	}
	cur, err := admin.GetVSwitch(ctx, "vsw-local")
	if err != nil {
		return err
	}
	if want, _ := netip.ParsePrefix(cfg.PodCIDR); cur.Spec.CIDR != want.Masked().String() {
		return fmt.Errorf("--pod-cidr %s: the data dir's vSwitch vsw-local is %s; use that CIDR or another --data-dir", cfg.PodCIDR, cur.Spec.CIDR)
	}
	want6 := ""
	if cfg.PodIPv6CIDR != "" {
		p, _ := netip.ParsePrefix(cfg.PodIPv6CIDR)
		want6 = p.Masked().String()
	}
	if cur.Spec.IPv6CIDR != want6 {
		has := cur.Spec.IPv6CIDR
		if has == "" {
			has = "none"
		}
		return fmt.Errorf("--pod-ipv6-cidr %q: the data dir's vSwitch vsw-local has IPv6 CIDR %s; use that one or another --data-dir", cfg.PodIPv6CIDR, has)
	}
	return nil
}

// localHost is this machine as the agent registers it.
func localHost(cfg Config) (apiv1.Host, error) {
	m := agent.DefaultMachine()
	m.Zone, m.ReservedMemoryGiB, m.Overcommit, m.WarmPoolSize = "local", 0, cfg.Overcommit, cfg.WarmPoolSize
	return m.Host()
}

func newAgent(ctx context.Context, cfg Config, srv *server.Server, token string, host apiv1.Host) (*agent.Agent, error) {
	if err := installPlugin(cfg.Plugin, filepath.Join(cfg.CNIBinDir, cni.PluginName)); err != nil {
		return nil, err
	}
	c, err := client.New(client.Config{Server: srv.URL(), Token: token, CAFile: srv.CAFile()})
	if err != nil {
		return nil, err
	}
	rt, err := runtime.NewCRI(cfg.CRIEndpoint, log.G(ctx))
	if err != nil {
		return nil, err
	}
	ac := agent.DefaultConfig()
	ac.Client, ac.Runtime, ac.Host = c, rt, host
	ac.CgroupParent, ac.LogDir, ac.StateDir = cfg.CgroupParent, cfg.LogDir, filepath.Join(cfg.DataDir, "agent")
	ac.CNIConfDir, ac.NetworkName, ac.CNISocket = cfg.CNIConfDir, cfg.NetworkName, filepath.Join(cfg.DataDir, "cni.sock")
	ac.RegistryConfigDir, ac.AllowedLocalRegistries = cfg.RegistryConfigDir, cfg.LocalRegistries
	ac.StreamAddress, ac.HeartbeatInterval = "127.0.0.1:0", 5*time.Second
	ac.ResolvConf, ac.TunnelIP = cfg.ResolvConf, cfg.TunnelIP
	return agent.New(ac)
}

// installPlugin copies the eci-cni plugin where the runtime runs CNI
// plugins from.
func installPlugin(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return fmt.Errorf("the eci-cni CNI plugin (make build puts it next to eci): %w", err)
	}
	defer func() { _ = in.Close() }()
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		return err
	}
	tmp := to + ".tmp"
	out, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		_ = out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, to)
}
