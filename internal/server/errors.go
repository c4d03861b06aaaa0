package server

import (
	"net/http"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/httpapi"
)

// StatusOf turns an error into the body of an error answer.
func StatusOf(err error) apiv1.Status { return httpapi.StatusOf(err) }

func writeError(w http.ResponseWriter, r *http.Request, err error) { httpapi.WriteError(w, r, err) }

func writeJSON(w http.ResponseWriter, code int, v any) { httpapi.WriteJSON(w, code, v) }

// badRequest is a request the server can't even read (a bad query parameter).
func badRequest(field, msg string) error {
	return httpapi.Invalid(apiv1.FieldErrors{{Field: field, Message: msg}})
}
