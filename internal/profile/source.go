package profile

import (
	"fmt"
	"log/slog"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/record"
)

// Source keeps the profile from the ConfigMap: each edit that parses
// replaces it; one that does not keeps the last good profile and records a
// Warning Event on the ConfigMap saying what is wrong. Without a ConfigMap
// the profile is empty (the alibabacloud.com/eci label still routes).
type Source struct {
	Recorder record.EventRecorder
	Logger   *slog.Logger

	mu      sync.RWMutex
	current *Profile
	seen    string // resourceVersion last handled
}

// Current is the profile in force.
func (s *Source) Current() *Profile {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.current
}

// Set handles an added or updated ConfigMap.
func (s *Source) Set(cm *corev1.ConfigMap) {
	s.mu.Lock()
	if cm.ResourceVersion != "" && cm.ResourceVersion == s.seen {
		s.mu.Unlock()
		return // a resync: nothing new
	}
	s.seen = cm.ResourceVersion
	p, err := Parse(cm.Data)
	if err == nil {
		s.current = p
	}
	s.mu.Unlock()
	if err != nil {
		msg := "eci-profile kept its last good configuration: " + err.Error()
		s.Logger.Warn(msg, "configmap", cm.Namespace+"/"+cm.Name)
		s.Recorder.Event(cm, corev1.EventTypeWarning, "InvalidProfile", msg)
		return
	}
	msg := fmt.Sprintf("eci-profile loaded: %d selectors", len(p.Selectors))
	if len(p.Ignored) > 0 {
		msg += "; keys ignored: " + strings.Join(p.Ignored, ", ")
	}
	s.Logger.Info(msg, "configmap", cm.Namespace+"/"+cm.Name)
	s.Recorder.Event(cm, corev1.EventTypeNormal, "ProfileLoaded", msg)
}

// Deleted: without the ConfigMap, no selectors apply.
func (s *Source) Deleted() {
	s.mu.Lock()
	s.current, s.seen = nil, ""
	s.mu.Unlock()
	s.Logger.Info("eci-profile ConfigMap deleted: no selectors apply")
}
