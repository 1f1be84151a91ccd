package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/mana/personas/pkg/edge"
	"github.com/mana/personas/pkg/errs"
	"github.com/mana/personas/pkg/jsondec"
	"github.com/mana/personas/pkg/manaauth"
	"github.com/mana/personas/pkg/personas"
)

// Password bounds for registering a persona's user (Better Auth's defaults).
const (
	minPassword = 8
	maxPassword = 128
)

type handlers struct {
	store    *personas.Store
	auth     identity
	verifier tokenVerifier
	logger   *slog.Logger
	metrics  *upstreamMetrics
}

// personaJSON is a persona as the list and the detail show it.
type personaJSON struct {
	UserID       string             `json:"userId"`
	Email        string             `json:"email"`
	Name         string             `json:"name"`
	Archetype    string             `json:"archetype"`
	SystemPrompt string             `json:"systemPrompt"`
	ModuleMix    map[string]float64 `json:"moduleMix"`
	TickCadence  personas.Cadence   `json:"tickCadence"`
	LastActiveAt *string            `json:"lastActiveAt"`
	CreatedAt    string             `json:"createdAt"`
	UpdatedAt    string             `json:"updatedAt"`
	Actions7d    int64              `json:"actions7d"`
	// Overdue: past its slot by the overview's grace (the list's
	// status=overdue rule).
	Overdue bool     `json:"overdue"`
	Tags    []string `json:"tags"`
	// MaxHistoryDays: the persona's own raw retention, null for the global rule.
	MaxHistoryDays *int `json:"maxHistoryDays"`

	// The schedule and run state (see pkg/personas: Due, FinishTick).
	TickHour            int           `json:"tickHour"`
	Enabled             bool          `json:"enabled"`
	Quarantined         bool          `json:"quarantined"`
	ConsecutiveFailures int           `json:"consecutiveFailures"`
	NextAttemptAt       *string       `json:"nextAttemptAt"`
	LastTick            *lastTickJSON `json:"lastTick"`
	Lease               *leaseJSON    `json:"lease"`
}

// lastTickJSON is the outcome of the persona's latest finished tick.
type lastTickJSON struct {
	Status     personas.TickStatus `json:"status"`
	FinishedAt *string             `json:"finishedAt"`
}

// leaseJSON is who holds the persona, until when. An expiry in the past is
// a lease that lapsed and has not been counted as a crash yet (that
// happens the next time the runner side looks at leases).
type leaseJSON struct {
	RunnerID  string  `json:"runnerId"`
	ExpiresAt string  `json:"expiresAt"`
	TickID    *string `json:"tickId,omitempty"`
}

// newPersonaJSON is the persona as the detail and the operator actions
// answer it (the list writes the same fields itself: list.go).
func newPersonaJSON(d *personas.PersonaDetail) personaJSON {
	p := &d.Persona
	mix := p.ModuleMix
	if mix == nil {
		mix = map[string]float64{}
	}
	tags := p.Tags
	if tags == nil {
		tags = []string{}
	}
	out := personaJSON{
		UserID: p.UserID, Email: p.Email, Name: p.Name, Archetype: p.Archetype,
		SystemPrompt: p.SystemPrompt, ModuleMix: mix, TickCadence: p.TickCadence,
		LastActiveAt: edge.ISOTimePtr(p.LastActiveAt), CreatedAt: edge.ISOTime(p.CreatedAt), UpdatedAt: edge.ISOTime(p.UpdatedAt),
		Actions7d: d.Actions7d, Overdue: d.Overdue, Tags: tags, MaxHistoryDays: p.MaxHistoryDays,
		TickHour: p.TickHour, Enabled: p.Enabled, Quarantined: p.Quarantined,
		ConsecutiveFailures: p.ConsecutiveFailures, NextAttemptAt: edge.ISOTimePtr(p.NextAttemptAt),
	}
	if p.LastTick != nil {
		out.LastTick = &lastTickJSON{Status: p.LastTick.Status, FinishedAt: edge.ISOTimePtr(p.LastTick.FinishedAt)}
	}
	if p.Lease != nil {
		out.Lease = &leaseJSON{RunnerID: p.Lease.RunnerID, ExpiresAt: edge.ISOTime(p.Lease.ExpiresAt), TickID: p.Lease.TickID}
	}
	return out
}

