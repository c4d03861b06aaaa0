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

// Addon is a cluster component the bed serves as an image: a binary built
// from its Go module by a hack/ script, on the busybox image, as the
// component's own manifests run it (deploy/addons).
type Addon struct {
	Tag    string   // the image's repository and tag
	Env    string   // names the binary's path, overriding Dir/File
	Dir    string   // the binary's folder under _output
	File   string   // and its name, at / in the image
	Script string   // the hack/ script that builds it
	Cmd    []string // the image's default arguments
}

// CoreDNS is the cluster DNS (the version hack/coredns builds), started as
// "/coredns -conf /etc/coredns/Corefile" (a configMap's mount).
var CoreDNS = Addon{Tag: "coredns:1.15.0", Env: "COREDNS_BIN", Dir: "coredns", File: "coredns",
	Script: "hack/build-coredns.sh", Cmd: []string{"-conf", "/etc/coredns/Corefile"}}

// MetricsServer is metrics-server (the version hack/metrics-server pins);
// its arguments are the manifest's.
var MetricsServer = Addon{Tag: "metrics-server:0.8.0", Env: "METRICS_SERVER_BIN", Dir: "metrics-server",
	File: "metrics-server", Script: "hack/build-metrics-server.sh"}

// Binary is the addon's binary its script built: $Env, or
// _output/<Dir>/<File> in the checkout. It fails, saying what to run, when
// it is missing.
func (a Addon) Binary() (string, error) {
	path := os.Getenv(a.Env)
	if path == "" {
		root, err := RepoRoot()
		if err != nil {
			return "", fmt.Errorf("finding %s: %w; set %s", a.File, err, a.Env)
		}
		path = filepath.Join(root, "_output", a.Dir, a.File)
	}
	if _, err := os.Stat(path); err != nil {
		return "", fmt.Errorf("%s is missing (%w): run %s", a.File, err, a.Script)
	}
	return path, nil
}

// Image is the busybox image with the binary at /<File>, its entrypoint.
func (a Addon) Image(binary string) (v1.Image, error) {
	bin, err := os.ReadFile(binary)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: a.File, Mode: 0o755, Size: int64(len(bin)), ModTime: time.Unix(0, 0)}); err != nil {
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
	base, err := BusyboxImage(ImageConfig{Entrypoint: []string{"/" + a.File}, Cmd: a.Cmd})
	if err != nil {
		return nil, err
	}
	return mutate.AppendLayers(base, layer)
}
