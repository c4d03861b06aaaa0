package vnode

import (
	"context"
	"io"
	"time"

	dto "github.com/prometheus/client_model/go"
	vkerrdefs "github.com/virtual-kubelet/virtual-kubelet/errdefs"
	"github.com/virtual-kubelet/virtual-kubelet/node/api"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/remotecommand"
	statsv1alpha1 "k8s.io/kubelet/pkg/apis/stats/v1alpha1"

	apiv1 "github.com/eci-dev/eci/api/v1"
)

// The kubelet API of the virtual node: kubectl logs, exec, attach and top
// reach the pod's group through the instance service (which checks every
// hop); nothing runs on this node.

func (p *Provider) groupOf(namespace, name string) (*apiv1.ContainerGroup, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	pod, ok := p.pods[podKey(namespace, name)]
	if !ok {
		return nil, vkerrdefs.NotFoundf("pod %s/%s is not on this virtual node", namespace, name)
	}
	g := p.groups[string(pod.UID)]
	if g == nil {
		return nil, vkerrdefs.NotFoundf("pod %s/%s has no instance (yet)", namespace, name)
	}
	return g, nil
}

// GetContainerLogs reads a container's log.
func (p *Provider) GetContainerLogs(ctx context.Context, namespace, podName, containerName string, opts api.ContainerLogOpts) (io.ReadCloser, error) {
	g, err := p.groupOf(namespace, podName)
	if err != nil {
		return nil, err
	}
	o := apiv1.LogOptions{Container: containerName, Follow: opts.Follow, Previous: opts.Previous, Timestamps: opts.Timestamps}
	if opts.Tail > 0 {
		n := int64(opts.Tail)
		o.TailLines = &n
	}
	if opts.LimitBytes > 0 {
		n := int64(opts.LimitBytes)
		o.LimitBytes = &n
	}
	if opts.SinceSeconds > 0 {
		n := int64(opts.SinceSeconds)
		o.SinceSeconds = &n
	} else if !opts.SinceTime.IsZero() {
		t := opts.SinceTime
		o.SinceTime = &t
	}
	return p.cfg.ECI.Logs(ctx, g.Metadata.ID, o)
}

// RunInContainer runs a command in a container (kubectl exec).
func (p *Provider) RunInContainer(ctx context.Context, namespace, podName, containerName string, cmd []string, attach api.AttachIO) error {
	g, err := p.groupOf(namespace, podName)
	if err != nil {
		return err
	}
	return p.cfg.ECI.Exec(ctx, g.Metadata.ID, apiv1.ExecOptions{Container: containerName, Command: cmd}, streams(attach))
}

// AttachToContainer attaches to a container's main process.
func (p *Provider) AttachToContainer(ctx context.Context, namespace, podName, containerName string, attach api.AttachIO) error {
	g, err := p.groupOf(namespace, podName)
	if err != nil {
		return err
	}
	return p.cfg.ECI.Attach(ctx, g.Metadata.ID, apiv1.ExecOptions{Container: containerName}, streams(attach))
}

// streams adapts virtual-kubelet's AttachIO to client-go's stream options.
func streams(a api.AttachIO) remotecommand.StreamOptions {
	s := remotecommand.StreamOptions{Tty: a.TTY()}
	if in := a.Stdin(); in != nil {
		s.Stdin = in
	}
	if out := a.Stdout(); out != nil {
		s.Stdout = out
	}
	if e := a.Stderr(); e != nil && !a.TTY() {
		s.Stderr = e
	}
	if a.TTY() && a.Resize() != nil {
		s.TerminalSizeQueue = sizes(a.Resize())
	}
	return s
}

type sizes <-chan api.TermSize

func (q sizes) Next() *remotecommand.TerminalSize {
	s, ok := <-q
	if !ok {
		return nil
	}
	return &remotecommand.TerminalSize{Width: s.Width, Height: s.Height}
}

