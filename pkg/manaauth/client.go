// Package manaauth owns every conversation with mana-auth, the platform's
// identity service (Better Auth with its jwt plugin): a typed HTTP Client for
// the endpoints listed in CONTRACT.md, and a Verifier for the admin JWTs it
// issues.
//
// The package never logs or returns a password, a bearer token or a service
// key: requests are logged by method, path and status only, and messages and
// excerpts carried by errors are scrubbed of the secrets of the request.
// Every log line passes the call's context, and every request carries the
// context's X-Request-Id (package reqid), so one id finds a request's calls
// here and on mana-auth's side. Retries follow package retry: only calls
// that are safe to repeat are retried after an ambiguous failure; register
// and login never.
package manaauth

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/mana/personas/pkg/reqid"
	"github.com/mana/personas/pkg/retry"
)

// Defaults for a Client and a Verifier.
const (
	DefaultTimeout         = 10 * time.Second
	DefaultPageSize        = 100
	DefaultAudience        = "mana"
	DefaultClockSkew       = 30 * time.Second
	DefaultRefreshInterval = 5 * time.Minute
	DefaultRefetchInterval = 10 * time.Second

	// JWKSPath is where mana-auth publishes its signing keys.
	JWKSPath = "/api/auth/jwks"

	maxBody = 1 << 20
)

// DefaultRetryPolicy is the Client's retry policy: package retry's, with a
// per-attempt deadline short enough that a hanging first attempt leaves
// time for a second within DefaultTimeout.
var DefaultRetryPolicy = retry.Policy{
	MaxAttempts: 3,
	BaseDelay:   100 * time.Millisecond,
	MaxDelay:    time.Second,
	PerAttempt:  4 * time.Second,
}

// Client calls mana-auth. It is safe for concurrent use.
type Client struct {
	base       string
	http       *http.Client
	serviceKey string
	timeout    time.Duration
	policy     retry.Policy
	pageSize   int
	log        *slog.Logger
}

// options is shared by Client and Verifier; each ignores what it does not use.
type options struct {
	serviceKey      string
	timeout         time.Duration
	policy          retry.Policy
	pageSize        int
	logger          *slog.Logger
	issuer          string
	audience        string
	skew            time.Duration
	refreshInterval time.Duration
	refetchInterval time.Duration
	clock           func() time.Time
	tokenCacheSize  int // verifier only: see WithTokenCache
}

// Option configures a Client or a Verifier.
type Option func(*options)

// WithServiceKey sets the X-Service-Key sent to internal endpoints (Client).
func WithServiceKey(key string) Option { return func(o *options) { o.serviceKey = key } }

// WithTimeout sets the deadline of one Client call including its retries,
// and of one JWKS fetch (Verifier). Default DefaultTimeout.
func WithTimeout(d time.Duration) Option { return func(o *options) { o.timeout = d } }

// WithRetryPolicy replaces DefaultRetryPolicy (Client). A policy of one
// attempt disables retries; the call's deadline (WithTimeout) still bounds
// all attempts together.
func WithRetryPolicy(p retry.Policy) Option { return func(o *options) { o.policy = p } }

// WithPageSize sets the page size FindUserByEmail uses (Client).
func WithPageSize(n int) Option { return func(o *options) { o.pageSize = n } }

// WithLogger sets the logger (Client and Verifier). Default: discard.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

func buildOptions(opts []Option) options {
	o := options{
		timeout:         DefaultTimeout,
		policy:          DefaultRetryPolicy,
		pageSize:        DefaultPageSize,
		audience:        DefaultAudience,
		skew:            DefaultClockSkew,
		refreshInterval: DefaultRefreshInterval,
		refetchInterval: DefaultRefetchInterval,
		clock:           time.Now,
		tokenCacheSize:  DefaultTokenCacheSize,
	}
	for _, opt := range opts {
		opt(&o)
	}
	if o.logger == nil {
		o.logger = slog.New(slog.DiscardHandler)
	}
	if o.timeout <= 0 {
		o.timeout = DefaultTimeout
	}
	if o.pageSize <= 0 {
		o.pageSize = DefaultPageSize
	}
	return o
}

// New returns a Client for the mana-auth at baseURL (scheme and host, e.g.
// http://localhost:3001; a trailing slash is ignored).
func New(baseURL string, opts ...Option) (*Client, error) {
	base, err := normalizeBaseURL(baseURL)
	if err != nil {
		return nil, err
	}
	o := buildOptions(opts)
	return &Client{
		base:       base,
		http:       &http.Client{},
		serviceKey: o.serviceKey,
		timeout:    o.timeout,
		policy:     o.policy,
		pageSize:   o.pageSize,
		log:        o.logger,
	}, nil
}

func normalizeBaseURL(raw string) (string, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		return "", fmt.Errorf("manaauth: parsing base URL: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("manaauth: base URL %q must be http(s)://host[:port]", raw)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("manaauth: base URL must not carry credentials, a query or a fragment")
	}
	return strings.TrimRight(u.String(), "/"), nil
}

// BaseURL returns the normalised base URL, which is also mana-auth's issuer.
func (c *Client) BaseURL() string { return c.base }

// request describes one call. Secrets listed in secrets are scrubbed from
// any response excerpt.
type request struct {
	op         string
	method     string
	path       string // already escaped
	query      url.Values
	body       any
	bearer     string
	serviceKey bool
	idempotent bool // safe to repeat after an ambiguous failure (see package retry)
	secrets    []string
	// mapStatus lets an operation map statuses beyond the common ones; it
	// returns nil to fall back to the defaults.
	mapStatus func(status int, code string) error
}

// errorBody is the union of the error shapes mana-auth uses: Better Auth's
// {code,message} and the platform's {error,message}.
type errorBody struct {
	Code    string `json:"code"`
	Error   string `json:"error"`
	Message string `json:"message"`
}

