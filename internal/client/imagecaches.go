package client

import (
	"context"
	"net/http"
	"net/url"

	apiv1 "github.com/eci-dev/eci/api/v1"
)

// CreateImageCache makes an image cache of the caller's tenant.
func (c *Client) CreateImageCache(ctx context.Context, ic *apiv1.ImageCache) (*apiv1.ImageCache, error) {
	var out apiv1.ImageCache
	_, err := c.do(ctx, http.MethodPost, "/v1/imagecaches", nil, ic, &out)
	return &out, err
}

// ListImageCaches lists the image caches the caller may read.
func (c *Client) ListImageCaches(ctx context.Context) ([]apiv1.ImageCache, error) {
	var out apiv1.List[apiv1.ImageCache]
	_, err := c.do(ctx, http.MethodGet, "/v1/imagecaches", nil, nil, &out)
	return out.Items, err
}

// GetImageCache reads an image cache.
func (c *Client) GetImageCache(ctx context.Context, id string) (*apiv1.ImageCache, error) {
	var out apiv1.ImageCache
	_, err := c.do(ctx, http.MethodGet, "/v1/imagecaches/"+url.PathEscape(id), nil, nil, &out)
	return &out, err
}

// DeleteImageCache removes an image cache.
func (c *Client) DeleteImageCache(ctx context.Context, id string) error {
	_, err := c.do(ctx, http.MethodDelete, "/v1/imagecaches/"+url.PathEscape(id), nil, nil, nil)
	return err
}

// HostImageCaches are the caches host name keeps (its own token).
func (c *Client) HostImageCaches(ctx context.Context, name string) ([]apiv1.ImageCache, error) {
	var out apiv1.HostImageCaches
	_, err := c.do(ctx, http.MethodGet, "/v1/hosts/"+url.PathEscape(name)+"/imagecaches", nil, nil, &out)
	return out.Items, err
}

// ReportHostImages tells the server what host name holds.
func (c *Client) ReportHostImages(ctx context.Context, name string, rep apiv1.HostImages) error {
	_, err := c.do(ctx, http.MethodPut, "/v1/hosts/"+url.PathEscape(name)+"/images", nil, rep, nil)
	return err
}