// ---- POST / -------------------------------------------------------------

// upsertRequest is a validated upsert body. Optional fields are nil when
// absent: an update then keeps the persona's current value.
type upsertRequest struct {
	Email        string
	Name         *string
	Password     string
	Archetype    string
	SystemPrompt string
	ModuleMix    map[string]float64
	TickCadence  *string
	// TickHour: absent keeps the current hour (on create: derived), null
	// goes back to the derived hour, an integer sets it.
	TickHour    *int
	TickHourSet bool
	Tags        *[]string // nil: keep the persona's tags (none on create)
	// MaxHistoryDays: like TickHour, absent keeps, null is the global rule.
	MaxHistoryDays    *int
	MaxHistoryDaysSet bool
}

// readUpsert reads and validates the body, reporting every problem by its
// JSON path: type problems from decoding, then the store's rules for every
// field that decoded.
func readUpsert(c echo.Context) (*upsertRequest, error) {
	var p errs.Problems
	r := &upsertRequest{}
	err := edge.ReadJSON(c, &p, func(d *jsondec.Reader) {
		d.Object("", func(key string) {
			switch key {
			case "email":
				r.Email, _ = d.String(key, personas.MaxEmailLen)
			case "name":
				if s, ok := d.String(key, personas.MaxNameLen); ok {
					r.Name = &s
				}
			case "password":
				r.Password, _ = d.String(key, maxPassword)
			case "archetype":
				r.Archetype, _ = d.String(key, personas.MaxArchetypeLen)
			case "systemPrompt":
				r.SystemPrompt, _ = d.String(key, personas.MaxSystemPromptLen)
			case "tickCadence":
				if s, ok := d.String(key, len("weekdays")); ok {
					r.TickCadence = &s
				}
			case "tickHour":
				r.TickHourSet = true
				if v, ok := d.Int(key); ok {
					n := int(max(min(v, 1<<31), -(1 << 31))) // the store's range check reports it
					r.TickHour = &n
				}
			case "tags":
				tags := []string{}
				_, over, _ := d.Array(key, personas.MaxTags, func(i int) {
					t, _ := d.String(jsondec.Index(key, i), personas.MaxTagLen+1)
					tags = append(tags, t)
				})
				if over {
					p.Add(key, "at most %d tags", personas.MaxTags)
				}
				r.Tags = &tags
			case "maxHistoryDays":
				r.MaxHistoryDaysSet = true
				if v, ok := d.Int(key); ok {
					n := int(max(min(v, 1<<31), -(1 << 31))) // the store's range check reports it
					r.MaxHistoryDays = &n
				}
			case "moduleMix":
				r.ModuleMix = map[string]float64{}
				d.Object(key, func(module string) {
					if len(r.ModuleMix) > personas.MaxModules {
						d.Skip() // one past the limit is enough for the rule to apply
						return
					}
					w, _ := d.Number(jsondec.Field(key, module))
					r.ModuleMix[module] = w
				})
			default:
				d.Skip()
			}
		})
	})
	if err != nil {
		return nil, err
	}
	if n := utf8.RuneCountInString(r.Password); n < minPassword || n > maxPassword {
		p.Add("password", "must be %d to %d characters", minPassword, maxPassword)
	}
	in := r.input("", "")
	in.Check(&p)
	if err := p.Err(); err != nil {
		return nil, err
	}
	return r, nil
}

