package adminclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// UpsertRequest is the body of POST /api/v1/personas/admin. The persona is
// matched by Email; Password (≥ 8 characters) is only used when the user has
// to be registered.
type UpsertRequest struct {
	Email        string             `json:"email"`
	Name         string             `json:"name,omitempty"`
	Password     string             `json:"password"`
	Archetype    string             `json:"archetype"`
	SystemPrompt string             `json:"systemPrompt"`
	ModuleMix    map[string]float64 `json:"moduleMix"`
	TickCadence  string             `json:"tickCadence,omitempty"`
	// TickHour (0–23, UTC) is the hour from which a daily or weekdays
	// persona is due each day; nil leaves it out of the request (an update
	// keeps the persona's hour, a create derives one from the user id).
	TickHour *int `json:"tickHour,omitempty"`
	// MaxHistoryDays (1–3650): the persona's own raw retention. Nil leaves
	// it out, which keeps the persona's current value (on create: none).
	MaxHistoryDays *int `json:"maxHistoryDays,omitempty"`
	// Tags: the persona's labels, replacing its current ones. Nil leaves
	// them out (an update keeps them); an empty list clears them.
	Tags *[]string `json:"tags,omitempty"`
}

// String hides the password, so printing a request by accident leaks nothing.
func (r UpsertRequest) String() string {
	return fmt.Sprintf("UpsertRequest{Email:%s Archetype:%s TickCadence:%s Password:[redacted]}", r.Email, r.Archetype, r.TickCadence)
}

// GoString hides the password from %#v as well.
func (r UpsertRequest) GoString() string { return r.String() }

// LogValue hides the password from log/slog.
func (r UpsertRequest) LogValue() slog.Value {
	return slog.GroupValue(slog.String("email", r.Email), slog.String("archetype", r.Archetype), slog.String("tickCadence", r.TickCadence))
}

// UpsertResult is the answer of an upsert.
type UpsertResult struct {
	OK     bool   `json:"ok"`
	UserID string `json:"userId"`
	Email  string `json:"email"`
	// Created is true when the persona was new and false when it was
	// updated; nil when the server does not say (older servers).
	Created *bool `json:"created,omitempty"`
}

// Persona is a persona as the admin API lists it.
type Persona struct {
	UserID       string             `json:"userId"`
	Email        string             `json:"email"`
	Name         string             `json:"name,omitempty"`
	Archetype    string             `json:"archetype"`
	SystemPrompt string             `json:"systemPrompt,omitempty"`
	ModuleMix    map[string]float64 `json:"moduleMix,omitempty"`
	TickCadence  string             `json:"tickCadence"`
	LastActiveAt *time.Time         `json:"lastActiveAt"`
	CreatedAt    *time.Time         `json:"createdAt,omitempty"`
	// Actions7d counts the persona's actions in the last seven days.
	Actions7d int `json:"actions7d"`

	// The run state (servers with tick records; see operator.go). Enabled
	// and TickHour are nil when the server does not send them.
	Enabled             *bool      `json:"enabled,omitempty"`
	TickHour            *int       `json:"tickHour,omitempty"`
	MaxHistoryDays      *int       `json:"maxHistoryDays"`
	Tags                []string   `json:"tags,omitempty"`
	Quarantined         bool       `json:"quarantined"`
	ConsecutiveFailures int        `json:"consecutiveFailures"`
	NextAttemptAt       *time.Time `json:"nextAttemptAt,omitempty"`
	LastTick            *LastTick  `json:"lastTick,omitempty"`
	Lease               *Lease     `json:"lease,omitempty"`
}

// UnmarshalJSON accepts "id" where "userId" is missing, so the client reads
// a persona whichever of the two names the server uses for the key.
func (p *Persona) UnmarshalJSON(data []byte) error {
	type plain Persona
	var aux struct {
		plain
		ID string `json:"id"`
	}
	if err := json.Unmarshal(data, &aux); err != nil {
		return err
	}
	*p = Persona(aux.plain)
	if p.UserID == "" {
		p.UserID = aux.ID
	}
	return nil
}

// Action is one recorded tool call of a persona.
type Action struct {
	ID           string     `json:"id"`
	TickID       string     `json:"tickId"`
	ToolName     string     `json:"toolName"`
	InputHash    string     `json:"inputHash,omitempty"`
	Result       string     `json:"result"`
	ErrorMessage string     `json:"errorMessage,omitempty"`
	LatencyMs    *int       `json:"latencyMs,omitempty"`
	CreatedAt    *time.Time `json:"createdAt,omitempty"`
}

// PersonaDetail is the answer of GET /api/v1/personas/admin/:id.
type PersonaDetail struct {
	Persona       Persona  `json:"persona"`
	RecentActions []Action `json:"recentActions"`
	// FeedbackByModule is kept as sent (the per-module aggregate: mean,
	// count, distribution, latest rating time); callers decode what they need.
	FeedbackByModule json.RawMessage `json:"feedbackByModule"`
}

// ListOptions filters and pages the persona list. The zero value asks for
// every persona in one answer.
type ListOptions struct {
	// Limit asks for one page of at most Limit personas (0: no paging).
	Limit int
	// Cursor continues after a previous page (Page.NextCursor).
	Cursor string
	// Archetype and Cadence filter by exact value; Query matches email or
	// name by substring.
	Archetype string
	Cadence   string
	Query     string
	// Tags: personas with every one of these tags. Status: enabled,
	// disabled, paused, quarantined, leased or overdue (the server's rules).
	Tags   []string
	Status string
}

