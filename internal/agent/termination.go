package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	apiv1 "github.com/eci-dev/eci/api/v1"
)

// Termination messages, as the kubelet's: each attempt of a container with
// a terminationMessagePath gets an empty file of its own, writable by any
// user (so a non-root container writes it), mounted at that path. When the
// attempt exits, the last 4096 bytes written there are its terminated
// state's message; with FallbackToLogsOnError, a failed attempt that wrote
// nothing gets the end of its log instead (80 lines, 2048 bytes).

// The kubelet's bounds (kubecontainer.MaxContainerTerminationMessage*).
const (
	maxTerminationMessage        = 4096
	maxTerminationMessageLog     = 2048
	maxTerminationMessageLogTail = 80
)

// terminationFile is where attempt n of container name of group id writes
// its termination message, on the host.
func (a *Agent) terminationFile(id, name string, n uint32) string {
	return filepath.Join(a.groupDir(id), "termination", fmt.Sprintf("%s-%d", name, n))
}

// terminationMount makes attempt n of c's termination message file and
// its mount (nil: c has no terminationMessagePath).
func (a *Agent) terminationMount(g *apiv1.ContainerGroup, c apiv1.Container, n uint32) (*runtimeapi.Mount, error) {
	if c.TerminationMessagePath == "" {
		return nil, nil
	}
	path := a.terminationFile(g.Metadata.ID, c.Name, n)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("termination message file: %w", err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY|syscall.O_NOFOLLOW, 0o666)
	if err != nil {
		return nil, fmt.Errorf("termination message file: %w", err)
	}
	err = f.Chmod(0o666) // whatever the umask: the container's user writes it
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("termination message file: %w", err)
	}
	return &runtimeapi.Mount{ContainerPath: c.TerminationMessagePath, HostPath: path}, nil
}

// terminationMessage is the message of c's exited attempt st: what it
// wrote at its terminationMessagePath, or the end of its log as its
// policy says.
func (a *Agent) terminationMessage(g *apiv1.ContainerGroup, c apiv1.Container, st *runtimeapi.ContainerStatus) string {
	var msg string
	if c.TerminationMessagePath != "" {
		b, err := readTail(a.terminationFile(g.Metadata.ID, c.Name, st.GetMetadata().GetAttempt()), maxTerminationMessage)
		if err != nil && !os.IsNotExist(err) {
			return "Error on reading termination log: " + runtimeWords(err)
		}
		msg = string(b)
	}
	if msg == "" && c.TerminationMessagePolicy == apiv1.TerminationMessageFallbackToLogsOnError && st.ExitCode != 0 {
		msg = a.logTail(g, c, st.GetMetadata().GetAttempt())
	}
	return msg
}

// readTail reads the last most bytes of the regular file path (a link is
// refused: the file is the agent's own).
func readTail(path string, most int64) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, errors.New("the termination log is not a regular file")
	}
	off := max(fi.Size()-most, 0)
	return io.ReadAll(io.NewSectionReader(f, off, most))
}

// logTail is the end of attempt n's log: its last lines, at most
// maxTerminationMessageLog bytes.
func (a *Agent) logTail(g *apiv1.ContainerGroup, c apiv1.Container, n uint32) string {
	var buf bytes.Buffer
	lines := int64(maxTerminationMessageLogTail)
	path := filepath.Join(a.cfg.LogDir, g.Metadata.ID, c.Name, fmt.Sprintf("%d.log", n))
	if err := readLog(context.Background(), path, apiv1.LogOptions{TailLines: &lines}, &buf, func() {}, func() bool { return false }); err != nil {
		return "Error on reading termination message from logs: " + runtimeWords(err)
	}
	b := buf.Bytes()
	return string(b[max(len(b)-maxTerminationMessageLog, 0):])
}

// joinMessage is the runtime's message, then the container's, as the
// kubelet joins them.
func joinMessage(runtime, own string) string {
	switch {
	case own == "":
		return runtime
	case runtime == "":
		return own
	}
	return runtime + ": " + own
}
