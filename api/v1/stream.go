package v1

import (
	"fmt"
	"net/url"
	"strconv"
	"time"
)

// LogOptions are the query of GET /v1/containergroups/{id}/log, as the
// kubelet takes them.
type LogOptions struct {
	// Container whose log is read; may be empty when the group has one.
	Container string
	// Follow streams new lines until the container stops or the client goes.
	Follow bool
	// Previous reads the attempt before the current one (after a restart).
	Previous bool
	// Timestamps prefixes each line with its RFC 3339 time.
	Timestamps bool
	// TailLines, when set, starts that many lines before the end.
	TailLines *int64
	// LimitBytes, when set, ends the answer after that many bytes.
	LimitBytes *int64
	// SinceSeconds or SinceTime (not both) skip older lines.
	SinceSeconds *int64
	SinceTime    *time.Time
}

// Query encodes o.
func (o LogOptions) Query() url.Values {
	q := url.Values{}
	if o.Container != "" {
		q.Set("container", o.Container)
	}
	for k, v := range map[string]bool{"follow": o.Follow, "previous": o.Previous, "timestamps": o.Timestamps} {
		if v {
			q.Set(k, "true")
		}
	}
	for k, v := range map[string]*int64{"tailLines": o.TailLines, "limitBytes": o.LimitBytes, "sinceSeconds": o.SinceSeconds} {
		if v != nil {
			q.Set(k, strconv.FormatInt(*v, 10))
		}
	}
	if o.SinceTime != nil {
		q.Set("sinceTime", o.SinceTime.UTC().Format(time.RFC3339Nano))
	}
	return q
}

// ParseLogOptions decodes and checks a log query; errors name the parameter
// and what is allowed.
func ParseLogOptions(q url.Values) (LogOptions, error) {
	var e errs
	o := LogOptions{Container: q.Get("container")}
	boolean := func(name string, dst *bool) {
		if v := q.Get(name); v != "" {
			b, err := strconv.ParseBool(v)
			if err != nil {
				e.add(fpath(name), "must be true or false, not %q", v)
			}
			*dst = b
		}
	}
	boolean("follow", &o.Follow)
	boolean("previous", &o.Previous)
	boolean("timestamps", &o.Timestamps)
	integer := func(name string, min int64) *int64 {
		v := q.Get(name)
		if v == "" {
			return nil
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < min {
			e.add(fpath(name), "must be an integer >= %d, not %q", min, v)
			return nil
		}
		return &n
	}
	o.TailLines = integer("tailLines", 0)
	o.LimitBytes = integer("limitBytes", 1)
	o.SinceSeconds = integer("sinceSeconds", 1)
	if v := q.Get("sinceTime"); v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			e.add("sinceTime", "must be an RFC 3339 time such as 2026-01-02T15:04:05Z, not %q", v)
		} else {
			o.SinceTime = &t
		}
	}
	if o.SinceSeconds != nil && o.SinceTime != nil {
		e.add("sinceTime", "at most one of sinceSeconds and sinceTime may be given")
	}
	if o.Follow && o.Previous {
		e.add("follow", "a previous container's log can't be followed: it has ended")
	}
	return o, e.result()
}

// ExecOptions are the query of exec and attach, as the kubelet takes them
// (command repeated, one argument each).
type ExecOptions struct {
	Container string
	Command   []string
	Stdin     bool
	Stdout    bool
	Stderr    bool
	TTY       bool
}

// Query encodes o.
func (o ExecOptions) Query() url.Values {
	q := url.Values{}
	if o.Container != "" {
		q.Set("container", o.Container)
	}
	for _, c := range o.Command {
		q.Add("command", c)
	}
	for k, v := range map[string]bool{"stdin": o.Stdin, "stdout": o.Stdout, "stderr": o.Stderr, "tty": o.TTY} {
		if v {
			q.Set(k, "true")
		}
	}
	return q
}

