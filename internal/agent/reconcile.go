package agent

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/errdefs"
	"github.com/eci-dev/eci/internal/log"
)

// reconcile does the next steps for group id (see the package doc).
func (a *Agent) reconcile(ctx context.Context, id string) error {
	if a.lease.isFenced() {
		return nil // nothing runs until the lease is renewed (fence.go)
	}
	tr := newTrace(ctx)
	g, complete := a.view.get(id)
	sbs, err := a.groupSandboxes(ctx, id, nil)
	if err != nil {
		return fmt.Errorf("list sandboxes: %w", err)
	}
	tr.step("list")
	if g == nil || g.Metadata.DeletionRequestedAt != nil || g.Status.State.Terminal() {
		return a.windDown(ctx, id, g, complete, sbs)
	}
	if ended, err := a.checkDeadline(ctx, g); ended || err != nil {
		return err
	}
	err = a.ensureVolumes(ctx, g)
	tr.step("volumes")
	if errors.Is(err, errDataFetching) {
		return a.report(ctx, g, apiv1.StatusReport{State: apiv1.StatePending, Reason: "FetchingDataCache", Message: err.Error() + " to this host (once for the host's groups)"})
	}
	if err != nil {
		a.event(ctx, g, apiv1.EventWarning, "FailedMount", err.Error())
		return a.report(ctx, g, apiv1.StatusReport{State: apiv1.StatePending, Reason: "FailedMount", Message: err.Error()})
	}
	sbCfg := a.sandboxConfig(g)
	sandbox, started, err := a.ensureSandbox(ctx, g, sbs, sbCfg, tr)
	if started {
		defer tr.log(ctx, "started a group's sandbox", id)
	}
	if sandbox == "" || err != nil {
		return err
	}
	return a.runGroup(ctx, g, sandbox, sbCfg, tr)
}

// windDown is reconcile for a group that is gone (g nil: its sandboxes are
// orphans, once the view is complete), being deleted (stopped with its
// grace, its files removed, then finalized) or ended (stopped; its logs stay
// until it is deleted).
func (a *Agent) windDown(ctx context.Context, id string, g *apiv1.ContainerGroup, complete bool, sbs []*runtimeapi.PodSandbox) error {
	switch {
	case g == nil:
		if !complete {
			return nil // the watch has not (re)listed yet: not an orphan
		}
		a.states.forget(id)
		if err := a.removeSandboxes(ctx, nil, sbs, 0, "the group is gone"); err != nil {
			return err
		}
		return a.removeGroupFiles(id)
	case g.Metadata.DeletionRequestedAt != nil:
		grace := int64(30)
		if g.Metadata.DeletionGracePeriodSeconds != nil {
			grace = *g.Metadata.DeletionGracePeriodSeconds
		}
		if err := a.removeSandboxes(ctx, g, sbs, grace, "the group is being deleted"); err != nil {
			return err
		}
		a.states.forget(id)
		if err := a.removeGroupFiles(id); err != nil {
			return err
		}
		if err := a.cfg.Client.Finalize(ctx, id); err != nil && !errdefs.IsNotFound(err) {
			return fmt.Errorf("finalize: %w", err)
		}
		return nil
	default:
		// Logs stay until the group is deleted; the volumes and cgroup go now.
		if err := a.removeSandboxes(ctx, g, sbs, endGrace(g), "the group ended"); err != nil {
			return err
		}
		if err := a.removeVolumes(id); err != nil {
			return err
		}
		return a.removeCgroup(id)
	}
}

