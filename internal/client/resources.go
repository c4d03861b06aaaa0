package client

import (
	"context"
	"net/http"
	"net/url"
	"time"

	apiv1 "github.com/eci-dev/eci/api/v1"
)

// RegisterHost registers (or refreshes) a host (host or admin tokens).
func (c *Client) RegisterHost(ctx context.Context, h *apiv1.Host) (*apiv1.Host, error) {
	var out apiv1.Host
	_, err := c.do(ctx, http.MethodPost, "/v1/hosts", nil, h, &out)
	return &out, err
}

// Heartbeat renews a host's lease.
func (c *Client) Heartbeat(ctx context.Context, name string) (*apiv1.Host, error) {
	var out apiv1.Host
	_, err := c.do(ctx, http.MethodPut, "/v1/hosts/"+url.PathEscape(name)+"/heartbeat", nil, nil, &out)
	return &out, err
}

// SyncWarmPool tells the server which addresses of host name's warm pool
// have a ready sandbox, and returns the pool's reserved addresses.
func (c *Client) SyncWarmPool(ctx context.Context, name string, req apiv1.WarmPoolSync) (*apiv1.WarmPool, error) {
	var out apiv1.WarmPool
	_, err := c.do(ctx, http.MethodPut, "/v1/hosts/"+url.PathEscape(name)+"/warmpool", nil, req, &out)
	return &out, err
}

// ListHosts lists hosts (admin).
func (c *Client) ListHosts(ctx context.Context) ([]apiv1.Host, error) {
	var out apiv1.List[apiv1.Host]
	_, err := c.do(ctx, http.MethodGet, "/v1/hosts", nil, nil, &out)
	return out.Items, err
}

// Capacity reads what the pool can place for the caller (a tenant: its
// usage and quota too).
func (c *Client) Capacity(ctx context.Context) (*apiv1.Capacity, error) {
	var out apiv1.Capacity
	_, err := c.do(ctx, http.MethodGet, "/v1/capacity", nil, nil, &out)
	return &out, err
}

// GetHost reads a host.
func (c *Client) GetHost(ctx context.Context, name string) (*apiv1.Host, error) {
	var out apiv1.Host
	_, err := c.do(ctx, http.MethodGet, "/v1/hosts/"+url.PathEscape(name), nil, nil, &out)
	return &out, err
}

// UpdateHost changes a host (admin).
func (c *Client) UpdateHost(ctx context.Context, name string, u apiv1.HostUpdate) (*apiv1.Host, error) {
	var out apiv1.Host
	_, err := c.do(ctx, http.MethodPatch, "/v1/hosts/"+url.PathEscape(name), nil, u, &out)
	return &out, err
}

// CreateVSwitch adds a vSwitch (admin).
func (c *Client) CreateVSwitch(ctx context.Context, v *apiv1.VSwitch) (*apiv1.VSwitch, error) {
	var out apiv1.VSwitch
	_, err := c.do(ctx, http.MethodPost, "/v1/vswitches", nil, v, &out)
	return &out, err
}

// ListVSwitches lists vSwitches.
func (c *Client) ListVSwitches(ctx context.Context) ([]apiv1.VSwitch, error) {
	var out apiv1.List[apiv1.VSwitch]
	_, err := c.do(ctx, http.MethodGet, "/v1/vswitches", nil, nil, &out)
	return out.Items, err
}

// GetVSwitch reads a vSwitch with its address counts.
func (c *Client) GetVSwitch(ctx context.Context, id string) (*apiv1.VSwitch, error) {
	var out apiv1.VSwitch
	_, err := c.do(ctx, http.MethodGet, "/v1/vswitches/"+url.PathEscape(id), nil, nil, &out)
	return &out, err
}

// DeleteVSwitch removes an unused vSwitch (admin).
func (c *Client) DeleteVSwitch(ctx context.Context, id string) error {
	_, err := c.do(ctx, http.MethodDelete, "/v1/vswitches/"+url.PathEscape(id), nil, nil, nil)
	return err
}

