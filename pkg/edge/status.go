package edge

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"syscall"

	"github.com/labstack/echo/v4"

	"github.com/mana/personas/pkg/errs"
)

// statusTable is where every status the services answer comes from: an
// error's code decides its HTTP status and the default "error" string of
// the body. A newcomer asking "where does this 409 come from" starts here,
// then greps for errs.Conflict.
var statusTable = map[errs.Code]struct {
	status int
	title  string
}{
	errs.Invalid:          {http.StatusBadRequest, "ValidationError"},
	errs.Unauthorized:     {http.StatusUnauthorized, "Unauthorized"},
	errs.Forbidden:        {http.StatusForbidden, "Forbidden"},
	errs.NotFound:         {http.StatusNotFound, "Not Found"},
	errs.MethodNotAllowed: {http.StatusMethodNotAllowed, "Method Not Allowed"},
	errs.Timeout:          {http.StatusRequestTimeout, "Request Timeout"},
	errs.Conflict:         {http.StatusConflict, "Conflict"},
	errs.TooLarge:         {http.StatusRequestEntityTooLarge, "Payload Too Large"},
	errs.Canceled:         {StatusClientClosed, "Client Closed Request"},
	errs.Internal:         {http.StatusInternalServerError, "Internal Server Error"},
	errs.UpstreamFailed:   {http.StatusBadGateway, "Bad Gateway"},
	errs.Unavailable:      {http.StatusServiceUnavailable, "Service Unavailable"},
	errs.Overloaded:       {http.StatusServiceUnavailable, "Service Unavailable"},
	errs.UpstreamTimeout:  {http.StatusGatewayTimeout, "Gateway Timeout"},
}

// StatusClientClosed is nginx's 499: the client went away before the
// answer. It is logged and counted, never sent (nobody is listening).
const StatusClientClosed = 499

// body is the contract's error JSON.
type body struct {
	Error   string            `json:"error"`
	Message string            `json:"message,omitempty"`
	Details []errs.FieldError `json:"details,omitempty"`
	// More counts problems left out of details (errs.MaxProblems).
	More int `json:"moreProblems,omitempty"`
}

// Render returns the status and body for err. Errors without a code are
// classified by what they are (an oversize body, a timeout reading the
// body, echo's routing errors, a context that ended); anything else is a
// 500 whose detail stays in the log.
func Render(err error) (int, *errs.Error) {
	e := classify(err)
	row, ok := statusTable[e.Code]
	if !ok {
		row = statusTable[errs.Internal]
	}
	if e.Title == "" {
		c := *e
		c.Title = row.title
		e = &c
	}
	return row.status, e
}

func classify(err error) *errs.Error {
	if e := errs.As(err); e != nil {
		return e
	}
	var maxErr *http.MaxBytesError
	if errors.As(err, &maxErr) {
		return errs.E(errs.TooLarge, "request body exceeds %d bytes", maxErr.Limit)
	}
	var eerr *echo.HTTPError
	if errors.As(err, &eerr) {
		switch eerr.Code {
		case http.StatusNotFound:
			return errs.E(errs.NotFound, "no such endpoint")
		case http.StatusMethodNotAllowed:
			return &errs.Error{Code: errs.MethodNotAllowed}
		case http.StatusRequestEntityTooLarge:
			return errs.E(errs.TooLarge, "request body exceeds the limit")
		}
		if eerr.Code >= 400 && eerr.Code < 500 {
			return &errs.Error{Code: errs.Invalid, Title: http.StatusText(eerr.Code)}
		}
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		// The server's read deadline passed while the body was arriving.
		return errs.E(errs.Timeout, "the request body did not arrive in time")
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, syscall.ECONNRESET) {
		return errs.E(errs.Canceled, "the client went away")
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return errs.E(errs.Overloaded, "overloaded: the request ran out of time; retry")
	}
	return &errs.Error{Code: errs.Internal}
}

// errorHandler renders every error a handler or middleware returns.
func errorHandler(logger *slog.Logger) echo.HTTPErrorHandler {
	return func(err error, c echo.Context) {
		if c.Response().Committed {
			return
		}
		status, e := Render(err)
		c.Set(ctxKeyError, err)
		if status >= 500 {
			logger.ErrorContext(c.Request().Context(), "request failed",
				"status", status, "code", string(e.Code), "error", err.Error())
		}
		if status == http.StatusServiceUnavailable {
			// Every 503 may be retried; say when.
			secs := max(1, int(e.RetryAfter.Seconds()+0.999))
			c.Response().Header().Set("Retry-After", strconv.Itoa(secs))
		}
		if status == StatusClientClosed {
			c.Response().WriteHeader(status)
			return
		}
		if c.Request().Method == http.MethodHead {
			_ = c.NoContent(status)
			return
		}
		b := body{Error: e.Title, Message: e.Message, Details: e.Details, More: e.More}
		if e.Code == errs.Internal {
			b.Message = "" // never a detail of a bug
		}
		_ = c.JSON(status, b)
	}
}
