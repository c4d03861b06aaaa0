package testbed

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Registry is an OCI registry served from the test process over plain HTTP on
// loopback, holding the bed's images.
type Registry struct {
	// Host is host:port, the registry part of image references.
	Host string
	// Busybox is the reference of the busybox image (default command sh).
	Busybox string
	// Pause is the reference of the sandbox image containerd starts pods with.
	Pause string
	// CoreDNS and MetricsServer are the references of the addons' images
	// (Options.Addons; empty without).
	CoreDNS, MetricsServer string

	srv *http.Server
}

func (b *Bed) startRegistry(ctx context.Context, addr string, addons bool) (*Registry, error) {
	if addr == "" {
		addr = "127.0.0.1:0"
	} else if err := checkPortFree(addr); err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	r := &Registry{
		Host: l.Addr().String(),
		srv:  &http.Server{Handler: registry.New(registry.Logger(log.New(io.Discard, "", 0)))},
	}
	go func() {
		if err := r.srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			b.log.Error("registry stopped", "err", err)
		}
	}()
	b.onStop("registry", func() error { return r.srv.Close() })

	images := []struct {
		ref *string
		tag string
		cfg ImageConfig
	}{
		{&r.Busybox, "busybox:1.35", ImageConfig{Cmd: []string{"sh"}}},
		{&r.Pause, "pause:3.10", ImageConfig{Entrypoint: []string{"/bin/sh", "-c", pauseScript}}},
	}
	for _, im := range images {
		img, err := BusyboxImage(im.cfg)
		if err != nil {
			return nil, err
		}
		if *im.ref, err = r.Push(ctx, im.tag, img); err != nil {
			return nil, err
		}
	}
	if addons {
		for _, a := range []struct {
			ref   *string
			addon Addon
		}{{&r.CoreDNS, CoreDNS}, {&r.MetricsServer, MetricsServer}} {
			bin, err := a.addon.Binary()
			if err != nil {
				return nil, err
			}
			img, err := a.addon.Image(bin)
			if err != nil {
				return nil, fmt.Errorf("the %s image: %w", a.addon.File, err)
			}
			if *a.ref, err = r.Push(ctx, a.addon.Tag, img); err != nil {
				return nil, err
			}
		}
	}
	return r, nil
}

// Push stores img in the registry as repo:tag and returns its full reference.
func (r *Registry) Push(ctx context.Context, repoTag string, img v1.Image) (string, error) {
	ref, err := name.ParseReference(r.Host+"/"+repoTag, name.Insecure)
	if err != nil {
		return "", err
	}
	if err := remote.Write(ref, img, remote.WithContext(ctx)); err != nil {
		return "", fmt.Errorf("push %s: %w", ref, err)
	}
	return ref.String(), nil
}
