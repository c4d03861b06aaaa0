package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/cni"
	"github.com/eci-dev/eci/internal/datapath"
	"github.com/eci-dev/eci/internal/errdefs"
	"github.com/eci-dev/eci/internal/log"
)

// serveNetwork is what the eci-cni plugin asks (on CNISocket, root's
// alone: an attach makes interfaces in the namespace it names): attach a
// sandbox of a group this host runs, with the address the server gave the
// group on its vSwitch (internal/datapath makes the interface and routes),
// and detach one.
func (a *Agent) serveNetwork(ctx context.Context) error {
	sock := a.cfg.CNISocket
	if err := os.MkdirAll(filepath.Dir(sock), 0o755); err != nil {
		return err
	}
	_ = os.Remove(sock)
	l, err := net.Listen("unix", sock)
	if err != nil {
		return fmt.Errorf("CNI socket %s: %w", sock, err)
	}
	if err := os.Chmod(sock, 0o600); err != nil {
		_ = l.Close()
		return fmt.Errorf("CNI socket %s: %w", sock, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/attach", func(w http.ResponseWriter, r *http.Request) {
		var req cni.AttachRequest
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&req); err != nil {
			http.Error(w, "attach request: "+err.Error(), http.StatusBadRequest)
			return
		}
		netns, err := peerPath(r.Context(), req.NetNS)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		req.NetNS = netns
		attached, err := a.attach(log.WithLogger(r.Context(), log.G(ctx)), req)
		if err != nil {
			code := http.StatusInternalServerError
			if errdefs.IsNotFound(err) {
				code = http.StatusNotFound
			}
			http.Error(w, err.Error(), code)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(attached)
	})
	mux.HandleFunc("POST /v1/detach", func(w http.ResponseWriter, r *http.Request) {
		var req cni.AttachRequest
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&req); err != nil || req.ContainerID == "" {
			http.Error(w, "detach request: a containerID is needed", http.StatusBadRequest)
			return
		}
		if err := a.net.detach(log.WithLogger(r.Context(), log.G(ctx)), req.ContainerID); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context { return context.WithValue(ctx, peerConnKey{}, c) }}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	if _, err := cni.WriteConfig(a.cfg.CNIConfDir, a.cfg.NetworkName, sock); err != nil {
		return err
	}
	if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

type peerConnKey struct{}

// peerPath is path as the plugin that asks sees it: the runtime, and so the
// plugin it runs, may live in a mount namespace of its own (containerd in
// the test bed does), where the sandbox's namespace is mounted and the
// agent's can't see it; /proc/<pid>/root of the plugin's process looks up
// the path in the plugin's mount namespace. The plugin's pid comes from
// the socket (SO_PEERCRED, in the agent's pid namespace); it must be
// root's.
func peerPath(ctx context.Context, path string) (string, error) {
	if !filepath.IsAbs(path) || filepath.Clean(path) != path {
		return "", fmt.Errorf("netns %q: allowed: a clean absolute path", path)
	}
	uc, ok := ctx.Value(peerConnKey{}).(*net.UnixConn)
	if !ok {
		return "", errors.New("the CNI plugin's connection is not a unix socket's")
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return "", err
	}
	var cred *unix.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) { cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED) }); err != nil {
		return "", err
	}
	if credErr != nil {
		return "", fmt.Errorf("the CNI plugin's credentials: %w", credErr)
	}
	if cred.Uid != 0 || cred.Pid <= 0 {
		return "", fmt.Errorf("the CNI plugin runs as uid %d (pid %d): only root's may attach", cred.Uid, cred.Pid)
	}
	return fmt.Sprintf("/proc/%d/root%s", cred.Pid, path), nil
}

// attach makes req's sandbox interface with its group's address.
func (a *Agent) attach(ctx context.Context, req cni.AttachRequest) (*cni.Attached, error) {
	addr, gw, vni, err := a.addressOf(ctx, req.Group)
	if vsw, ip, ok := a.pool.reservedAddress(req.Group); ok { // a sandbox of the warm pool
		addr, gw, vni, err = a.vswitchAddress(ctx, vsw, ip)
	}
	if err != nil {
		return nil, err
	}
	addr6, gw6, err := a.ipv6Of(ctx, req.Group)
	if err != nil {
		return nil, err
	}
	var bw datapath.Bandwidth
	if g := a.desired(req.Group); g != nil {
		bw = datapath.Bandwidth{Ingress: uint64(max(g.Spec.IngressBandwidth, 0)), Egress: uint64(max(g.Spec.EgressBandwidth, 0))}
	}
	at, err := a.net.attach(ctx, datapath.Attachment{ContainerID: req.ContainerID, NetNS: req.NetNS, IfName: req.IfName, Address: addr, Gateway: gw,
		Address6: addr6, Gateway6: gw6, MTU: a.mtu, VNI: vni, Bandwidth: bw})
	if err != nil {
		return nil, fmt.Errorf("attach group %s: %w", req.Group, err)
	}
	log.G(ctx).Debug("attached", "group", req.Group, "ip", addr, "interface", at.HostInterface)
	out := &cni.Attached{HostInterface: at.HostInterface, Interface: at.Interface, MAC: at.MAC, Address: addr.String(), Gateway: gw.String()}
	if addr6.IsValid() {
		out.Address6, out.Gateway6 = addr6.String(), gw6.String()
	}
	return out, nil
}

// addressOf is group id's address (with its vSwitch's prefix length),
// gateway and VPC (VNI), from the server's view of the group and of its
// vSwitch.
func (a *Agent) addressOf(ctx context.Context, id string) (addr netip.Prefix, gw netip.Addr, vni int, err error) {
	g := a.desired(id)
	if g == nil || g.Status.IP == "" {
		return addr, gw, 0, fmt.Errorf("group %s has no address on host %s: %w", id, a.name, errdefs.ErrNotFound)
	}
	return a.vswitchAddress(ctx, g.Status.VSwitchID, g.Status.IP)
}