// input is the store's input for user userID; name and cadence fall back to
// the given defaults when the request does not set them.
func (r *upsertRequest) input(userID, defaultName string) personas.PersonaInput {
	in := personas.PersonaInput{
		UserID: userID, Email: r.Email, Name: defaultName, Archetype: r.Archetype,
		SystemPrompt: r.SystemPrompt, ModuleMix: r.ModuleMix,
	}
	if r.Name != nil {
		in.Name = *r.Name
	}
	if r.TickCadence != nil {
		in.TickCadence = personas.Cadence(*r.TickCadence)
	}
	in.TickHour = r.TickHour
	if r.Tags != nil {
		in.Tags = *r.Tags
	}
	in.MaxHistoryDays = r.MaxHistoryDays
	return in
}

type upsertResponse struct {
	OK      bool   `json:"ok"`
	UserID  string `json:"userId"`
	Email   string `json:"email"`
	Created bool   `json:"created"`
}

// upsert creates or updates the persona with the body's email. Each step is
// safe to repeat, so a request that failed half-way converges when run
// again: find the user in mana-auth → register it when missing → stamp it
// as a persona → upsert the row. The row is written only after the stamp
// succeeded, and no database transaction is open during the mana-auth
// calls.
func (h *handlers) upsert(c echo.Context) error {
	req, err := readUpsert(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()

	existing, err := h.personaByEmail(ctx, req.Email)
	if err != nil {
		return err
	}
	user, err := h.auth.FindUserByEmail(ctx, bearer(c), req.Email)
	switch {
	case errors.Is(err, manaauth.ErrNotFound):
		user = nil
	case err != nil:
		return h.upstream(opFindUser, err)
	}
	if existing != nil && (user == nil || user.ID != existing.UserID) {
		return emailTaken(req.Email, existing.UserID, user)
	}
	if user != nil && existing == nil {
		if err := h.mayAdopt(ctx, user, req); err != nil {
			return err
		}
	}
	if user == nil {
		if user, err = h.register(ctx, bearer(c), req); err != nil {
			return err
		}
	}
	if _, err := h.auth.StampPersona(ctx, user.ID); err != nil {
		return h.upstream(opStamp, err)
	}

	in := req.input(user.ID, user.Name)
	if existing != nil {
		// Optional fields left out keep their current values.
		if req.Name == nil {
			in.Name = existing.Name
		}
		if req.TickCadence == nil {
			in.TickCadence = existing.TickCadence
		}
		if !req.TickHourSet {
			in.TickHour = existing.OwnTickHour
		}
		if req.Tags == nil {
			in.Tags = existing.Tags
		}
		if !req.MaxHistoryDaysSet {
			in.MaxHistoryDays = existing.MaxHistoryDays
		}
	}
	created, err := h.store.UpsertPersona(ctx, in)
	if errors.Is(err, personas.ErrConflict) {
		return errs.Wrap(err, errs.Conflict, fmt.Sprintf("%s is already used by another persona; delete that persona first", req.Email))
	}
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, upsertResponse{OK: true, UserID: user.ID, Email: req.Email, Created: created})
}

// mayAdopt decides whether an existing mana-auth user without a persona row
// may become a persona. Stamping is not reversible from here, and deleting a
// persona deletes its user: an admin must not turn a person's account into
// a persona by typing its email. A user already stamped is a persona whose
// row was not written yet (an earlier attempt failed after the stamp); any
// other user is adopted only when the request's password logs in to it,
// which is the case when an earlier attempt registered it and then failed,
// and never for someone else's account. Admin accounts are never adopted.
func (h *handlers) mayAdopt(ctx context.Context, user *manaauth.User, req *upsertRequest) error {
	refuse := func(why string) error {
		return errs.E(errs.Conflict,
			"%s belongs to an existing mana-auth account (%s) that is not a persona%s; personas get accounts of their own", req.Email, user.ID, why)
	}
	if user.IsAdmin() {
		return refuse(" (an admin account)")
	}
	if user.IsPersona() {
		return nil
	}
	_, err := h.auth.Login(ctx, req.Email, req.Password)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, manaauth.ErrUnauthorized):
		return refuse(" and the request's password does not log in to it")
	default:
		return h.upstream(opLogin, err)
	}
}