func (o ListOptions) values() url.Values {
	q := url.Values{}
	if o.Limit > 0 {
		q.Set("limit", strconv.Itoa(o.Limit))
	}
	for key, v := range map[string]string{"cursor": o.Cursor, "archetype": o.Archetype, "cadence": o.Cadence, "q": o.Query, "status": o.Status} {
		if v != "" {
			q.Set(key, v)
		}
	}
	for _, t := range o.Tags {
		q.Add("tag", t)
	}
	return q
}

// Page is one answer of the list endpoint.
type Page struct {
	Personas []Persona
	// NextCursor continues the listing; empty on the last page.
	NextCursor string
}

// UpsertPersona creates or updates the persona with req.Email. Retried like
// a read (package retry): the endpoint is idempotent by email.
func (c *Client) UpsertPersona(ctx context.Context, req UpsertRequest) (*UpsertResult, error) {
	var out UpsertResult
	if err := c.do(ctx, call{method: http.MethodPost, body: req, idempotent: true}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ListPersonas returns one answer of the list endpoint, newest first. It
// reads both shapes the server may send: a bare array (no paging) and
// {"personas": [...], "nextCursor": ...}.
func (c *Client) ListPersonas(ctx context.Context, opts ListOptions) (*Page, error) {
	var raw json.RawMessage
	cl := call{method: http.MethodGet, query: opts.values(), idempotent: true}
	if err := c.do(ctx, cl, &raw); err != nil {
		return nil, err
	}
	page, err := decodePage(raw)
	if err != nil {
		return nil, fmt.Errorf("adminclient: GET %s: %w", BasePath, err)
	}
	return page, nil
}

// maxPages stops ListAllPersonas on a server that never ends its cursor chain.
const maxPages = 10_000

// DefaultPageSize is ListAllPersonas' page size when none is given.
const DefaultPageSize = 100

// ListAllPersonas follows the cursor from page to page (pageSize per page,
// default DefaultPageSize) and returns every persona matching opts' filters.
// A server that ignores limit and answers with a bare array is read in one go.
func (c *Client) ListAllPersonas(ctx context.Context, opts ListOptions, pageSize int) ([]Persona, error) {
	if pageSize <= 0 {
		pageSize = DefaultPageSize
	}
	opts.Limit, opts.Cursor = pageSize, ""
	var all []Persona
	seen := map[string]bool{}
	for range maxPages {
		page, err := c.ListPersonas(ctx, opts)
		if err != nil {
			return nil, err
		}
		all = append(all, page.Personas...)
		if page.NextCursor == "" {
			return all, nil
		}
		if seen[page.NextCursor] {
			return nil, fmt.Errorf("adminclient: GET %s: the server repeated cursor %q", BasePath, page.NextCursor)
		}
		seen[page.NextCursor] = true
		opts.Cursor = page.NextCursor
	}
	return nil, fmt.Errorf("adminclient: GET %s: more than %d pages", BasePath, maxPages)
}

// FindByEmail returns the persona with exactly this email (case-insensitive);
// the list's q filter is a substring match, so the exact one is picked here.
func (c *Client) FindByEmail(ctx context.Context, email string) (*Persona, error) {
	all, err := c.ListAllPersonas(ctx, ListOptions{Query: email}, 0)
	if err != nil {
		return nil, err
	}
	for i := range all {
		if strings.EqualFold(all[i].Email, email) {
			return &all[i], nil
		}
	}
	return nil, fmt.Errorf("adminclient: no persona with email %q: %w", email, ErrNotFound)
}

// GetPersona returns a persona with its 20 newest actions and its feedback
// per module.
func (c *Client) GetPersona(ctx context.Context, id string) (*PersonaDetail, error) {
	if id == "" {
		return nil, errors.New("adminclient: GetPersona: empty id")
	}
	var out PersonaDetail
	if err := c.do(ctx, call{method: http.MethodGet, path: "/" + url.PathEscape(id), idempotent: true}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// DeletePersona hard-deletes a persona and its user. Retried like a read:
// repeating a delete is safe, but a retry after an attempt that did go
// through answers ErrNotFound, which callers should treat as done.
func (c *Client) DeletePersona(ctx context.Context, id string) error {
	if id == "" {
		return errors.New("adminclient: DeletePersona: empty id")
	}
	return c.do(ctx, call{method: http.MethodDelete, path: "/" + url.PathEscape(id), idempotent: true}, nil)
}

// decodePage reads either list shape.
func decodePage(raw json.RawMessage) (*Page, error) {
	trimmed := bytes.TrimSpace(raw)
	switch {
	case bytes.HasPrefix(trimmed, []byte("[")):
		var ps []Persona
		if err := json.Unmarshal(trimmed, &ps); err != nil {
			return nil, fmt.Errorf("decode persona list: %w", err)
		}
		return &Page{Personas: ps}, nil
	case bytes.HasPrefix(trimmed, []byte("{")):
		var obj struct {
			Personas   *[]Persona `json:"personas"`
			NextCursor *string    `json:"nextCursor"`
		}
		if err := json.Unmarshal(trimmed, &obj); err != nil {
			return nil, fmt.Errorf("decode persona list: %w", err)
		}
		if obj.Personas == nil {
			return nil, fmt.Errorf("unexpected list response without \"personas\": %s", excerpt(trimmed))
		}
		p := &Page{Personas: *obj.Personas}
		if obj.NextCursor != nil {
			p.NextCursor = *obj.NextCursor
		}
		return p, nil
	default:
		return nil, fmt.Errorf("unexpected list response: %s", excerpt(trimmed))
	}
}
