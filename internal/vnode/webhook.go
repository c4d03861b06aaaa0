package vnode

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corev1listers "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/eci-dev/eci/internal/log"
	"github.com/eci-dev/eci/internal/pki"
	"github.com/eci-dev/eci/internal/profile"
)

// The eci-profile webhook as the vnode serves it: a certificate from a CA
// the vnode creates once and keeps in a Secret of its namespace (so a
// restart keeps the caBundle the apiserver trusts), a
// MutatingWebhookConfiguration kept up to date (failurePolicy Ignore and a
// short timeout, so a vnode that is down never blocks pod creation), the
// profile from the ConfigMap kube-system/eci-profile, and the overflow
// controller of normalNodePrefer.

const (
	webhookTimeoutSeconds = 2
	webhookResync         = 30 * time.Second
	certValidity          = 10 * 365 * 24 * time.Hour
)

func (v *VNode) webhookName() string { return "eci-profile." + v.cfg.NodeName }

// profileNode is what a pod needs to land on this node.
func (v *VNode) profileNode() profile.Node {
	return profile.VirtualNode(v.cfg.Taint)
}

// runProfile serves the webhook and runs its controllers until ctx ends.
func (v *VNode) runProfile(ctx context.Context, started chan<- error) {
	pc := v.cfg.Profile
	host := v.cfg.InternalIP // the name the apiserver checks the certificate for
	if pc.URL != "" {
		u, err := url.Parse(pc.URL)
		if err != nil || u.Hostname() == "" {
			started <- fmt.Errorf("vnode: --profile-url %q: want https://HOST[:PORT]/PATH", pc.URL)
			return
		}
		host = u.Hostname()
	}
	cert, caPEM, err := v.webhookCert(ctx, host)
	if err != nil {
		started <- fmt.Errorf("vnode: eci-profile certificate (kept in secret %s/%s; --profile-listen= runs without the webhook): %w", pc.Namespace, v.webhookName(), err)
		return
	}
	var current atomic.Pointer[tls.Certificate]
	current.Store(&cert)
	ln, err := tls.Listen("tcp", pc.ListenAddr, &tls.Config{MinVersion: tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return current.Load(), nil }})
	if err != nil {
		started <- fmt.Errorf("vnode: eci-profile webhook: %w", err)
		return
	}
	mux := http.NewServeMux()
	namespaces := namespaceLabels{lister: v.objects.Core().V1().Namespaces().Lister(), kube: v.cfg.Kube}
	mux.Handle(profile.Path, &profile.Webhook{Profile: v.profile.Current, Namespaces: namespaces, Node: v.profileNode(), Logger: log.G(ctx)})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: httpErrorLog(log.G(ctx))}
	go func() { _ = srv.Serve(ln) }()
	defer func() { _ = srv.Close() }()
	hookURL := pc.URL
	if hookURL == "" {
		hookURL = "https://" + net.JoinHostPort(v.cfg.InternalIP, fmt.Sprint(port(ln.Addr().String()))) + profile.Path
	}
	if err := v.ensureWebhook(ctx, hookURL, caPEM); err != nil {
		started <- fmt.Errorf("vnode: eci-profile MutatingWebhookConfiguration %s (the vnode needs get, create and update on mutatingwebhookconfigurations; --profile-listen= runs without the webhook): %w", v.webhookName(), err)
		return
	}
	started <- nil
	log.G(ctx).Info("eci-profile webhook serving", "url", hookURL)
	pending := informers.NewSharedInformerFactoryWithOptions(v.cfg.Kube, 10*time.Minute, informers.WithTweakListOptions(func(o *metav1.ListOptions) {
		o.FieldSelector = fields.OneTermEqualSelector("spec.nodeName", "").String()
	}))
	over := &profile.Overflow{Kube: v.cfg.Kube, Pending: pending.Core().V1().Pods().Informer(), Node: v.profileNode(), Recorder: v.cfg.Recorder, Logger: log.G(ctx)}
	pending.Start(ctx.Done())
	var wg sync.WaitGroup
	defer func() { wg.Wait(); pending.Shutdown() }() // both end with ctx
	wg.Add(1)
	go func() { defer wg.Done(); over.Run(ctx) }()
	every(ctx, webhookResync, func() {
		// A certificate near its end is replaced (and its CA published)
		// before the apiserver would refuse it.
		if !certServes(*current.Load(), host) {
			if next, ca, err := v.webhookCert(ctx, host); err != nil {
				log.G(ctx).Warn("eci-profile: renew the webhook's certificate", "err", err)
			} else {
				current.Store(&next)
				caPEM = ca
				log.G(ctx).Info("eci-profile: webhook certificate renewed")
			}
		}
		if err := v.ensureWebhook(ctx, hookURL, caPEM); err != nil {
			log.G(ctx).Warn("eci-profile MutatingWebhookConfiguration", "err", err)
		}
	})
}

