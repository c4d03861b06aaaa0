package testbed

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// CoreDNSTag is the bed's CoreDNS image (the version hack/coredns builds).
const CoreDNSTag = "coredns:1.15.0"

// CoreDNSBinary is the CoreDNS hack/build-coredns.sh built: $COREDNS_BIN, or
// _output/coredns/coredns in the checkout. It fails, saying what to run,
// when it is missing.
func CoreDNSBinary() (string, error) {
	path := os.Getenv("COREDNS_BIN")
	if path == "" {
		root, err := RepoRoot()
		if err != nil {
			return "", fmt.Errorf("finding CoreDNS: %w; set COREDNS_BIN", err)
		}
		path = filepath.Join(root, "_output", "coredns", "coredns")
	}
	if _, err := os.Stat(path); err != nil {
		return "", fmt.Errorf("CoreDNS is missing (%w): run hack/build-coredns.sh", err)
	}
	return path, nil
}

// CoreDNSImage is the busybox image with the CoreDNS binary at /coredns,
// started as "/coredns -conf /etc/coredns/Corefile" (a configMap's mount),
// as the cluster DNS of Kubernetes' own manifests.
func CoreDNSImage(binary string) (v1.Image, error) {
	bin, err := os.ReadFile(binary)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "coredns", Mode: 0o755, Size: int64(len(bin)), ModTime: time.Unix(0, 0)}); err != nil {
		return nil, err
	}
	if _, err := tw.Write(bin); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	data := buf.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
	if err != nil {
		return nil, err
	}
	base, err := BusyboxImage(ImageConfig{Entrypoint: []string{"/coredns"}, Cmd: []string{"-conf", "/etc/coredns/Corefile"}})
	if err != nil {
		return nil, err
	}
	return mutate.AppendLayers(base, layer)
}
