package v1

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// unsupported maps Kubernetes pod fields that instances don't have to the
// alternative a user should take (docs/spec.md section 3).
var unsupported = map[string]string{
	"hostPath":    "hostPath volumes are not supported; use emptyDir, a disk, or an NFS (NAS) volume",
	"hostNetwork": "hostNetwork is not supported; use a Service of type LoadBalancer",
	"hostPort":    "hostPort is not supported; use a Service of type LoadBalancer",
	"hostPID":     "hostPID is not supported",
	"hostIPC":     "hostIPC is not supported",
}

// MaxBodyBytes bounds a request body (file payloads included): 1 MiB, so
// that what is stored stays below etcd's 1.5 MiB request limit.
const MaxBodyBytes = 1 << 20

// ErrBodyTooLarge is a body over MaxBodyBytes.
var ErrBodyTooLarge = fmt.Errorf("the request body is larger than %d bytes (1 MiB); allowed: at most 1 MiB (put larger data in an NFS volume or the image)", MaxBodyBytes)

// Decode reads one JSON object into v strictly: unknown fields and trailing
// data are errors that name the field (FieldErrors); a body over
// MaxBodyBytes is ErrBodyTooLarge.
func Decode(r io.Reader, v any) error {
	data, err := io.ReadAll(io.LimitReader(r, MaxBodyBytes+1))
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) || len(data) > MaxBodyBytes {
		return ErrBodyTooLarge
	}
	if err != nil {
		return FieldErrors{{Field: "body", Message: "reading the body: " + err.Error()}}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeError(err)
	}
	if dec.More() {
		return FieldErrors{{Field: "body", Message: "has data after the JSON object"}}
	}
	return nil
}

func decodeError(err error) error {
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &typeErr):
		field := typeErr.Field
		if field == "" {
			field = "body"
		}
		return FieldErrors{{Field: field, Message: fmt.Sprintf("a JSON %s is not allowed here; want %s", typeErr.Value, typeErr.Type)}}
	case errors.As(err, &syntaxErr):
		return FieldErrors{{Field: "body", Message: fmt.Sprintf("not valid JSON at byte %d: %v", syntaxErr.Offset, err)}}
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		msg := fmt.Sprintf("unknown field %q", name)
		if alt, ok := unsupported[name]; ok {
			msg = alt
		}
		return FieldErrors{{Field: name, Message: msg}}
	case errors.Is(err, io.ErrUnexpectedEOF):
		return FieldErrors{{Field: "body", Message: "not valid JSON: it ends early"}}
	case errors.Is(err, io.EOF):
		return FieldErrors{{Field: "body", Message: "empty; want a JSON object"}}
	default:
		return FieldErrors{{Field: "body", Message: err.Error()}}
	}
}