// register creates the user; when the email was taken meanwhile (a
// concurrent upsert, or an earlier attempt whose answer was lost), it looks
// the user up again.
func (h *handlers) register(ctx context.Context, bearer string, req *upsertRequest) (*manaauth.User, error) {
	name := ""
	if req.Name != nil {
		name = *req.Name
	}
	res, err := h.auth.Register(ctx, manaauth.RegisterRequest{Email: req.Email, Password: req.Password, Name: name})
	if err == nil {
		return &res.User, nil
	}
	if refused := refusedInput(err); refused != nil {
		return nil, refused
	}
	if !errors.Is(err, manaauth.ErrAlreadyExists) {
		return nil, h.upstream(opRegister, err)
	}
	user, err := h.auth.FindUserByEmail(ctx, bearer, req.Email)
	if err != nil {
		return nil, h.upstream(opFindUser, err)
	}
	return user, nil
}

// refusedInput turns mana-auth's refusal of a register call (a 400 or 422
// other than "already exists") into our own 400: the caller sent something
// mana-auth will not take, such as a password it finds too long. Nil for
// any other error.
func refusedInput(err error) error {
	var re *manaauth.RefusedError
	if !errors.As(err, &re) {
		return nil
	}
	field := "body"
	switch upper := strings.ToUpper(re.Code); {
	case strings.Contains(upper, "PASSWORD"):
		field = "password"
	case strings.Contains(upper, "EMAIL"):
		field = "email"
	}
	why := strings.TrimSpace(re.Code + " " + re.Message)
	if why == "" {
		why = "no reason given"
	}
	return errs.InvalidField(field, "refused by mana-auth (%s)", why)
}

// personaByEmail returns the persona row with this email (any case), or nil.
func (h *handlers) personaByEmail(ctx context.Context, email string) (*personas.Persona, error) {
	p, err := h.store.PersonaByEmail(ctx, email)
	if errors.Is(err, personas.ErrNotFound) {
		return nil, nil
	}
	return p, err
}

// emailTaken is the 409 for an email whose persona row belongs to another
// mana-auth user than the one that has the email now (or to a user
// mana-auth no longer knows).
func emailTaken(email, personaID string, user *manaauth.User) error {
	why := "whose mana-auth user no longer exists"
	if user != nil {
		why = fmt.Sprintf("while mana-auth has this email on user %s", user.ID)
	}
	return errs.E(errs.Conflict,
		"%s is already used by persona %s %s; delete that persona first (DELETE /api/v1/personas/admin/%s)",
		email, personaID, why, personaID)
}

// ---- GET /:id -----------------------------------------------------------

type actionJSON struct {
	ID           string  `json:"id"`
	PersonaID    string  `json:"personaId"`
	TickID       string  `json:"tickId"`
	Seq          *int    `json:"seq,omitempty"`
	ToolName     string  `json:"toolName"`
	InputHash    *string `json:"inputHash"`
	Result       string  `json:"result"`
	ErrorMessage *string `json:"errorMessage"`
	LatencyMs    *int    `json:"latencyMs"`
	CreatedAt    string  `json:"createdAt"`
}

func newActionJSON(personaID string, a *personas.Action) actionJSON {
	return actionJSON{
		ID: a.ID, PersonaID: personaID, TickID: a.TickID, Seq: a.Seq, ToolName: a.ToolName, InputHash: a.InputHash,
		Result: string(a.Result), ErrorMessage: a.ErrorMessage, LatencyMs: a.LatencyMs, CreatedAt: edge.ISOTime(a.CreatedAt),
	}
}

