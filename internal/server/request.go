package server

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/errdefs"
)

// decode reads a JSON body strictly into v; a body over the limit is 413.
func decode(r *http.Request, v any) error {
	err := apiv1.Decode(r.Body, v)
	switch {
	case errors.Is(err, apiv1.ErrBodyTooLarge):
		return fmt.Errorf("%w: %w", errdefs.ErrTooLarge, err)
	case err != nil:
		return fmt.Errorf("%w: %w", errdefs.ErrInvalidArgument, err)
	}
	return nil
}

// queryInt reads an integer query parameter within [min, max].
func queryInt(r *http.Request, name string, def, min, max int64) (int64, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < min || n > max {
		return 0, badRequest(name, fmt.Sprintf("%q is not allowed; allowed: an integer from %d to %d", v, min, max))
	}
	return n, nil
}

// queryBool reads true/false.
func queryBool(r *http.Request, name string) (bool, error) {
	switch v := r.URL.Query().Get(name); v {
	case "", "false", "0":
		return false, nil
	case "true", "1":
		return true, nil
	default:
		return false, badRequest(name, fmt.Sprintf("%q is not allowed; allowed: true, false", v))
	}
}
