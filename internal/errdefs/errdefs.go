// Package errdefs defines the kinds of error the instance service returns, as
// containerd's errdefs does. Code wraps a kind with %w and context; only the
// HTTP edge (internal/server) maps kinds to status codes, and the client maps
// them back, so errors.Is works on both sides of the wire.
package errdefs

import "errors"

// The kinds.
var (
	ErrInvalidArgument  = errors.New("invalid argument")
	ErrNotFound         = errors.New("not found")
	ErrAlreadyExists    = errors.New("already exists")
	ErrConflict         = errors.New("conflict")
	ErrGone             = errors.New("gone")
	ErrUnauthenticated  = errors.New("unauthenticated")
	ErrPermissionDenied = errors.New("permission denied")
	ErrExhausted        = errors.New("resource exhausted")
	ErrTooLarge         = errors.New("too large")
	ErrUnavailable      = errors.New("unavailable")
	// ErrPaymentRequired: a tenant's spending limit is reached.
	ErrPaymentRequired = errors.New("payment required")
)

// IsNotFound tells whether err is of kind ErrNotFound.
func IsNotFound(err error) bool { return errors.Is(err, ErrNotFound) }

// IsConflict tells whether err is of kind ErrConflict.
func IsConflict(err error) bool { return errors.Is(err, ErrConflict) }

// IsAlreadyExists tells whether err is of kind ErrAlreadyExists.
func IsAlreadyExists(err error) bool { return errors.Is(err, ErrAlreadyExists) }

// IsGone tells whether err is of kind ErrGone.
func IsGone(err error) bool { return errors.Is(err, ErrGone) }

// IsInvalid tells whether err is of kind ErrInvalidArgument.
func IsInvalid(err error) bool { return errors.Is(err, ErrInvalidArgument) }

// IsTooLarge tells whether err is of kind ErrTooLarge.
func IsTooLarge(err error) bool { return errors.Is(err, ErrTooLarge) }

// IsPermissionDenied tells whether err is of kind ErrPermissionDenied.
func IsPermissionDenied(err error) bool { return errors.Is(err, ErrPermissionDenied) }

// IsUnavailable tells whether err is of kind ErrUnavailable.
func IsUnavailable(err error) bool { return errors.Is(err, ErrUnavailable) }

// IsUnauthenticated tells whether err is of kind ErrUnauthenticated.
func IsUnauthenticated(err error) bool { return errors.Is(err, ErrUnauthenticated) }

// IsPaymentRequired tells whether err is of kind ErrPaymentRequired.
func IsPaymentRequired(err error) bool { return errors.Is(err, ErrPaymentRequired) }
