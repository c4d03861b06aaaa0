package agent

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/poll"
)

func criLine(ts time.Time, stream, tag, text string) string {
	return fmt.Sprintf("%s %s %s %s\n", ts.UTC().Format(time.RFC3339Nano), stream, tag, text)
}

// The CRI log reader on files written here: partial lines joined, tail over
// more than one read block, a torn line skipped, follow across a rotation.
func TestReadLog(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "0.log")
	t0 := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	var b strings.Builder
	b.WriteString(criLine(t0, "stdout", "P", "first "))
	b.WriteString(criLine(t0, "stdout", "F", "line"))
	b.WriteString("torn garbage\n")
	for i := 0; i < 2000; i++ { // ~100 KiB: the tail reads several blocks
		b.WriteString(criLine(t0.Add(time.Duration(i+1)*time.Second), "stdout", "F", fmt.Sprintf("n-%04d", i)))
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	read := func(o apiv1.LogOptions) string {
		var out bytes.Buffer
		if err := readLog(context.Background(), path, o, &out, func() {}, func() bool { return false }); err != nil {
			t.Fatal(err)
		}
		return out.String()
	}
	n := func(v int64) *int64 { return &v }
	if got := read(apiv1.LogOptions{}); !strings.HasPrefix(got, "first line\nn-0000\n") || strings.Count(got, "\n") != 2001 {
		t.Errorf("whole log starts %q and has %d lines", got[:30], strings.Count(got, "\n"))
	}
	if got := read(apiv1.LogOptions{TailLines: n(3)}); got != "n-1997\nn-1998\nn-1999\n" {
		t.Errorf("tail 3: %q", got)
	}
	if got := read(apiv1.LogOptions{TailLines: n(5000)}); !strings.HasPrefix(got, "first line\n") {
		t.Errorf("tail past the start: %q", got[:20])
	}
	since := t0.Add(1999 * time.Second)
	if got := read(apiv1.LogOptions{SinceTime: &since}); got != "n-1998\nn-1999\n" {
		t.Errorf("sinceTime: %q", got)
	}
	if got := read(apiv1.LogOptions{LimitBytes: n(7), Timestamps: false}); got != "first l" {
		t.Errorf("limitBytes 7: %q", got)
	}

	// follow: lines appended, then the file rotated and a new one written,
	// then the container ends.
	var alive atomic.Bool
	alive.Store(true)
	out := &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- readLog(context.Background(), path, apiv1.LogOptions{Follow: true, TailLines: n(1)}, out, func() {}, alive.Load)
	}()
	appendLine := func(p, text string) {
		f, err := os.OpenFile(p, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = f.WriteString(criLine(time.Now(), "stdout", "F", text))
		_ = f.Close()
	}
	waitFor := func(want string) {
		poll.Eventually(t, 5*time.Second, "followed output has "+want, func() error {
			if got := out.String(); !strings.Contains(got, want) {
				return fmt.Errorf("followed output %q lacks %q", got, want)
			}
			return nil
		})
	}
	waitFor("n-1999\n") // the tail is out: the reader waits at the end
	appendLine(path, "after-1")
	waitFor("after-1\n")
	appendLine(path, "before-rotation")
	if err := os.Rename(path, path+".20261123-100000"); err != nil {
		t.Fatal(err)
	}
	appendLine(path, "after-rotation")
	waitFor("after-rotation\n")
	alive.Store(false)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("follow did not end after the container did")
	}
	if got := out.String(); got != "n-1999\nafter-1\nbefore-rotation\nafter-rotation\n" {
		t.Errorf("followed: %q", got)
	}
}

// A tail is the last lines as the file was when asked: a line written
// after tailOffset read the size is not among them.
func TestTailIsASnapshot(t *testing.T) {
	path := filepath.Join(t.TempDir(), "0.log")
	t0 := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	if err := os.WriteFile(path, []byte(criLine(t0, "stdout", "F", "one")+criLine(t0, "stdout", "F", "two")+criLine(t0, "stdout", "F", "three")), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	off, end, err := tailOffset(f, 2)
	if err != nil {
		t.Fatal(err)
	}
	w, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.WriteString(criLine(t0, "stdout", "F", "four")); err != nil {
		t.Fatal(err)
	}
	w.Close()
	got := make([]byte, end-off)
	if _, err := f.ReadAt(got, off); err != nil {
		t.Fatal(err)
	}
	if want := criLine(t0, "stdout", "F", "two") + criLine(t0, "stdout", "F", "three"); string(got) != want {
		t.Fatalf("the last 2 lines as asked: %q, want %q", got, want)
	}
}
