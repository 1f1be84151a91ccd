// Package openapitest checks real HTTP exchanges against a service's
// OpenAPI document, so the document cannot drift from the code: tests route
// their HTTP client through Transport and every response to a documented
// operation is validated (status, content type, body schema).
package openapitest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
)

// registerDecoders teaches the validator the streamed formats our
// documents use besides JSON (once per process: kin-openapi keeps
// decoders in a package-level table).
var registerDecoders = sync.OnceFunc(func() {
	// NDJSON: every line must be a JSON object; the body is checked as a string.
	openapi3filter.RegisterBodyDecoder("application/x-ndjson",
		func(r io.Reader, _ http.Header, _ *openapi3.SchemaRef, _ openapi3filter.EncodingFn) (any, error) {
			raw, err := io.ReadAll(r)
			if err != nil {
				return nil, err
			}
			for i, line := range bytes.Split(bytes.TrimSuffix(raw, []byte("\n")), []byte("\n")) {
				if len(line) > 0 && (line[0] != '{' || !json.Valid(line)) {
					return nil, fmt.Errorf("line %d is not a JSON object", i+1)
				}
			}
			return string(raw), nil
		})
	openapi3filter.RegisterBodyDecoder("text/csv", openapi3filter.FileBodyDecoder)
})

// Router loads and validates doc and returns a router matching any host.
// It fails t when the document is invalid.
func Router(t testing.TB, doc []byte) routers.Router {
	t.Helper()
	registerDecoders()
	spec, err := openapi3.NewLoader().LoadFromData(doc)
	if err != nil {
		t.Fatalf("openapitest: load document: %v", err)
	}
	if err := spec.Validate(context.Background()); err != nil {
		t.Fatalf("openapitest: invalid document: %v", err)
	}
	spec.Servers = nil // match any host: httptest picks the port
	r, err := gorillamux.NewRouter(spec)
	if err != nil {
		t.Fatalf("openapitest: router: %v", err)
	}
	return r
}

// Transport validates every response to a documented path against the
// document and reports mismatches with t.Errorf. Requests to undocumented
// paths pass unchecked (tests of unknown routes use them on purpose).
type Transport struct {
	T      testing.TB
	Router routers.Router
	Next   http.RoundTripper // http.DefaultTransport when nil
}

// Client returns an HTTP client whose exchanges are validated.
func Client(t testing.TB, doc []byte) *http.Client {
	return &http.Client{Transport: &Transport{T: t, Router: Router(t, doc)}}
}

// RoundTrip implements http.RoundTripper.
func (o *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	next := o.Next
	if next == nil {
		next = http.DefaultTransport
	}
	var reqBody []byte
	if req.Body != nil {
		var err error
		if reqBody, err = io.ReadAll(req.Body); err != nil {
			return nil, err
		}
		req.Body = io.NopCloser(bytes.NewReader(reqBody))
	}
	resp, err := next.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	route, params, ferr := o.Router.FindRoute(req)
	if ferr != nil {
		return resp, nil
	}
	respBody, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(respBody))
	checkReq := req.Clone(req.Context())
	checkReq.Body = io.NopCloser(bytes.NewReader(reqBody))
	input := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{
			Request: checkReq, PathParams: params, Route: route,
			Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc},
		},
		Status:  resp.StatusCode,
		Header:  resp.Header,
		Body:    io.NopCloser(bytes.NewReader(respBody)),
		Options: &openapi3filter.Options{IncludeResponseStatus: true},
	}
	if err := openapi3filter.ValidateResponse(req.Context(), input); err != nil {
		o.T.Errorf("openapitest: response to %s %s (%d) does not match the document: %v\nbody: %.300s",
			req.Method, req.URL.Path, resp.StatusCode, err, respBody)
	}
	return resp, nil
}
