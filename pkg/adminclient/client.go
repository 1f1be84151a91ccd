// Package adminclient is a typed Go client for the personas admin API
// (/api/v1/personas/admin), normally reached through the gateway.
//
// Every call takes a context, runs each attempt under a deadline, and maps
// error statuses to exported errors (ErrNotFound, ErrUnauthorized,
// ErrForbidden) carried by an *APIError. Retries follow package retry (network
// errors, 429, 502/503/504; never another 4xx or a 500); all four endpoints
// are safe to repeat (reads, a delete that may be repeated, and an upsert
// that is idempotent by email). Every request carries the context's
// X-Request-Id (package reqid).
//
// The client never logs, and neither the bearer token nor a password ever
// appears in an error it returns.
package adminclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/mana/personas/pkg/reqid"
	"github.com/mana/personas/pkg/retry"
)

// BasePath is where the admin API lives on the gateway.
const BasePath = "/api/v1/personas/admin"

const maxBodyBytes = 16 << 20

// DefaultRetryPolicy is package retry's policy with an operator's patience:
// an upsert registers a user in mana-auth, so an attempt may take a while.
var DefaultRetryPolicy = retry.Policy{
	MaxAttempts: 3,
	BaseDelay:   250 * time.Millisecond,
	MaxDelay:    5 * time.Second,
	PerAttempt:  30 * time.Second,
}

// Client talks to one admin API with one bearer token. It is safe for
// concurrent use.
type Client struct {
	base       *url.URL
	token      string
	httpClient *http.Client
	policy     retry.Policy
	userAgent  string
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient replaces the default http.Client (for a custom transport or
// TLS configuration). Its own Timeout, if any, still applies.
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.httpClient = hc } }

// WithRetryPolicy replaces DefaultRetryPolicy.
func WithRetryPolicy(p retry.Policy) Option { return func(c *Client) { c.policy = p } }

// WithRetries sets how many times a failed call may be repeated (0: never),
// keeping the rest of the policy.
func WithRetries(n int) Option { return func(c *Client) { c.policy.MaxAttempts = max(n, 0) + 1 } }

// WithUserAgent sets the User-Agent header.
func WithUserAgent(ua string) Option { return func(c *Client) { c.userAgent = ua } }

// New returns a client for the admin API at baseURL (the gateway, e.g.
// http://localhost:3060; a path prefix is kept) authenticating with the
// admin JWT token.
func New(baseURL, token string, opts ...Option) (*Client, error) {
	base, err := parseBaseURL(baseURL)
	if err != nil {
		return nil, err
	}
	if token == "" {
		return nil, errors.New("adminclient: an admin token is required")
	}
	if strings.ContainsFunc(token, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return nil, errors.New("adminclient: the token contains whitespace or control characters")
	}
	c := &Client{
		base:       base,
		token:      token,
		httpClient: http.DefaultClient,
		policy:     DefaultRetryPolicy,
		userAgent:  "mana-personas-adminclient",
	}
	for _, opt := range opts {
		opt(c)
	}
	if c.httpClient == nil {
		c.httpClient = http.DefaultClient
	}
	return c, nil
}

func parseBaseURL(raw string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		return nil, fmt.Errorf("adminclient: base URL %q: %w", raw, err)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("adminclient: base URL %q: scheme must be http or https", raw)
	case u.Host == "":
		return nil, fmt.Errorf("adminclient: base URL %q: no host", raw)
	case u.User != nil:
		// Credentials in the URL would end up in error messages.
		return nil, errors.New("adminclient: base URL must not carry credentials; pass the token instead")
	case u.RawQuery != "" || u.Fragment != "":
		return nil, fmt.Errorf("adminclient: base URL %q: must not have a query or fragment", raw)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	return u, nil
}

// BaseURL returns the base URL the client was built with.
func (c *Client) BaseURL() string { return c.base.String() }

// call describes one API call. idempotent says whether it may be repeated
// after an ambiguous failure; every current endpoint is, but a future
// non-idempotent one must say false.
type call struct {
	method     string
	path       string // below BasePath, escaped: "" or "/<escaped id>"
	query      url.Values
	body       any
	idempotent bool
}

// do runs a call under the retry policy and decodes a 2xx body into out
// (if non-nil).
func (c *Client) do(ctx context.Context, cl call, out any) error {
	var payload []byte
	if cl.body != nil {
		var err error
		if payload, err = json.Marshal(cl.body); err != nil {
			return fmt.Errorf("adminclient: %s %s: encode request: %w", cl.method, BasePath+cl.path, err)
		}
	}
	attempts := 0
	res, err := c.policy.Do(ctx, cl.idempotent, func(actx context.Context) (*http.Response, error) {
		attempts++
		req, err := c.newRequest(actx, cl, payload)
		if err != nil {
			return nil, err
		}
		return c.httpClient.Do(req)
	})
	if err != nil {
		return failed(attempts, fmt.Errorf("adminclient: %s %s: %w", cl.method, BasePath+cl.path, err))
	}
	defer func() { _ = res.Body.Close() }()
	body, err := io.ReadAll(io.LimitReader(res.Body, maxBodyBytes))
	if err != nil {
		return failed(attempts, fmt.Errorf("adminclient: %s %s: read response: %w", cl.method, BasePath+cl.path, err))
	}
	if res.StatusCode < 200 || res.StatusCode > 299 {
		return failed(attempts, newAPIError(cl.method, BasePath+cl.path, res.StatusCode, body))
	}
	if out == nil {
		return nil
	}
	return decodeSuccess(cl, body, out)
}

// failed says how many attempts an error took, when more than one.
func failed(attempts int, err error) error {
	if attempts > 1 {
		return fmt.Errorf("%w (after %d attempts)", err, attempts)
	}
	return err
}

// newRequest builds the HTTP request of one attempt.
func (c *Client) newRequest(ctx context.Context, cl call, payload []byte) (*http.Request, error) {
	// cl.path is already escaped (an id may contain '/' or '?').
	u, err := url.Parse(c.base.String() + BasePath + cl.path)
	if err != nil {
		return nil, fmt.Errorf("adminclient: %s %s: build URL: %w", cl.method, BasePath+cl.path, err)
	}
	if len(cl.query) > 0 {
		u.RawQuery = cl.query.Encode()
	}
	var body io.Reader
	if payload != nil {
		body = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(ctx, cl.method, u.String(), body)
	if err != nil {
		return nil, fmt.Errorf("adminclient: %s %s: build request: %w", cl.method, BasePath+cl.path, err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", "application/json")
	if id := reqid.From(ctx); id != "" {
		req.Header.Set(reqid.Header, id)
	}
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.userAgent != "" {
		req.Header.Set("User-Agent", c.userAgent)
	}
	return req, nil
}

func decodeSuccess(cl call, body []byte, out any) error {
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("adminclient: %s %s: decode response: %w (body: %s)", cl.method, BasePath+cl.path, err, excerpt(body))
	}
	return nil
}
