package vnode

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"

	apiv1 "github.com/eci-dev/eci/api/v1"
)

// errMissing is a configMap or secret a pod needs that does not exist (yet):
// the pod stays Pending and is tried again, as the kubelet does.
type errMissing struct{ what string }

func (e *errMissing) Error() string { return e.what + " not found" }

// volumes translates the pod's volumes: emptyDir and nfs as they are;
// configMap, secret, downwardAPI and projected become files payloads the
// agent writes atomically; hostPath, with AnnDataCacheBucket, is the data
// cache of that bucket at that path.
func (p *Provider) volumes(ctx context.Context, pod *corev1.Pod) ([]apiv1.Volume, error) {
	var out []apiv1.Volume
	for _, v := range pod.Spec.Volumes {
		vol := apiv1.Volume{Name: v.Name}
		switch {
		case v.EmptyDir != nil:
			vol.EmptyDir = &apiv1.EmptyDirVolume{Medium: string(v.EmptyDir.Medium)}
			if v.EmptyDir.SizeLimit != nil {
				vol.EmptyDir.SizeLimitMiB = (v.EmptyDir.SizeLimit.Value() + (1<<20 - 1)) >> 20
			}
		case v.NFS != nil:
			vol.NFS = &apiv1.NFSVolume{Server: v.NFS.Server, Path: v.NFS.Path, ReadOnly: v.NFS.ReadOnly}
		case v.HostPath != nil: // (only with AnnDataCacheBucket: unsupported refused it otherwise)
			vol.DataCache = &apiv1.DataCacheVolume{Bucket: pod.Annotations[AnnDataCacheBucket], Path: v.HostPath.Path}
		case v.ConfigMap != nil, v.Secret != nil, v.DownwardAPI != nil, v.Projected != nil:
			fv, err := p.filesOf(ctx, pod, v)
			if err != nil {
				return nil, err
			}
			vol.Files = fv
		default:
			return nil, refuse("VolumeNotSupported", "volume %q: this kind of volume is not supported on a virtual node yet: use emptyDir, configMap, secret, downwardAPI, projected or nfs", v.Name)
		}
		out = append(out, vol)
	}
	return out, nil
}

// filesOf is the payload of a configMap, secret, downwardAPI or projected
// volume.
func (p *Provider) filesOf(ctx context.Context, pod *corev1.Pod, v corev1.Volume) (*apiv1.FilesVolume, error) {
	b := &payload{pod: pod, fv: &apiv1.FilesVolume{Files: []apiv1.File{}}}
	var err error
	switch {
	case v.ConfigMap != nil:
		b.fv.DefaultMode = v.ConfigMap.DefaultMode
		err = b.object("configmap", p.cfg.Files.configMap, v.ConfigMap.Name, v.ConfigMap.Items, v.ConfigMap.Optional)
	case v.Secret != nil:
		b.fv.DefaultMode = v.Secret.DefaultMode
		err = b.object("secret", p.cfg.Files.secret, v.Secret.SecretName, v.Secret.Items, v.Secret.Optional)
	case v.DownwardAPI != nil:
		b.fv.DefaultMode = v.DownwardAPI.DefaultMode
		err = b.downward(v.DownwardAPI.Items)
	case v.Projected != nil:
		b.fv.DefaultMode = v.Projected.DefaultMode
		for _, src := range v.Projected.Sources {
			switch {
			case src.ConfigMap != nil:
				err = b.object("configmap", p.cfg.Files.configMap, src.ConfigMap.Name, src.ConfigMap.Items, src.ConfigMap.Optional)
			case src.Secret != nil:
				err = b.object("secret", p.cfg.Files.secret, src.Secret.Name, src.Secret.Items, src.Secret.Optional)
			case src.DownwardAPI != nil:
				err = b.downward(src.DownwardAPI.Items)
			case src.ServiceAccountToken != nil:
				err = p.serviceAccountToken(ctx, pod, src.ServiceAccountToken, b.fv)
			}
			if err != nil {
				break
			}
		}
	}
	if err != nil {
		return nil, err
	}
	return b.fv, nil
}

// payload builds the files of one volume of pod.
type payload struct {
	pod *corev1.Pod
	fv  *apiv1.FilesVolume
}