// ensureSandbox returns the id of g's ready sandbox, made now if g never had
// one (started). An instance never gets a second sandbox: one that died, or
// went missing for sandboxLostAfter once the group ran, fails the group.
// An empty id with no error: nothing more to do now (a failure or a wait
// was reported or scheduled).
func (a *Agent) ensureSandbox(ctx context.Context, g *apiv1.ContainerGroup, sbs []*runtimeapi.PodSandbox, sbCfg *runtimeapi.PodSandboxConfig, tr *trace) (id string, started bool, err error) {
	var ready *runtimeapi.PodSandbox
	var dead []*runtimeapi.PodSandbox
	for _, sb := range sbs {
		if sb.State == runtimeapi.PodSandboxState_SANDBOX_READY && (ready == nil || sb.CreatedAt > ready.CreatedAt) {
			ready = sb
		} else {
			dead = append(dead, sb)
		}
	}
	if ready == nil && len(dead) > 0 {
		if err := a.removeSandboxes(ctx, g, dead, 0, "its sandbox died"); err != nil {
			return "", false, err
		}
		return "", false, a.report(ctx, g, apiv1.StatusReport{State: apiv1.StateFailed, Reason: "SandboxLost", Message: "the group's sandbox stopped"})
	}
	if ready == nil && g.Status.RunningAt != nil {
		return "", false, a.sandboxMissing(ctx, g)
	}
	a.states.update(g.Metadata.ID, func(s *groupState) { s.missingSince = time.Time{} })
	if len(dead) > 0 {
		defer func() { _ = a.removeSandboxes(ctx, g, dead, 0, "a newer sandbox is ready") }()
	}
	if ready != nil && a.prepareAgain(ctx, g, ready.Id) { // warmclaim.go
		sbCfg.Labels[LabelGPUs] = ready.Labels[LabelGPUs] // gpus.go
		return ready.Id, false, nil
	}
	if ready != nil {
		return "", false, fmt.Errorf("the warm sandbox %s was given up; the group gets its own", short(ready.Id))
	}
	if id := a.takeWarm(ctx, g, sbCfg); id != "" { // warmclaim.go
		tr.step("warm")
		return id, true, nil
	}
	if err := a.limitCgroup(g); err != nil {
		return "", false, a.report(ctx, g, apiv1.StatusReport{State: apiv1.StatePending, Reason: "CgroupFailed", Message: err.Error()})
	}
	tr.step("cgroup")
	sbCfg.DnsConfig = a.dnsConfigOf(ctx, g) // only a new sandbox reads it
	unlock, err := a.assignGPUs(ctx, g, sbCfg)
	if err != nil {
		return "", false, a.report(ctx, g, apiv1.StatusReport{State: apiv1.StatePending, Reason: "GPUsUnavailable", Message: err.Error()})
	}
	// A pod's RuntimeClass's handler, else the operator's default, else
	// the runtime's own.
	id, err = a.cfg.Runtime.RunPodSandbox(ctx, sbCfg, cmp.Or(g.Spec.RuntimeHandler, a.cfg.DefaultRuntimeHandler))
	unlock()
	tr.step("sandbox")
	if err != nil {
		return "", true, a.report(ctx, g, apiv1.StatusReport{State: apiv1.StatePending, Reason: "SandboxCreateFailed", Message: err.Error()})
	}
	a.event(ctx, g, apiv1.EventNormal, "SandboxCreated", "sandbox "+short(id))
	return id, true, nil
}

// sandboxMissing handles a started group whose sandbox the runtime does not
// list: it fails only when the sandbox stays missing for sandboxLostAfter (a
// momentary gap in the runtime's list must not end an instance).
func (a *Agent) sandboxMissing(ctx context.Context, g *apiv1.ContainerGroup) error {
	var since time.Time
	a.states.edit(g.Metadata.ID, func(s *groupState) {
		if s.missingSince.IsZero() {
			s.missingSince = time.Now()
		}
		since = s.missingSince
	})
	if time.Since(since) < sandboxLostAfter {
		a.queue.addAfter(ctx, g.Metadata.ID, time.Second)
		return nil
	}
	return a.report(ctx, g, apiv1.StatusReport{State: apiv1.StateFailed, Reason: "SandboxLost",
		Message: fmt.Sprintf("the group's sandbox has been gone for %s", sandboxLostAfter)})
}

