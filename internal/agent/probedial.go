package agent

import (
	"context"
	"errors"
	"net"
	"syscall"

	"golang.org/x/sys/unix"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/datapath"
)

// The host reaches an instance of a VPC with a table of its own only with
// that VPC's packet mark (datapath.MarkOf): the probes' and hooks'
// connections carry it, so that they are routed to that instance, never to
// another VPC's with the same address.

type probeMarkKey struct{}

// probeContext is ctx for probing g: with its VPC's mark.
func (a *Agent) probeContext(ctx context.Context, g *apiv1.ContainerGroup) context.Context {
	if g == nil {
		return ctx
	}
	vni, ok := a.cachedVNI(g.Status.VSwitchID)
	if !ok {
		if v, err := a.vniOfVSwitch(ctx, g.Status.VSwitchID); err == nil {
			vni, ok = v, true
		}
	}
	if !ok {
		// Unmarked, the probe could reach another VPC's instance of the
		// same address: it fails instead, until the vSwitch is read.
		return context.WithValue(ctx, probeMarkKey{}, unknownVPC)
	}
	return context.WithValue(ctx, probeMarkKey{}, datapath.MarkOf(vni))
}

// unknownVPC marks a probe context whose instance's VPC is not known.
const unknownVPC = ^uint32(0)

// probeDialer is a dialer whose sockets carry ctx's VPC mark.
func probeDialer(ctx context.Context) *net.Dialer {
	mark, _ := ctx.Value(probeMarkKey{}).(uint32)
	d := &net.Dialer{}
	if mark == unknownVPC {
		d.Control = func(string, string, syscall.RawConn) error {
			return errors.New("the instance's VPC is not known yet (its vSwitch can't be read)")
		}
		return d
	}
	if mark == 0 {
		return d
	}
	d.Control = func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MARK, int(mark)) }); err != nil {
			return err
		}
		return serr
	}
	return d
}

// dialProbe dials addr with ctx's mark.
func dialProbe(ctx context.Context, network, addr string) (net.Conn, error) {
	return probeDialer(ctx).DialContext(ctx, network, addr)
}
