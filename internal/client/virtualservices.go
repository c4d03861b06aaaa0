package client

import (
	"context"
	"net/http"
	"net/url"

	apiv1 "github.com/eci-dev/eci/api/v1"
)

// PutVirtualService writes a virtual IP of the caller's table whole (made or
// replaced; the last write wins).
func (c *Client) PutVirtualService(ctx context.Context, v *apiv1.VirtualService) (*apiv1.VirtualService, error) {
	var out apiv1.VirtualService
	_, err := c.do(ctx, http.MethodPut, "/v1/virtualservices", nil, v, &out)
	return &out, err
}

// DeleteVirtualService removes the virtual IP ip of table (NotFound when
// there is none).
func (c *Client) DeleteVirtualService(ctx context.Context, table, ip string) error {
	_, err := c.do(ctx, http.MethodDelete, "/v1/virtualservices/"+url.PathEscape(table)+"/"+url.PathEscape(ip), nil, nil, nil)
	return err
}

// ListVirtualServices lists the virtual IPs of a table ("" for every table
// the caller may read).
func (c *Client) ListVirtualServices(ctx context.Context, table string) ([]apiv1.VirtualService, error) {
	var out apiv1.List[apiv1.VirtualService]
	_, err := c.do(ctx, http.MethodGet, "/v1/virtualservices", tableQuery(table), nil, &out)
	return out.Items, err
}

// VirtualServiceEvent is one line of a watch of virtual services.
type VirtualServiceEvent = WatchEvent[apiv1.VirtualService]

// WatchVirtualServices streams the changes of the virtual IPs of table (""
// for every table the caller may read) after resourceVersion (all current
// ones first, as ADDED, when it is "").
func (c *Client) WatchVirtualServices(ctx context.Context, table, resourceVersion string) (<-chan VirtualServiceEvent, error) {
	return watch[apiv1.VirtualService](ctx, c, "/v1/virtualservices", tableQuery(table), resourceVersion)
}

// InformVirtualServices keeps watching the virtual IPs of table until ctx
// ends, as InformGroups does groups.
func (c *Client) InformVirtualServices(ctx context.Context, table string, h Handler[apiv1.VirtualService]) {
	inform(ctx, func(rv string) (<-chan VirtualServiceEvent, error) { return c.WatchVirtualServices(ctx, table, rv) }, h)
}

func tableQuery(table string) url.Values {
	q := url.Values{}
	if table != "" {
		q.Set("table", table)
	}
	return q
}

// ListAddresses lists where every group's address is routed (hosts and the
// admin).
func (c *Client) ListAddresses(ctx context.Context) ([]apiv1.InstanceAddress, error) {
	var out apiv1.List[apiv1.InstanceAddress]
	_, err := c.do(ctx, http.MethodGet, "/v1/addresses", nil, nil, &out)
	return out.Items, err
}

// InformAddresses keeps watching where every group's address is routed
// until ctx ends, as InformGroups does groups.
func (c *Client) InformAddresses(ctx context.Context, h Handler[apiv1.InstanceAddress]) {
	inform(ctx, func(rv string) (<-chan WatchEvent[apiv1.InstanceAddress], error) {
		return watch[apiv1.InstanceAddress](ctx, c, "/v1/addresses", nil, rv)
	}, h)
}
