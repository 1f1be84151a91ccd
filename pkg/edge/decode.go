package edge

import (
	"errors"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/mana/personas/pkg/errs"
	"github.com/mana/personas/pkg/jsondec"
)

// ISOTime formats like JavaScript's toISOString, which existing callers
// were written against: UTC, milliseconds, "Z".
func ISOTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

// ISOTimePtr is ISOTime for an optional time (nil stays nil).
func ISOTimePtr(t *time.Time) *string {
	if t == nil {
		return nil
	}
	s := ISOTime(*t)
	return &s
}

// ReadJSON reads the request body as one JSON document with read, which
// walks it with r and reports type problems to p. Problems are left in p for
// the caller to merge with its validation; ReadJSON returns an error only
// when the body cannot be read as JSON at all: too large (413), not sent in
// time (408), the client gone, or malformed (400, problem at "body").
// Reading stops early (jsondec.ErrStopped) at the first element past an
// array's limit: that is no error here, the caller's validation reports it.
func ReadJSON(c echo.Context, p *errs.Problems, read func(r *jsondec.Reader)) error {
	r := jsondec.New(c.Request().Body, p)
	read(r)
	err := r.End()
	var syn *jsondec.SyntaxError
	switch {
	case err == nil, errors.Is(err, jsondec.ErrStopped):
		if p.Has("body") {
			// The body is not an object at all: that is the one problem.
			for _, fe := range p.List() {
				if fe.Field == "body" {
					var only errs.Problems
					only.Add("body", "%s", fe.Message)
					return only.Err()
				}
			}
		}
		return nil
	case errors.As(err, &syn):
		var only errs.Problems
		only.Add("body", "%s", syn.Error())
		return only.Err()
	}
	return err
}

// Unknown reports a field the request does not define. The runner's newer
// requests refuse unknown fields (a typo such as "limt" must not silently
// take a default); the historical batches ignore them.
func Unknown(p *errs.Problems, path string) {
	p.Add(path, "is not a field of this request")
}

// QueryInt reads an optional integer query parameter; a value that is not
// an integer is a problem. Ranges are the store's.
func QueryInt(c echo.Context, name string, p *errs.Problems) *int {
	if !c.QueryParams().Has(name) {
		return nil
	}
	n, err := strconv.Atoi(c.QueryParam(name))
	if err != nil {
		p.Add(name, "must be an integer")
		return nil
	}
	return &n
}

// checkParams refuses path and query parameters that are not valid UTF-8 or
// contain NUL, before any handler or query sees them.
func checkParams(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		var p errs.Problems
		for i, name := range c.ParamNames() {
			if i < len(c.ParamValues()) {
				checkParam(&p, name, c.ParamValues()[i])
			}
		}
		for name, values := range c.QueryParams() {
			checkParam(&p, name, name)
			for _, v := range values {
				checkParam(&p, name, v)
			}
		}
		if err := p.Err(); err != nil {
			return err
		}
		return next(c)
	}
}

func checkParam(p *errs.Problems, name, v string) {
	if !utf8.ValidString(name) || strings.IndexByte(name, 0) >= 0 {
		name = "query"
	}
	if !utf8.ValidString(v) || strings.IndexByte(v, 0) >= 0 {
		p.Add(name, "must be valid UTF-8 without NUL characters")
	}
}
