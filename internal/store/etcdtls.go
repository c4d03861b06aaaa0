package store

import (
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"

	"github.com/eci-dev/eci/internal/pki"
)

// The embedded etcd holds every tenant's groups, token hashes and sealed
// secrets: no other local user may talk to it. Its clients reach it on a
// unix socket (mode 0600) in a directory only its owner can enter; its
// peer port, which a single member never uses, serves TLS to peers with a
// certificate of a CA made for it at every start. An external etcd is
// reached with the operator's CA and client certificate, as the
// kube-apiserver reaches its.

// embeddedTLS makes, in dir (0700), the CA and the certificate the embedded
// etcd's peer port serves and requires.
func embeddedTLS(dir string) (transport.TLSInfo, error) {
	var info transport.TLSInfo
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return info, err
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return info, err
	}
	ca, err := pki.NewCA("eci-embedded-etcd", 10*365*24*time.Hour)
	if err != nil {
		return info, err
	}
	peer, err := ca.Issue(pki.CertRequest{CommonName: "etcd", IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"}, Server: true, Client: true})
	if err != nil {
		return info, err
	}
	caFile := filepath.Join(dir, "ca.crt")
	if err := os.WriteFile(caFile, pki.CertPEM(ca.Cert), 0o600); err != nil {
		return info, err
	}
	certFile, keyFile := filepath.Join(dir, "peer.crt"), filepath.Join(dir, "peer.key")
	if err := pki.WriteKeyPair(certFile, keyFile, peer.Cert, peer.Key); err != nil {
		return info, err
	}
	return transport.TLSInfo{CertFile: certFile, KeyFile: keyFile, TrustedCAFile: caFile, ClientCertAuth: true}, nil
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
