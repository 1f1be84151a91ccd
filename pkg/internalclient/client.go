// Package internalclient is the typed Go client for the personas internal
// API (the runner's side): ListDue, Claim, PostActions and PostFeedback,
// and the tick and lease protocol in ticks.go.
//
// Every attempt has a deadline. Retries follow package retry (network
// errors, 429, 502/503/504; never another 4xx or a 500): reads and the two
// writes are retried, which is safe because every write of the internal API
// is idempotent (deterministic row ids, insert-or-ignore). A claim is not:
// it is repeated only when it cannot have reached the server. Failures are
// returned as *APIError (an answer) or the transport's error. Every request
// carries the context's X-Request-Id (package reqid).
package internalclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/mana/personas/pkg/reqid"
	"github.com/mana/personas/pkg/retry"
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

// DefaultRetryPolicy is package retry's policy for the runner's calls.
var DefaultRetryPolicy = retry.Policy{
	MaxAttempts: 3,
	BaseDelay:   200 * time.Millisecond,
	MaxDelay:    5 * time.Second,
	PerAttempt:  10 * time.Second,
}

// Client talks to personas-internal (directly or through the gateway).
type Client struct {
	base   string
	key    string
	hc     *http.Client
	policy retry.Policy
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient replaces the HTTP client.
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.hc = hc } }

// WithRetryPolicy replaces DefaultRetryPolicy.
func WithRetryPolicy(p retry.Policy) Option { return func(c *Client) { c.policy = p } }

// WithRetries sets how many attempts a call makes in all (at least one)
// and the ceiling of the first backoff (doubling, with full jitter), keeping
// the rest of the policy.
func WithRetries(attempts int, backoff time.Duration) Option {
	return func(c *Client) { c.policy.MaxAttempts, c.policy.BaseDelay = max(attempts, 1), backoff }
}

// New returns a client for baseURL (for example http://localhost:3060)
// authenticating with serviceKey.
func New(baseURL, serviceKey string, opts ...Option) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("internalclient: base URL %q must be http(s)://host[:port]", baseURL)
	}
	c := &Client{
		base: strings.TrimRight(baseURL, "/") + "/api/v1/personas/internal",
		key:  serviceKey, hc: &http.Client{}, policy: DefaultRetryPolicy,
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
	// MaxHistoryDays: how far back the persona's own story reaches (days
	// of raw history kept); nil: the global retention.
	MaxHistoryDays *int `json:"maxHistoryDays"`
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
// not idempotent, so it is retried only when the request cannot have
// reached the server (the connection was refused): a claim whose answer was
// lost has leased personas that a repeated claim would not return, so they
// would sit idle until their lease ran out.
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

// doWith makes the call under the retry policy; idempotent says whether it
// may be repeated after an ambiguous failure.
func (c *Client) doWith(ctx context.Context, method, path string, in, out any, idempotent bool) error {
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return fmt.Errorf("internalclient: encode request: %w", err)
		}
	}
	resp, err := c.policy.Do(ctx, idempotent, func(actx context.Context) (*http.Response, error) {
		var rd io.Reader
		if body != nil {
			rd = bytes.NewReader(body)
		}
		req, err := http.NewRequestWithContext(actx, method, c.base+path, rd)
		if err != nil {
			return nil, err
		}
		req.Header.Set("X-Service-Key", c.key)
		req.Header.Set("Accept", "application/json")
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		if id := reqid.From(ctx); id != "" {
			req.Header.Set(reqid.Header, id)
		}
		return c.hc.Do(req)
	})
	if err != nil {
		return fmt.Errorf("internalclient: %s %s: %w", method, path, err)
	}
	defer func() { _ = resp.Body.Close() }()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("internalclient: %s %s: read response: %w", method, path, err)
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		if err := json.Unmarshal(raw, out); err != nil {
			return fmt.Errorf("internalclient: decode response: %w", err)
		}
		return nil
	}
	apiErr := &APIError{Status: resp.StatusCode}
	if json.Unmarshal(raw, apiErr) != nil || apiErr.Code == "" {
		apiErr.Code = http.StatusText(resp.StatusCode)
	}
	return apiErr
}
