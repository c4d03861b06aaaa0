package profile

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Path is where the webhook is served.
const Path = "/eci-profile/mutate"

// Namespaces gives a namespace's labels (ctx: the admission request's).
type Namespaces interface {
	Labels(ctx context.Context, name string) (map[string]string, error)
}

// Webhook is the mutating admission webhook: every new pod gets what the
// profile decides. It never refuses a pod: what it can't read, it leaves
// alone (and says so in the log), as failurePolicy Ignore would.
type Webhook struct {
	Profile    func() *Profile
	Namespaces Namespaces
	Node       Node
	Logger     *slog.Logger
}

func (h *Webhook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "POST an AdmissionReview", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 8<<20))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var review admissionv1.AdmissionReview
	if err := json.Unmarshal(body, &review); err != nil || review.Request == nil {
		http.Error(w, fmt.Sprintf("not an admission.k8s.io/v1 AdmissionReview: %v", err), http.StatusBadRequest)
		return
	}
	resp := h.review(r.Context(), review.Request)
	resp.UID = review.Request.UID
	out := admissionv1.AdmissionReview{TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"}, Response: resp}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(out)
}

func (h *Webhook) review(ctx context.Context, req *admissionv1.AdmissionRequest) *admissionv1.AdmissionResponse {
	allow := &admissionv1.AdmissionResponse{Allowed: true}
	if req.Kind.Kind != "Pod" || req.Operation != admissionv1.Create || req.SubResource != "" {
		return allow
	}
	var pod corev1.Pod
	if err := json.Unmarshal(req.Object.Raw, &pod); err != nil {
		h.Logger.Warn("eci-profile: a pod that does not decode is left alone", "namespace", req.Namespace, "err", err)
		return allow
	}
	if pod.Namespace == "" {
		pod.Namespace = req.Namespace
	}
	nsLabels, err := h.Namespaces.Labels(ctx, pod.Namespace)
	if err != nil {
		h.Logger.Warn("eci-profile: namespace labels unknown; the pod is left alone", "namespace", pod.Namespace, "err", err)
		return allow
	}
	d := h.Profile().Decide(&pod, nsLabels, h.Node)
	ops := d.Patch(&pod, h.Node)
	if len(ops) == 0 {
		return allow
	}
	patch, err := json.Marshal(ops)
	if err != nil {
		h.Logger.Warn("eci-profile: patch", "err", err)
		return allow
	}
	name := pod.Name
	if name == "" {
		name = pod.GenerateName + "*"
	}
	h.Logger.Debug("eci-profile: pod mutated", "pod", pod.Namespace+"/"+name, "by", d.By, "policy", d.Policy, "selectors", d.Matched)
	pt := admissionv1.PatchTypeJSONPatch
	return &admissionv1.AdmissionResponse{Allowed: true, Patch: patch, PatchType: &pt}
}
