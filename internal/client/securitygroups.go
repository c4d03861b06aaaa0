package client

import (
	"context"
	"net/http"
	"net/url"

	apiv1 "github.com/eci-dev/eci/api/v1"
)

// PutSecurityGroup writes a security group of the caller's tenant whole.
func (c *Client) PutSecurityGroup(ctx context.Context, g *apiv1.SecurityGroup) (*apiv1.SecurityGroup, error) {
	var out apiv1.SecurityGroup
	_, err := c.do(ctx, http.MethodPut, "/v1/securitygroups", nil, g, &out)
	return &out, err
}

// ListSecurityGroups lists the security groups the caller may read.
func (c *Client) ListSecurityGroups(ctx context.Context) ([]apiv1.SecurityGroup, error) {
	var out apiv1.List[apiv1.SecurityGroup]
	_, err := c.do(ctx, http.MethodGet, "/v1/securitygroups", nil, nil, &out)
	return out.Items, err
}

// DeleteSecurityGroup removes the caller's security group name (tenant:
// the admin names whose).
func (c *Client) DeleteSecurityGroup(ctx context.Context, tenant, name string) error {
	q := url.Values{}
	if tenant != "" {
		q.Set("tenant", tenant)
	}
	_, err := c.do(ctx, http.MethodDelete, "/v1/securitygroups/"+url.PathEscape(name), q, nil, nil)
	return err
}

// InformSecurityGroups keeps watching the security groups the caller may
// read until ctx ends, as InformGroups does groups.
func (c *Client) InformSecurityGroups(ctx context.Context, h Handler[apiv1.SecurityGroup]) {
	inform(ctx, func(rv string) (<-chan WatchEvent[apiv1.SecurityGroup], error) {
		return watch[apiv1.SecurityGroup](ctx, c, "/v1/securitygroups", nil, rv)
	}, h)
}
