package client

import (
	"bytes"
	"io"
	"sync"
	"testing"

	"k8s.io/client-go/tools/remotecommand"
)

// readStarted closes started when the first Read is called.
type readStarted struct {
	r       io.Reader
	once    sync.Once
	started chan struct{}
}

func (r *readStarted) Read(p []byte) (int, error) {
	r.once.Do(func() { close(r.started) })
	return r.r.Read(p)
}

// One buffer for stdout and stderr keeps the output of both when a stream
// that writes nothing ends after the other one wrote (client-go copies the
// two concurrently, as here).
func TestOneWriterKeepsBothStreams(t *testing.T) {
	var buf bytes.Buffer
	s := oneWriter(remotecommand.StreamOptions{Stdout: &buf, Stderr: &buf})
	outR, outW := io.Pipe()
	errR, errW := io.Pipe()
	stderr := &readStarted{r: errR, started: make(chan struct{})}
	errDone := make(chan struct{})
	go func() {
		defer close(errDone)
		_, _ = io.Copy(s.Stderr, stderr)
	}()
	<-stderr.started // the stderr copy waits for data
	outDone := make(chan struct{})
	go func() {
		defer close(outDone)
		_, _ = io.Copy(s.Stdout, outR)
	}()
	_, _ = outW.Write([]byte("out-1\nout-2\n"))
	_ = outW.Close()
	<-outDone
	_ = errW.Close() // stderr ends last, having written nothing
	<-errDone
	if got := buf.String(); got != "out-1\nout-2\n" {
		t.Fatalf("one buffer for both streams holds %q, want stdout's two lines", got)
	}
}

type funcWriter func([]byte) (int, error)

func (f funcWriter) Write(p []byte) (int, error) { return f(p) }

func TestOneWriterLeavesOthers(t *testing.T) {
	var a, b bytes.Buffer
	if s := oneWriter(remotecommand.StreamOptions{Stdout: &a, Stderr: &b}); s.Stdout != &a || s.Stderr != &b {
		t.Errorf("two buffers were wrapped: %T %T", s.Stdout, s.Stderr)
	}
	if s := oneWriter(remotecommand.StreamOptions{Stdout: &a}); s.Stdout != &a || s.Stderr != nil {
		t.Errorf("stdout alone was wrapped: %T %T", s.Stdout, s.Stderr)
	}
	f := funcWriter(func(p []byte) (int, error) { return len(p), nil })
	s := oneWriter(remotecommand.StreamOptions{Stdout: f, Stderr: f}) // not comparable: no panic
	if _, ok := s.Stdout.(funcWriter); !ok {
		t.Errorf("a writer that can't be compared was wrapped: %T", s.Stdout)
	}
}