// watchProfile feeds the ConfigMap's changes to the profile source.
func (v *VNode) watchProfile() {
	is := func(obj any) (*corev1.ConfigMap, bool) {
		if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = d.Obj
		}
		cm, ok := obj.(*corev1.ConfigMap)
		return cm, ok && cm.Namespace == profile.ConfigMapNamespace && cm.Name == profile.ConfigMapName
	}
	_, _ = v.objects.Core().V1().ConfigMaps().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) {
			if cm, ok := is(obj); ok {
				v.profile.Set(cm)
			}
		},
		UpdateFunc: func(_, obj any) {
			if cm, ok := is(obj); ok {
				v.profile.Set(cm)
			}
		},
		DeleteFunc: func(obj any) {
			if _, ok := is(obj); ok {
				v.profile.Deleted()
			}
		},
	})
	// Namespaces are read by the webhook: the informer must exist before
	// the factory starts.
	_ = v.objects.Core().V1().Namespaces().Informer()
}

// ensureWebhook creates or corrects the MutatingWebhookConfiguration.
func (v *VNode) ensureWebhook(ctx context.Context, url string, caPEM []byte) error {
	ignore, none := admissionregistrationv1.Ignore, admissionregistrationv1.SideEffectClassNone
	never, scope := admissionregistrationv1.NeverReinvocationPolicy, admissionregistrationv1.NamespacedScope
	timeout := int32(webhookTimeoutSeconds)
	excluded := []string{"kube-system"}
	for _, ns := range append([]string{v.cfg.Profile.Namespace}, v.cfg.Profile.ExcludeNamespaces...) {
		if ns != "" && ns != "kube-system" {
			excluded = append(excluded, ns)
		}
	}
	want := []admissionregistrationv1.MutatingWebhook{{
		Name:         "pods.eci-profile.eci.dev",
		ClientConfig: admissionregistrationv1.WebhookClientConfig{URL: &url, CABundle: caPEM},
		Rules: []admissionregistrationv1.RuleWithOperations{{
			Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
			Rule:       admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"}, Scope: &scope},
		}},
		NamespaceSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
			{Key: corev1.LabelMetadataName, Operator: metav1.LabelSelectorOpNotIn, Values: excluded},
		}},
		ObjectSelector:          &metav1.LabelSelector{},
		FailurePolicy:           &ignore,
		SideEffects:             &none,
		TimeoutSeconds:          &timeout,
		AdmissionReviewVersions: []string{"v1"},
		ReinvocationPolicy:      &never,
		MatchPolicy:             ptr(admissionregistrationv1.Equivalent),
	}}
	api := v.cfg.Kube.AdmissionregistrationV1().MutatingWebhookConfigurations()
	cur, err := api.Get(ctx, v.webhookName(), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		_, err = api.Create(ctx, &admissionregistrationv1.MutatingWebhookConfiguration{
			ObjectMeta: metav1.ObjectMeta{Name: v.webhookName(), Labels: map[string]string{"app.kubernetes.io/managed-by": "eci-vnode"}},
			Webhooks:   want,
		}, metav1.CreateOptions{})
		return err
	}
	if err != nil {
		return err
	}
	if reflect.DeepEqual(cur.Webhooks, want) {
		return nil
	}
	cur.Webhooks = want
	_, err = api.Update(ctx, cur, metav1.UpdateOptions{})
	return err
}

