package agent

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/log"
)

// housekeeping measures, every EvictionInterval, what the running groups
// write on the host (evicting those over their bound), rotates the log
// files that grew past LogMaxSize and removes the registry settings no
// group needs any more.
func (a *Agent) housekeeping(ctx context.Context) {
	t := time.NewTicker(a.cfg.EvictionInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, g := range a.view.all() {
			if g.Status.State.Terminal() || g.Metadata.DeletionRequestedAt != nil {
				continue
			}
			if err := a.checkEphemeral(ctx, g); err != nil && ctx.Err() == nil {
				log.G(ctx).Warn("ephemeral storage", "group", g.Metadata.ID, "err", err)
			}
		}
		if err := a.rotateLogs(ctx); err != nil && ctx.Err() == nil {
			log.G(ctx).Warn("rotate logs", "err", err)
		}
		if err := a.pruneRegistries(); err != nil {
			log.G(ctx).Warn("registry hosts", "err", err)
		}
	}
}

// ephemeralUsage is what group id writes on the host's disk: its
// containers' writable layers, its on-disk volumes and its logs.
func (a *Agent) ephemeralUsage(ctx context.Context, id string) (uint64, error) {
	sb, err := a.readySandbox(ctx, id)
	if err != nil {
		return 0, err
	}
	cs, err := a.cfg.Runtime.ListContainerStats(ctx, &runtimeapi.ContainerStatsFilter{PodSandboxId: sb})
	if err != nil {
		return 0, err
	}
	return a.ephemeralUsed(id, cs), nil
}

// ephemeralUsed adds up the writable layers of cs and the group's on-disk
// volumes and logs.
func (a *Agent) ephemeralUsed(id string, cs []*runtimeapi.ContainerStats) uint64 {
	// subPath bind mounts show what the volumes hold a second time.
	used := dirUsage(a.groupDir(id), a.subpathDir(id)) + dirUsage(filepath.Join(a.cfg.LogDir, id))
	for _, c := range cs {
		used += c.GetWritableLayer().GetUsedBytes().GetValue()
	}
	return used
}

// checkEphemeral evicts g when it writes more than its bound, as the kubelet
// evicts a pod over its ephemeral-storage limit: the group fails with reason
// Evicted and a message that gives both figures.
func (a *Agent) checkEphemeral(ctx context.Context, g *apiv1.ContainerGroup) error {
	used, err := a.ephemeralUsage(ctx, g.Metadata.ID)
	if err != nil {
		return nil // no running sandbox: nothing written yet
	}
	bound := a.ephemeralBound(g)
	if used <= bound {
		return nil
	}
	msg := fmt.Sprintf("ephemeral storage usage %s exceeds the group's bound of %s (%s per instance + extraEphemeralStorage %d GiB)",
		bytesString(used), bytesString(bound), bytesString(a.cfg.EphemeralStorageBase), g.Spec.ExtraEphemeralStorage)
	a.event(ctx, g, apiv1.EventWarning, "Evicted", msg)
	log.G(ctx).Warn("evicting group", "group", g.Metadata.ID, "used", used, "bound", bound)
	return a.report(ctx, g, apiv1.StatusReport{State: apiv1.StateFailed, Reason: "Evicted", Message: msg})
}

func bytesString(n uint64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	default:
		return fmt.Sprintf("%d B", n)
	}
}

// rotateLogs renames each running container's log file that grew past
// LogMaxSize to <file>.<time>, has the runtime reopen a fresh one, and keeps
// LogMaxFiles files per container.
func (a *Agent) rotateLogs(ctx context.Context) error {
	ctrs, err := a.cfg.Runtime.ListContainers(ctx, &runtimeapi.ContainerFilter{
		LabelSelector: map[string]string{LabelManaged: "true"},
		State:         &runtimeapi.ContainerStateValue{State: runtimeapi.ContainerState_CONTAINER_RUNNING},
	})
	if err != nil {
		return err
	}
	for _, c := range ctrs {
		id, name := c.Labels[LabelGroup], c.Labels[LabelContainer]
		path := filepath.Join(a.cfg.LogDir, id, name, fmt.Sprintf("%d.log", c.GetMetadata().GetAttempt()))
		st, err := os.Stat(path)
		if err != nil || st.Size() <= a.cfg.LogMaxSize {
			continue
		}
		rotatedPath := path + "." + time.Now().UTC().Format("20060102-150405.000000")
		if err := os.Rename(path, rotatedPath); err != nil {
			return err
		}
		if err := a.cfg.Runtime.ReopenContainerLog(ctx, c.Id); err != nil {
			// The runtime still writes to the renamed file: put it back.
			_ = os.Rename(rotatedPath, path)
			return fmt.Errorf("reopen the log of container %s: %w", short(c.Id), err)
		}
		if err := pruneRotated(path, a.cfg.LogMaxFiles-1); err != nil {
			return err
		}
	}
	return nil
}

// pruneRotated keeps the newest keep rotated files of path.
func pruneRotated(path string, keep int) error {
	old, err := filepath.Glob(path + ".*")
	if err != nil {
		return err
	}
	var rotated []string
	for _, f := range old {
		if !strings.HasSuffix(f, ".tmp") {
			rotated = append(rotated, f)
		}
	}
	sort.Strings(rotated) // the suffix is a sortable time
	for len(rotated) > keep {
		if err := os.Remove(rotated[0]); err != nil {
			return err
		}
		rotated = rotated[1:]
	}
	return nil
}