type feedbackJSON struct {
	Module       string         `json:"module"`
	AvgRating    float64        `json:"avgRating"`
	Count        int            `json:"count"`
	Distribution map[string]int `json:"distribution"`
	LastRatedAt  string         `json:"lastRatedAt"`
}

type detailResponse struct {
	Persona          personaJSON      `json:"persona"`
	RecentActions    []actionJSON     `json:"recentActions"`
	FeedbackByModule []feedbackJSON   `json:"feedbackByModule"`
	Sources          personas.Sources `json:"sources"`
}

// detail answers one persona with its 20 newest actions and its ratings per
// module (true mean, count, 1-5 distribution, latest rating time), read by
// one statement (personas.Store.PersonaDetail).
func (h *handlers) detail(c echo.Context) error {
	id := c.Param("id")
	d, err := h.store.PersonaDetail(c.Request().Context(), id)
	if err != nil {
		return err
	}
	res := detailResponse{
		Persona:          newPersonaJSON(d),
		RecentActions:    make([]actionJSON, len(d.RecentActions)),
		FeedbackByModule: make([]feedbackJSON, len(d.FeedbackByModule)),
		Sources:          d.Sources,
	}
	for i := range d.RecentActions {
		res.RecentActions[i] = newActionJSON(id, &d.RecentActions[i])
	}
	for i, f := range d.FeedbackByModule {
		res.FeedbackByModule[i] = feedbackJSON{
			Module: f.Module, AvgRating: f.AvgRating, Count: f.Count,
			Distribution: f.Distribution, LastRatedAt: edge.ISOTime(f.LastRatedAt),
		}
	}
	return c.JSON(http.StatusOK, res)
}

// ---- DELETE /:id --------------------------------------------------------

// deleteResponse: "deleted" is what the previous implementation answered
// and callers read; userId is kept for callers of this one.
type deleteResponse struct {
	OK      bool   `json:"ok"`
	Deleted string `json:"deleted"`
	UserID  string `json:"userId"`
}

// remove hard-deletes a persona: its mana-auth user first (a 404 there means
// already gone), then its row with actions, feedback and activity. The row
// is deleted only after mana-auth confirmed, so a failure leaves the
// persona listed and a repeat finishes the job. An id without a row is
// looked up in mana-auth: a user stamped as persona (left half-created) is
// deleted there, any other user is refused, and an id unknown to both is
// 404.
func (h *handlers) remove(c echo.Context) error {
	ctx := c.Request().Context()
	id := c.Param("id")
	_, err := h.store.GetPersona(ctx, id)
	switch {
	case err == nil:
		if err := h.deleteUser(ctx, bearer(c), id); err != nil {
			return err
		}
		// ErrNotFound: a concurrent delete finished first; the end state
		// is the one asked for.
		if err := h.store.DeletePersona(ctx, id); err != nil && !errors.Is(err, personas.ErrNotFound) {
			return err
		}
	case errors.Is(err, personas.ErrNotFound):
		user, err := h.auth.GetUser(ctx, bearer(c), id)
		if errors.Is(err, manaauth.ErrNotFound) {
			return personas.ErrNotFound
		}
		if err != nil {
			return h.upstream(opGetUser, err)
		}
		if !user.IsPersona() {
			return &errs.Error{Code: errs.Invalid, Title: "Not a persona", Message: fmt.Sprintf(
				"%s is not a persona; delete regular users with DELETE /api/v1/admin/users/%s/data", id, id)}
		}
		if err := h.deleteUser(ctx, bearer(c), id); err != nil {
			return err
		}
	default:
		return err
	}
	return c.JSON(http.StatusOK, deleteResponse{OK: true, Deleted: id, UserID: id})
}

func (h *handlers) deleteUser(ctx context.Context, bearer, id string) error {
	if err := h.auth.DeleteUser(ctx, bearer, id); err != nil && !errors.Is(err, manaauth.ErrNotFound) {
		return h.upstream(opDeleteUser, err)
	}
	return nil
}

// ---- helpers ------------------------------------------------------------
