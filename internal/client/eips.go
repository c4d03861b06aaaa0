package client

import (
	"context"
	"net/http"
	"net/url"

	apiv1 "github.com/eci-dev/eci/api/v1"
)

// AllocateEIP gives the caller's tenant (or, for the admin,
// metadata.tenant's) an EIP; the answer has its address.
func (c *Client) AllocateEIP(ctx context.Context, e *apiv1.EIP) (*apiv1.EIP, error) {
	var out apiv1.EIP
	_, err := c.do(ctx, http.MethodPost, "/v1/eips", nil, e, &out)
	return &out, err
}

// ListEIPs lists the EIPs the caller may see.
func (c *Client) ListEIPs(ctx context.Context) ([]apiv1.EIP, error) {
	var out apiv1.List[apiv1.EIP]
	_, err := c.do(ctx, http.MethodGet, "/v1/eips", nil, nil, &out)
	return out.Items, err
}

// ReleaseEIP gives back an EIP no group holds.
func (c *Client) ReleaseEIP(ctx context.Context, id string) error {
	_, err := c.do(ctx, http.MethodDelete, "/v1/eips/"+url.PathEscape(id), nil, nil, nil)
	return err
}
