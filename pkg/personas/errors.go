package personas

import (
	"errors"
	"fmt"
	"strings"

	"github.com/mana/personas/pkg/errs"
)

var (
	// ErrNotFound: the persona (or row) does not exist.
	ErrNotFound = errors.New("not found")
	// ErrConflict: a unique key is taken (for example an email used by
	// another persona).
	ErrConflict = errors.New("conflict")
	// ErrSchemaNotReady: the schema is missing or older than the code.
	ErrSchemaNotReady = errors.New("database schema not ready")
	// ErrUnavailable: the database cannot be reached.
	ErrUnavailable = errors.New("database unavailable")
	// ErrRetry: a serialization failure or deadlock; the operation can be
	// repeated as a whole.
	ErrRetry = errors.New("transient database conflict")
	// ErrLeaseLost: the token is not the persona's current lease (another
	// runner holds it, an operator released it, or it expired). Its code is
	// Conflict: the edge answers 409 and the runner must stop driving the
	// persona.
	ErrLeaseLost = &errs.Error{Code: errs.Conflict, Title: "Lease lost",
		Message: "this lease token does not hold the persona's lease (released, expired or taken over)"}
)

// FieldError is one invalid input, named by its path in the request body
// (for example "actions[3].latencyMs").
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// ValidationError lists every problem found in an input.
type ValidationError struct {
	Details []FieldError
}

func (e *ValidationError) Error() string {
	parts := make([]string, 0, len(e.Details))
	for _, d := range e.Details {
		if d.Field == "" {
			parts = append(parts, d.Message)
			continue
		}
		parts = append(parts, d.Field+": "+d.Message)
	}
	return "invalid input: " + strings.Join(parts, "; ")
}

// Problems collects FieldErrors; its Err is nil when there are none.
type Problems []FieldError

// Add records a problem at field.
func (p *Problems) Add(field, format string, args ...any) {
	*p = append(*p, FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
}

// Err returns a *ValidationError, or nil when nothing was added.
func (p Problems) Err() error {
	if len(p) == 0 {
		return nil
	}
	return &ValidationError{Details: p}
}

// Invalid is a ValidationError with one problem.
func Invalid(field, message string) error {
	return &ValidationError{Details: []FieldError{{Field: field, Message: message}}}
}
