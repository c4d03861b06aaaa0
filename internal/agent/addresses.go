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

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/cni"
	"github.com/eci-dev/eci/internal/log"
)

// serveAddresses is the address service the eci-ipam CNI plugin asks (on
// IPAMSocket): the address the server gave a group, with its vSwitch's
// prefix length and gateway. (Three things once shared the name ipam: the
// server's address pools are internal/addrpool, this is the agent's address
// service, and the CNI plugin keeps CNI's own word for its kind: an IPAM
// plugin, eci-ipam.)
func (a *Agent) serveAddresses(ctx context.Context) error {
	sock := a.cfg.IPAMSocket
	if err := os.MkdirAll(filepath.Dir(sock), 0o755); err != nil {
		return err
	}
	_ = os.Remove(sock)
	l, err := net.Listen("unix", sock)
	if err != nil {
		return fmt.Errorf("IPAM socket %s: %w", sock, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/address", func(w http.ResponseWriter, r *http.Request) {
		addr, err := a.addressOf(r.Context(), r.URL.Query().Get("group"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(addr)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	if _, err := cni.WriteConfig(a.cfg.CNIConfDir, a.cfg.CNIBridge, sock); err != nil {
		return err
	}
	if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// addressOf is group id's address, from the server's view of the group and
// of its vSwitch.
func (a *Agent) addressOf(ctx context.Context, id string) (*cni.Address, error) {
	g := a.desired(id)
	if g == nil || g.Status.IP == "" {
		return nil, fmt.Errorf("group %s has no address on host %s", id, a.name)
	}
	ip, err := netip.ParseAddr(g.Status.IP)
	if err != nil {
		return nil, err
	}
	v, err := a.vswitch(ctx, g.Status.VSwitchID)
	if err != nil {
		return nil, err
	}
	prefix, err := netip.ParsePrefix(v.Spec.CIDR)
	if err != nil {
		return nil, err
	}
	gw, err := netip.ParseAddr(v.Spec.Gateway)
	if err != nil {
		return nil, fmt.Errorf("vSwitch %s gateway %q: %w", v.Metadata.ID, v.Spec.Gateway, err)
	}
	if err := a.ensureGateway(ctx, gw, prefix.Bits()); err != nil {
		return nil, err
	}
	log.G(ctx).Debug("address for group", "group", id, "ip", ip)
	return &cni.Address{Address: netip.PrefixFrom(ip, prefix.Bits()).String(), Gateway: v.Spec.Gateway}, nil
}

// vswitch returns a vSwitch, from the agent's cache (a vSwitch's CIDR never
// changes) or, on a miss, from the server.
func (a *Agent) vswitch(ctx context.Context, id string) (*apiv1.VSwitch, error) {
	a.mu.Lock()
	v, ok := a.vswitches[id]
	a.mu.Unlock()
	if ok {
		return v, nil
	}
	vsws, err := a.cfg.Client.ListVSwitches(ctx)
	if err != nil {
		return nil, fmt.Errorf("read vSwitch %s: %w", id, err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for i := range vsws {
		a.vswitches[vsws[i].Metadata.ID] = &vsws[i]
	}
	if v, ok := a.vswitches[id]; ok {
		return v, nil
	}
	return nil, fmt.Errorf("vSwitch %s does not exist", id)
}
