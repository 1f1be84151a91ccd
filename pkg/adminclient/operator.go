package adminclient

// Operator control: the fleet switch, a persona's enabled flag, its lease
// and quarantine, and its tick history. Every call here is safe to repeat
// (each sets a state rather than adding to one), so all are retried like
// reads.

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// LastTick is the outcome of a persona's latest finished tick.
type LastTick struct {
	Status     string     `json:"status"`
	FinishedAt *time.Time `json:"finishedAt"`
}

// Lease is the runner holding a persona. ExpiresAt in the past is a lease
// that lapsed and has not been counted as a crash yet.
type Lease struct {
	RunnerID  string    `json:"runnerId"`
	ExpiresAt time.Time `json:"expiresAt"`
	TickID    string    `json:"tickId,omitempty"`
}

// FleetState is the switch that pauses the whole fleet: while paused the
// runners' due lists and claims are empty.
type FleetState struct {
	Paused    bool      `json:"paused"`
	UpdatedAt time.Time `json:"updatedAt"`
	// UpdatedBy is the admin who last switched it (empty: nobody has).
	UpdatedBy string `json:"updatedBy,omitempty"`
}

// UnmarshalJSON reads updatedBy null as empty.
func (f *FleetState) UnmarshalJSON(data []byte) error {
	var aux struct {
		Paused    bool      `json:"paused"`
		UpdatedAt time.Time `json:"updatedAt"`
		UpdatedBy *string   `json:"updatedBy"`
	}
	if err := json.Unmarshal(data, &aux); err != nil {
		return err
	}
	*f = FleetState{Paused: aux.Paused, UpdatedAt: aux.UpdatedAt}
	if aux.UpdatedBy != nil {
		f.UpdatedBy = *aux.UpdatedBy
	}
	return nil
}

