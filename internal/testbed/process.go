package testbed

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/eci-dev/eci/internal/poll"
)

// process is one child daemon of the bed. Its output goes to a log file in the
// bed's directory; it is killed when the test process dies (Pdeathsig), and its
// pid is recorded so that a later bed on the same slot can kill it if that failed.
type process struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
	err     error
}

func (b *Bed) startProcess(name string, bin string, args ...string) (*process, error) {
	return b.startProcessIn("", name, bin, args...)
}

// startProcessIn is startProcess in the network namespace netns (a name
// under /var/run/netns; "" for the bed's own), entered by nsenter, which
// then runs bin in its place (the pid recorded is bin's).
func (b *Bed) startProcessIn(netns, name string, bin string, args ...string) (*process, error) {
	logPath := filepath.Join(b.Dir, "logs", name+".log")
	if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
		return nil, err
	}
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	if netns != "" {
		cmd = exec.Command("nsenter", append([]string{"--net=/var/run/netns/" + netns, "--", bin}, args...)...)
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Env = append(os.Environ(), "PATH="+os.Getenv("PATH")+":/usr/sbin:/sbin")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start %s (%s): %w", name, bin, err)
	}
	p := &process{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		logFile.Close()
		close(p.done)
	}()
	b.slot.recordPID(cmd.Process.Pid, bin)
	b.onStop(name, p.stop)
	return p, nil
}

// exited tells whether the process has ended, with its error.
func (p *process) exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

// stop sends SIGTERM to the process group, then SIGKILL after a grace period.
func (p *process) stop() error {
	if ok, _ := p.exited(); ok {
		return nil
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
		return nil
	case <-time.After(10 * time.Second):
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
	return nil
}

// logTail returns the last lines of the process's log, for error messages.
func (p *process) logTail(n int) string {
	data, err := os.ReadFile(p.logPath)
	if err != nil {
		return ""
	}
	lines := bytes.Split(bytes.TrimRight(data, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

// waitReady polls check until it succeeds, the process exits, or the timeout.
func (p *process) waitReady(ctx context.Context, timeout time.Duration, check func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		if ok, err := p.exited(); ok {
			return fmt.Errorf("%s exited before it was ready (%v); last log lines (%s):\n%s",
				p.name, err, p.logPath, p.logTail(15))
		}
		if last = check(ctx); last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready after %s: %w; last log lines (%s):\n%s",
				p.name, timeout, last, p.logPath, p.logTail(15))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// killRecorded kills a pid recorded by an earlier owner of a slot, if it still
// runs the recorded binary with the slot's directory dir in its arguments
// (a pid may have been reused since, by another bed's process of the same
// binary: every process of a bed names its slot's directory).
func killRecorded(pid int, bin, dir string) {
	exe, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/exe")
	if err != nil || filepath.Base(exe) != filepath.Base(bin) {
		return
	}
	if cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline"); err != nil || !bytes.Contains(cmdline, []byte(dir+"/")) {
		return
	}
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	_ = syscall.Kill(pid, syscall.SIGKILL)
	_ = poll.Until(context.Background(), 5*time.Second, func() error {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("pid %d still there (%v)", pid, err)
		}
		return nil
	})
}
