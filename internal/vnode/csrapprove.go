package vnode

import (
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"slices"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"

	"github.com/eci-dev/eci/internal/log"
)

// approveReason is the Approved condition's reason on requests the node
// approved itself.
const approveReason = "EciVnodeSelfApprove"

// pkixNode is the subject the kubelet-serving signer signs for a node.
func pkixNode(name string) pkix.Name {
	return pkix.Name{CommonName: "system:node:" + name, Organization: []string{"system:nodes"}}
}

// approveOwnCSRs approves the node's own serving-certificate requests until
// ctx ends: requests to the kubelet-serving signer that this node's
// identity made (spec.username, from a SelfSubjectReview), for exactly its
// subject, name and InternalIP. It approves nothing else: not another
// node's request, not its own for other names or addresses. When the
// identity may not approve (no "approve" on signers
// kubernetes.io/kubelet-serving), it says so once per request and leaves
// it to an admin; the certificate manager's next request is tried again.
func (v *VNode) approveOwnCSRs(ctx context.Context) {
	l := log.G(ctx)
	me, ok := v.whoAmI(ctx)
	if !ok {
		return
	}
	factory := informers.NewSharedInformerFactoryWithOptions(v.cfg.Kube, 10*time.Minute, informers.WithTweakListOptions(func(o *metav1.ListOptions) {
		o.FieldSelector = fields.OneTermEqualSelector("spec.signerName", certificatesv1.KubeletServingSignerName).String()
	}))
	informer := factory.Certificates().V1().CertificateSigningRequests().Informer()
	warned := map[string]bool{} // requests it may not approve, said once each
	handle := func(obj any) {
		csr, ok := obj.(*certificatesv1.CertificateSigningRequest)
		if !ok || decided(csr) || csr.Spec.Username != me {
			return
		}
		if err := v.ownRequest(csr); err != nil {
			l.Warn("serving certificate: not approving a request of this node's identity", "csr", csr.Name, "err", err)
			return
		}
		err := v.approve(ctx, csr)
		switch {
		case apierrors.IsForbidden(err):
			if !warned[csr.Name] {
				warned[csr.Name] = true
				l.Warn("serving certificate: this node may not approve its request; an admin approves it", "csr", csr.Name, "run", "kubectl certificate approve "+csr.Name, "err", err)
			}
		case err != nil:
			l.Warn("serving certificate: approving", "csr", csr.Name, "err", err)
		default:
			l.Info("serving certificate: approved the node's own request", "csr", csr.Name)
		}
	}
	if _, err := informer.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: handle, UpdateFunc: func(_, obj any) { handle(obj) }}); err != nil {
		l.Warn("serving certificate: watching requests", "err", err)
		return
	}
	factory.Start(ctx.Done())
	<-ctx.Done()
	factory.Shutdown()
}

// whoAmI is the node's user name (a SelfSubjectReview), asked until it
// answers or ctx ends.
func (v *VNode) whoAmI(ctx context.Context) (string, bool) {
	for wait := time.Second; ; wait = min(2*wait, time.Minute) {
		review, err := v.cfg.Kube.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
		if err == nil {
			return review.Status.UserInfo.Username, true
		}
		log.G(ctx).Warn("serving certificate: who am I (SelfSubjectReview)? until it answers, an admin approves the node's request", "err", err, "retry in", wait)
		select {
		case <-ctx.Done():
			return "", false
		case <-time.After(wait):
		}
	}
}

// approve marks csr Approved, reading it again after a conflict.
func (v *VNode) approve(ctx context.Context, csr *certificatesv1.CertificateSigningRequest) error {
	api := v.cfg.Kube.CertificatesV1().CertificateSigningRequests()
	var err error
	for range 5 {
		csr = csr.DeepCopy()
		csr.Status.Conditions = append(csr.Status.Conditions, certificatesv1.CertificateSigningRequestCondition{
			Type: certificatesv1.CertificateApproved, Status: corev1.ConditionTrue, Reason: approveReason,
			Message: "the virtual node approved its own kubelet serving certificate", LastUpdateTime: metav1.Now(),
		})
		if _, err = api.UpdateApproval(ctx, csr.Name, csr, metav1.UpdateOptions{}); !apierrors.IsConflict(err) {
			return err
		}
		if csr, err = api.Get(ctx, csr.Name, metav1.GetOptions{}); err != nil {
			return err
		}
		if decided(csr) {
			return nil
		}
	}
	return err
}

// decided: approved or denied already, or failed.
func decided(csr *certificatesv1.CertificateSigningRequest) bool {
	return slices.ContainsFunc(csr.Status.Conditions, func(c certificatesv1.CertificateSigningRequestCondition) bool {
		return c.Type == certificatesv1.CertificateApproved || c.Type == certificatesv1.CertificateDenied || c.Type == certificatesv1.CertificateFailed
	})
}

// ownRequest checks that csr asks for what servingTemplate asks, and for
// server usages only.
func (v *VNode) ownRequest(csr *certificatesv1.CertificateSigningRequest) error {
	block, _ := pem.Decode(csr.Spec.Request)
	if block == nil || block.Type != "CERTIFICATE REQUEST" {
		return fmt.Errorf("spec.request holds no PEM CERTIFICATE REQUEST")
	}
	req, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return fmt.Errorf("spec.request: %w", err)
	}
	if err := req.CheckSignature(); err != nil {
		return fmt.Errorf("spec.request: %w", err)
	}
	want := servingTemplate(v.cfg)
	switch {
	case req.Subject.CommonName != want.Subject.CommonName || !slices.Equal(req.Subject.Organization, want.Subject.Organization):
		return fmt.Errorf("subject %q; this node asks for %q", req.Subject, want.Subject)
	case !slices.Equal(req.DNSNames, want.DNSNames) || !sameIPs(req.IPAddresses, want.IPAddresses):
		return fmt.Errorf("names %v %v; this node asks for %v %v", req.DNSNames, req.IPAddresses, want.DNSNames, want.IPAddresses)
	case len(req.EmailAddresses) > 0 || len(req.URIs) > 0:
		return fmt.Errorf("email or URI names; a serving certificate has none")
	}
	for _, u := range csr.Spec.Usages {
		if u != certificatesv1.UsageDigitalSignature && u != certificatesv1.UsageKeyEncipherment && u != certificatesv1.UsageServerAuth {
			return fmt.Errorf("usage %q; a serving certificate has digital signature, key encipherment and server auth", u)
		}
	}
	return nil
}
