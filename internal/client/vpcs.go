package client

import (
	"context"
	"net/http"
	"net/url"

	apiv1 "github.com/eci-dev/eci/api/v1"
)

// CreateVPC makes a VPC (admin); the answer has its VNI.
func (c *Client) CreateVPC(ctx context.Context, v *apiv1.VPC) (*apiv1.VPC, error) {
	var out apiv1.VPC
	_, err := c.do(ctx, http.MethodPost, "/v1/vpcs", nil, v, &out)
	return &out, err
}

// ListVPCs lists the VPCs the caller may see, the default one first.
func (c *Client) ListVPCs(ctx context.Context) ([]apiv1.VPC, error) {
	var out apiv1.List[apiv1.VPC]
	_, err := c.do(ctx, http.MethodGet, "/v1/vpcs", nil, nil, &out)
	return out.Items, err
}

// DeleteVPC removes a VPC without vSwitches (admin).
func (c *Client) DeleteVPC(ctx context.Context, id string) error {
	_, err := c.do(ctx, http.MethodDelete, "/v1/vpcs/"+url.PathEscape(id), nil, nil, nil)
	return err
}
