// Package internalclient is the typed Go client for the personas internal
// API (the runner's side): ListDue, Claim, PostActions and PostFeedback,
// and the tick and lease protocol in ticks.go.
//
// Every call has a deadline. Calls are retried on network errors and 5xx
// answers with jittered backoff: this is safe because every write of the
// internal API is idempotent (deterministic row ids, insert-or-ignore), and
// a repeated claim at worst leases more personas to the same runner. 4xx
// answers are returned at once as *APIError.
package internalclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// ErrNotFound is returned (wrapped in *APIError) for an unknown persona.
var ErrNotFound = errors.New("persona not found")

// APIError is a non-2xx answer, with the contract's JSON body.
type APIError struct {
	Status  int
	Code    string       `json:"error"`
	Message string       `json:"message"`
	Details []FieldError `json:"details"`
}

// FieldError is one validation problem.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

func (e *APIError) Error() string {
	s := fmt.Sprintf("personas internal API: %d %s", e.Status, e.Code)
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

// Is makes errors.Is(err, ErrNotFound) true for a 404 and
// errors.Is(err, ErrLeaseLost) for a 409 (the internal API's only
// conflict).
func (e *APIError) Is(target error) bool {
	return (target == ErrNotFound && e.Status == http.StatusNotFound) ||
		(target == ErrLeaseLost && e.Status == http.StatusConflict)
}

// Client talks to personas-internal (directly or through the gateway).
type Client struct {
	base     string
	key      string
	appID    string
	hc       *http.Client
	timeout  time.Duration
	attempts int
	backoff  time.Duration
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient replaces the HTTP client.
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.hc = hc } }

// WithTimeout bounds each attempt (default 10 s).
func WithTimeout(d time.Duration) Option { return func(c *Client) { c.timeout = d } }

// WithRetries sets how many attempts a call makes in all (default 3) and
// the first backoff (default 200 ms, doubling).
func WithRetries(attempts int, backoff time.Duration) Option {
	return func(c *Client) { c.attempts, c.backoff = max(attempts, 1), backoff }
}

// WithAppID sends X-App-Id on every request.
func WithAppID(id string) Option { return func(c *Client) { c.appID = id } }

// New returns a client for baseURL (for example http://localhost:3060)
// authenticating with serviceKey.
func New(baseURL, serviceKey string, opts ...Option) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("internalclient: base URL %q must be http(s)://host[:port]", baseURL)
	}
	c := &Client{
		base: strings.TrimRight(baseURL, "/") + "/api/v1/personas/internal",
		key:  serviceKey, hc: &http.Client{}, timeout: 10 * time.Second, attempts: 3, backoff: 200 * time.Millisecond,
	}
	for _, o := range opts {
		o(c)
	}
	return c, nil
}

// DuePersona is a persona the runner should drive.
type DuePersona struct {
	UserID       string             `json:"userId"`
	Email        string             `json:"email"`
	Archetype    string             `json:"archetype"`
	SystemPrompt string             `json:"systemPrompt"`
	ModuleMix    map[string]float64 `json:"moduleMix"`
	TickCadence  string             `json:"tickCadence"`
	LastActiveAt *time.Time         `json:"lastActiveAt"`
	// Attempt is 1 plus the persona's consecutive failures (for logs).
	Attempt int `json:"attempt"`
	// LeaseToken and LeaseExpiresAt are set by Claim: the token proves
	// holding the lease (send it with WithLeaseToken, RenewLease,
	// ReleaseLease).
	LeaseToken     string     `json:"leaseToken,omitempty"`
	LeaseExpiresAt *time.Time `json:"leaseExpiresAt,omitempty"`
}

// DueResponse is the answer of ListDue and Claim.
type DueResponse struct {
	Personas       []DuePersona `json:"personas"`
	ServerTime     time.Time    `json:"serverTime"`
	LeaseExpiresAt *time.Time   `json:"leaseExpiresAt,omitempty"`
	// Paused: operators paused the fleet; Personas is empty.
	Paused bool `json:"paused,omitempty"`
}

// ListDue returns due personas without leasing them; limit 0 means the
// server's default.
func (c *Client) ListDue(ctx context.Context, limit int) (*DueResponse, error) {
	path := "/due"
	if limit > 0 {
		path += "?limit=" + strconv.Itoa(limit)
	}
	var out DueResponse
	return &out, c.do(ctx, http.MethodGet, path, nil, &out)
}

// ClaimRequest leases up to Limit due personas to RunnerID for
// LeaseSeconds (zero values mean the server's defaults).
type ClaimRequest struct {
	RunnerID     string `json:"runnerId"`
	Limit        int    `json:"limit,omitempty"`
	LeaseSeconds int    `json:"leaseSeconds,omitempty"`
}

