// Package errs is the one error vocabulary of the personas backend. Every
// failure a request can meet is an *Error with a Code; the store, the
// mana-auth client's callers and the HTTP edge all speak it, and exactly one
// function (edge's status table) turns a Code into an HTTP status and the
// contract's JSON body {"error", "message"?, "details"?}.
//
// The package knows nothing about HTTP or SQL, so every layer can import it.
// Input problems are collected in Problems, which is the single type for
// "a list of field errors" from the JSON decoder to the store's validation.
package errs

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Code is the kind of a failure. The edge maps each to one HTTP status.
type Code string

// The codes. The comment gives the HTTP status the edge renders.
const (
	Invalid          Code = "invalid"            // 400: input problems, with Details
	Unauthorized     Code = "unauthorized"       // 401: missing or bad credentials
	Forbidden        Code = "forbidden"          // 403: authenticated, not allowed
	NotFound         Code = "not_found"          // 404
	MethodNotAllowed Code = "method_not_allowed" // 405
	Timeout          Code = "timeout"            // 408: the client did not send its body in time
	Conflict         Code = "conflict"           // 409
	TooLarge         Code = "too_large"          // 413
	Canceled         Code = "canceled"           // 499: the client went away (nginx's convention)
	Internal         Code = "internal"           // 500: a bug; detail goes to the log only
	UpstreamFailed   Code = "upstream_failed"    // 502: mana-auth failed or broke its contract
	Unavailable      Code = "unavailable"        // 503: the database (or a dependency) is down; retry
	Overloaded       Code = "overloaded"         // 503: the service ran out of its deadline; retry
	UpstreamTimeout  Code = "upstream_timeout"   // 504: mana-auth did not answer in time
)

// Error is a failure with its Code. Title, when set, replaces the default
// "error" string of the code in the response body (the contracts fix some,
// such as "Persona not found"); Message is shown to the client; cause is
// kept for logs only.
type Error struct {
	Code    Code
	Title   string
	Message string
	Details []FieldError
	// More counts problems beyond those in Details (see MaxProblems).
	More int
	// RetryAfter, when positive, is sent as the Retry-After header.
	RetryAfter time.Duration
	cause      error
}

func (e *Error) Error() string {
	s := string(e.Code)
	if e.Title != "" {
		s += " (" + e.Title + ")"
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	if e.cause != nil {
		s += ": " + e.cause.Error()
	}
	return s
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.cause }

// Is lets errors.Is match two *Error values by Code and Title, so a
// sentinel such as personas.ErrNotFound matches every error derived from it
// with Wrap.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code && t.Title == e.Title && (t.Message == "" || t.Message == e.Message)
}

// E returns an error with a code and a message (fmt-style).
func E(code Code, format string, args ...any) *Error {
	msg := format
	if len(args) > 0 {
		msg = fmt.Sprintf(format, args...)
	}
	return &Error{Code: code, Message: msg}
}

// Wrap returns an error with code and message whose cause is err (kept for
// logs and errors.Is, never shown to clients).
func Wrap(err error, code Code, message string) *Error {
	return &Error{Code: code, Message: message, cause: err}
}

// WithCause returns a copy of e with err as its cause.
func (e *Error) WithCause(err error) *Error {
	c := *e
	c.cause = err
	return &c
}

// WithMessage returns a copy of e with another message.
func (e *Error) WithMessage(format string, args ...any) *Error {
	c := *e
	c.Message = fmt.Sprintf(format, args...)
	return &c
}

// CodeOf returns the code of the first *Error in err's chain, or Internal.
func CodeOf(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return Internal
}

// As returns the first *Error in err's chain, or nil.
func As(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return nil
}

// FieldError is one invalid input, named by its path in the request
// ("actions[3].latencyMs", "moduleMix.todo", "limit").
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// MaxProblems bounds how many problems one error lists; the rest are only
// counted, so a hostile request cannot earn an error larger than itself.
const MaxProblems = 50

// Problems collects the problems of one request, one per field: a field
// already reported is not reported again, so a type error found while
// decoding is not followed by a range error from validation for the same
// field. The zero value is ready to use.
type Problems struct {
	list []FieldError
	more int
}

// Add records a problem at field unless field already has one.
func (p *Problems) Add(field, format string, args ...any) {
	if p.Has(field) {
		return
	}
	if len(p.list) >= MaxProblems {
		p.more++
		return
	}
	msg := format
	if len(args) > 0 {
		msg = fmt.Sprintf(format, args...)
	}
	p.list = append(p.list, FieldError{Field: field, Message: msg})
}

// Has reports whether field, or a field it is part of, already has a
// problem: once "actions[3]" is not an object, "actions[3].tickId" is not
// reported as well.
func (p *Problems) Has(field string) bool {
	for i := range p.list {
		f := p.list[i].Field
		if f == field {
			return true
		}
		if len(field) > len(f) && strings.HasPrefix(field, f) && (field[len(f)] == '.' || field[len(f)] == '[') {
			return true
		}
	}
	return false
}

// Len is the number of problems, counted ones included.
func (p *Problems) Len() int { return len(p.list) + p.more }

// List returns the listed problems.
func (p *Problems) List() []FieldError { return p.list }

// AddFrom adds the problems of an Invalid error (fields already reported
// are skipped), so a validation run after decoding reports only what the
// decoder did not. Other errors are ignored.
func (p *Problems) AddFrom(err error) {
	e := As(err)
	if e == nil || e.Code != Invalid {
		return
	}
	for _, fe := range e.Details {
		p.Add(fe.Field, "%s", fe.Message)
	}
}

// Err returns the problems as an Invalid *Error, or nil when there are none.
// Its message names the first problem and how many follow, without
// repeating the list.
func (p *Problems) Err() error {
	if p.Len() == 0 {
		return nil
	}
	first := p.list[0]
	msg := first.Message
	if first.Field != "" {
		msg = first.Field + ": " + first.Message
	}
	if n := p.Len() - 1; n > 0 {
		msg += " (and " + strconv.Itoa(n) + " more problem"
		if n > 1 {
			msg += "s"
		}
		msg += ")"
	}
	details := make([]FieldError, len(p.list))
	copy(details, p.list)
	return &Error{Code: Invalid, Message: msg, Details: details, More: p.more}
}

// InvalidField is an Invalid error with one problem.
func InvalidField(field, format string, args ...any) error {
	var p Problems
	p.Add(field, format, args...)
	return p.Err()
}
