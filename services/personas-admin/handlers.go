package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/mana/personas/pkg/httpx"
	"github.com/mana/personas/pkg/manaauth"
	"github.com/mana/personas/pkg/personas"
)

// Password bounds for registering a persona's user (Better Auth's defaults).
const (
	minPassword = 8
	maxPassword = 128
)

// recentActionsLimit is how many actions the detail shows.
const recentActionsLimit = 20

type handlers struct {
	store    *personas.Store
	auth     identity
	verifier tokenVerifier
	logger   *slog.Logger
	metrics  *upstreamMetrics
}

func isoTimePtr(t *time.Time) *string {
	if t == nil {
		return nil
	}
	s := httpx.ISOTime(*t)
	return &s
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
}

func newPersonaJSON(p *personas.Persona, actions7d int64) personaJSON {
	mix := p.ModuleMix
	if mix == nil {
		mix = map[string]float64{}
	}
	return personaJSON{
		UserID: p.UserID, Email: p.Email, Name: p.Name, Archetype: p.Archetype,
		SystemPrompt: p.SystemPrompt, ModuleMix: mix, TickCadence: p.TickCadence,
		LastActiveAt: isoTimePtr(p.LastActiveAt), CreatedAt: httpx.ISOTime(p.CreatedAt), UpdatedAt: httpx.ISOTime(p.UpdatedAt),
		Actions7d: actions7d,
	}
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
}