// Claim leases due personas to one runner. Unlike the other calls it is
// retried only when the request cannot have reached the server (the
// connection was refused): a claim whose answer was lost has leased
// personas that a repeated claim would not return, so they would sit idle
// until their lease ran out.
func (c *Client) Claim(ctx context.Context, req ClaimRequest) (*DueResponse, error) {
	var out DueResponse
	return &out, c.doWith(ctx, http.MethodPost, "/due/claim", req, &out, false)
}

// Action is one tool call. Seq is the row's position in the whole tick;
// set it when a tick is posted in several batches.
type Action struct {
	TickID       string  `json:"tickId"`
	Seq          *int    `json:"seq,omitempty"`
	ToolName     string  `json:"toolName"`
	InputHash    *string `json:"inputHash,omitempty"`
	Result       string  `json:"result"`
	ErrorMessage *string `json:"errorMessage,omitempty"`
	LatencyMs    *int    `json:"latencyMs,omitempty"`
}

// Feedback is a rating (1-5) of one module in one tick.
type Feedback struct {
	TickID string  `json:"tickId"`
	Module string  `json:"module"`
	Rating int     `json:"rating"`
	Notes  *string `json:"notes,omitempty"`
}

// WriteResult says how many rows were inserted and how many were already
// stored.
type WriteResult struct {
	OK         bool `json:"ok"`
	Written    int  `json:"written"`
	Duplicates int  `json:"duplicates"`
	// StaleLease: the lease token sent no longer holds the lease; the rows
	// were stored all the same.
	StaleLease bool `json:"staleLease,omitempty"`
}

// PostActions appends actions for a persona (idempotent). Pass
// WithLeaseToken when the persona was claimed.
func (c *Client) PostActions(ctx context.Context, personaID string, actions []Action, opts ...CallOption) (*WriteResult, error) {
	var out WriteResult
	return &out, c.with(opts).do(ctx, http.MethodPost, "/"+url.PathEscape(personaID)+"/actions", map[string]any{"actions": actions}, &out)
}

// PostFeedback stores ratings for a persona (idempotent). Pass
// WithLeaseToken when the persona was claimed.
func (c *Client) PostFeedback(ctx context.Context, personaID string, feedback []Feedback, opts ...CallOption) (*WriteResult, error) {
	var out WriteResult
	return &out, c.with(opts).do(ctx, http.MethodPost, "/"+url.PathEscape(personaID)+"/feedback", map[string]any{"feedback": feedback}, &out)
}

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	return c.doWith(ctx, method, path, in, out, true)
}

// doWith makes the call; idempotent calls are retried on any network error
// and on 5xx, the others only when the connection could not be made.
func (c *Client) doWith(ctx context.Context, method, path string, in, out any, idempotent bool) error {
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return fmt.Errorf("internalclient: encode request: %w", err)
		}
	}
	delay := c.backoff
	var lastErr error
	for attempt := 1; attempt <= c.attempts; attempt++ {
		retry, err := c.once(ctx, method, path, body, out)
		if err == nil || !retry {
			return err
		}
		if !idempotent && !notSent(err) {
			return err
		}
		lastErr = err
		if attempt == c.attempts {
			break
		}
		wait := delay/2 + rand.N(delay/2+1)
		select {
		case <-ctx.Done():
			return fmt.Errorf("internalclient: %s %s: %w (last error: %w)", method, path, ctx.Err(), lastErr)
		case <-time.After(wait):
		}
		delay *= 2
	}
	return lastErr
}

// once makes one attempt and says whether a failure may be retried.
func (c *Client) once(ctx context.Context, method, path string, body []byte, out any) (retry bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return false, fmt.Errorf("internalclient: %w", err)
	}
	req.Header.Set("X-Service-Key", c.key)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.appID != "" {
		req.Header.Set("X-App-Id", c.appID)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		// The caller's own cancellation is final; anything else (refused,
		// reset, this attempt's timeout) may be retried.
		return ctx.Err() == nil || errors.Is(ctx.Err(), context.DeadlineExceeded), fmt.Errorf("internalclient: %s %s: %w", method, path, err)
	}
	defer func() { _ = resp.Body.Close() }()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return true, fmt.Errorf("internalclient: read response: %w", err)
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		if err := json.Unmarshal(raw, out); err != nil {
			return false, fmt.Errorf("internalclient: decode response: %w", err)
		}
		return false, nil
	}
	apiErr := &APIError{Status: resp.StatusCode}
	if json.Unmarshal(raw, apiErr) != nil || apiErr.Code == "" {
		apiErr.Code = http.StatusText(resp.StatusCode)
	}
	return resp.StatusCode >= 500, apiErr
}

// notSent reports whether err means the request never reached the server:
// the connection itself failed.
func notSent(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}