// FleetState returns whether the fleet is paused, since when, by whom.
func (c *Client) FleetState(ctx context.Context) (*FleetState, error) {
	var out FleetState
	if err := c.do(ctx, call{method: http.MethodGet, path: "/runner", idempotent: true}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// SetFleetPaused pauses (true) or resumes (false) the whole fleet. Leases
// already held run on until finished, released or expired.
func (c *Client) SetFleetPaused(ctx context.Context, paused bool) (*FleetState, error) {
	var out FleetState
	body := map[string]bool{"paused": paused}
	if err := c.do(ctx, call{method: http.MethodPut, path: "/runner", body: body, idempotent: true}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// PersonaPatch changes some of a persona's operator settings; nil fields
// are left as they are.
type PersonaPatch struct {
	// Enabled false takes the persona out of the schedule.
	Enabled *bool `json:"enabled,omitempty"`
}

// PatchPersona applies patch (which must set at least one field) and
// returns the persona as it is now.
func (c *Client) PatchPersona(ctx context.Context, id string, patch PersonaPatch) (*Persona, error) {
	if id == "" {
		return nil, errors.New("adminclient: PatchPersona: empty id")
	}
	var out Persona
	cl := call{method: http.MethodPatch, path: "/" + url.PathEscape(id), body: patch, idempotent: true}
	if err := c.do(ctx, cl, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// SetEnabled enables or disables one persona; a disabled persona is never
// due (a lease it holds runs on).
func (c *Client) SetEnabled(ctx context.Context, id string, enabled bool) (*Persona, error) {
	return c.PatchPersona(ctx, id, PersonaPatch{Enabled: &enabled})
}

// ReleaseLease ends whatever lease the persona has, without counting a
// failure. released is false when it had none (no error). A retry after an
// attempt that went through answers false.
func (c *Client) ReleaseLease(ctx context.Context, id string) (released bool, err error) {
	if id == "" {
		return false, errors.New("adminclient: ReleaseLease: empty id")
	}
	var out struct {
		Released bool `json:"released"`
	}
	cl := call{method: http.MethodPost, path: "/" + url.PathEscape(id) + "/lease/release", idempotent: true}
	if err := c.do(ctx, cl, &out); err != nil {
		return false, err
	}
	return out.Released, nil
}

// Unquarantine lifts the persona's quarantine and resets its failures and
// backoff, and returns the persona as it is now.
func (c *Client) Unquarantine(ctx context.Context, id string) (*Persona, error) {
	if id == "" {
		return nil, errors.New("adminclient: Unquarantine: empty id")
	}
	var out Persona
	cl := call{method: http.MethodPost, path: "/" + url.PathEscape(id) + "/unquarantine", idempotent: true}
	if err := c.do(ctx, cl, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Tick is one tick of a persona: the runner's record and what was derived
// from the stored rows. Recorded is false for a tick id known only from
// its actions or feedback (a runner that predates tick records); then
// Status is empty and only the counts, the duration and CreatedAt are
// known.
type Tick struct {
	TickID          string     `json:"tickId"`
	Recorded        bool       `json:"recorded"`
	Status          string     `json:"status,omitempty"`
	RunnerID        string     `json:"runnerId,omitempty"`
	Model           string     `json:"model,omitempty"`
	PlatformVersion string     `json:"platformVersion,omitempty"`
	StartedAt       *time.Time `json:"startedAt,omitempty"`
	FinishedAt      *time.Time `json:"finishedAt,omitempty"`
	ErrorKind       string     `json:"errorKind,omitempty"`
	ErrorMessage    string     `json:"errorMessage,omitempty"`
	RatingStatus    string     `json:"ratingStatus,omitempty"`
	TokensIn        *int64     `json:"tokensIn,omitempty"`
	TokensOut       *int64     `json:"tokensOut,omitempty"`
	StaleWrites     int        `json:"staleWrites"`
	Actions         int        `json:"actions"`
	Errors          int        `json:"errors"`
	Ratings         int        `json:"ratings"`
	// UnparsableRatings: how many of Ratings are parse markers.
	UnparsableRatings int       `json:"unparsableRatings"`
	DurationMs        *int64    `json:"durationMs,omitempty"`
	CreatedAt         time.Time `json:"createdAt"`
	// Summary is the persona's own summary of the day; only GetTick
	// answers it.
	Summary string `json:"summary,omitempty"`
}

// TickFeedback is one rating given in a tick.
type TickFeedback struct {
	ID        string    `json:"id"`
	Module    string    `json:"module"`
	Rating    int       `json:"rating"`
	Notes     string    `json:"notes,omitempty"`
	CreatedAt time.Time `json:"createdAt"`
}

// TickDetail is the answer of GetTick.
type TickDetail struct {
	Tick     Tick           `json:"tick"`
	Actions  []Action       `json:"actions"`
	Feedback []TickFeedback `json:"feedback"`
}

// TickListOptions filters and pages ListTicks. The zero value asks for the
// newest page of the server's default size (50).
type TickListOptions struct {
	Limit  int    // 1–200; 0: the server's default
	Cursor string // TickPage.NextCursor of the previous page
	Status string // running, ok, empty, failed, timeout or crashed
}

// TickPage is one page of ticks, newest first.
type TickPage struct {
	Ticks []Tick `json:"ticks"`
	// NextCursor continues the listing; empty on the last page.
	NextCursor string `json:"-"`
}

// ListTicks returns one page of the persona's tick records, newest first.
func (c *Client) ListTicks(ctx context.Context, id string, opts TickListOptions) (*TickPage, error) {
	if id == "" {
		return nil, errors.New("adminclient: ListTicks: empty id")
	}
	q := url.Values{}
	if opts.Limit > 0 {
		q.Set("limit", strconv.Itoa(opts.Limit))
	}
	if opts.Cursor != "" {
		q.Set("cursor", opts.Cursor)
	}
	if opts.Status != "" {
		q.Set("status", opts.Status)
	}
	var out struct {
		Ticks      []Tick  `json:"ticks"`
		NextCursor *string `json:"nextCursor"`
	}
	cl := call{method: http.MethodGet, path: "/" + url.PathEscape(id) + "/ticks", query: q, idempotent: true}
	if err := c.do(ctx, cl, &out); err != nil {
		return nil, err
	}
	page := &TickPage{Ticks: out.Ticks}
	if page.Ticks == nil {
		page.Ticks = []Tick{}
	}
	if out.NextCursor != nil {
		page.NextCursor = *out.NextCursor
	}
	return page, nil
}

// GetTick returns one tick with its summary, its actions in the order
// written and its ratings by module. ErrNotFound for an unknown persona or
// tick.
func (c *Client) GetTick(ctx context.Context, id, tickID string) (*TickDetail, error) {
	if id == "" || tickID == "" {
		return nil, errors.New("adminclient: GetTick: empty id or tick id")
	}
	var out TickDetail
	cl := call{method: http.MethodGet, path: "/" + url.PathEscape(id) + "/ticks/" + url.PathEscape(tickID), idempotent: true}
	if err := c.do(ctx, cl, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
