// Package streamproxy forwards a request to a backend and, when it is an
// upgrade (the SPDY of exec, attach and port-forward), the raw connection
// after it, both ways, until the backend is done.
//
// apimachinery's UpgradeAwareHandler tears the connection down as soon as
// either direction ends; when the client's side ends first (the backend
// closed the stream after the process exited and the client's last frames
// bounced off it), output still in flight from the backend is lost. Here the
// backend's direction decides: the client's end only half-closes the
// backend, and the backend's output is always delivered in full.
package streamproxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"time"
)

// Proxy forwards requests to Target.
type Proxy struct {
	// Target is the backend URL: scheme, host and path (the request's path
	// is not used); its query replaces the request's.
	Target *url.URL
	// TLS is used for https targets.
	TLS *tls.Config
	// Header is set on the request to the backend (Authorization), replacing
	// what the client sent under the same names.
	Header http.Header
	// Transport serves plain (non-upgrade) requests.
	Transport http.RoundTripper
	// Error reports failures before anything was answered.
	Error func(w http.ResponseWriter, r *http.Request, err error)
}

// ServeHTTP forwards r.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	out := r.Clone(r.Context())
	out.URL = &url.URL{Scheme: p.Target.Scheme, Host: p.Target.Host, Path: p.Target.Path, RawQuery: p.Target.RawQuery}
	out.Host = p.Target.Host
	out.RequestURI = ""
	for k, v := range p.Header {
		out.Header[k] = v
	}
	if !isUpgrade(r) {
		rp := &httputil.ReverseProxy{
			Rewrite: func(pr *httputil.ProxyRequest) {
				pr.Out.URL, pr.Out.Host, pr.Out.Header = out.URL, out.Host, out.Header
			},
			Transport:     p.Transport,
			FlushInterval: -1, // followed logs reach the client line by line
			ErrorHandler:  p.Error,
		}
		rp.ServeHTTP(w, r)
		return
	}
	if err := p.upgrade(w, out); err != nil {
		p.Error(w, r, err)
	}
}

func isUpgrade(r *http.Request) bool {
	for _, v := range r.Header.Values("Connection") {
		for _, tok := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(tok), "upgrade") {
				return r.Header.Get("Upgrade") != ""
			}
		}
	}
	return false
}

// halfCloser is a connection whose write side closes alone.
type halfCloser interface{ CloseWrite() error }

// upgrade sends out to the backend and, when the backend switches
// protocols, joins the two connections. It returns an error only when
// nothing was answered to the client yet.
func (p *Proxy) upgrade(w http.ResponseWriter, out *http.Request) error {
	ctx, cancel := context.WithTimeout(out.Context(), 30*time.Second)
	defer cancel()
	backend, err := p.dial(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = backend.Close() }()
	if err := out.Write(backend); err != nil {
		return fmt.Errorf("send the upgrade request: %w", err)
	}
	br := bufio.NewReader(backend)
	resp, err := http.ReadResponse(br, out)
	if err != nil {
		return fmt.Errorf("read the upgrade answer: %w", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		defer func() { _ = resp.Body.Close() }()
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
		return nil
	}
	client, cbuf, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return fmt.Errorf("take over the client connection: %w", err)
	}
	defer func() { _ = client.Close() }()
	if err := resp.Write(client); err != nil {
		return nil
	}
	// client -> backend: when the client is done sending, the backend's
	// write side is closed and its output still flows back.
	go func() {
		_, _ = io.Copy(backend, cbuf.Reader)
		if hc, ok := backend.(halfCloser); ok {
			_ = hc.CloseWrite()
		} else {
			_ = backend.Close()
		}
	}()
	// backend -> client, bytes read past the answer included: this direction
	// ends the session.
	_, _ = io.Copy(client, br)
	if hc, ok := client.(halfCloser); ok {
		_ = hc.CloseWrite()
	}
	return nil
}

func (p *Proxy) dial(ctx context.Context) (net.Conn, error) {
	host := p.Target.Host
	if p.Target.Port() == "" {
		port := "80"
		if p.Target.Scheme == "https" {
			port = "443"
		}
		host = net.JoinHostPort(p.Target.Hostname(), port)
	}
	var d net.Dialer
	switch p.Target.Scheme {
	case "http":
		return d.DialContext(ctx, "tcp", host)
	case "https":
		cfg := p.TLS.Clone()
		if cfg == nil {
			cfg = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		cfg.NextProtos = []string{"http/1.1"} // an upgrade needs HTTP/1.1
		td := &tls.Dialer{NetDialer: &d, Config: cfg}
		return td.DialContext(ctx, "tcp", host)
	}
	return nil, errors.New("streamproxy: target scheme must be http or https, not " + p.Target.Scheme)
}
