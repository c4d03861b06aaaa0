package vnode

import (
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"k8s.io/apiserver/pkg/authentication/authenticator"
	"k8s.io/apiserver/pkg/authentication/authenticatorfactory"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	"k8s.io/apiserver/pkg/authorization/authorizerfactory"
	"k8s.io/apiserver/pkg/server/dynamiccertificates"
	"k8s.io/apiserver/pkg/server/options"

	"github.com/eci-dev/eci/internal/log"
)

// The kubelet API authorizes as a kubelet with --authentication-token-webhook
// and --authorization-mode=Webhook: a caller is a client certificate signed
// by the cluster CA, or a bearer token the apiserver vouches for
// (TokenReview); what it may do is the apiserver's answer to a
// SubjectAccessReview on this node's subresource: nodes/stats,
// nodes/metrics, nodes/log, nodes/proxy (everything else, exec included).
// Anonymous callers get 401, callers without the right 403. One deviation
// from the kubelet: exec, attach, port-forward and run are checked with verb
// "create" whatever the HTTP method, so that "get nodes/proxy" (a read
// permission, given to monitoring) never runs a command over a WebSocket GET.

// kubeletAuth is the kubelet API's authenticator and authorizer.
type kubeletAuth struct {
	authn    authenticator.Request
	authz    authorizer.Authorizer
	nodeName string
}

// newKubeletAuth builds them from the cluster's CA file and its API.
func newKubeletAuth(c Config) (*kubeletAuth, error) {
	caPEM, err := os.ReadFile(c.ClientCAFile)
	if err != nil {
		return nil, fmt.Errorf("vnode: --client-ca-file: %w", err)
	}
	ca, err := dynamiccertificates.NewStaticCAContent("client-ca", caPEM)
	if err != nil {
		return nil, fmt.Errorf("vnode: --client-ca-file %s: %w", c.ClientCAFile, err)
	}
	// The kubelet's defaults (k8s.io/kubernetes/pkg/kubelet/apis/config/v1beta1).
	authn, _, err := authenticatorfactory.DelegatingAuthenticatorConfig{
		Anonymous:                          nil,
		TokenAccessReviewClient:            c.Kube.AuthenticationV1(),
		CacheTTL:                           2 * time.Minute,
		ClientCertificateCAContentProvider: ca,
		WebhookRetryBackoff:                options.DefaultAuthWebhookRetryBackoff(),
	}.New()
	if err != nil {
		return nil, fmt.Errorf("vnode: kubelet API authentication: %w", err)
	}
	authz, err := authorizerfactory.DelegatingAuthorizerConfig{
		SubjectAccessReviewClient: c.Kube.AuthorizationV1(),
		AllowCacheTTL:             5 * time.Minute,
		DenyCacheTTL:              30 * time.Second,
		WebhookRetryBackoff:       options.DefaultAuthWebhookRetryBackoff(),
	}.New()
	if err != nil {
		return nil, fmt.Errorf("vnode: kubelet API authorization: %w", err)
	}
	return &kubeletAuth{authn: authn, authz: authz, nodeName: c.NodeName}, nil
}

// wrap authenticates and authorizes every request before h.
func (a *kubeletAuth) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		info, ok, err := a.authn.AuthenticateRequest(r)
		if err != nil || !ok {
			if err != nil {
				log.G(r.Context()).Info("kubelet API: unauthenticated request", "path", r.URL.Path, "err", err)
			}
			http.Error(w, "Unauthorized", http.StatusUnauthorized)
			return
		}
		attrs := a.attributes(info.User, r)
		decision, reason, err := a.authz.Authorize(r.Context(), attrs)
		if err != nil {
			log.G(r.Context()).Warn("kubelet API: authorization failed", "user", info.User.GetName(), "path", r.URL.Path, "err", err)
			http.Error(w, "Authorization error: "+err.Error(), http.StatusInternalServerError)
			return
		}
		if decision != authorizer.DecisionAllow {
			msg := fmt.Sprintf("Forbidden (user=%s, verb=%s, resource=nodes, subresource=%s)", info.User.GetName(), attrs.Verb, attrs.Subresource)
			if reason != "" {
				msg += ": " + reason
			}
			http.Error(w, msg, http.StatusForbidden)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// attributes are the kubelet's (pkg/kubelet/server/auth.go) for this node,
// but for the verb of commands (see above).
func (a *kubeletAuth) attributes(u user.Info, r *http.Request) authorizer.AttributesRecord {
	verb := map[string]string{http.MethodPost: "create", http.MethodGet: "get", http.MethodPut: "update",
		http.MethodPatch: "patch", http.MethodDelete: "delete", http.MethodHead: "get"}[r.Method]
	for _, p := range []string{"/exec", "/attach", "/portForward", "/run"} {
		if under(r.URL.Path, p) {
			verb = "create"
		}
	}
	sub := "proxy"
	switch {
	case under(r.URL.Path, "/stats"):
		sub = "stats"
	case under(r.URL.Path, "/metrics"):
		sub = "metrics"
	case under(r.URL.Path, "/logs"):
		sub = "log" // the kubelet's word: as pods/log
	}
	return authorizer.AttributesRecord{User: u, Verb: verb, APIVersion: "v1", Resource: "nodes", Name: a.nodeName,
		ResourceRequest: true, Path: r.URL.Path, Subresource: sub}
}

func under(path, prefix string) bool {
	return path == prefix || strings.HasPrefix(path, prefix+"/")
}
