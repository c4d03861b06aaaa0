package vnode

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"net"
	"net/url"
	"strings"
	"testing"

	certificatesv1 "k8s.io/api/certificates/v1"
)

// The node approves only what it asks for itself: its subject, its name and
// InternalIP, server usages.
func TestOwnRequest(t *testing.T) {
	v := &VNode{cfg: Config{NodeName: "eci-vnode", InternalIP: "198.18.0.10"}}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	csr := func(mutate func(*x509.CertificateRequest), usages ...certificatesv1.KeyUsage) *certificatesv1.CertificateSigningRequest {
		tmpl := servingTemplate(v.cfg)
		if mutate != nil {
			mutate(tmpl)
		}
		der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
		if err != nil {
			t.Fatal(err)
		}
		if usages == nil {
			usages = []certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature, certificatesv1.UsageServerAuth}
		}
		return &certificatesv1.CertificateSigningRequest{Spec: certificatesv1.CertificateSigningRequestSpec{
			Request: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), Usages: usages}}
	}
	if err := v.ownRequest(csr(nil)); err != nil {
		t.Fatalf("its own request refused: %v", err)
	}
	for name, c := range map[string]struct {
		req  *certificatesv1.CertificateSigningRequest
		want string
	}{
		"another node":      {csr(func(r *x509.CertificateRequest) { r.Subject = pkixNode("real-node") }), "subject"},
		"another group":     {csr(func(r *x509.CertificateRequest) { r.Subject.Organization = []string{"system:masters"} }), "subject"},
		"another name":      {csr(func(r *x509.CertificateRequest) { r.DNSNames = append(r.DNSNames, "kubernetes.default") }), "names"},
		"another address":   {csr(func(r *x509.CertificateRequest) { r.IPAddresses = []net.IP{net.ParseIP("198.18.0.11")} }), "names"},
		"an extra address":  {csr(func(r *x509.CertificateRequest) { r.IPAddresses = append(r.IPAddresses, net.ParseIP("127.0.0.1")) }), "names"},
		"an URI":            {csr(func(r *x509.CertificateRequest) { r.URIs = []*url.URL{{Scheme: "spiffe", Host: "x"}} }), "URI"},
		"client auth usage": {csr(nil, certificatesv1.UsageServerAuth, certificatesv1.UsageClientAuth), "usage"},
		"no PEM":            {&certificatesv1.CertificateSigningRequest{Spec: certificatesv1.CertificateSigningRequestSpec{Request: []byte("x")}}, "PEM"},
	} {
		err := v.ownRequest(c.req)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v; want an error about %s", name, err, c.want)
		}
	}
}

// The in-memory store has nothing until the signer's certificate comes,
// and then serves it with its leaf parsed.
func TestMemoryStore(t *testing.T) {
	var s memoryStore
	if _, err := s.Current(); err == nil {
		t.Fatal("an empty store returned a certificate")
	}
	cfg := Config{NodeName: "eci-vnode", InternalIP: "198.18.0.10"}
	self, err := selfSigned(cfg)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(self.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: self.Certificate[0]})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	if _, err := s.Update(certPEM, keyPEM); err != nil {
		t.Fatal(err)
	}
	got, err := s.Current()
	if err != nil || got.Leaf == nil || !got.Leaf.IPAddresses[0].Equal(net.ParseIP("198.18.0.10")) {
		t.Fatalf("current %v, %v", got, err)
	}
	if _, err := s.Update([]byte("junk"), keyPEM); err == nil {
		t.Fatal("junk accepted")
	}
}
