package internalclient

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"time"
)

// The tick and lease protocol (see the README's "Runner protocol"):
//
//	claim → StartTick → PostActions… → PostFeedback → FinishTick
//	RenewLease while the tick runs; ReleaseLease on shutdown.
//
// Every call here is idempotent on the server (tick ids and row ids are
// the runner's), so all of them are retried like the other writes.

// ErrLeaseLost is returned (wrapped in *APIError, status 409) when a lease
// token no longer holds the persona's lease: released, expired or taken
// over. The runner must stop driving that persona.
var ErrLeaseLost = errors.New("lease lost")

// CallOption adjusts one call.
type CallOption func(*callOptions)

type callOptions struct {
	leaseToken string
}

// WithLeaseToken sends the claim's lease token (header X-Lease-Token) with
// a tick start, a write or a finish. Empty sends none.
func WithLeaseToken(token string) CallOption {
	return func(o *callOptions) { o.leaseToken = token }
}

// headerLeaseToken is the header the internal API reads the token from.
const headerLeaseToken = "X-Lease-Token" //nolint:gosec // a header name, not a credential

// with returns c itself, or for options that add headers, a shallow copy
// whose transport adds them (the request path of c stays untouched).
func (c *Client) with(opts []CallOption) *Client {
	var o callOptions
	for _, f := range opts {
		f(&o)
	}
	if o.leaseToken == "" {
		return c
	}
	cp := *c
	hc := *c.hc
	next := hc.Transport
	if next == nil {
		next = http.DefaultTransport
	}
	hc.Transport = headerTransport{next: next, key: headerLeaseToken, value: o.leaseToken}
	cp.hc = &hc
	return &cp
}

type headerTransport struct {
	next       http.RoundTripper
	key, value string
}

func (t headerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	r := req.Clone(req.Context()) // a RoundTripper must not modify its request
	r.Header.Set(t.key, t.value)
	return t.next.RoundTrip(r)
}

// TickStart opens a tick. StartedAt nil means the server's clock.
type TickStart struct {
	TickID          string     `json:"tickId"`
	RunnerID        string     `json:"runnerId"`
	LeaseToken      string     `json:"leaseToken,omitempty"`
	Model           *string    `json:"model,omitempty"`
	PlatformVersion *string    `json:"platformVersion,omitempty"`
	StartedAt       *time.Time `json:"startedAt,omitempty"`
}

// Tick statuses a runner finishes with.
const (
	StatusOK      = "ok"
	StatusEmpty   = "empty"
	StatusFailed  = "failed"
	StatusTimeout = "timeout"
)

// TickFinish closes a tick: Status is ok, empty, failed or timeout;
// ErrorKind one of auth, llm, rate_limited, tool, timeout, internal;
// RatingStatus one of ok, unparsable, missing.
type TickFinish struct {
	Status       string     `json:"status"`
	ErrorKind    *string    `json:"errorKind,omitempty"`
	ErrorMessage *string    `json:"errorMessage,omitempty"`
	Summary      *string    `json:"summary,omitempty"`
	RatingStatus *string    `json:"ratingStatus,omitempty"`
	TokensIn     *int64     `json:"tokensIn,omitempty"`
	TokensOut    *int64     `json:"tokensOut,omitempty"`
	FinishedAt   *time.Time `json:"finishedAt,omitempty"`
}

// Tick is a stored tick with the counts derived from its rows.
type Tick struct {
	TickID          string     `json:"tickId"`
	RunnerID        *string    `json:"runnerId"`
	Model           *string    `json:"model"`
	PlatformVersion *string    `json:"platformVersion"`
	StartedAt       *time.Time `json:"startedAt"`
	FinishedAt      *time.Time `json:"finishedAt"`
	Status          string     `json:"status"`
	ErrorKind       *string    `json:"errorKind"`
	ErrorMessage    *string    `json:"errorMessage"`
	Summary         *string    `json:"summary"`
	RatingStatus    *string    `json:"ratingStatus"`
	TokensIn        *int64     `json:"tokensIn"`
	TokensOut       *int64     `json:"tokensOut"`
	StaleWrites     int        `json:"staleWrites"`
	CreatedAt       time.Time  `json:"createdAt"`
	Actions         int        `json:"actions"`
	Errors          int        `json:"errors"`
	Ratings         int        `json:"ratings"`
	// UnparsableRatings: how many of Ratings are parse markers ("__parse").
	UnparsableRatings int    `json:"unparsableRatings"`
	DurationMs        *int64 `json:"durationMs"`
}

// TickResult is what a start or finish did.
type TickResult struct {
	OK   bool `json:"ok"`
	Tick Tick `json:"tick"`
	// Created: this call created the record (a start answers 201 then).
	Created bool `json:"created"`
	// AlreadyFinished: the tick was closed before (a retry, or the crash
	// sweep closed it); nothing changed.
	AlreadyFinished bool `json:"alreadyFinished"`
	// StaleLease: the token sent does not hold the lease; the call was
	// recorded on the tick, the lease untouched.
	StaleLease bool `json:"staleLease"`
	// LeaseEnded: this finish ended the persona's lease.
	LeaseEnded bool `json:"leaseEnded"`
}

func tickPath(personaID string) string { return "/" + url.PathEscape(personaID) + "/ticks" }

// StartTick records the start of a tick (idempotent by TickID). The lease
// token goes in TickStart.LeaseToken or WithLeaseToken.
func (c *Client) StartTick(ctx context.Context, personaID string, in TickStart, opts ...CallOption) (*TickResult, error) {
	var out TickResult
	return &out, c.with(opts).do(ctx, http.MethodPost, tickPath(personaID), in, &out)
}

// FinishTick closes a tick with the runner's verdict (idempotent: a repeat
// returns AlreadyFinished). With the lease token it also ends the lease.
func (c *Client) FinishTick(ctx context.Context, personaID, tickID string, in TickFinish, opts ...CallOption) (*TickResult, error) {
	var out TickResult
	path := tickPath(personaID) + "/" + url.PathEscape(tickID) + "/finish"
	return &out, c.with(opts).do(ctx, http.MethodPost, path, in, &out)
}

// RenewLease extends the lease held with token to now + leaseSeconds (0:
// the length the claim asked for) and returns the new expiry. A lost
// lease is an *APIError matching ErrLeaseLost.
func (c *Client) RenewLease(ctx context.Context, personaID, token string, leaseSeconds int) (time.Time, error) {
	in := struct {
		LeaseToken   string `json:"leaseToken"`
		LeaseSeconds int    `json:"leaseSeconds,omitempty"`
	}{token, leaseSeconds}
	var out struct {
		LeaseExpiresAt time.Time `json:"leaseExpiresAt"`
	}
	err := c.do(ctx, http.MethodPost, "/"+url.PathEscape(personaID)+"/lease/renew", in, &out)
	return out.LeaseExpiresAt, err
}

// Release outcomes: what the runner did with a lease it gives back.
const (
	ReleaseAbandoned = "abandoned" // stops without a verdict (shutdown): the schedule is unchanged
	ReleaseDone      = "done"      // the period is done, as after an ok finish
	ReleaseFailed    = "failed"    // one failure, as after a failed finish
)

// ReleaseLease ends the lease held with token; outcome "" means abandoned.
func (c *Client) ReleaseLease(ctx context.Context, personaID, token, outcome string) error {
	in := struct {
		LeaseToken string `json:"leaseToken"`
		Outcome    string `json:"outcome,omitempty"`
	}{token, outcome}
	var out struct{}
	return c.do(ctx, http.MethodPost, "/"+url.PathEscape(personaID)+"/lease/release", in, &out)
}