// runGroup runs g's init containers, then its containers, in sandbox, keeps
// their probes running and reports the group's status.
func (a *Agent) runGroup(ctx context.Context, g *apiv1.ContainerGroup, sandbox string, sbCfg *runtimeapi.PodSandboxConfig, tr *trace) error {
	ctrs, err := a.containers(ctx, sandbox)
	if err != nil {
		return err
	}
	tr.step("containers")
	// Its Services are reachable before its first container (init ones
	// too) starts; later reconciles don't wait.
	if a.svcs != nil && len(ctrs) == 0 && !a.svcs.await(ctx, g) {
		log.G(ctx).Warn("virtual services: the group's address is not served yet; starting its containers all the same", "table", g.Spec.ServiceTable)
	}
	// Its security groups' rules are enforced before anything of it runs:
	// never unfiltered (it is tried again later).
	if len(g.Spec.SecurityGroupIDs) > 0 && len(ctrs) == 0 && (a.fw == nil || !a.fw.await(ctx, g)) {
		return fmt.Errorf("security groups %v: their rules are not enforced on host %s yet", g.Spec.SecurityGroupIDs, a.name)
	}
	initDone, failed, err := a.runInit(ctx, g, sandbox, sbCfg, ctrs)
	if err != nil {
		return err
	}
	if initDone && !failed {
		if err := a.runContainers(ctx, g, sandbox, sbCfg, ctrs); err != nil {
			return err
		}
		if err := a.runEphemeral(ctx, g, sandbox, sbCfg, ctrs); err != nil { // ephemeral.go
			return err
		}
		tr.step("start")
		if ctrs, err = a.containers(ctx, sandbox); err != nil {
			return err
		}
		if hasProbes(g) {
			st, err := a.cfg.Runtime.PodSandboxStatus(ctx, sandbox, false)
			if err != nil {
				return fmt.Errorf("sandbox status: %w", err)
			}
			a.syncProbes(ctx, g, ctrs, st.GetStatus().GetNetwork().GetIp())
		}
	}
	tr.step("relist")
	err = a.report(ctx, g, a.status(ctx, g, ctrs))
	tr.step("report")
	return err
}

// sandboxLostAfter is how long a started group's sandbox must be missing from
// the runtime's list before the group fails.
const sandboxLostAfter = 10 * time.Second

// attempts are the containers of one name, oldest first, with their status.
type attempts []*runtimeapi.ContainerStatus

func (at attempts) latest() *runtimeapi.ContainerStatus {
	if len(at) == 0 {
		return nil
	}
	return at[len(at)-1]
}

// containers returns the sandbox's containers by name, with their status.
func (a *Agent) containers(ctx context.Context, sandboxID string) (map[string]attempts, error) {
	list, err := a.cfg.Runtime.ListContainers(ctx, &runtimeapi.ContainerFilter{PodSandboxId: sandboxID})
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	out := map[string]attempts{}
	for _, c := range list {
		st, err := a.cfg.Runtime.ContainerStatus(ctx, c.Id, false)
		if err != nil {
			return nil, fmt.Errorf("status of container %s: %w", short(c.Id), err)
		}
		name := c.Labels[LabelContainer]
		out[name] = append(out[name], st.Status)
	}
	for _, at := range out {
		sort.Slice(at, func(i, j int) bool { return at[i].Metadata.Attempt < at[j].Metadata.Attempt })
	}
	return out, nil
}

// runInit runs the init containers one after another. done is true once all
// exited 0; failed when one failed and the policy forbids a retry (the
// group is then reported Failed by status()).
func (a *Agent) runInit(ctx context.Context, g *apiv1.ContainerGroup, sbID string, sbCfg *runtimeapi.PodSandboxConfig, ctrs map[string]attempts) (done, failed bool, err error) {
	for _, c := range g.Spec.InitContainers {
		last := ctrs[c.Name].latest()
		switch {
		case last == nil:
			return false, false, a.waiting(ctx, g, c, a.start(ctx, g, c, 0, true, sbID, sbCfg))
		case last.State == runtimeapi.ContainerState_CONTAINER_CREATED:
			return false, false, a.cfg.Runtime.StartContainer(ctx, last.Id)
		case last.State != runtimeapi.ContainerState_CONTAINER_EXITED:
			return false, false, nil
		case last.ExitCode == 0:
			continue
		case g.Spec.RestartPolicy == apiv1.RestartNever:
			return false, true, nil
		default:
			return false, false, a.restart(ctx, g, c, last, true, sbID, sbCfg)
		}
	}
	return true, false, nil
}

