package vnode

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	apiv1 "github.com/eci-dev/eci/api/v1"
)

// dockerCredentials reads a kubernetes.io/dockerconfigjson (or dockercfg)
// secret's data.
func dockerCredentials(data map[string][]byte) ([]apiv1.RegistryCredential, error) {
	type entry struct {
		Username, Password, Auth string
	}
	var auths map[string]entry
	switch {
	case data[corev1.DockerConfigJsonKey] != nil:
		var cfg struct {
			Auths map[string]entry `json:"auths"`
		}
		if err := json.Unmarshal(data[corev1.DockerConfigJsonKey], &cfg); err != nil {
			return nil, fmt.Errorf("%s is not a docker config: %w", corev1.DockerConfigJsonKey, err)
		}
		auths = cfg.Auths
	case data[corev1.DockerConfigKey] != nil:
		if err := json.Unmarshal(data[corev1.DockerConfigKey], &auths); err != nil {
			return nil, fmt.Errorf("%s is not a docker config: %w", corev1.DockerConfigKey, err)
		}
	default:
		return nil, fmt.Errorf("the secret has neither %s nor %s", corev1.DockerConfigJsonKey, corev1.DockerConfigKey)
	}
	var out []apiv1.RegistryCredential
	for _, server := range sortedKeys(auths) {
		e := auths[server]
		if e.Username == "" && e.Auth != "" {
			raw, err := base64.StdEncoding.DecodeString(e.Auth)
			if err != nil {
				return nil, fmt.Errorf("auth of %s is not base64", server)
			}
			e.Username, e.Password, _ = strings.Cut(string(raw), ":")
		}
		out = append(out, apiv1.RegistryCredential{Server: server, Username: e.Username, Password: e.Password})
	}
	return out, nil
}

// serviceAccountToken asks the TokenRequest API for a token bound to the pod
// and adds it to the payload (refreshed before expiry by the provider's
// token loop).
func (p *Provider) serviceAccountToken(ctx context.Context, pod *corev1.Pod, src *corev1.ServiceAccountTokenProjection, fv *apiv1.FilesVolume) error {
	sa := pod.Spec.ServiceAccountName
	if sa == "" {
		sa = "default"
	}
	exp := int64(3600)
	if src.ExpirationSeconds != nil {
		exp = *src.ExpirationSeconds
	}
	req := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		ExpirationSeconds: &exp,
		BoundObjectRef:    &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID},
	}}
	if src.Audience != "" {
		req.Spec.Audiences = []string{src.Audience}
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	tok, err := p.cfg.Kube.CoreV1().ServiceAccounts(pod.Namespace).CreateToken(ctx, sa, req, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("token of service account %s/%s: %w", pod.Namespace, sa, err)
	}
	fv.Files = append(fv.Files, apiv1.File{Path: src.Path, Content: []byte(tok.Status.Token)})
	return nil
}
