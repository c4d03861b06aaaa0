// Package imageref names images as containerd does, so that the images a
// group asks for, the ones a host holds and the ones a cache keeps compare
// equal however they were written ("busybox", "docker.io/library/busybox:latest").
package imageref

import (
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
)

// Normal is image as containerd names it: its registry (docker.io for Docker
// Hub, whatever the spelling), its repository (library/ for Docker Hub's
// official images), and its tag (latest when none) or its digest.
func Normal(image string) (string, error) {
	ref, err := name.ParseReference(image, name.WeakValidation)
	if err != nil {
		return "", fmt.Errorf("image %q: %w", image, err)
	}
	repo := Registry(ref.Context().RegistryStr()) + "/" + ref.Context().RepositoryStr()
	if d, ok := ref.(name.Digest); ok {
		return repo + "@" + d.DigestStr(), nil
	}
	return repo + ":" + ref.Identifier(), nil
}

// RegistryOf is the containerd hosts-dir name of image's registry.
func RegistryOf(image string) (string, error) {
	ref, err := name.ParseReference(image, name.WeakValidation)
	if err != nil {
		return "", fmt.Errorf("image %q: %w", image, err)
	}
	return Registry(ref.Context().RegistryStr()), nil
}

// Registry writes a registry as containerd names it: Docker Hub is
// docker.io, whatever the spelling; no scheme, no path.
func Registry(s string) string {
	s = strings.TrimPrefix(strings.TrimPrefix(s, "https://"), "http://")
	s, _, _ = strings.Cut(s, "/")
	switch s {
	case "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com":
		return "docker.io"
	}
	return s
}