// runContainers starts the containers that never ran and restarts exited ones
// as the restart policy says.
func (a *Agent) runContainers(ctx context.Context, g *apiv1.ContainerGroup, sbID string, sbCfg *runtimeapi.PodSandboxConfig, ctrs map[string]attempts) error {
	var restartAt time.Time
	if g.Status.State == apiv1.StateRestarting && g.Status.RestartRequestedAt != nil {
		restartAt = *g.Status.RestartRequestedAt
	}
	for _, c := range g.Spec.Containers {
		last := ctrs[c.Name].latest()
		switch {
		case last == nil:
			if err := a.waiting(ctx, g, c, a.start(ctx, g, c, 0, false, sbID, sbCfg)); err != nil {
				return err
			}
		case imageChanged(last, c):
			msg := fmt.Sprintf("Container %s definition changed, will be restarted", c.Name)
			if err := a.replace(ctx, g, c, last, msg, sbID, sbCfg); err != nil {
				return err
			}
		case last.State == runtimeapi.ContainerState_CONTAINER_CREATED:
			if err := a.cfg.Runtime.StartContainer(ctx, last.Id); err != nil {
				return err
			}
		case !restartAt.IsZero() && time.Unix(0, last.CreatedAt).Before(restartAt):
			// RestartContainerGroup: every container gets a new attempt, now.
			if last.State == runtimeapi.ContainerState_CONTAINER_RUNNING {
				if err := a.stopContainer(ctx, g, c.Name, last.Id, a.sandboxIP(ctx, sbID), grace(g)); err != nil {
					return err
				}
			}
			if err := a.start(ctx, g, c, last.Metadata.Attempt+1, false, sbID, sbCfg); err != nil {
				return err
			}
		case resizeOf(g, c, last) != nil:
			if err := a.resize(ctx, g, c, last, sbID, sbCfg); err != nil {
				return err
			}
		case last.State == runtimeapi.ContainerState_CONTAINER_EXITED && shouldRestart(g.Spec.RestartPolicy, last.ExitCode):
			if err := a.restart(ctx, g, c, last, false, sbID, sbCfg); err != nil {
				return err
			}
		}
	}
	return nil
}

func shouldRestart(p apiv1.RestartPolicy, exitCode int32) bool {
	switch p {
	case apiv1.RestartNever:
		return false
	case apiv1.RestartOnFailure:
		return exitCode != 0
	default:
		return true
	}
}

// endGrace is the grace of the containers still running when a group ends:
// its own, but none for an eviction (as the kubelet's hard eviction).
func endGrace(g *apiv1.ContainerGroup) int64 {
	if g.Status.Reason == "Evicted" {
		return 0
	}
	return grace(g)
}

// checkDeadline fails g once it has been active (from Pending on) longer
// than activeDeadlineSeconds, and otherwise reconciles it again at that
// moment. ended says the group was failed.
func (a *Agent) checkDeadline(ctx context.Context, g *apiv1.ContainerGroup) (ended bool, err error) {
	d := g.Spec.ActiveDeadlineSeconds
	if d == nil || g.Status.PendingAt == nil {
		return false, nil
	}
	left := time.Until(g.Status.PendingAt.Add(time.Duration(*d) * time.Second))
	if left > 0 {
		a.queue.addAfter(ctx, g.Metadata.ID, left)
		return false, nil
	}
	msg := fmt.Sprintf("the group was active longer than activeDeadlineSeconds (%ds)", *d)
	a.event(ctx, g, apiv1.EventWarning, "DeadlineExceeded", msg)
	return true, a.report(ctx, g, apiv1.StatusReport{State: apiv1.StateFailed, Reason: "DeadlineExceeded", Message: msg})
}

func grace(g *apiv1.ContainerGroup) int64 {
	if g.Spec.TerminationGracePeriodSeconds != nil {
		return *g.Spec.TerminationGracePeriodSeconds
	}
	return 30
}

