// Package adminclient is a typed Go client for the personas admin API
// (/api/v1/personas/admin), normally reached through the gateway.
//
// Every call takes a context, runs each attempt under a deadline, and maps
// error statuses to exported errors (ErrNotFound, ErrUnauthorized,
// ErrForbidden) carried by an *APIError. Calls are retried only when repeating
// them is safe: all four endpoints are (reads, a delete that may be repeated,
// and an upsert that is idempotent by email), and only after network errors
// and 5xx/429 answers, never after another 4xx.
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
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// BasePath is where the admin API lives on the gateway.
const BasePath = "/api/v1/personas/admin"

// Defaults for New.
const (
	DefaultTimeout = 30 * time.Second
	DefaultRetries = 2
	DefaultBackoff = 250 * time.Millisecond
	maxBackoff     = 5 * time.Second
	maxBodyBytes   = 16 << 20
)

// Client talks to one admin API with one bearer token. It is safe for
// concurrent use.
type Client struct {
	base       *url.URL
	token      string
	httpClient *http.Client
	timeout    time.Duration
	retries    int
	backoff    time.Duration
	userAgent  string
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient replaces the default http.Client (for a custom transport or
// TLS configuration). Its own Timeout, if any, still applies.
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.httpClient = hc } }

// WithTimeout bounds each attempt (request and reading the response).
// Zero or less disables the per-attempt deadline; ctx still applies.
func WithTimeout(d time.Duration) Option { return func(c *Client) { c.timeout = d } }

// WithRetries sets how many times a failed safe call is repeated (0: never).
func WithRetries(n int) Option { return func(c *Client) { c.retries = max(n, 0) } }

// WithBackoff sets the wait before the first retry; it doubles on each
// further retry (with jitter, capped at 5s). Zero retries immediately.
func WithBackoff(d time.Duration) Option { return func(c *Client) { c.backoff = max(d, 0) } }

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
		timeout:    DefaultTimeout,
		retries:    DefaultRetries,
		backoff:    DefaultBackoff,
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

// call describes one API call. retrySafe records the reason a call may be
// repeated; every current endpoint is safe, but a future non-idempotent one
// must say false.
type call struct {
	method    string
	path      string // below BasePath, escaped: "" or "/<escaped id>"
	query     url.Values
	body      any
	retrySafe bool
}

// do runs a call with retries and decodes a 2xx body into out (if non-nil).
func (c *Client) do(ctx context.Context, cl call, out any) error {
	var payload []byte
	if cl.body != nil {
		var err error
		if payload, err = json.Marshal(cl.body); err != nil {
			return fmt.Errorf("adminclient: %s %s: encode request: %w", cl.method, BasePath+cl.path, err)
		}
	}
	for attempt := 0; ; attempt++ {
		resp, err := c.once(ctx, cl, payload)
		if err == nil {
			if resp.status >= 200 && resp.status < 300 {
				if out == nil {
					return nil
				}
				return decodeSuccess(cl, resp.body, out)
			}
			err = newAPIError(cl.method, BasePath+cl.path, resp.status, resp.body)
		}
		if !cl.retrySafe || attempt >= c.retries || !retryable(ctx, err) {
			if attempt > 0 {
				return fmt.Errorf("%w (after %d attempts)", err, attempt+1)
			}
			return err
		}
		wait := c.wait(attempt, resp)
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return fmt.Errorf("adminclient: %s %s: %w (gave up retrying after: %w)", cl.method, BasePath+cl.path, ctx.Err(), err)
		case <-timer.C:
		}
	}
}

type response struct {
	status int
	header http.Header
	body   []byte
}

// once runs a single attempt under the per-attempt deadline.
func (c *Client) once(ctx context.Context, cl call, payload []byte) (*response, error) {
	actx := ctx
	if c.timeout > 0 {
		var cancel context.CancelFunc
		actx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	req, err := c.newRequest(actx, cl, payload)
	if err != nil {
		return nil, err
	}
	res, err := c.httpClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("adminclient: %s %s: %w", cl.method, BasePath+cl.path, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, maxBodyBytes))
	if err != nil {
		return nil, fmt.Errorf("adminclient: %s %s: read response: %w", cl.method, BasePath+cl.path, err)
	}
	return &response{status: res.StatusCode, header: res.Header, body: body}, nil
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
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.userAgent != "" {
		req.Header.Set("User-Agent", c.userAgent)
	}
	return req, nil
}

// retryable reports whether a failed attempt is worth repeating: network
// errors (including a per-attempt timeout) and 5xx/429 answers, but never
// once the caller's context is done, and never a 501.
func retryable(ctx context.Context, err error) bool {
	if ctx.Err() != nil {
		return false
	}
	var apiErr *APIError
	if errors.As(err, &apiErr) {
		return apiErr.Status == http.StatusTooManyRequests ||
			(apiErr.Status >= 500 && apiErr.Status != http.StatusNotImplemented)
	}
	return err != nil
}

// wait returns the pause before retry number attempt+1: exponential backoff
// with jitter, or the server's Retry-After (in seconds) when it asks for
// longer, capped at maxBackoff.
func (c *Client) wait(attempt int, resp *response) time.Duration {
	d := time.Duration(0)
	if c.backoff > 0 {
		d = min(c.backoff<<attempt, maxBackoff)
		d = d/2 + rand.N(d/2+1) // jitter spreads retries of several clients
	}
	if resp != nil {
		if secs, err := strconv.Atoi(resp.header.Get("Retry-After")); err == nil && secs > 0 {
			d = max(d, min(time.Duration(secs)*time.Second, maxBackoff))
		}
	}
	return d
}

func decodeSuccess(cl call, body []byte, out any) error {
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("adminclient: %s %s: decode response: %w (body: %s)", cl.method, BasePath+cl.path, err, excerpt(body))
	}
	return nil
}
