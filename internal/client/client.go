// Package client is the Go client of the eci API, used by the CLI, the agent
// and the virtual node. Errors come back as *APIError, which unwraps to the
// errdefs kind the server mapped, so errors.Is(err, errdefs.ErrNotFound)
// works on this side of the wire too.
package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/errdefs"
)

// Config says where the server is and who is calling.
type Config struct {
	// Server is the API's base URL, https://host:port.
	Server string
	Token  string
	// CAFile (or CAData) is the CA that signed the server's certificate; the
	// system roots when both are empty.
	CAFile string
	CAData []byte
	// Timeout of one request (watches excepted); 30 s by default.
	Timeout time.Duration
}

// Client talks to one eci server.
type Client struct {
	base    string
	token   string
	http    *http.Client
	timeout time.Duration
	caData  []byte // the server CA, for the streaming clients
}

// Server is the server's URL.
func (c *Client) Server() string { return c.base }

// New checks cfg and returns a client.
func New(cfg Config) (*Client, error) {
	u, err := url.Parse(cfg.Server)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("server %q is not a URL such as https://127.0.0.1:8443", cfg.Server)
	}
	if cfg.Token == "" {
		return nil, errors.New("a token is required (--token, $ECI_TOKEN or the config file)")
	}
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12}
	ca := cfg.CAData
	if cfg.CAFile != "" {
		if ca, err = os.ReadFile(cfg.CAFile); err != nil {
			return nil, fmt.Errorf("read the server CA: %w", err)
		}
	}
	if len(ca) > 0 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(ca) {
			return nil, errors.New("the server CA holds no PEM certificate")
		}
		tlsCfg.RootCAs = pool
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 30 * time.Second
	}
	transport := &http.Transport{TLSClientConfig: tlsCfg, MaxIdleConnsPerHost: 64, IdleConnTimeout: 90 * time.Second, ForceAttemptHTTP2: true}
	return &Client{
		base: strings.TrimRight(cfg.Server, "/"), token: cfg.Token, timeout: cfg.Timeout,
		http: &http.Client{Transport: transport}, caData: ca,
	}, nil
}

// APIError is an error answer of the server.
type APIError struct {
	Status apiv1.Status
	kind   error
}

func (e *APIError) Error() string {
	msg := e.Status.Message
	if len(e.Status.Fields) > 0 {
		msg = e.Status.Fields.Error()
	}
	return fmt.Sprintf("%s (%d %s)", msg, e.Status.Code, e.Status.Reason)
}

// Unwrap returns the errdefs kind.
func (e *APIError) Unwrap() error { return e.kind }

var reasons = map[string]error{
	"Invalid": errdefs.ErrInvalidArgument, "NotFound": errdefs.ErrNotFound, "AlreadyExists": errdefs.ErrAlreadyExists,
	"Conflict": errdefs.ErrConflict, "Gone": errdefs.ErrGone, "Unauthorized": errdefs.ErrUnauthenticated,
	"Forbidden": errdefs.ErrPermissionDenied, "TooManyRequests": errdefs.ErrExhausted, "Unavailable": errdefs.ErrUnavailable,
	"PaymentRequired":       errdefs.ErrPaymentRequired,
	"RequestEntityTooLarge": errdefs.ErrTooLarge,
}

func apiError(resp *http.Response) error {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var st apiv1.Status
	if json.Unmarshal(body, &st) != nil || st.Code == 0 {
		st = apiv1.Status{Code: resp.StatusCode, Reason: http.StatusText(resp.StatusCode), Message: strings.TrimSpace(string(body))}
	}
	kind, ok := reasons[st.Reason]
	if !ok {
		kind = errors.New("internal error")
	}
	return &APIError{Status: st, kind: kind}
}

// do sends one request; in is sent as JSON, the answer decoded into out. It
// returns the HTTP status code.
func (c *Client) do(ctx context.Context, method, path string, query url.Values, in, out any) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	resp, err := c.send(ctx, method, path, query, in)
	// A rate-limited request was not served: it is sent again after the
	// server's Retry-After, a few times, within the request's timeout.
	for attempt := 0; err == nil && resp.StatusCode == http.StatusTooManyRequests && attempt < 5; attempt++ {
		wait, perr := strconv.Atoi(resp.Header.Get("Retry-After"))
		if perr != nil || wait < 1 {
			wait = 1
		}
		_ = resp.Body.Close()
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("%s %s: rate limited until the request's deadline: %w: %w", method, path, errdefs.ErrExhausted, ctx.Err())
		case <-time.After(time.Duration(wait) * time.Second):
		}
		resp, err = c.send(ctx, method, path, query, in)
	}
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 400 {
		return resp.StatusCode, apiError(resp)
	}
	if out != nil && resp.StatusCode != http.StatusNoContent {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			return resp.StatusCode, fmt.Errorf("decode the answer to %s %s: %w", method, path, err)
		}
	}
	return resp.StatusCode, nil
}

func (c *Client) send(ctx context.Context, method, path string, query url.Values, in any) (*http.Response, error) {
	var body io.Reader
	if in != nil {
		data, err := json.Marshal(in)
		if err != nil {
			return nil, err
		}
		body = bytes.NewReader(data)
	}
	u := c.base + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w: %w", method, path, errdefs.ErrUnavailable, err)
	}
	return resp, nil
}
