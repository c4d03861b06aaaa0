package profile

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

type nsLabels map[string]map[string]string

func (n nsLabels) Labels(_ context.Context, name string) (map[string]string, error) {
	l, ok := n[name]
	if !ok {
		return nil, errors.New("not cached")
	}
	return l, nil
}

func review(t *testing.T, h http.Handler, req *admissionv1.AdmissionRequest) (*admissionv1.AdmissionResponse, int) {
	t.Helper()
	body, _ := json.Marshal(admissionv1.AdmissionReview{TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"}, Request: req})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, Path, bytes.NewReader(body)))
	if rec.Code != http.StatusOK {
		return nil, rec.Code
	}
	var out admissionv1.AdmissionReview
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || out.Response == nil {
		t.Fatalf("response %s: %v", rec.Body, err)
	}
	if out.Response.UID != req.UID || !out.Response.Allowed {
		t.Fatalf("response %+v: want allowed, uid %s", out.Response, req.UID)
	}
	return out.Response, rec.Code
}

func TestWebhook(t *testing.T) {
	h := &Webhook{
		Profile:    func() *Profile { return nil },
		Namespaces: nsLabels{"serverless": {LabelECI: "true"}, "plain": {}},
		Node:       testNode, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	podReq := func(ns string, op admissionv1.Operation) *admissionv1.AdmissionRequest {
		raw, _ := json.Marshal(&corev1.Pod{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"}, ObjectMeta: metav1.ObjectMeta{GenerateName: "p-"}})
		return &admissionv1.AdmissionRequest{UID: "u1", Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Pod"}, Namespace: ns, Operation: op, Object: runtime.RawExtension{Raw: raw}}
	}
	resp, _ := review(t, h, podReq("serverless", admissionv1.Create))
	if resp.PatchType == nil || *resp.PatchType != admissionv1.PatchTypeJSONPatch {
		t.Fatalf("no JSON patch for a pod of a labelled namespace: %+v", resp)
	}
	var ops []Op
	if err := json.Unmarshal(resp.Patch, &ops); err != nil || len(ops) != 3 {
		t.Fatalf("patch %s (%v)", resp.Patch, err)
	}
	for name, req := range map[string]*admissionv1.AdmissionRequest{
		"an unlabelled namespace":      podReq("plain", admissionv1.Create),
		"an update":                    podReq("serverless", admissionv1.Update),
		"a namespace not in the cache": podReq("unknown", admissionv1.Create),
		"a pod that does not decode":   {UID: "u1", Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Pod"}, Namespace: "serverless", Operation: admissionv1.Create, Object: runtime.RawExtension{Raw: []byte(`{"spec":7}`)}},
		"another kind":                 {UID: "u1", Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Service"}, Namespace: "serverless", Operation: admissionv1.Create},
		"a subresource (pods/binding create)": func() *admissionv1.AdmissionRequest {
			r := podReq("serverless", admissionv1.Create)
			r.SubResource = "binding"
			return r
		}(),
	} {
		if resp, _ := review(t, h, req); resp.Patch != nil {
			t.Errorf("%s: patched %s; want it left alone", name, resp.Patch)
		}
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, Path, bytes.NewReader([]byte("not json"))))
	if rec.Code != http.StatusBadRequest {
		t.Errorf("a body that is no AdmissionReview: %d", rec.Code)
	}
}