// do runs req under the client's deadline with the retry policy, and
// decodes a 2xx JSON body into out (when out is non-nil).
func (c *Client) do(ctx context.Context, req request, out any) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()

	var payload []byte
	if req.body != nil {
		var err error
		if payload, err = json.Marshal(req.body); err != nil {
			return fmt.Errorf("manaauth: %s: encoding request: %w", req.op, err)
		}
	}
	target := c.base + req.path
	if len(req.query) > 0 {
		target += "?" + req.query.Encode()
	}
	// Scrub what this request carried, and the service key always.
	secrets := append([]string{req.bearer, c.serviceKey}, req.secrets...)

	attempt := 0
	res, err := c.policy.Do(ctx, req.idempotent, func(actx context.Context) (*http.Response, error) {
		attempt++
		res, err := c.send(actx, req, target, payload)
		if err != nil {
			c.log.WarnContext(ctx, "mana-auth call failed", "op", req.op, "method", req.method, "path", req.path, "attempt", attempt,
				"err", excerpt([]byte(err.Error()), secrets...))
			return nil, err
		}
		level := slog.LevelDebug
		if res.StatusCode >= 500 || res.StatusCode == http.StatusTooManyRequests {
			level = slog.LevelWarn
		}
		c.log.Log(ctx, level, "mana-auth call", "op", req.op, "method", req.method, "path", req.path, "status", res.StatusCode, "attempt", attempt)
		return res, nil
	})
	if err != nil {
		if ctx.Err() != nil || isTimeout(err) {
			c.log.WarnContext(ctx, "mana-auth call timed out", "op", req.op, "method", req.method, "path", req.path, "attempts", attempt)
			return c.ctxError(ctx, req.op, err)
		}
		return &UpstreamError{Op: req.op, Err: err}
	}
	defer func() { _ = res.Body.Close() }()
	body, err := io.ReadAll(io.LimitReader(res.Body, maxBody))
	if err != nil {
		if ctx.Err() != nil || isTimeout(err) {
			return c.ctxError(ctx, req.op, err)
		}
		return &UpstreamError{Op: req.op, Status: res.StatusCode, Err: fmt.Errorf("reading response: %w", err)}
	}
	status := res.StatusCode
	switch {
	case status >= 200 && status < 300:
		if out == nil || status == http.StatusNoContent {
			return nil
		}
		if err := json.Unmarshal(body, out); err != nil {
			return &UpstreamError{Op: req.op, Status: status, Body: excerpt(body, secrets...), Err: fmt.Errorf("decoding response: %w", err)}
		}
		return nil
	case status >= 500:
		return &UpstreamError{Op: req.op, Status: status, Body: excerpt(body, secrets...)}
	}
	return c.statusError(req, status, body, secrets)
}

// send makes one attempt's request; the body is rebuilt from payload each
// time, so a retry sends the same bytes.
func (c *Client) send(ctx context.Context, req request, target string, payload []byte) (*http.Response, error) {
	var rd io.Reader
	if payload != nil {
		rd = bytes.NewReader(payload)
	}
	hr, err := http.NewRequestWithContext(ctx, req.method, target, rd)
	if err != nil {
		return nil, fmt.Errorf("building request: %w", err)
	}
	hr.Header.Set("Accept", "application/json")
	if payload != nil {
		hr.Header.Set("Content-Type", "application/json")
	}
	if id := reqid.From(ctx); id != "" {
		hr.Header.Set(reqid.Header, id)
	}
	if req.bearer != "" {
		hr.Header.Set("Authorization", "Bearer "+req.bearer)
	}
	if req.serviceKey {
		hr.Header.Set("X-Service-Key", c.serviceKey)
	}
	return c.http.Do(hr)
}

// ctxError turns an expired or cancelled context into the package's error.
func (c *Client) ctxError(ctx context.Context, op string, cause error) error {
	if errors.Is(ctx.Err(), context.Canceled) {
		return fmt.Errorf("manaauth: %s: %w", op, context.Canceled)
	}
	_ = cause // the cause (url.Error with the URL) adds nothing for callers
	return fmt.Errorf("manaauth: %s: %w: %w", op, ErrTimeout, context.DeadlineExceeded)
}

func isTimeout(err error) bool {
	var te interface{ Timeout() bool }
	return errors.As(err, &te) && te.Timeout()
}

// statusError maps a non-2xx, non-5xx answer. Code and Message are
// decoded here, once, from the whole body.
func (c *Client) statusError(req request, status int, body []byte, secrets []string) error {
	var eb errorBody
	_ = json.Unmarshal(body, &eb)
	code := eb.Code
	if code == "" {
		code = eb.Error
	}
	msg := excerpt([]byte(eb.Message), secrets...)
	code = excerpt([]byte(code), secrets...)
	mk := func(kind error) error {
		return &StatusError{Op: req.op, Status: status, Code: code, Message: msg, kind: kind}
	}
	if req.mapStatus != nil {
		if kind := req.mapStatus(status, code); kind != nil {
			if errors.Is(kind, ErrRefused) {
				return &RefusedError{StatusError: &StatusError{Op: req.op, Status: status, Code: code, Message: msg, kind: ErrRefused}}
			}
			return mk(kind)
		}
	}
	switch status {
	case http.StatusUnauthorized:
		return mk(ErrUnauthorized)
	case http.StatusForbidden:
		return mk(ErrForbidden)
	case http.StatusNotFound:
		return mk(ErrNotFound)
	case http.StatusConflict:
		return mk(ErrAlreadyExists)
	}
	return &UpstreamError{Op: req.op, Status: status, Body: excerpt(body, secrets...)}
}
