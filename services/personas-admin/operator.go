package main

// Operator control: the fleet switch, one persona's enabled flag, its lease
// and quarantine, and its tick history. The state lives in pkg/personas
// (fleet.go, lease.go, ticks.go); these handlers only read requests and
// shape answers. Every request body here is new with the ticks work, so
// unknown fields are refused (a typo such as "pasued" must not silently
// leave the fleet running).

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/mana/personas/pkg/edge"
	"github.com/mana/personas/pkg/errs"
	"github.com/mana/personas/pkg/jsondec"
	"github.com/mana/personas/pkg/personas"
)

// errTickNotFound is the 404 for a tick id the persona has neither a record
// nor rows for (an unknown persona is personas.ErrNotFound).
var errTickNotFound = &errs.Error{Code: errs.NotFound, Title: "Tick not found"}

// ---- GET/PUT /runner ----------------------------------------------------

type fleetJSON struct {
	Paused    bool    `json:"paused"`
	UpdatedAt string  `json:"updatedAt"`
	UpdatedBy *string `json:"updatedBy"`
}

func newFleetJSON(st personas.FleetState) fleetJSON {
	return fleetJSON{Paused: st.Paused, UpdatedAt: edge.ISOTime(st.UpdatedAt), UpdatedBy: st.UpdatedBy}
}

// getRunner answers whether the fleet is paused, since when, by whom.
func (h *handlers) getRunner(c echo.Context) error {
	st, err := h.store.FleetState(c.Request().Context())
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, newFleetJSON(st))
}

// putRunner pauses or resumes the whole fleet ({"paused": bool}): while
// paused, /due and claims answer no personas and "paused": true. Leases
// already held run on. The operator is recorded from the verified token.
func (h *handlers) putRunner(c echo.Context) error {
	var p errs.Problems
	var paused *bool
	err := edge.ReadJSON(c, &p, func(d *jsondec.Reader) {
		d.Object("", func(key string) {
			switch key {
			case "paused":
				paused = readBool(d, &p, key)
			default:
				edge.Unknown(&p, key)
				d.Skip()
			}
		})
	})
	if err != nil {
		return err
	}
	if paused == nil && !p.Has("paused") {
		p.Add("paused", "is required")
	}
	if err := p.Err(); err != nil {
		return err
	}
	st, err := h.store.SetFleetPaused(c.Request().Context(), *paused, cut(operator(c), personas.MaxUpdatedByLen))
	if err != nil {
		return err
	}
	h.logger.InfoContext(c.Request().Context(), "fleet switched", "paused", st.Paused, "by", operator(c))
	return c.JSON(http.StatusOK, newFleetJSON(st))
}

// ---- PATCH /:id ---------------------------------------------------------

// patchRequest is a partial update of one persona: every field is optional
// and nil when absent. Fields join here as operators need them; each is
// applied by its own store call, so a field's rules stay in the store.
type patchRequest struct {
	Enabled *bool
}

// patchFields names the fields a patch may set, for the message of an
// empty one.
const patchFields = "enabled"

func readPatch(c echo.Context) (*patchRequest, error) {
	var p errs.Problems
	r := &patchRequest{}
	err := edge.ReadJSON(c, &p, func(d *jsondec.Reader) {
		d.Object("", func(key string) {
			switch key {
			case "enabled":
				r.Enabled = readBool(d, &p, key)
			default:
				edge.Unknown(&p, key)
				d.Skip()
			}
		})
	})
	if err != nil {
		return nil, err
	}
	if p.Len() == 0 && r.Enabled == nil {
		p.Add("body", "names no field to change (fields: %s)", patchFields)
	}
	if err := p.Err(); err != nil {
		return nil, err
	}
	return r, nil
}