// webhookCert is the serving certificate and the CA bundle: given files, or
// the ones kept in the Secret (made once).
func (v *VNode) webhookCert(ctx context.Context, host string) (tls.Certificate, []byte, error) {
	pc := v.cfg.Profile
	if pc.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(pc.CertFile, pc.KeyFile)
		if err != nil {
			return cert, nil, err
		}
		ca, err := os.ReadFile(pc.CAFile)
		return cert, ca, err
	}
	secrets := v.cfg.Kube.CoreV1().Secrets(pc.Namespace)
	name := v.webhookName()
	kept, err := secrets.Get(ctx, name, metav1.GetOptions{})
	switch {
	case err == nil:
		cert, err := tls.X509KeyPair(kept.Data[corev1.TLSCertKey], kept.Data[corev1.TLSPrivateKeyKey])
		if err == nil && certServes(cert, host) {
			return cert, kept.Data["ca.crt"], nil
		}
		log.G(ctx).Info("eci-profile: the kept certificate does not name "+host+" or ends within a month; making a new one", "secret", pc.Namespace+"/"+name)
	case apierrors.IsNotFound(err):
		kept = nil
	default:
		return tls.Certificate{}, nil, err
	}
	ca, err := pki.NewCA("eci-profile-"+v.cfg.NodeName, certValidity)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	req := pki.CertRequest{CommonName: name, DNSNames: []string{name}, IPs: []net.IP{net.ParseIP(v.cfg.InternalIP)}, Server: true}
	if ip := net.ParseIP(host); ip != nil {
		req.IPs = append(req.IPs, ip)
	} else {
		req.DNSNames = append(req.DNSNames, host)
	}
	kp, err := ca.Issue(req)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	keyPEM, err := pki.KeyPEM(kp.Key)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	certPEM, caPEM := pki.CertPEM(kp.Cert), pki.CertPEM(ca.Cert)
	data := map[string][]byte{corev1.TLSCertKey: certPEM, corev1.TLSPrivateKeyKey: keyPEM, "ca.crt": caPEM}
	if kept != nil {
		kept.Data = data
		_, err = secrets.Update(ctx, kept, metav1.UpdateOptions{})
	} else {
		_, err = secrets.Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: pc.Namespace, Labels: map[string]string{"app.kubernetes.io/managed-by": "eci-vnode"}},
			Type:       corev1.SecretTypeTLS, Data: data,
		}, metav1.CreateOptions{})
	}
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("keep it in secret %s/%s: %w", pc.Namespace, name, err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	return cert, caPEM, err
}

// certServes: the certificate names host and has a month left.
func certServes(cert tls.Certificate, host string) bool {
	if len(cert.Certificate) == 0 {
		return false
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil || time.Until(leaf.NotAfter) < 30*24*time.Hour {
		return false
	}
	return leaf.VerifyHostname(host) == nil
}

// namespaceLabels reads a namespace's labels from the informer, or from the
// apiserver when the informer has not seen it yet (a pod created right
// after its namespace).
type namespaceLabels struct {
	lister corev1listers.NamespaceLister
	kube   kubernetes.Interface
}

func (n namespaceLabels) Labels(ctx context.Context, name string) (map[string]string, error) {
	ns, err := n.lister.Get(name)
	if apierrors.IsNotFound(err) {
		ctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		defer cancel()
		ns, err = n.kube.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
	}
	if err != nil {
		return nil, err
	}
	return ns.Labels, nil
}
