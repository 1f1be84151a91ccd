package httpx

import (
	"context"
	"errors"
	"log/slog"
	"net/http"

	"github.com/labstack/echo/v4"
)

// Error is an error with its HTTP rendering. Code is the "error" field of
// the body (for example "ValidationError" or "Persona not found").
type Error struct {
	Status  int    `json:"-"`
	Code    string `json:"error"`
	Message string `json:"message,omitempty"`
	Details any    `json:"details,omitempty"`
	cause   error
}

func (e *Error) Error() string {
	if e.Message != "" {
		return e.Code + ": " + e.Message
	}
	return e.Code
}

func (e *Error) Unwrap() error { return e.cause }

// NewError returns an Error with a status, code and message.
func NewError(status int, code, message string) *Error {
	return &Error{Status: status, Code: code, Message: message}
}

// BadRequest is a 400 with a message.
func BadRequest(message string) *Error {
	return NewError(http.StatusBadRequest, "Bad Request", message)
}

// WithCause keeps err in the chain (for logs) without showing it to clients.
func (e *Error) WithCause(err error) *Error { e.cause = err; return e }

// errorHandler renders every error a handler or middleware returns.
func errorHandler(logger *slog.Logger, mapErr func(error) *Error) echo.HTTPErrorHandler {
	return func(err error, c echo.Context) {
		if c.Response().Committed {
			return
		}
		herr := toError(err, mapErr)
		c.Set(ctxKeyError, err)
		if herr.Status >= 500 {
			RequestLogger(c, logger).ErrorContext(c.Request().Context(), "request failed",
				"status", herr.Status, "error", err.Error())
		}
		if c.Request().Method == http.MethodHead {
			_ = c.NoContent(herr.Status)
			return
		}
		_ = c.JSON(herr.Status, herr)
	}
}

func toError(err error, mapErr func(error) *Error) *Error {
	var herr *Error
	if errors.As(err, &herr) {
		return herr
	}
	if mapErr != nil {
		if m := mapErr(err); m != nil {
			return m
		}
	}
	var maxErr *http.MaxBytesError
	if errors.As(err, &maxErr) {
		return NewError(http.StatusRequestEntityTooLarge, "Payload Too Large", "request body exceeds the limit")
	}
	var eerr *echo.HTTPError
	if errors.As(err, &eerr) {
		switch eerr.Code {
		case http.StatusNotFound:
			return NewError(http.StatusNotFound, "Not Found", "no such endpoint")
		case http.StatusMethodNotAllowed:
			return NewError(http.StatusMethodNotAllowed, "Method Not Allowed", "")
		case http.StatusRequestEntityTooLarge:
			return NewError(http.StatusRequestEntityTooLarge, "Payload Too Large", "request body exceeds the limit")
		}
		if eerr.Code >= 400 && eerr.Code < 500 {
			return NewError(eerr.Code, http.StatusText(eerr.Code), "")
		}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return NewError(http.StatusServiceUnavailable, "Service Unavailable", "the request took too long; retry later")
	}
	return NewError(http.StatusInternalServerError, "Internal Server Error", "")
}