// restart starts the next attempt of an exited container, after its back-off.
func (a *Agent) restart(ctx context.Context, g *apiv1.ContainerGroup, c apiv1.Container, last *runtimeapi.ContainerStatus, init bool, sbID string, sbCfg *runtimeapi.PodSandboxConfig) error {
	now := time.Now()
	a.forgetOtherImage(g.Metadata.ID, c.Name, c.Image)
	if wait := a.restartWait(g.Metadata.ID, c.Name, c.Image, time.Unix(0, last.StartedAt), time.Unix(0, last.FinishedAt), now); wait > 0 {
		a.queue.addAfter(ctx, g.Metadata.ID, wait)
		return nil
	}
	a.containerEvent(ctx, g, c.Name, apiv1.EventWarning, "BackOff", fmt.Sprintf("Back-off restarting failed container %s in pod %s", c.Name, podName(g)))
	return a.start(ctx, g, c, last.Metadata.Attempt+1, init, sbID, sbCfg)
}

// errStillWaiting: a container that could not start waits for its retry.
var errStillWaiting = errors.New("waiting for the retry")

// start pulls c's image if needed, then creates and starts attempt n. A
// container that could not start is not tried again before its back-off
// ends; meanwhile a failed pull shows as ImagePullBackOff, as the kubelet's.
func (a *Agent) start(ctx context.Context, g *apiv1.ContainerGroup, c apiv1.Container, n uint32, init bool, sbID string, sbCfg *runtimeapi.PodSandboxConfig) error {
	a.forgetOtherImage(g.Metadata.ID, c.Name, c.Image)
	if a.retrying(g.Metadata.ID, c.Name, time.Now()) {
		a.states.update(g.Metadata.ID, func(s *groupState) {
			if w := s.containerOf(c.Name).wait; w != nil && w.Reason == "ErrImagePull" {
				s.container(c.Name).wait = &apiv1.ContainerStateWaiting{Reason: "ImagePullBackOff", Message: "Back-off pulling image " + c.Image + ": " + w.Message}
			}
		})
		return errStillWaiting
	}
	if err := checkSecurity(c); err != nil {
		return &waitingError{reason: "CreateContainerConfigError", err: err}
	}
	c, err := resolveContainer(g, c) // expand.go
	if err != nil {
		return &waitingError{reason: "CreateContainerConfigError", err: err}
	}
	image, err := a.ensureImage(ctx, g, c, sbCfg)
	if err != nil {
		return err
	}
	if err := a.checkNonRoot(ctx, c, image); err != nil {
		return &waitingError{reason: "CreateContainerConfigError", err: err}
	}
	mounts, err := a.mounts(g, c)
	if err != nil {
		return &waitingError{reason: "CreateContainerConfigError", err: err}
	}
	if m, err := a.terminationMount(g, c, n); err != nil { // termination.go
		return &waitingError{reason: "CreateContainerConfigError", err: err}
	} else if m != nil {
		mounts = append(mounts, m)
	}
	cfg := containerConfig(g, c, image, n, init, mounts)
	cfg.CDIDevices = gpusOf(g, c, init, sbCfg.GetLabels()[LabelGPUs])
	if err := a.joinTarget(ctx, g, c.Name, sbID, cfg); err != nil {
		return err
	}
	id, err := a.cfg.Runtime.CreateContainer(ctx, sbID, cfg, sbCfg)
	if err != nil {
		a.containerEvent(ctx, g, c.Name, apiv1.EventWarning, "Failed", fmt.Sprintf("Error: %v", err))
		return fmt.Errorf("create container %s: %w", c.Name, err)
	}
	a.containerEvent(ctx, g, c.Name, apiv1.EventNormal, "Created", "Created container: "+c.Name)
	if err := a.cfg.Runtime.StartContainer(ctx, id); err != nil {
		a.containerEvent(ctx, g, c.Name, apiv1.EventWarning, "Failed", fmt.Sprintf("Error: %v", err))
		return fmt.Errorf("start container %s: %w", c.Name, err)
	}
	a.containerEvent(ctx, g, c.Name, apiv1.EventNormal, "Started", "Started container "+c.Name)
	a.postStart(ctx, g, c, id, sbID)
	return nil
}

