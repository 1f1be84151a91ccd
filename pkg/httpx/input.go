package httpx

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/mana/personas/pkg/jsonin"
)

// ReadBody reads the request body, which New bounds: an oversize body is
// returned as the *http.MaxBytesError the error handler renders as 413.
func ReadBody(c echo.Context) ([]byte, error) {
	body, err := io.ReadAll(c.Request().Body)
	if err != nil {
		var maxErr *http.MaxBytesError
		if errors.As(err, &maxErr) {
			return nil, err
		}
		return nil, BadRequest("could not read request body")
	}
	return body, nil
}

// Problems collects input problems (personas.Problems is one).
type Problems interface {
	jsonin.Reporter
	Err() error
}

// ParseObject parses body as a JSON object. Malformed JSON, or JSON that
// is not an object, is reported to p (field "body", with the parser's
// complaint) and returned as p.Err(), so callers answer it like any other
// invalid input.
func ParseObject(body []byte, p Problems) (jsonin.Object, error) {
	obj, ok, err := jsonin.ParseObject(body, p)
	if err != nil {
		p.Add("body", "%s", strings.TrimPrefix(err.Error(), "request body "))
		return jsonin.Object{}, p.Err()
	}
	if !ok {
		return jsonin.Object{}, p.Err()
	}
	return obj, nil
}

// ReadObject reads and parses the body as a JSON object (see ReadBody and
// ParseObject).
func ReadObject(c echo.Context, p Problems) (jsonin.Object, error) {
	body, err := ReadBody(c)
	if err != nil {
		return jsonin.Object{}, err
	}
	return ParseObject(body, p)
}

// ISOTime formats like JavaScript's toISOString, which existing callers
// were written against: UTC, milliseconds, "Z".
func ISOTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }
