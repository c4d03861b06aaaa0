package client

import (
	"context"
	"errors"
	"slices"
	"testing"

	apiv1 "github.com/eci-dev/eci/api/v1"
)

// A list whose stream breaks before its closing bookmark is listed again
// from the start: resuming from the version of the last object replayed
// would skip the objects of the list not replayed yet (older versions).
func TestInformListsAgainAfterABrokenReplay(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	obj := func(typ apiv1.WatchEventType, id, rv string) WatchEvent[apiv1.VSwitch] {
		return WatchEvent[apiv1.VSwitch]{Type: typ, Object: &apiv1.VSwitch{Metadata: apiv1.ObjectMeta{ID: id, ResourceVersion: rv}}}
	}
	streams := [][]WatchEvent[apiv1.VSwitch]{
		{obj(apiv1.Added, "a", "9"), {Err: errors.New("connection reset")}},
		{obj(apiv1.Added, "a", "9"), obj(apiv1.Added, "b", "4"), obj(apiv1.Bookmark, "", "12")},
	}
	var asked []string
	var seen []string
	relisted := 0
	watchFrom := func(rv string) (<-chan WatchEvent[apiv1.VSwitch], error) {
		asked = append(asked, rv)
		if len(asked) > len(streams) {
			cancel()
			return nil, errors.New("done")
		}
		ch := make(chan WatchEvent[apiv1.VSwitch], 8)
		for _, ev := range streams[len(asked)-1] {
			ch <- ev
		}
		close(ch)
		return ch, nil
	}
	inform(ctx, watchFrom, Handler[apiv1.VSwitch]{
		Relisted: func() { relisted++ },
		Event:    func(ev WatchEvent[apiv1.VSwitch]) { seen = append(seen, ev.Object.Metadata.ID) },
	})
	if !slices.Equal(asked, []string{"", "", "12"}) {
		t.Errorf("watched from %q; want a fresh list after the broken one, then the bookmark's version", asked)
	}
	if !slices.Equal(seen, []string{"a", "a", "b"}) || relisted != 1 {
		t.Errorf("saw %v, relisted %d times", seen, relisted)
	}
}