// readUpsert reads and validates the body, reporting every problem by its
// JSON path.
func readUpsert(c echo.Context) (*upsertRequest, error) {
	var p personas.Problems
	obj, err := httpx.ReadObject(c, &p)
	if err != nil {
		return nil, err
	}
	r := &upsertRequest{
		Email:        obj.String("email"),
		Name:         obj.OptString("name"),
		Archetype:    obj.String("archetype"),
		SystemPrompt: obj.String("systemPrompt"),
		TickCadence:  obj.OptString("tickCadence"),
	}
	before := len(p)
	r.Password = obj.String("password")
	if len(p) == before {
		if n := utf8.RuneCountInString(r.Password); n < minPassword || n > maxPassword {
			p.Add("password", "must be %d to %d characters", minPassword, maxPassword)
		}
	}
	if mix, ok := obj.Object("moduleMix"); ok {
		keys := mix.Keys()
		slices.Sort(keys)
		r.ModuleMix = make(map[string]float64, len(keys))
		for _, k := range keys {
			r.ModuleMix[k] = mix.Float(k)
		}
	}
	// The store's rules (email form, lengths, cadence, weights) for every
	// field not already reported above.
	in := r.input("pending", "")
	var ve *personas.ValidationError
	if err := in.Validate(); errors.As(err, &ve) {
		seen := make(map[string]bool, len(p))
		for _, fe := range p {
			seen[fe.Field] = true
		}
		for _, fe := range ve.Details {
			if !seen[fe.Field] {
				p = append(p, fe)
			}
		}
	}
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
	}
	created, err := h.store.UpsertPersona(ctx, in)
	if errors.Is(err, personas.ErrConflict) {
		return httpx.NewError(http.StatusConflict, "Conflict",
			fmt.Sprintf("%s is already used by another persona; delete that persona first", req.Email)).WithCause(err)
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
		return httpx.NewError(http.StatusConflict, "Conflict", fmt.Sprintf(
			"%s belongs to an existing mana-auth account (%s) that is not a persona%s; personas get accounts of their own", req.Email, user.ID, why))
	}
	if strings.EqualFold(user.Role, "admin") {
		return refuse(" (an admin account)")
	}
	if user.Kind == "persona" {
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

// refusedInput turns mana-auth's 400 or 422 to a register call (other than
// "already exists") into our own 400: the caller sent something mana-auth
// will not take, such as a password it finds too long. Nil otherwise.
func refusedInput(err error) error {
	if errors.Is(err, manaauth.ErrAlreadyExists) {
		return nil
	}
	var code, msg string
	var se *manaauth.StatusError
	var ue *manaauth.UpstreamError
	switch {
	case errors.As(err, &se) && (se.Status == http.StatusBadRequest || se.Status == http.StatusUnprocessableEntity):
		code, msg = se.Code, se.Message
	case errors.As(err, &ue) && (ue.Status == http.StatusBadRequest || ue.Status == http.StatusUnprocessableEntity):
		var body struct{ Code, Message string }
		_ = json.Unmarshal([]byte(ue.Body), &body)
		code, msg = body.Code, body.Message
	default:
		return nil
	}
	field := "body"
	switch upper := strings.ToUpper(code); {
	case strings.Contains(upper, "PASSWORD"):
		field = "password"
	case strings.Contains(upper, "EMAIL"):
		field = "email"
	}
	why := strings.TrimSpace(code + " " + msg)
	if why == "" {
		why = "no reason given"
	}
	return personas.Invalid(field, "refused by mana-auth ("+why+")")
}

// personaByEmail returns the persona row with this email (any case), or nil.
func (h *handlers) personaByEmail(ctx context.Context, email string) (*personas.Persona, error) {
	// q is a substring filter bounded to 200 characters: a prefix of a
	// longer email still finds it, the exact match is picked below.
	q := email
	if r := []rune(q); len(r) > 200 {
		q = string(r[:200])
	}
	list, _, err := h.store.ListPersonas(ctx, personas.ListFilter{Q: q})
	if err != nil {
		return nil, err
	}
	for i := range list {
		if strings.EqualFold(list[i].Email, email) {
			return &list[i].Persona, nil
		}
	}
	return nil, nil
}

// emailTaken is the 409 for an email whose persona row belongs to another
// mana-auth user than the one that has the email now (or to a user
// mana-auth no longer knows).
func emailTaken(email, personaID string, user *manaauth.User) error {
	why := "whose mana-auth user no longer exists"
	if user != nil {
		why = fmt.Sprintf("while mana-auth has this email on user %s", user.ID)
	}
	return httpx.NewError(http.StatusConflict, "Conflict", fmt.Sprintf(
		"%s is already used by persona %s %s; delete that persona first (DELETE /api/v1/personas/admin/%s)",
		email, personaID, why, personaID))
}

// ---- GET / --------------------------------------------------------------

// pagedList is the list with paging: nextCursor is null on the last page.
type pagedList struct {
	Personas   []personaJSON `json:"personas"`
	NextCursor *string       `json:"nextCursor"`
}

// list answers every persona newest first ({"personas":[...]}), or, with
// limit, one page of them plus nextCursor. Filters: archetype, cadence, q
// (case-insensitive substring of email or name).
func (h *handlers) list(c echo.Context) error {
	q := c.QueryParams()
	f := personas.ListFilter{
		Cursor:    q.Get("cursor"),
		Archetype: q.Get("archetype"),
		Cadence:   personas.Cadence(q.Get("cadence")),
		Q:         q.Get("q"),
	}
	paged := q.Has("limit")
	if paged {
		n, err := strconv.Atoi(q.Get("limit"))
		if err != nil || n < 1 || n > personas.MaxListLimit {
			return personas.Invalid("limit", fmt.Sprintf("must be an integer from 1 to %d", personas.MaxListLimit))
		}
		f.Limit = n
	} else if f.Cursor != "" {
		return personas.Invalid("cursor", "needs limit")
	}
	items, next, err := h.store.ListPersonas(c.Request().Context(), f)
	if err != nil {
		return err
	}
	out := make([]personaJSON, len(items))
	for i := range items {
		out[i] = newPersonaJSON(&items[i].Persona, items[i].Actions7d)
	}
	if !paged {
		return c.JSON(http.StatusOK, map[string]any{"personas": out})
	}
	page := pagedList{Personas: out}
	if next != "" {
		page.NextCursor = &next
	}
	return c.JSON(http.StatusOK, page)
}

// ---- GET /:id -----------------------------------------------------------

type actionJSON struct {
	ID           string  `json:"id"`
	TickID       string  `json:"tickId"`
	Seq          *int    `json:"seq,omitempty"`
	ToolName     string  `json:"toolName"`
	InputHash    *string `json:"inputHash"`
	Result       string  `json:"result"`
	ErrorMessage *string `json:"errorMessage"`
	LatencyMs    *int    `json:"latencyMs"`
	CreatedAt    string  `json:"createdAt"`
}

type feedbackJSON struct {
	Module       string         `json:"module"`
	AvgRating    float64        `json:"avgRating"`
	Count        int            `json:"count"`
	Distribution map[string]int `json:"distribution"`
	LastRatedAt  string         `json:"lastRatedAt"`
}

type detailResponse struct {
	Persona          personaJSON    `json:"persona"`
	RecentActions    []actionJSON   `json:"recentActions"`
	FeedbackByModule []feedbackJSON `json:"feedbackByModule"`
}

// detail answers one persona with its 20 newest actions and its ratings per
// module (true mean, count, 1-5 distribution, latest rating time).
func (h *handlers) detail(c echo.Context) error {
	ctx := c.Request().Context()
	id := c.Param("id")
	p, err := h.store.GetPersona(ctx, id)
	if err != nil {
		return err
	}
	n, err := h.store.Actions7d(ctx, id)
	if err != nil {
		return err
	}
	actions, err := h.store.RecentActions(ctx, id, recentActionsLimit)
	if err != nil {
		return err
	}
	feedback, err := h.store.FeedbackByModule(ctx, id)
	if err != nil {
		return err
	}
	res := detailResponse{
		Persona:          newPersonaJSON(p, n),
		RecentActions:    make([]actionJSON, len(actions)),
		FeedbackByModule: make([]feedbackJSON, len(feedback)),
	}
	for i, a := range actions {
		res.RecentActions[i] = actionJSON{
			ID: a.ID, TickID: a.TickID, Seq: a.Seq, ToolName: a.ToolName, InputHash: a.InputHash,
			Result: string(a.Result), ErrorMessage: a.ErrorMessage, LatencyMs: a.LatencyMs, CreatedAt: httpx.ISOTime(a.CreatedAt),
		}
	}
	for i, f := range feedback {
		res.FeedbackByModule[i] = feedbackJSON{
			Module: f.Module, AvgRating: f.AvgRating, Count: f.Count,
			Distribution: f.Distribution, LastRatedAt: httpx.ISOTime(f.LastRatedAt),
		}
	}
	return c.JSON(http.StatusOK, res)
}

// ---- DELETE /:id --------------------------------------------------------

type deleteResponse struct {
	OK     bool   `json:"ok"`
	UserID string `json:"userId"`
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
		if user.Kind != "persona" {
			return httpx.NewError(http.StatusBadRequest, "Not a persona", fmt.Sprintf(
				"%s is not a persona; delete regular users with DELETE /api/v1/admin/users/%s/data", id, id))
		}
		if err := h.deleteUser(ctx, bearer(c), id); err != nil {
			return err
		}
	default:
		return err
	}
	return c.JSON(http.StatusOK, deleteResponse{OK: true, UserID: id})
}

func (h *handlers) deleteUser(ctx context.Context, bearer, id string) error {
	if err := h.auth.DeleteUser(ctx, bearer, id); err != nil && !errors.Is(err, manaauth.ErrNotFound) {
		return h.upstream(opDeleteUser, err)
	}
	return nil
}

// ---- helpers ------------------------------------------------------------