// patch changes the fields the body names and answers the persona as the
// detail shows it. Unknown persona: 404.
func (h *handlers) patch(c echo.Context) error {
	req, err := readPatch(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	id := c.Param("id")
	if req.Enabled != nil {
		if err := h.store.SetEnabled(ctx, id, *req.Enabled); err != nil {
			return err
		}
		h.logger.InfoContext(ctx, "persona enabled flag set", "persona", id, "enabled", *req.Enabled, "by", operator(c))
	}
	return h.answerPersona(c, id)
}

// ---- POST /:id/lease/release, POST /:id/unquarantine ----------------------

type releaseResponse struct {
	OK bool `json:"ok"`
	// Released: the persona had a lease (running or lapsed) that this call
	// ended; false when there was none, which is no error.
	Released bool `json:"released"`
}

// releaseLease ends whatever lease the persona has, for an operator: no
// failure is counted and the schedule is unchanged, so the persona is due
// again at once if its period is not done. The former holder's later
// writes are still stored, and reported as stale on their tick.
func (h *handlers) releaseLease(c echo.Context) error {
	if err := readNoFields(c); err != nil {
		return err
	}
	ctx := c.Request().Context()
	id := c.Param("id")
	p, err := h.store.GetPersona(ctx, id)
	if err != nil {
		return err
	}
	if err := h.store.AdminReleaseLease(ctx, id); err != nil {
		return err
	}
	released := p.Lease != nil
	if released {
		h.logger.InfoContext(ctx, "lease released by operator", "persona", id, "runner", p.Lease.RunnerID, "by", operator(c))
	}
	return c.JSON(http.StatusOK, releaseResponse{OK: true, Released: released})
}

// unquarantine lifts the persona's quarantine and forgets its consecutive
// failures and backoff; it is then due under its normal schedule. Works on
// a persona that is not quarantined too (it resets the failures).
func (h *handlers) unquarantine(c echo.Context) error {
	if err := readNoFields(c); err != nil {
		return err
	}
	ctx := c.Request().Context()
	id := c.Param("id")
	if err := h.store.Unquarantine(ctx, id); err != nil {
		return err
	}
	h.logger.InfoContext(ctx, "persona unquarantined", "persona", id, "by", operator(c))
	return h.answerPersona(c, id)
}

// ---- GET /:id/ticks -----------------------------------------------------

// tickJSON is a tick without its summary, which can be long: the list
// adds an excerpt, the tick's own answer the whole summary.
type tickJSON struct {
	TickID            string  `json:"tickId"`
	Recorded          bool    `json:"recorded"`
	Status            *string `json:"status"`
	RunnerID          *string `json:"runnerId"`
	Model             *string `json:"model"`
	PlatformVersion   *string `json:"platformVersion"`
	StartedAt         *string `json:"startedAt"`
	FinishedAt        *string `json:"finishedAt"`
	ErrorKind         *string `json:"errorKind"`
	ErrorMessage      *string `json:"errorMessage"`
	RatingStatus      *string `json:"ratingStatus"`
	TokensIn          *int64  `json:"tokensIn"`
	TokensOut         *int64  `json:"tokensOut"`
	StaleWrites       int     `json:"staleWrites"`
	Actions           int     `json:"actions"`
	Errors            int     `json:"errors"`
	Ratings           int     `json:"ratings"`
	UnparsableRatings int     `json:"unparsableRatings"`
	DurationMs        *int64  `json:"durationMs"`
	CreatedAt         string  `json:"createdAt"`
}

func newTickJSON(t *personas.Tick) tickJSON {
	out := tickJSON{
		TickID: t.TickID, Recorded: t.Recorded, RunnerID: t.RunnerID, Model: t.Model, PlatformVersion: t.PlatformVersion,
		StartedAt: edge.ISOTimePtr(t.StartedAt), FinishedAt: edge.ISOTimePtr(t.FinishedAt),
		ErrorMessage: t.ErrorMessage, TokensIn: t.TokensIn, TokensOut: t.TokensOut, StaleWrites: t.StaleWrites,
		Actions: t.Actions, Errors: t.Errors, Ratings: t.Ratings, UnparsableRatings: t.UnparsableRatings, DurationMs: t.DurationMs, CreatedAt: edge.ISOTime(t.CreatedAt),
	}
	if t.Status != "" {
		s := string(t.Status)
		out.Status = &s
	}
	if t.ErrorKind != nil {
		s := string(*t.ErrorKind)
		out.ErrorKind = &s
	}
	if t.RatingStatus != nil {
		s := string(*t.RatingStatus)
		out.RatingStatus = &s
	}
	return out
}

// listTickJSON is a tick in the list: the tick and the start of its
// summary, enough for a timeline line.
type listTickJSON struct {
	tickJSON
	SummaryExcerpt *string `json:"summaryExcerpt"`
}

// summaryExcerptLen is how many characters of a summary the list shows.
const summaryExcerptLen = 200

// excerpt cuts s after n characters (runes), marking the cut with "…".
func excerpt(s *string, n int) *string {
	if s == nil {
		return nil
	}
	r := []rune(*s)
	if len(r) <= n {
		return s
	}
	out := strings.TrimRight(string(r[:n]), " \n\t") + "…"
	return &out
}

type tickPage struct {
	Ticks      []listTickJSON `json:"ticks"`
	NextCursor *string        `json:"nextCursor"`
}

// listTicks answers the persona's tick records newest first, one page at a
// time (limit 1–200, default 50; cursor from nextCursor; status filters).
// Ticks known only from actions or feedback (runners that predate tick
// records) are not listed; GET /:id/ticks/:tickId finds them.
func (h *handlers) listTicks(c echo.Context) error {
	var p errs.Problems
	f := personas.TickFilter{Cursor: c.QueryParam("cursor"), Status: personas.TickStatus(c.QueryParam("status"))}
	if limit := edge.QueryInt(c, "limit", &p); limit != nil {
		f.Limit = *limit
		if f.Limit == 0 {
			f.Limit = -1 // an explicit 0 is out of range, not the default
		}
	}
	if err := p.Err(); err != nil {
		return err
	}
	items, next, err := h.store.ListTicks(c.Request().Context(), c.Param("id"), f)
	if err != nil {
		return err
	}
	page := tickPage{Ticks: make([]listTickJSON, len(items))}
	for i := range items {
		page.Ticks[i] = listTickJSON{tickJSON: newTickJSON(&items[i]), SummaryExcerpt: excerpt(items[i].Summary, summaryExcerptLen)}
	}
	if next != "" {
		page.NextCursor = &next
	}
	return c.JSON(http.StatusOK, page)
}

// ---- GET /:id/ticks/:tickId ---------------------------------------------

// tickDetailJSON is one tick with its summary.
type tickDetailJSON struct {
	tickJSON
	// Summary is the persona's own summary of the day (null when the
	// runner sent none, or for a tick without a record).
	Summary *string `json:"summary"`
}

type tickFeedbackJSON struct {
	ID        string  `json:"id"`
	Module    string  `json:"module"`
	Rating    int     `json:"rating"`
	Notes     *string `json:"notes"`
	CreatedAt string  `json:"createdAt"`
}

type tickResponse struct {
	Tick     tickDetailJSON     `json:"tick"`
	Actions  []actionJSON       `json:"actions"`
	Feedback []tickFeedbackJSON `json:"feedback"`
}

// getTick answers one tick with its actions (in the order written) and its
// ratings (by module). A tick id with rows but no record comes back with
// recorded false and what the rows tell (counts, duration).
func (h *handlers) getTick(c echo.Context) error {
	ctx := c.Request().Context()
	id, tickID := c.Param("id"), c.Param("tickId")
	t, err := h.store.GetTick(ctx, id, tickID)
	if errors.Is(err, personas.ErrNotFound) {
		if _, perr := h.store.GetPersona(ctx, id); perr != nil {
			return perr
		}
		return errTickNotFound
	}
	if err != nil {
		return err
	}
	actions, err := h.store.TickActions(ctx, id, tickID)
	if err != nil {
		return err
	}
	feedback, err := h.store.TickFeedback(ctx, id, tickID)
	if err != nil {
		return err
	}
	res := tickResponse{
		Tick:     tickDetailJSON{tickJSON: newTickJSON(&t), Summary: t.Summary},
		Actions:  make([]actionJSON, len(actions)),
		Feedback: make([]tickFeedbackJSON, len(feedback)),
	}
	for i := range actions {
		res.Actions[i] = newActionJSON(id, &actions[i])
	}
	for i, f := range feedback {
		res.Feedback[i] = tickFeedbackJSON{ID: f.ID, Module: f.Module, Rating: f.Rating, Notes: f.Notes, CreatedAt: edge.ISOTime(f.CreatedAt)}
	}
	return c.JSON(http.StatusOK, res)
}

// ---- helpers ------------------------------------------------------------

// answerPersona answers the persona as the list and the detail show it.
func (h *handlers) answerPersona(c echo.Context, id string) error {
	p, err := h.personaView(c.Request().Context(), id)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, p)
}