// add adds the keys of data (all of them, or items), what names their
// source in errors; a missing item of an optional source is skipped.
func (b *payload) add(data map[string][]byte, items []corev1.KeyToPath, what string, optional bool) error {
	if data == nil {
		return nil
	}
	if len(items) == 0 {
		for _, k := range sortedKeys(data) {
			b.fv.Files = append(b.fv.Files, apiv1.File{Path: k, Content: data[k]})
		}
		return nil
	}
	for _, it := range items {
		content, ok := data[it.Key]
		if !ok {
			if optional {
				continue
			}
			return &errMissing{what: fmt.Sprintf("key %q of %s", it.Key, what)}
		}
		b.fv.Files = append(b.fv.Files, apiv1.File{Path: it.Path, Content: content, Mode: it.Mode})
	}
	return nil
}

// object adds the items of a configMap or secret of the pod's namespace
// (get reads it).
func (b *payload) object(kind string, get func(namespace, name string) (map[string][]byte, error), name string, items []corev1.KeyToPath, optional *bool) error {
	data, err := get(b.pod.Namespace, name)
	what := fmt.Sprintf("%s %s/%s", kind, b.pod.Namespace, name)
	if err != nil {
		return err
	}
	opt := optional != nil && *optional
	if data == nil && !opt {
		return &errMissing{what: what}
	}
	return b.add(data, items, what, opt)
}

// downward adds the downward API's files (fieldRef; resourceFieldRef not
// yet).
func (b *payload) downward(items []corev1.DownwardAPIVolumeFile) error {
	for _, it := range items {
		if it.FieldRef == nil {
			continue
		}
		val, err := fieldValue(b.pod, it.FieldRef.FieldPath)
		if err != nil {
			return err
		}
		b.fv.Files = append(b.fv.Files, apiv1.File{Path: it.Path, Content: []byte(val), Mode: it.Mode})
	}
	return nil
}

// fieldValue resolves a downward API field path of the pod.
func fieldValue(pod *corev1.Pod, fieldPath string) (string, error) {
	switch {
	case fieldPath == "metadata.name":
		return pod.Name, nil
	case fieldPath == "metadata.namespace":
		return pod.Namespace, nil
	case fieldPath == "metadata.uid":
		return string(pod.UID), nil
	case fieldPath == "metadata.labels":
		return formatMap(pod.Labels), nil
	case fieldPath == "metadata.annotations":
		return formatMap(pod.Annotations), nil
	case strings.HasPrefix(fieldPath, "metadata.labels['"):
		return pod.Labels[strings.TrimSuffix(strings.TrimPrefix(fieldPath, "metadata.labels['"), "']")], nil
	case strings.HasPrefix(fieldPath, "metadata.annotations['"):
		return pod.Annotations[strings.TrimSuffix(strings.TrimPrefix(fieldPath, "metadata.annotations['"), "']")], nil
	case fieldPath == "spec.nodeName":
		return pod.Spec.NodeName, nil
	case fieldPath == "spec.serviceAccountName":
		return pod.Spec.ServiceAccountName, nil
	}
	return "", refuse("InvalidDownwardAPI", "downwardAPI field %q is not supported in a volume", fieldPath)
}

func formatMap(m map[string]string) string {
	var b strings.Builder
	for _, k := range sortedKeys(m) {
		fmt.Fprintf(&b, "%s=%q\n", k, m[k])
	}
	return b.String()
}

// pullSecrets turns the pod's imagePullSecrets into registry credentials.
func (p *Provider) pullSecrets(pod *corev1.Pod, s *apiv1.ContainerGroupSpec) error {
	for _, ref := range pod.Spec.ImagePullSecrets {
		data, err := p.cfg.Files.secret(pod.Namespace, ref.Name)
		if err != nil {
			return err
		}
		if data == nil {
			continue // as the kubelet: a missing pull secret is skipped (the pull may then fail)
		}
		creds, err := dockerCredentials(data)
		if err != nil {
			return refuse("InvalidImagePullSecret", "imagePullSecret %s/%s: %v", pod.Namespace, ref.Name, err)
		}
		s.ImageRegistryCredentials = append(s.ImageRegistryCredentials, creds...)
	}
	return nil
}
