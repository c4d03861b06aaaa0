package server

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/eci-dev/eci/internal/pki"
)

// loadOrCreateTLS returns the serving certificate: the given files, or a CA and
// a certificate it signs, generated into dir on first start (clients trust
// dir/ca.crt). Extra names go into the certificate's SANs.
func loadOrCreateTLS(certFile, keyFile, dir string, names []string) (*tls.Certificate, error) {
	if certFile != "" || keyFile != "" {
		if certFile == "" || keyFile == "" {
			return nil, errors.New("--tls-cert-file and --tls-key-file go together")
		}
		c, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("load TLS key pair: %w", err)
		}
		return &c, nil
	}
	certFile, keyFile = filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key")
	if c, err := tls.LoadX509KeyPair(certFile, keyFile); err == nil {
		return &c, nil
	}
	ca, err := pki.NewCA("eci-server-ca", 10*365*24*time.Hour)
	if err != nil {
		return nil, err
	}
	req := pki.CertRequest{CommonName: "eci-server", Server: true, Validity: 5 * 365 * 24 * time.Hour,
		DNSNames: []string{"localhost"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}}
	if host, err := os.Hostname(); err == nil {
		req.DNSNames = append(req.DNSNames, host)
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			req.IPs = append(req.IPs, ip)
		} else if n != "" {
			req.DNSNames = append(req.DNSNames, n)
		}
	}
	kp, err := ca.Issue(req)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "ca.crt"), pki.CertPEM(ca.Cert), 0o644); err != nil {
		return nil, err
	}
	if err := pki.WriteKeyPair(certFile, keyFile, kp.Cert, kp.Key); err != nil {
		return nil, err
	}
	c, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	return &c, nil
}