// personaView reads the persona with its 7-day count and overdue flag in
// one statement (the detail's).
func (h *handlers) personaView(ctx context.Context, id string) (personaJSON, error) {
	d, err := h.store.PersonaDetail(ctx, id)
	if err != nil {
		return personaJSON{}, err
	}
	return newPersonaJSON(d), nil
}

// readBool reads a required boolean field: null is a problem, not absence.
func readBool(d *jsondec.Reader, p *errs.Problems, key string) *bool {
	v, ok := d.Bool(key)
	if !ok {
		if !p.Has(key) {
			p.Add(key, "must be true or false")
		}
		return nil
	}
	return &v
}

// readNoFields reads the body of a request that defines no fields: none at
// all, or an empty object ({}), so that clients that always send a JSON
// body work. Any field is refused as unknown.
func readNoFields(c echo.Context) error {
	req := c.Request()
	if req.Body == nil || req.Body == http.NoBody {
		return nil
	}
	br := bufio.NewReader(req.Body)
	for {
		b, err := br.ReadByte()
		if errors.Is(err, io.EOF) {
			return nil // empty or whitespace only
		}
		if err != nil {
			return err
		}
		if b != ' ' && b != '\t' && b != '\n' && b != '\r' {
			if err := br.UnreadByte(); err != nil {
				return err
			}
			break
		}
	}
	req.Body = io.NopCloser(br)
	var p errs.Problems
	err := edge.ReadJSON(c, &p, func(d *jsondec.Reader) {
		d.Object("", func(key string) {
			edge.Unknown(&p, key)
			d.Skip()
		})
	})
	if err != nil {
		return err
	}
	return p.Err()
}

// cut shortens s to at most n runes.
func cut(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n])
}
