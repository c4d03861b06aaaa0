package client

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"

	apiv1 "github.com/eci-dev/eci/api/v1"
)

// WatchEvent is one line of a watch. Err is set on the last one when the
// server ended the watch with an error (ErrGone: list again).
type WatchEvent[T any] struct {
	Type   apiv1.WatchEventType
	Object *T
	Err    error
}

// GroupEvent is one line of a watch of groups.
type GroupEvent = WatchEvent[apiv1.ContainerGroup]

// watch streams the newline-delimited WatchEvents of a collection's watch
// (q selects; resourceVersion "" lists first). The channel closes when ctx
// ends or the stream breaks, after an event with Err when the server said why.
func watch[T any](ctx context.Context, c *Client, path string, q url.Values, resourceVersion string) (<-chan WatchEvent[T], error) {
	if q == nil {
		q = url.Values{}
	}
	q.Set("watch", "true")
	if resourceVersion != "" {
		q.Set("resourceVersion", resourceVersion)
	}
	resp, err := c.send(ctx, http.MethodGet, path, q, nil)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= 400 {
		defer resp.Body.Close()
		return nil, apiError(resp)
	}
	out := make(chan WatchEvent[T], 64)
	go func() {
		defer close(out)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 64<<10), 16<<20)
		for sc.Scan() {
			var line struct {
				Type   apiv1.WatchEventType `json:"type"`
				Object json.RawMessage      `json:"object"`
			}
			ev := WatchEvent[T]{}
			if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
				ev.Err = fmt.Errorf("bad watch line: %w", err)
			} else if line.Type == "ERROR" {
				var st apiv1.Status
				_ = json.Unmarshal(line.Object, &st)
				kind := reasons[st.Reason]
				ev.Err = &APIError{Status: st, kind: kind}
			} else {
				ev.Type, ev.Object = line.Type, new(T)
				if err := json.Unmarshal(line.Object, ev.Object); err != nil {
					ev.Err = fmt.Errorf("bad watch object: %w", err)
				}
			}
			select {
			case out <- ev:
			case <-ctx.Done():
				return
			}
			if ev.Err != nil {
				return
			}
		}
	}()
	return out, nil
}
