// Package server is the HTTP/JSON edge of the instance service (eci server):
// TLS, bearer-token authentication, routing, request decoding, watch streams,
// metrics and health, and the mapping of errdefs kinds to HTTP status codes.
// What a request means is decided in internal/control; Server wires control,
// store and leader election into one daemon with Run(ctx).
package server
