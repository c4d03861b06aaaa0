package vnode

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"sync"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/certificate"

	"github.com/eci-dev/eci/internal/pki"
)

// The kubelet API's serving certificate comes, in this order of
// preference, from:
//
//   - files (--tls-cert-file, --tls-key-file), read once;
//   - the cluster (--rotate-server-certificates, the kubelet's flag): a
//     CertificateSigningRequest to the kubernetes.io/kubelet-serving signer,
//     for CN system:node:<name> and the node's name and InternalIP, renewed
//     before it expires by client-go's certificate manager (the kubelet's
//     own). Clients that verify the kubelet with the cluster's CA, such as
//     metrics-server without --kubelet-insecure-tls, then verify the virtual
//     node. Until the certificate is issued the node serves a self-signed
//     one, so that logs and exec through the apiserver (which does not
//     verify kubelets) work meanwhile;
//   - a self-signed certificate made at start.
//
// Someone approves the request: an admin (kubectl certificate approve), an
// approver, or the vnode itself when its identity may approve for the
// kubelet-serving signer (approveOwnCSRs, csrapprove.go).

// servingCert hands the TLS handshake the current certificate.
type servingCert struct {
	fixed *tls.Certificate // files or self-signed; the bootstrap of manager
	mu    sync.Mutex
	mgr   certificate.Manager // nil: fixed only
}

func (s *servingCert) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	s.mu.Lock()
	mgr := s.mgr
	s.mu.Unlock()
	if mgr != nil {
		if c := mgr.Current(); c != nil {
			return c, nil
		}
	}
	return s.fixed, nil
}

// kubeletTLS serves the kubelet API with the node's serving certificate
// and asks for a client certificate (kubeletauth.go checks it, or a bearer
// token, and what its holder may do).
func kubeletTLS(c Config) (*tls.Config, *servingCert, error) {
	ca, err := os.ReadFile(c.ClientCAFile)
	if err != nil {
		return nil, nil, fmt.Errorf("vnode: --client-ca-file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return nil, nil, fmt.Errorf("vnode: --client-ca-file %s holds no PEM certificate", c.ClientCAFile)
	}
	s := &servingCert{}
	if c.TLSCertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.TLSCertFile, c.TLSKeyFile)
		if err != nil {
			return nil, nil, fmt.Errorf("vnode: serving certificate: %w", err)
		}
		s.fixed = &cert
	} else if s.fixed, err = selfSigned(c); err != nil {
		return nil, nil, err
	}
	return &tls.Config{GetCertificate: s.get, ClientCAs: pool, ClientAuth: tls.VerifyClientCertIfGiven, MinVersion: tls.VersionTLS12}, s, nil
}

// selfSigned makes a certificate for the node's name and InternalIP from a
// CA of its own.
func selfSigned(c Config) (*tls.Certificate, error) {
	self, err := pki.NewCA("eci-vnode-"+c.NodeName, 10*365*24*time.Hour)
	if err != nil {
		return nil, err
	}
	kp, err := self.Issue(pki.CertRequest{CommonName: c.NodeName, DNSNames: []string{c.NodeName}, IPs: []net.IP{net.ParseIP(c.InternalIP)}, Server: true})
	if err != nil {
		return nil, err
	}
	return &tls.Certificate{Certificate: [][]byte{kp.Cert.Raw, self.Cert.Raw}, PrivateKey: kp.Key, Leaf: kp.Cert}, nil
}

// servingTemplate is what the node asks the kubelet-serving signer for, as
// the kubelet's server certificate manager asks.
func servingTemplate(c Config) *x509.CertificateRequest {
	return &x509.CertificateRequest{
		Subject:     pkixNode(c.NodeName),
		DNSNames:    []string{c.NodeName},
		IPAddresses: []net.IP{net.ParseIP(c.InternalIP)},
	}
}

// startRotation starts asking the cluster for the serving certificate, as
// Config.RotateServerCertificates says; ctx's end stops it. The manager logs
// with ctx's klog logger (the node's, logbridge.go).
func (s *servingCert) startRotation(ctx context.Context, c Config) error {
	var store certificate.Store = &memoryStore{}
	if c.CertDir != "" {
		var err error
		if store, err = certificate.NewFileStore("kubelet-server", c.CertDir, c.CertDir, "", ""); err != nil {
			return fmt.Errorf("vnode: --cert-dir: %w", err)
		}
	}
	kube := c.Kube
	mgr, err := certificate.NewManager(&certificate.Config{
		ClientsetFn: func(*tls.Certificate) (kubernetes.Interface, error) { return kube, nil },
		Template:    servingTemplate(c),
		SignerName:  certificatesv1.KubeletServingSignerName,
		GetUsages:   certificate.DefaultKubeletServingGetUsages,
		// The store's certificate, or none: the self-signed one is served
		// until the cluster's comes (get), never handed to the manager as a
		// bootstrap, which it would keep serving as its own.
		CertificateStore: store,
		Name:             "kubelet-server",
		Ctx:              &ctx,
	})
	if err != nil {
		return fmt.Errorf("vnode: serving certificate manager: %w", err)
	}
	mgr.Start()
	s.mu.Lock()
	s.mgr = mgr
	s.mu.Unlock()
	return nil
}

// memoryStore keeps the issued certificate in memory: without --cert-dir a
// restarted node asks again.
type memoryStore struct {
	mu   sync.Mutex
	cert *tls.Certificate
}

func (m *memoryStore) Current() (*tls.Certificate, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cert == nil {
		e := certificate.NoCertKeyError("no serving certificate issued yet")
		return nil, &e
	}
	return m.cert, nil
}

func (m *memoryStore) Update(certPEM, keyPEM []byte) (*tls.Certificate, error) {
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	if len(cert.Certificate) == 0 {
		return nil, errors.New("vnode: the issued certificate is empty")
	}
	if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.cert = &cert
	return &cert, nil
}

// sameIPs reports whether got holds exactly the addresses of want.
func sameIPs(got []net.IP, want []net.IP) bool {
	return len(got) == len(want) && !slices.ContainsFunc(got, func(ip net.IP) bool {
		return !slices.ContainsFunc(want, ip.Equal)
	})
}
