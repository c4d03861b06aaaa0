package v1

import (
	"fmt"
	"strconv"
	"strings"
)

// FieldError says what is wrong with one field and what is allowed.
type FieldError struct {
	// Field is the path from the request body: spec.containers[0].image.
	Field string `json:"field"`
	// Message says what is wrong and what is allowed.
	Message string `json:"message"`
}

func (e FieldError) Error() string { return e.Field + ": " + e.Message }

// FieldErrors is every problem of one request.
type FieldErrors []FieldError

func (es FieldErrors) Error() string {
	msgs := make([]string, len(es))
	for i, e := range es {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "; ")
}

// path builds field paths.
type fpath string

func (p fpath) child(name string) fpath { return fpath(string(p) + "." + name) }
func (p fpath) index(i int) fpath       { return fpath(string(p) + "[" + strconv.Itoa(i) + "]") }
func (p fpath) key(k string) fpath      { return fpath(string(p) + "[" + strconv.Quote(k) + "]") }

// errs collects field errors.
type errs struct{ list FieldErrors }

func (e *errs) add(p fpath, format string, args ...any) {
	e.list = append(e.list, FieldError{Field: string(p), Message: fmt.Sprintf(format, args...)})
}

func (e *errs) required(p fpath, what string) {
	e.add(p, "required: %s", what)
}

func (e *errs) oneOf(p fpath, got string, allowed ...string) {
	for _, a := range allowed {
		if got == a {
			return
		}
	}
	shown := make([]string, len(allowed))
	for i, a := range allowed {
		if a == "" {
			a = `"" (default)`
		}
		shown[i] = a
	}
	e.add(p, "%q is not allowed; allowed: %s", got, strings.Join(shown, ", "))
}

func (e *errs) result() error {
	if len(e.list) == 0 {
		return nil
	}
	return e.list
}