// PortForward joins one forwarded connection to the pod's port.
func (p *Provider) PortForward(ctx context.Context, namespace, pod string, port int32, stream io.ReadWriteCloser) error {
	g, err := p.groupOf(namespace, pod)
	if err != nil {
		_ = stream.Close()
		return err
	}
	return p.cfg.ECI.ForwardPort(ctx, g.Metadata.ID, port, stream)
}

// GetStatsSummary samples every running pod's group (kubectl top, the
// metrics pipeline's /stats/summary).
func (p *Provider) GetStatsSummary(ctx context.Context) (*statsv1alpha1.Summary, error) {
	p.mu.Lock()
	type target struct {
		pod *corev1.Pod
		id  string
	}
	var targets []target
	for _, pod := range p.pods {
		if g := p.groups[string(pod.UID)]; g != nil && g.Status.State == apiv1.StateRunning {
			targets = append(targets, target{pod, g.Metadata.ID})
		}
	}
	p.mu.Unlock()
	now := metav1.NewTime(time.Now())
	sum := &statsv1alpha1.Summary{Node: statsv1alpha1.NodeStats{NodeName: p.cfg.NodeName, StartTime: now}}
	var nodeCPU, nodeMem uint64
	for _, t := range targets {
		st, err := p.cfg.ECI.GroupStats(ctx, t.id)
		if err != nil {
			continue // ended meanwhile
		}
		ts := metav1.NewTime(st.Time)
		ps := statsv1alpha1.PodStats{
			PodRef:           statsv1alpha1.PodReference{Name: t.pod.Name, Namespace: t.pod.Namespace, UID: string(t.pod.UID)},
			StartTime:        now,
			CPU:              cpuStats(ts, st.CPU),
			Memory:           memStats(ts, st.Memory),
			Network:          &statsv1alpha1.NetworkStats{Time: ts, InterfaceStats: statsv1alpha1.InterfaceStats{Name: st.Network.Interface, RxBytes: &st.Network.RxBytes, TxBytes: &st.Network.TxBytes}},
			EphemeralStorage: &statsv1alpha1.FsStats{Time: ts, UsedBytes: &st.EphemeralStorage.UsedBytes, CapacityBytes: &st.EphemeralStorage.CapacityBytes},
		}
		for _, c := range st.Containers {
			ps.Containers = append(ps.Containers, statsv1alpha1.ContainerStats{Name: c.Name, StartTime: now, CPU: cpuStats(ts, c.CPU), Memory: memStats(ts, c.Memory)})
		}
		nodeCPU += st.CPU.UsageNanoCores
		nodeMem += st.Memory.WorkingSetBytes
		sum.Pods = append(sum.Pods, ps)
	}
	sum.Node.CPU = &statsv1alpha1.CPUStats{Time: now, UsageNanoCores: &nodeCPU}
	sum.Node.Memory = &statsv1alpha1.MemoryStats{Time: now, WorkingSetBytes: &nodeMem}
	return sum, nil
}

func cpuStats(ts metav1.Time, c apiv1.CPUStats) *statsv1alpha1.CPUStats {
	return &statsv1alpha1.CPUStats{Time: ts, UsageNanoCores: &c.UsageNanoCores, UsageCoreNanoSeconds: &c.UsageCoreNanoSeconds}
}

func memStats(ts metav1.Time, m apiv1.MemoryStats) *statsv1alpha1.MemoryStats {
	return &statsv1alpha1.MemoryStats{Time: ts, UsageBytes: &m.UsageBytes, WorkingSetBytes: &m.WorkingSetBytes, RSSBytes: &m.RSSBytes}
}

// GetMetricsResource is not served by the virtual node yet.
func (p *Provider) GetMetricsResource(context.Context) ([]*dto.MetricFamily, error) {
	return nil, vkerrdefs.NotFound("/metrics/resource is not served by the virtual node yet (issue #6)")
}
