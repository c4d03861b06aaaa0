// Package httpapi is what the HTTP edges of eci (the server's API, the
// agent's stream server) share: errdefs kinds mapped to HTTP status codes
// and JSON answers. Errors become HTTP here and nowhere else.
package httpapi

import (
	"encoding/json"
	"errors"
	"net/http"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/errdefs"
	"github.com/eci-dev/eci/internal/log"
)

// kinds maps errdefs kinds to HTTP, in order of precedence.
var kinds = []struct {
	err    error
	code   int
	reason string
}{
	{errdefs.ErrInvalidArgument, http.StatusUnprocessableEntity, "Invalid"},
	{errdefs.ErrNotFound, http.StatusNotFound, "NotFound"},
	{errdefs.ErrAlreadyExists, http.StatusConflict, "AlreadyExists"},
	{errdefs.ErrConflict, http.StatusConflict, "Conflict"},
	{errdefs.ErrGone, http.StatusGone, "Gone"},
	{errdefs.ErrUnauthenticated, http.StatusUnauthorized, "Unauthorized"},
	{errdefs.ErrPermissionDenied, http.StatusForbidden, "Forbidden"},
	{errdefs.ErrExhausted, http.StatusTooManyRequests, "TooManyRequests"},
	{errdefs.ErrTooLarge, http.StatusRequestEntityTooLarge, "RequestEntityTooLarge"},
	{errdefs.ErrUnavailable, http.StatusServiceUnavailable, "Unavailable"},
	{errdefs.ErrPaymentRequired, http.StatusPaymentRequired, "PaymentRequired"},
}

// StatusOf turns an error into the body of an error answer.
func StatusOf(err error) apiv1.Status {
	st := apiv1.Status{Code: http.StatusInternalServerError, Reason: "Internal", Message: err.Error()}
	for _, k := range kinds {
		if errors.Is(err, k.err) {
			st.Code, st.Reason = k.code, k.reason
			break
		}
	}
	var fe apiv1.FieldErrors
	if errors.As(err, &fe) {
		st.Fields = fe
		if st.Reason == "Internal" {
			st.Code, st.Reason = http.StatusUnprocessableEntity, "Invalid"
		}
	}
	return st
}

// WriteError answers err as its status; server errors are logged.
func WriteError(w http.ResponseWriter, r *http.Request, err error) {
	st := StatusOf(err)
	if st.Code >= 500 {
		log.G(r.Context()).Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	WriteJSON(w, st.Code, st)
}

// WriteJSON answers v as JSON.
func WriteJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// Invalid is a request that can't even be read (a bad query parameter).
func Invalid(err error) error {
	return errors.Join(errdefs.ErrInvalidArgument, err)
}