// removeSandboxes stops (with grace seconds and the preStop hooks of g's
// containers; g is nil for an orphan) and removes.
func (a *Agent) removeSandboxes(ctx context.Context, g *apiv1.ContainerGroup, sbs []*runtimeapi.PodSandbox, grace int64, why string) error {
	for _, sb := range sbs {
		ctrs, err := a.cfg.Runtime.ListContainers(ctx, &runtimeapi.ContainerFilter{PodSandboxId: sb.Id})
		if err != nil {
			return err
		}
		if err := a.stopContainers(ctx, g, sb.Id, ctrs, grace); err != nil {
			return err
		}
		if err := a.cfg.Runtime.StopPodSandbox(ctx, sb.Id); err != nil {
			return fmt.Errorf("stop sandbox %s: %w", short(sb.Id), err)
		}
		if err := a.cfg.Runtime.RemovePodSandbox(ctx, sb.Id); err != nil {
			return fmt.Errorf("remove sandbox %s: %w", short(sb.Id), err)
		}
		log.G(ctx).Info("removed sandbox", "group", sb.Labels[LabelGroup], "sandbox", short(sb.Id), "state", sb.State, "why", why)
	}
	return nil
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// checkNonRoot refuses, as the kubelet does, to run as root a container that
// asks for runAsNonRoot without a runAsUser, when its image runs as root.
func (a *Agent) checkNonRoot(ctx context.Context, c apiv1.Container, image string) error {
	sc := c.SecurityContext
	if sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.RunAsUser != nil {
		return nil
	}
	st, err := a.cfg.Runtime.ImageStatus(ctx, &runtimeapi.ImageSpec{Image: image}, false)
	if err != nil {
		return err
	}
	img := st.GetImage()
	if img.GetUid() == nil && img.GetUsername() != "" {
		return fmt.Errorf("runAsNonRoot: image %s runs as user %q, not a numeric uid; set runAsUser", c.Image, img.GetUsername())
	}
	if img.GetUid() == nil || img.GetUid().GetValue() == 0 {
		return fmt.Errorf("runAsNonRoot: image %s runs as root; set runAsUser to a non-zero uid", c.Image)
	}
	return nil
}

// waitingError is a container that can't be started now for a reason the
// user must see in its state (ErrImagePull, CreateContainerConfigError); the
// group's other containers go on.
type waitingError struct {
	reason string
	err    error
}

func (e *waitingError) Error() string { return e.reason + ": " + e.err.Error() }

// waiting records err as c's waiting reason (an event when it is new) and
// retries after a back-off; other errors are returned.
func (a *Agent) waiting(ctx context.Context, g *apiv1.ContainerGroup, c apiv1.Container, err error) error {
	if errors.Is(err, errStillWaiting) {
		return nil // the retry is already scheduled
	}
	var we *waitingError
	if !errors.As(err, &we) {
		if err == nil {
			a.states.update(g.Metadata.ID, func(s *groupState) {
				if cs := s.containers[c.Name]; cs != nil {
					cs.wait, cs.retry = nil, nil
				}
			})
		}
		return err
	}
	msg := we.err.Error()
	var prev apiv1.ContainerStateWaiting
	a.states.edit(g.Metadata.ID, func(s *groupState) {
		cs := s.container(c.Name)
		if cs.wait != nil {
			prev = *cs.wait
		}
		cs.wait = &apiv1.ContainerStateWaiting{Reason: we.reason, Message: msg}
	})
	if prev.Message != msg || prev.Reason != we.reason {
		a.containerEvent(ctx, g, c.Name, apiv1.EventWarning, "Failed", fmt.Sprintf("Error: %v", we))
	}
	a.queue.addAfter(ctx, g.Metadata.ID, a.retryWait(g.Metadata.ID, c.Name, c.Image))
	return nil
}
