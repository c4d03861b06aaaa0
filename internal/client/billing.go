package client

import (
	"context"
	"net/http"
	"net/url"

	apiv1 "github.com/eci-dev/eci/api/v1"
)

// BillQuery asks for a bill (GET /v1/bill); empty fields take the
// server's defaults.
type BillQuery struct {
	From, To, Granularity, By string
	Tags                      []string // key=value
}

// Bill reads the usage and cost of the groups the token may see.
func (c *Client) Bill(ctx context.Context, q BillQuery) (*apiv1.Bill, error) {
	v := url.Values{}
	for k, s := range map[string]string{"from": q.From, "to": q.To, "granularity": q.Granularity, "by": q.By} {
		if s != "" {
			v.Set(k, s)
		}
	}
	for _, t := range q.Tags {
		v.Add("tag", t)
	}
	var out apiv1.Bill
	_, err := c.do(ctx, http.MethodGet, "/v1/bill", v, nil, &out)
	return &out, err
}

// VirtualNodeHeartbeat tells the service the caller's virtual node name is
// Ready (billed while it is).
func (c *Client) VirtualNodeHeartbeat(ctx context.Context, name string, hb apiv1.VirtualNodeHeartbeat) error {
	_, err := c.do(ctx, http.MethodPut, "/v1/virtualnodes/"+url.PathEscape(name), nil, hb, nil)
	return err
}
