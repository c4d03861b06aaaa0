package store

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"

	"github.com/eci-dev/eci/internal/pki"
)

// The embedded etcd holds every tenant's groups, token hashes and sealed
// secrets: no other local user may talk to it. It serves TLS on loopback
// and takes only clients with a certificate of a CA made for it at every
// start (keys readable by their owner only, in a directory only the owner
// can enter); its peer port, the same. An external etcd is reached with the
// operator's CA and client certificate, as the kube-apiserver reaches its.

// embeddedTLS makes the CA, the serving certificate (also the peers') and
// the client certificate of an embedded etcd in dir.
func embeddedTLS(dir string) (server transport.TLSInfo, client *tls.Config, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return server, nil, err
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return server, nil, err
	}
	ca, err := pki.NewCA("eci-embedded-etcd", 10*365*24*time.Hour)
	if err != nil {
		return server, nil, err
	}
	srv, err := ca.Issue(pki.CertRequest{CommonName: "etcd", IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"}, Server: true, Client: true})
	if err != nil {
		return server, nil, err
	}
	cli, err := ca.Issue(pki.CertRequest{CommonName: "eci-server", Client: true})
	if err != nil {
		return server, nil, err
	}
	caFile := filepath.Join(dir, "ca.crt")
	if err := os.WriteFile(caFile, pki.CertPEM(ca.Cert), 0o600); err != nil {
		return server, nil, err
	}
	certFile, keyFile := filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key")
	if err := pki.WriteKeyPair(certFile, keyFile, srv.Cert, srv.Key); err != nil {
		return server, nil, err
	}
	server = transport.TLSInfo{CertFile: certFile, KeyFile: keyFile, TrustedCAFile: caFile, ClientCertAuth: true}
	keyPEM, err := pki.KeyPEM(cli.Key)
	if err != nil {
		return server, nil, err
	}
	pair, err := tls.X509KeyPair(pki.CertPEM(cli.Cert), keyPEM)
	if err != nil {
		return server, nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	return server, &tls.Config{Certificates: []tls.Certificate{pair}, RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}

// externalTLS is the client TLS of an external etcd (nil: plain, when no
// file is given).
func externalTLS(cfg Config) (*tls.Config, error) {
	if cfg.CAFile == "" && cfg.CertFile == "" && cfg.KeyFile == "" {
		return nil, nil
	}
	if (cfg.CertFile == "") != (cfg.KeyFile == "") {
		return nil, fmt.Errorf("store: --etcd-certfile and --etcd-keyfile go together")
	}
	info := transport.TLSInfo{TrustedCAFile: cfg.CAFile, CertFile: cfg.CertFile, KeyFile: cfg.KeyFile}
	c, err := info.ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("store: etcd client TLS: %w", err)
	}
	return c, nil
}

// EmbeddedClientFiles are the CA and a client certificate and key of the
// embedded etcd (for tests that use it as an external etcd).
func (s *Store) EmbeddedClientFiles() (ca, cert, key string) {
	dir := s.pkiDir
	return filepath.Join(dir, "ca.crt"), filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key")
}
