package control

import (
	"crypto/sha256"
	"encoding/hex"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/auth"
)

// Redact is g as p may read it. Registry passwords and the content of files
// volumes (secrets, service-account tokens) are written by tenants and read
// back by nobody but the agent of the group's host, which needs them: not
// the tenant, not the admin, not a log or an event. The others read a
// file's SHA256, enough to tell whether it changed. g is not modified.
func Redact(p auth.Principal, g *apiv1.ContainerGroup) *apiv1.ContainerGroup {
	if g == nil || (p.Kind == apiv1.TokenHost && p.Host != "" && p.Host == g.Status.Host) {
		return g
	}
	out := *g
	if len(g.Spec.ImageRegistryCredentials) > 0 {
		out.Spec.ImageRegistryCredentials = make([]apiv1.RegistryCredential, len(g.Spec.ImageRegistryCredentials))
		for i, c := range g.Spec.ImageRegistryCredentials {
			c.Password = ""
			out.Spec.ImageRegistryCredentials[i] = c
		}
	}
	if len(g.Spec.Volumes) > 0 {
		out.Spec.Volumes = make([]apiv1.Volume, len(g.Spec.Volumes))
		for i, v := range g.Spec.Volumes {
			if v.Files != nil {
				fv := *v.Files
				fv.Files = make([]apiv1.File, len(v.Files.Files))
				for j, f := range v.Files.Files {
					if f.Content != nil || f.SHA256 == "" { // (an ended group's content is gone, its SHA256 kept)
						f.SHA256 = digest(f.Content)
					}
					f.Content = nil
					fv.Files[j] = f
				}
				v.Files = &fv
			}
			out.Spec.Volumes[i] = v
		}
	}
	return &out
}

// digest is a file's SHA256 as the API shows it (hex).
func digest(content []byte) string {
	sum := sha256.Sum256(content)
	return hex.EncodeToString(sum[:])
}
