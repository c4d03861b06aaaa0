package agent

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/errdefs"
)

// The CRI log format, one line per write of the container:
//
//	2026-11-23T15:04:05.123456789Z stdout F the content
//
// F ends a line, P is part of a longer one (the runtime splits long lines).

// logAttempts lists the attempts of container name of group id that have a
// log file, oldest first.
func (a *Agent) logAttempts(id, name string) ([]int, error) {
	entries, err := os.ReadDir(filepath.Join(a.cfg.LogDir, id, name))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []int
	for _, e := range entries {
		n, err := strconv.Atoi(strings.TrimSuffix(e.Name(), ".log"))
		if err == nil && strings.HasSuffix(e.Name(), ".log") {
			out = append(out, n)
		}
	}
	sort.Ints(out)
	return out, nil
}

// logFile is the file to read for o: the current attempt's, or the one
// before it (previous).
func (a *Agent) logFile(id string, o apiv1.LogOptions) (path string, attempt int, err error) {
	at, err := a.logAttempts(id, o.Container)
	if err != nil {
		return "", 0, err
	}
	i := len(at) - 1
	if o.Previous {
		i--
	}
	if i < 0 {
		what := "container"
		if o.Previous {
			what = "previous terminated container"
		}
		return "", 0, fmt.Errorf("%s %q of group %s has no log yet: %w", what, o.Container, id, errdefs.ErrNotFound)
	}
	return filepath.Join(a.cfg.LogDir, id, o.Container, strconv.Itoa(at[i])+".log"), at[i], nil
}

// errLimit ends a read at limitBytes.
var errLimit = errors.New("limitBytes reached")

// logWriter writes parsed lines with the options' timestamps and limit.
type logWriter struct {
	w          io.Writer
	timestamps bool
	since      time.Time
	left       int64 // bytes still allowed; <0: no limit
}

func (lw *logWriter) line(raw []byte) error {
	ts, stream, content, ok := parseCRILine(raw)
	if !ok || (stream != "stdout" && stream != "stderr") {
		return nil // a torn or foreign line: skip, as the kubelet does
	}
	if !lw.since.IsZero() && ts.Before(lw.since) {
		return nil
	}
	var out []byte
	if lw.timestamps {
		out = append(out, ts.UTC().Format(time.RFC3339Nano)...)
		out = append(out, ' ')
	}
	out = append(out, content...)
	if lw.left >= 0 && int64(len(out)) > lw.left {
		out = out[:lw.left]
	}
	if _, err := lw.w.Write(out); err != nil {
		return err
	}
	if lw.left >= 0 {
		lw.left -= int64(len(out))
		if lw.left == 0 {
			return errLimit
		}
	}
	return nil
}

// parseCRILine splits one line of a CRI log file. content keeps the line's
// newline when the tag is F (full) and has none when it is P (partial).
func parseCRILine(line []byte) (ts time.Time, stream string, content []byte, ok bool) {
	line = bytes.TrimSuffix(line, []byte("\n"))
	parts := bytes.SplitN(line, []byte(" "), 4)
	if len(parts) < 3 {
		return ts, "", nil, false
	}
	ts, err := time.Parse(time.RFC3339Nano, string(parts[0]))
	if err != nil {
		return ts, "", nil, false
	}
	if len(parts) == 4 {
		content = append(content, parts[3]...)
	}
	if string(parts[2]) != "P" {
		content = append(content, '\n')
	}
	return ts, string(parts[1]), content, true
}

// tailOffset is where the last n lines of f begin, and where they end (its
// size when read).
func tailOffset(f *os.File, n int64) (int64, int64, error) {
	st, err := f.Stat()
	if err != nil {
		return 0, 0, err
	}
	end := st.Size()
	if n == 0 {
		return end, end, nil
	}
	const block = 32 << 10
	buf := make([]byte, block)
	seen := int64(0)
	pos := end
	for pos > 0 {
		size := int64(block)
		if pos < size {
			size = pos
		}
		pos -= size
		if _, err := f.ReadAt(buf[:size], pos); err != nil {
			return 0, 0, err
		}
		for i := size - 1; i >= 0; i-- {
			// The last byte of the file ends the last line; it doesn't start one.
			if buf[i] == '\n' && pos+i != end-1 {
				seen++
				if seen == n {
					return pos + i + 1, end, nil
				}
			}
		}
	}
	return 0, end, nil
}

// followPoll is how often a followed log is checked for new lines.
const followPoll = 100 * time.Millisecond

// readLog writes the log of one container attempt to w as o says. With
// o.Follow it goes on until running says the attempt has ended and every
// line is out, or ctx ends. A rotated file is followed into its successor.
func readLog(ctx context.Context, path string, o apiv1.LogOptions, w io.Writer, flush func(), running func() bool) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer func() { _ = f.Close() }()
	lw := &logWriter{w: w, timestamps: o.Timestamps, left: -1}
	if o.LimitBytes != nil {
		lw.left = *o.LimitBytes
	}
	switch {
	case o.SinceSeconds != nil:
		lw.since = time.Now().Add(-time.Duration(*o.SinceSeconds) * time.Second)
	case o.SinceTime != nil:
		lw.since = *o.SinceTime
	}
	var src io.Reader = f
	if o.TailLines != nil {
		off, end, err := tailOffset(f, *o.TailLines)
		if err != nil {
			return err
		}
		if _, err := f.Seek(off, io.SeekStart); err != nil {
			return err
		}
		if !o.Follow {
			// The last n lines as they were: not those written since.
			src = io.LimitReader(f, end-off)
		}
	}
	r := bufio.NewReaderSize(src, 64<<10)
	var pending []byte // a line not ended yet
	drained := false   // the rotated-away file was read to its end
	for {
		chunk, err := r.ReadBytes('\n')
		pending = append(pending, chunk...)
		if err == nil {
			if werr := lw.line(pending); werr != nil {
				if errors.Is(werr, errLimit) {
					return nil
				}
				return werr
			}
			pending = pending[:0]
			continue
		}
		if !errors.Is(err, io.EOF) {
			return err
		}
		if !o.Follow {
			return nil
		}
		flush()
		// At the end of what is written: the attempt may have ended, or the
		// file been rotated (renamed, a new one opened at path).
		alive := running()
		if rotated(f, path) {
			if !drained {
				drained = true // one more pass over the old file first
				continue
			}
			drained = false
			next, err := os.Open(path)
			if err != nil {
				return err
			}
			_ = f.Close()
			f = next
			r.Reset(f)
			pending = pending[:0]
			continue
		}
		if !alive {
			// One more read: lines written between the EOF and the check.
			if n, _ := r.Peek(1); len(n) > 0 {
				continue
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(followPoll):
		}
	}
}

// rotated tells whether path now names another file than f.
func rotated(f *os.File, path string) bool {
	a, err1 := f.Stat()
	b, err2 := os.Stat(path)
	return err1 == nil && err2 == nil && !os.SameFile(a, b)
}