// ParseExecOptions decodes and checks an exec (needCommand) or attach query.
func ParseExecOptions(q url.Values, needCommand bool) (ExecOptions, error) {
	var e errs
	o := ExecOptions{Container: q.Get("container"), Command: q["command"]}
	for name, dst := range map[string]*bool{"stdin": &o.Stdin, "stdout": &o.Stdout, "stderr": &o.Stderr, "tty": &o.TTY} {
		if v := q.Get(name); v != "" {
			b, err := strconv.ParseBool(v)
			if err != nil {
				e.add(fpath(name), "must be true or false, not %q", v)
			}
			*dst = b
		}
	}
	if needCommand && len(o.Command) == 0 {
		e.add("command", "is required: one command parameter per argument")
	}
	if !needCommand && len(o.Command) > 0 {
		e.add("command", "attach takes no command")
	}
	if !o.Stdin && !o.Stdout && !o.Stderr {
		e.add("stdout", "at least one of stdin, stdout and stderr must be true")
	}
	if o.TTY && o.Stderr {
		e.add("stderr", "a tty merges stderr into stdout: stderr must be false with tty")
	}
	return o, e.result()
}

// ParsePorts checks the ports of a port-forward query (ports=8080,9090 or
// repeated).
func ParsePorts(q url.Values) ([]int32, error) {
	var out []int32
	for _, v := range q["ports"] {
		for _, s := range splitComma(v) {
			n, err := strconv.ParseUint(s, 10, 16)
			if err != nil || n == 0 {
				return nil, FieldErrors{{Field: "ports", Message: fmt.Sprintf("must be ports 1-65535, not %q", s)}}
			}
			out = append(out, int32(n))
		}
	}
	return out, nil
}

func splitComma(s string) []string {
	var out []string
	start := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == ',' {
			if i > start {
				out = append(out, s[start:i])
			}
			start = i + 1
		}
	}
	return out
}

// GroupStats is a sample of a group's usage (GET
// /v1/containergroups/{id}/stats), the source of a virtual node's stats
// summary.
type GroupStats struct {
	Time time.Time `json:"time"`
	// CPU and memory of the whole group (its cgroup).
	CPU    CPUStats    `json:"cpu"`
	Memory MemoryStats `json:"memory"`
	// Network of the group's interface.
	Network NetworkStats `json:"network"`
	// EphemeralStorage is what the group writes on the host: writable layers,
	// emptyDir on disk and logs, against its bound.
	EphemeralStorage FSStats         `json:"ephemeralStorage"`
	Containers       []ContainerStat `json:"containers,omitempty"`
}

// ContainerStat is one container's sample.
type ContainerStat struct {
	Name          string      `json:"name"`
	CPU           CPUStats    `json:"cpu"`
	Memory        MemoryStats `json:"memory"`
	WritableLayer FSStats     `json:"writableLayer"`
	Logs          FSStats     `json:"logs"`
}

// CPUStats: cumulative core-nanoseconds, and the rate in nanocores.
type CPUStats struct {
	UsageCoreNanoSeconds uint64 `json:"usageCoreNanoSeconds"`
	UsageNanoCores       uint64 `json:"usageNanoCores"`
}

// MemoryStats in bytes; the working set is what the OOM killer weighs.
type MemoryStats struct {
	UsageBytes      uint64 `json:"usageBytes"`
	WorkingSetBytes uint64 `json:"workingSetBytes"`
	RSSBytes        uint64 `json:"rssBytes"`
}

// NetworkStats in bytes and packets since the interface came up.
type NetworkStats struct {
	Interface string `json:"interface,omitempty"`
	RxBytes   uint64 `json:"rxBytes"`
	TxBytes   uint64 `json:"txBytes"`
	RxErrors  uint64 `json:"rxErrors"`
	TxErrors  uint64 `json:"txErrors"`
}

// FSStats in bytes.
type FSStats struct {
	UsedBytes     uint64 `json:"usedBytes"`
	CapacityBytes uint64 `json:"capacityBytes,omitempty"`
}
