package testbed

import (
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// Relay forwards the TCP connections made to a loopback port of its own to
// backends, in turn, skipping those that refuse (a load balancer in front of
// servers; with one backend, a relay a test can cut with a firewall rule on
// its port). It returns the relay's address; it stops with the test.
func Relay(t testing.TB, backends ...string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	var mu sync.Mutex
	next := 0
	pick := func() string {
		mu.Lock()
		defer mu.Unlock()
		b := backends[next%len(backends)]
		next++
		return b
	}
	go func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				var out net.Conn
				for range backends {
					if out, err = net.DialTimeout("tcp", pick(), time.Second); err == nil {
						break
					}
				}
				if out == nil {
					_ = in.Close()
					return
				}
				go func() { _, _ = io.Copy(out, in); _ = out.Close() }()
				_, _ = io.Copy(in, out)
				_ = in.Close()
			}()
		}
	}()
	return ln.Addr().String()
}
