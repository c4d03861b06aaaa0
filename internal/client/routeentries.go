package client

import (
	"context"
	"net/http"
	"net/url"

	apiv1 "github.com/eci-dev/eci/api/v1"
)

// AddRouteEntry adds an entry to the default VPC's route table (admin).
func (c *Client) AddRouteEntry(ctx context.Context, r *apiv1.RouteEntry) (*apiv1.RouteEntry, error) {
	var out apiv1.RouteEntry
	_, err := c.do(ctx, http.MethodPost, "/v1/routeentries", nil, r, &out)
	return &out, err
}

// ListRouteEntries lists the default VPC's route table (admin, hosts).
func (c *Client) ListRouteEntries(ctx context.Context) ([]apiv1.RouteEntry, error) {
	var out apiv1.List[apiv1.RouteEntry]
	_, err := c.do(ctx, http.MethodGet, "/v1/routeentries", nil, nil, &out)
	return out.Items, err
}

// DeleteRouteEntry removes a route entry (admin).
func (c *Client) DeleteRouteEntry(ctx context.Context, id string) error {
	_, err := c.do(ctx, http.MethodDelete, "/v1/routeentries/"+url.PathEscape(id), nil, nil, nil)
	return err
}