// vswitchAddress is address ip of vSwitch vsw with its prefix length, the
// vSwitch's gateway and its VPC (VNI).
func (a *Agent) vswitchAddress(ctx context.Context, vsw, addrText string) (addr netip.Prefix, gw netip.Addr, vni int, err error) {
	ip, err := netip.ParseAddr(addrText)
	if err != nil || !ip.Is4() {
		return addr, gw, 0, fmt.Errorf("address %q of vSwitch %s: not an IPv4 address", addrText, vsw)
	}
	v, err := a.vswitch(ctx, vsw)
	if err != nil {
		return addr, gw, 0, err
	}
	prefix, err := netip.ParsePrefix(v.Spec.CIDR)
	if err != nil {
		return addr, gw, 0, fmt.Errorf("vSwitch %s: spec.cidr: %w", v.Metadata.ID, err)
	}
	if gw, err = netip.ParseAddr(v.Spec.Gateway); err != nil {
		return addr, gw, 0, fmt.Errorf("vSwitch %s gateway %q: %w", v.Metadata.ID, v.Spec.Gateway, err)
	}
	return netip.PrefixFrom(ip, prefix.Bits()), gw, vniOf(v), nil
}

// vniOf is vSwitch v's VPC (the default one for a vSwitch made before
// VPCs).
func vniOf(v *apiv1.VSwitch) int { return max(v.Status.VNI, datapath.DefaultVNI) }

// readVSwitches replaces the agent's copy of the vSwitches.
func (a *Agent) readVSwitches(ctx context.Context) error {
	vsws, err := a.cfg.Client.ListVSwitches(ctx)
	if err != nil {
		return err
	}
	m := make(map[string]*apiv1.VSwitch, len(vsws))
	for i := range vsws {
		m[vsws[i].Metadata.ID] = &vsws[i]
	}
	a.mu.Lock()
	a.vswitches, a.vswitchesRead = m, time.Now()
	a.mu.Unlock()
	return nil
}

// cachedVNI is vSwitch id's VPC from the agent's cache alone (false: not
// read yet).
func (a *Agent) cachedVNI(id string) (int, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	v, ok := a.vswitches[id]
	if !ok {
		return 0, false
	}
	return vniOf(v), true
}

// vniOfVSwitch is vSwitch id's VPC.
func (a *Agent) vniOfVSwitch(ctx context.Context, id string) (int, error) {
	v, err := a.vswitch(ctx, id)
	if err != nil {
		return 0, err
	}
	return vniOf(v), nil
}

// vswitchesTTL is how long the agent trusts its copy of the vSwitches: a
// vSwitch never changes, but one deleted (none is while it has addresses)
// may be made again under its name, in another VPC.
const vswitchesTTL = 30 * time.Second

// vswitch returns a vSwitch, from the agent's copy (read again after
// vswitchesTTL) or, on a miss, from the server.
func (a *Agent) vswitch(ctx context.Context, id string) (*apiv1.VSwitch, error) {
	a.mu.Lock()
	v, ok := a.vswitches[id]
	fresh := time.Since(a.vswitchesRead) < vswitchesTTL
	a.mu.Unlock()
	if ok && fresh {
		return v, nil
	}
	if err := a.readVSwitches(ctx); err != nil {
		if ok {
			return v, nil // the last copy, while the server can't be reached
		}
		return nil, fmt.Errorf("read vSwitch %s: %w", id, err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if v, ok := a.vswitches[id]; ok {
		return v, nil
	}
	return nil, fmt.Errorf("vSwitch %s: %w", id, errdefs.ErrNotFound)
}

// ipv6Of is group id's IPv6 address (with its vSwitch's IPv6 prefix
// length) and its vSwitch's IPv6 gateway; none when the group has no IPv6
// address.
func (a *Agent) ipv6Of(ctx context.Context, id string) (addr netip.Prefix, gw netip.Addr, err error) {
	g := a.desired(id)
	if g == nil || g.Status.IPv6Address == "" {
		return addr, gw, nil
	}
	ip, err := netip.ParseAddr(g.Status.IPv6Address)
	if err != nil || !ip.Is6() || ip.Is4In6() {
		return addr, gw, fmt.Errorf("group %s: status.ipv6Address %q: not an IPv6 address", id, g.Status.IPv6Address)
	}
	v, err := a.vswitch(ctx, g.Status.VSwitchID)
	if err != nil {
		return addr, gw, err
	}
	prefix, err := netip.ParsePrefix(v.Spec.IPv6CIDR)
	if err != nil || !prefix.Contains(ip) {
		return addr, gw, fmt.Errorf("vSwitch %s: spec.ipv6Cidr %q does not hold group %s's %s", v.Metadata.ID, v.Spec.IPv6CIDR, id, ip)
	}
	if gw, err = netip.ParseAddr(v.Spec.IPv6Gateway); err != nil || !prefix.Contains(gw) || gw == ip {
		return addr, gw, fmt.Errorf("vSwitch %s: spec.ipv6Gateway %q: not an address of %s", v.Metadata.ID, v.Spec.IPv6Gateway, prefix)
	}
	return netip.PrefixFrom(ip, prefix.Bits()), gw, nil
}

// bookIPv6 is an address book entry's IPv6 address (invalid: none).
func bookIPv6(a apiv1.InstanceAddressSpec) netip.Addr {
	ip, err := netip.ParseAddr(a.IPv6)
	if err != nil || !ip.Is6() || ip.Is4In6() || !ip.IsGlobalUnicast() {
		return netip.Addr{}
	}
	return ip
}
