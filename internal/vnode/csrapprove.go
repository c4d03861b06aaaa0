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
// kubernetes.io/kubelet-serving), it says so once and leaves the request to
// an admin.
func (v *VNode) approveOwnCSRs(ctx context.Context) {
	l := log.G(ctx)
	review, err := v.cfg.Kube.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		l.Warn("serving certificate: who am I (SelfSubjectReview) failed; approve the node's CSR by hand (kubectl certificate approve)", "err", err)
		return
	}
	me := review.Status.UserInfo.Username
	factory := informers.NewSharedInformerFactoryWithOptions(v.cfg.Kube, 10*time.Minute, informers.WithTweakListOptions(func(o *metav1.ListOptions) {
		o.FieldSelector = fields.OneTermEqualSelector("spec.signerName", certificatesv1.KubeletServingSignerName).String()
	}))
	informer := factory.Certificates().V1().CertificateSigningRequests().Informer()
	forbidden := false
	handle := func(obj any) {
		csr, ok := obj.(*certificatesv1.CertificateSigningRequest)
		if !ok || forbidden || decided(csr) || csr.Spec.Username != me {
			return
		}
		if err := v.ownRequest(csr); err != nil {
			l.Warn("serving certificate: not approving a request of this node's identity", "csr", csr.Name, "err", err)
			return
		}
		csr = csr.DeepCopy()
		csr.Status.Conditions = append(csr.Status.Conditions, certificatesv1.CertificateSigningRequestCondition{
			Type: certificatesv1.CertificateApproved, Status: corev1.ConditionTrue, Reason: approveReason,
			Message: "the virtual node approved its own kubelet serving certificate", LastUpdateTime: metav1.Now(),
		})
		_, err := v.cfg.Kube.CertificatesV1().CertificateSigningRequests().UpdateApproval(ctx, csr.Name, csr, metav1.UpdateOptions{})
		switch {
		case apierrors.IsForbidden(err):
			forbidden = true
			l.Warn("serving certificate: this node may not approve its request; an admin approves it", "csr", csr.Name, "run", "kubectl certificate approve "+csr.Name, "err", err)
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
