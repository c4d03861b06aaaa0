package client

import (
	"context"
	"net/http"
	"net/url"

	apiv1 "github.com/eci-dev/eci/api/v1"
)

// CreateDataCache makes a data cache of the caller's tenant.
func (c *Client) CreateDataCache(ctx context.Context, dc *apiv1.DataCache) (*apiv1.DataCache, error) {
	var out apiv1.DataCache
	_, err := c.do(ctx, http.MethodPost, "/v1/datacaches", nil, dc, &out)
	return &out, err
}

// ListDataCaches lists the data caches the caller may read.
func (c *Client) ListDataCaches(ctx context.Context) ([]apiv1.DataCache, error) {
	var out apiv1.List[apiv1.DataCache]
	_, err := c.do(ctx, http.MethodGet, "/v1/datacaches", nil, nil, &out)
	return out.Items, err
}

// GetDataCache reads a data cache.
func (c *Client) GetDataCache(ctx context.Context, id string) (*apiv1.DataCache, error) {
	var out apiv1.DataCache
	_, err := c.do(ctx, http.MethodGet, "/v1/datacaches/"+url.PathEscape(id), nil, nil, &out)
	return &out, err
}

// DeleteDataCache removes a data cache.
func (c *Client) DeleteDataCache(ctx context.Context, id string) error {
	_, err := c.do(ctx, http.MethodDelete, "/v1/datacaches/"+url.PathEscape(id), nil, nil, nil)
	return err
}

// HostDataCaches are the data caches host name fetches ahead (its own
// token).
func (c *Client) HostDataCaches(ctx context.Context, name string) ([]apiv1.DataCache, error) {
	var out apiv1.HostDataCaches
	_, err := c.do(ctx, http.MethodGet, "/v1/hosts/"+url.PathEscape(name)+"/datacaches", nil, nil, &out)
	return out.Items, err
}

// ReportHostData tells the server which data caches host name holds.
func (c *Client) ReportHostData(ctx context.Context, name string, rep apiv1.HostData) error {
	_, err := c.do(ctx, http.MethodPut, "/v1/hosts/"+url.PathEscape(name)+"/datacaches", nil, rep, nil)
	return err
}
