package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"

	apiv1 "github.com/eci-dev/eci/api/v1"
)

// CreateGroup creates a container group; created is false when its client
// token had already created it.
func (c *Client) CreateGroup(ctx context.Context, g *apiv1.ContainerGroup) (*apiv1.ContainerGroup, bool, error) {
	var out apiv1.ContainerGroup
	code, err := c.do(ctx, http.MethodPost, "/v1/containergroups", nil, g, &out)
	return &out, code == http.StatusCreated, err
}

// GetGroup reads one group.
func (c *Client) GetGroup(ctx context.Context, id string) (*apiv1.ContainerGroup, error) {
	var out apiv1.ContainerGroup
	_, err := c.do(ctx, http.MethodGet, "/v1/containergroups/"+url.PathEscape(id), nil, nil, &out)
	return &out, err
}

// ListOptions filter and page a list of groups.
type ListOptions struct {
	State         apiv1.State
	Host          string
	Tenant        string
	Tag           string // k=v,k2=v2
	LabelSelector string
	Limit         int64
	Continue      string
}

func (o ListOptions) query() url.Values {
	q := url.Values{}
	for k, v := range map[string]string{"state": string(o.State), "host": o.Host, "tenant": o.Tenant, "tag": o.Tag,
		"labelSelector": o.LabelSelector, "continue": o.Continue} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if o.Limit > 0 {
		q.Set("limit", strconv.FormatInt(o.Limit, 10))
	}
	return q
}

// ListGroups lists one page of groups.
func (c *Client) ListGroups(ctx context.Context, o ListOptions) (*apiv1.List[apiv1.ContainerGroup], error) {
	var out apiv1.List[apiv1.ContainerGroup]
	_, err := c.do(ctx, http.MethodGet, "/v1/containergroups", o.query(), nil, &out)
	return &out, err
}

// DeleteOptions of a delete: a grace period, or force.
type DeleteOptions struct {
	GracePeriodSeconds *int64
	Force              bool
}

// DeleteGroup deletes a group (gracefully unless forced).
func (c *Client) DeleteGroup(ctx context.Context, id string, o DeleteOptions) (*apiv1.ContainerGroup, error) {
	q := url.Values{}
	if o.Force {
		q.Set("force", "true")
	}
	if o.GracePeriodSeconds != nil {
		q.Set("gracePeriodSeconds", strconv.FormatInt(*o.GracePeriodSeconds, 10))
	}
	var out apiv1.ContainerGroup
	_, err := c.do(ctx, http.MethodDelete, "/v1/containergroups/"+url.PathEscape(id), q, nil, &out)
	return &out, err
}

// UpdateGroup changes labels, tags or file payloads of a group.
func (c *Client) UpdateGroup(ctx context.Context, id string, u apiv1.GroupUpdate) (*apiv1.ContainerGroup, error) {
	var out apiv1.ContainerGroup
	_, err := c.do(ctx, http.MethodPatch, "/v1/containergroups/"+url.PathEscape(id), nil, u, &out)
	return &out, err
}

// RestartGroup restarts every container of a group.
func (c *Client) RestartGroup(ctx context.Context, id string) (*apiv1.ContainerGroup, error) {
	var out apiv1.ContainerGroup
	_, err := c.do(ctx, http.MethodPost, "/v1/containergroups/"+url.PathEscape(id)+"/restart", nil, nil, &out)
	return &out, err
}

// ReportStatus sends an agent's view of a group (host tokens).
func (c *Client) ReportStatus(ctx context.Context, id string, r apiv1.StatusReport) (*apiv1.ContainerGroup, error) {
	var out apiv1.ContainerGroup
	_, err := c.do(ctx, http.MethodPut, "/v1/containergroups/"+url.PathEscape(id)+"/status", nil, r, &out)
	return &out, err
}

// Finalize completes a graceful delete (host tokens).
func (c *Client) Finalize(ctx context.Context, id string) error {
	_, err := c.do(ctx, http.MethodPost, "/v1/containergroups/"+url.PathEscape(id)+"/finalize", nil, nil, nil)
	return err
}

// GroupEvents lists a group's events.
func (c *Client) GroupEvents(ctx context.Context, id string) ([]apiv1.Event, error) {
	var out apiv1.List[apiv1.Event]
	_, err := c.do(ctx, http.MethodGet, "/v1/containergroups/"+url.PathEscape(id)+"/events", nil, nil, &out)
	return out.Items, err
}

// WatchGroups streams changes of the groups o selects after resourceVersion
// (everything current first, as ADDED, when it is ""). The channel closes when
// ctx ends or the stream breaks; the caller resumes from the last
// resourceVersion it saw (BOOKMARKs carry one).
func (c *Client) WatchGroups(ctx context.Context, o ListOptions, resourceVersion string) (<-chan GroupEvent, error) {
	q := o.query()
	q.Del("limit")
	q.Del("continue")
	return watch[apiv1.ContainerGroup](ctx, c, "/v1/containergroups", q, resourceVersion)
}