// PutTenant creates or replaces a tenant (admin).
func (c *Client) PutTenant(ctx context.Context, t *apiv1.Tenant) (*apiv1.Tenant, error) {
	var out apiv1.Tenant
	_, err := c.do(ctx, http.MethodPut, "/v1/tenants/"+url.PathEscape(t.Metadata.Name), nil, t, &out)
	return &out, err
}

// GetTenant reads a tenant (admin, or the tenant itself).
func (c *Client) GetTenant(ctx context.Context, name string) (*apiv1.Tenant, error) {
	var out apiv1.Tenant
	_, err := c.do(ctx, http.MethodGet, "/v1/tenants/"+url.PathEscape(name), nil, nil, &out)
	return &out, err
}

// ListTenants lists the tenants with their quotas (admin).
func (c *Client) ListTenants(ctx context.Context) ([]apiv1.Tenant, error) {
	var out apiv1.List[apiv1.Tenant]
	_, err := c.do(ctx, http.MethodGet, "/v1/tenants", nil, nil, &out)
	return out.Items, err
}

// CreateToken makes a tenant or host token (admin); the answer holds the secret.
func (c *Client) CreateToken(ctx context.Context, t *apiv1.Token) (*apiv1.Token, error) {
	var out apiv1.Token
	_, err := c.do(ctx, http.MethodPost, "/v1/tokens", nil, t, &out)
	return &out, err
}

// ListTokens lists the tokens (admin).
func (c *Client) ListTokens(ctx context.Context) ([]apiv1.Token, error) {
	var out apiv1.List[apiv1.Token]
	_, err := c.do(ctx, http.MethodGet, "/v1/tokens", nil, nil, &out)
	return out.Items, err
}

// RevokeToken revokes a token by id (the SHA-256 of its secret; admin).
func (c *Client) RevokeToken(ctx context.Context, id string) (*apiv1.Token, error) {
	var out apiv1.Token
	_, err := c.do(ctx, http.MethodDelete, "/v1/tokens/"+url.PathEscape(id), nil, nil, &out)
	return &out, err
}

// ListEvents lists events, of one object when id is set.
func (c *Client) ListEvents(ctx context.Context, id string) ([]apiv1.Event, error) {
	q := url.Values{}
	if id != "" {
		q.Set("object", id)
	}
	var out apiv1.List[apiv1.Event]
	_, err := c.do(ctx, http.MethodGet, "/v1/events", q, nil, &out)
	return out.Items, err
}

// InformEvents keeps watching the events the caller may see (a tenant's:
// those of its groups) until ctx ends, as InformGroups does groups.
func (c *Client) InformEvents(ctx context.Context, h Handler[apiv1.Event]) {
	inform(ctx, func(rv string) (<-chan WatchEvent[apiv1.Event], error) {
		return watch[apiv1.Event](ctx, c, "/v1/events", nil, rv)
	}, h)
}

// AddEvent records an event (host tokens, for their groups).
func (c *Client) AddEvent(ctx context.Context, ev *apiv1.Event) error {
	_, err := c.do(ctx, http.MethodPost, "/v1/events", nil, ev, nil)
	return err
}

// KeepAlive renews the leases of hosts every interval until ctx ends; a
// failed renewal is passed to onErr and retried at the next tick.
func (c *Client) KeepAlive(ctx context.Context, hosts []string, every time.Duration, onErr func(host string, err error)) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, h := range hosts {
			if _, err := c.Heartbeat(ctx, h); err != nil && ctx.Err() == nil && onErr != nil {
				onErr(h, err)
			}
		}
	}
}

// Ready asks the server's /readyz: nil while it answers and its store does.
func (c *Client) Ready(ctx context.Context) error {
	_, err := c.do(ctx, http.MethodGet, "/readyz", nil, nil, nil)
	return err
}
