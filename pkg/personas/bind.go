package personas

import (
	"encoding/json"
	"fmt"
	"time"

	fastjson "github.com/goccy/go-json"
)

// Why Bind exists: the load tester (services/personas-bench) runs the
// store's statements straight against PostgreSQL to compare the service
// with. It used to take only the SQL (Statement) and build the arguments
// itself; when ticks and leases changed the arguments (due and claim gained
// some, writes a lease token, a sweep runs first) its copies went stale and
// the raw side sent wrong argument lists. Bind is the one place where a
// statement meets its arguments: the store's own methods run exactly what
// Bind returns, so the benchmark cannot drift from the store again, and a
// test checks that every bound statement has as many arguments as
// placeholders. Deriving arguments in the tester and merely counting
// placeholders there would catch a changed count but not a changed meaning
// (?3 now the hour instead of the limit), which is why the arguments are
// built here and not there.

// Bound is one of the store's statements with the arguments the store
// sends with it for a given input.
type Bound struct {
	Name string
	// SQL has PostgreSQL placeholders ($1, $2, ...), for pgx.
	SQL  string
	Args []any
}

// BindInput is what a statement's arguments are computed from; each
// statement reads only the fields its documentation in Bind names.
type BindInput struct {
	// Now is the store's clock at the call; zero means Store.Now.
	Now       time.Time
	PersonaID string
	// PersonaIDs: dueProfiles' ids (the due or claim rows not cached).
	PersonaIDs []string
	TickID     string
	LeaseToken string
	// Holds says that LeaseToken is the persona's current lease (the store
	// learns it from lockLease inside the transaction; a caller of Bind
	// that just claimed knows it). A token that does not hold is stale.
	Holds bool
	// RunnerID: claim's runner; finishTick's lease owner when Holds.
	RunnerID string
	Limit    int
	Lease    time.Duration
	// Tokens are claim's fresh lease tokens, one per row it may claim;
	// nil draws Limit new ones as the store does.
	Tokens   []string
	Actions  []ActionInput
	Feedback []FeedbackInput
	Start    TickStart
	Finish   TickFinish
	// List is listPersonas' filter: Limit (0: every persona), Cursor (a
	// nextCursor of an earlier page), Archetype, Cadence, Q, Tags, Status,
	// Lean. BindInput.Limit stands in for a zero List.Limit.
	List ListFilter
}

// BindNames lists the statements Bind knows, in the order the runner's
// tick cycle meets them.
var BindNames = []string{
	"sweep", "due", "claim", "dueProfiles",
	"lockLease", "startTick", "bindTick", "getTick",
	"insertActions", "insertFeedback",
	"tickStatus", "finishTick", "finishPersona",
	"listPersonas",
	"personaDetail",
}

// Bind returns the named statement with the arguments this store sends for
// in. Bind never touches the database, so a Store over a nil *bun.DB (New(nil))
// serves it; the failure policy (backoff, quarantine) is the store's.
//
//   - sweep: Now. due: Now, Limit (0: DefaultDueLimit). claim: Now, Limit,
//     RunnerID, Lease, Tokens. dueProfiles: PersonaIDs (due and claim read
//     the static fields of personas missing from the profile cache with it;
//     a warm cache sends none).
//   - insertActions: PersonaID, Now, Actions, LeaseToken.
//     insertFeedback: PersonaID, Now, Feedback, LeaseToken. Both come in
//     variants chosen from the batch (a token or not, error rows, ratings
//     and parse markers; see writePersonaCTE); Statement has the fullest.
//   - The tick start, in one transaction: lockLease (PersonaID), startTick
//     (PersonaID, Start, Now, Holds), bindTick (PersonaID, Start.TickID; only
//     when Holds and the tick is running), getTick (PersonaID, TickID).
//   - The finish, in one transaction: lockLease, tickStatus (PersonaID,
//     TickID), finishTick (PersonaID, TickID, Finish, RunnerID, Now, Holds),
//     finishPersona (PersonaID, Finish.Status, Holds, Now; not when a token
//     was given that does not hold), getTick.
//   - The admin list: listPersonas (Now, List; see StreamPersonas). Its SQL
//     depends on which filters are set (each set filter is a condition);
//     an invalid filter or cursor is an error here.
//   - The admin detail (GET /api/v1/personas/admin/:id), one statement:
//     personaDetail (PersonaID; Now, from which the 7-day window is taken;
//     Limit, the number of recent actions, 0: DetailRecentActions). It
//     answers one row (none for an unknown id): the persona's columns,
//     actions_7d, and recent_actions and feedback_by_module as JSON arrays.
//
// Inputs are not validated here: the store's methods validate first.
func (s *Store) Bind(name string, in BindInput) (Bound, error) {
	if in.Now.IsZero() {
		in.Now = s.Now()
	}
	now := in.Now
	b := Bound{Name: name}
	switch name {
	case "sweep":
		b.Args = s.failureArgs(now)
	case "due":
		limit := in.Limit
		if limit == 0 {
			limit = DefaultDueLimit
		}
		b.Args = append(s.scheduleArgs(now), limit)
	case "claim":
		tokens := in.Tokens
		if tokens == nil {
			tokens = make([]string, in.Limit)
			for i := range tokens {
				tokens[i] = newLeaseToken()
			}
		}
		lease := in.Lease.Truncate(time.Second)
		b.Args = append(s.scheduleArgs(now), in.Limit, in.RunnerID, now.Add(lease), tokens, int(lease.Seconds()))
	case "dueProfiles":
		ids := in.PersonaIDs
		if ids == nil {
			ids = []string{}
		}
		b.Args = []any{ids}
	case "insertActions":
		raw, err := actionsPayload(in.Actions)
		if err != nil {
			return b, err
		}
		errors := false
		for _, r := range in.Actions {
			errors = errors || r.Result == ResultError
		}
		tokened := in.LeaseToken != ""
		b.SQL = insertActionsPG[boolIndex(tokened)][boolIndex(errors)]
		b.Args = []any{in.PersonaID, now, raw, now.Truncate(time.Hour)}
		if tokened {
			b.Args = append(b.Args, in.LeaseToken)
		}
	case "insertFeedback":
		raw, err := feedbackPayload(in.Feedback)
		if err != nil {
			return b, err
		}
		var ratings, markers bool
		for _, r := range in.Feedback {
			m := IsParseMarker(r.Module)
			markers, ratings = markers || m, ratings || !m
		}
		tokened := in.LeaseToken != ""
		b.SQL = insertFeedbackPG[boolIndex(tokened)][boolIndex(ratings)][boolIndex(markers)]
		b.Args = []any{in.PersonaID, now, raw}
		if tokened {
			b.Args = append(b.Args, in.LeaseToken)
		}
	case "lockLease":
		b.Args = []any{in.PersonaID}
	case "startTick":
		started := now
		if in.Start.StartedAt != nil {
			started = in.Start.StartedAt.UTC().Truncate(time.Microsecond)
		}
		b.Args = []any{in.PersonaID, in.Start.TickID, in.Start.RunnerID, tokenHashOrNil(in.Start.LeaseToken),
			in.Start.Model, in.Start.PlatformVersion, started, staleCount(in.Start.LeaseToken, in.Holds), now}
	case "bindTick":
		b.Args = []any{in.PersonaID, in.Start.TickID}
	case "getTick":
		b.Args = []any{in.PersonaID, in.TickID}
	case "tickStatus":
		b.Args = []any{in.PersonaID, in.TickID}
	case "finishTick":
		finished := in.Finish.finishedAt(now)
		var runner *string
		if in.Holds && in.RunnerID != "" {
			runner = &in.RunnerID
		}
		f := in.Finish
		b.Args = []any{in.PersonaID, in.TickID, runner, string(f.Status), f.ErrorKind, f.ErrorMessage, f.Summary,
			f.RatingStatus, f.TokensIn, f.TokensOut, finished, staleCount(in.LeaseToken, in.Holds), now}
	case "finishPersona":
		b.SQL = finishPersonaPG[boolIndex(in.Holds)][boolIndex(in.Finish.Status.Success())]
		b.Args = []any{in.PersonaID, string(in.Finish.Status), now, in.Finish.finishedAt(now)}
		if !in.Finish.Status.Success() {
			b.Args = append(b.Args, s.failureArgs(now)[1:]...)
		}
	case "listPersonas":
		f := in.List
		if f.Limit == 0 {
			f.Limit = in.Limit
		}
		cur, err := checkList(f)
		if err != nil {
			return b, err
		}
		return bindList(f, cur, now), nil
	case "personaDetail":
		limit := in.Limit
		if limit == 0 {
			limit = DetailRecentActions
		}
		start, _, hourEnd := activityWindowAt(now)
		b.Args = append([]any{in.PersonaID, start, hourEnd, limit}, ruleArgs(detailOverdueUses, now)...)
	default:
		return b, fmt.Errorf("personas: no statement %q", name)
	}
	if b.SQL == "" {
		b.SQL = prepared[name]
	}
	return b, nil
}

// mustBind is Bind for the store's own calls, whose names are constants.
func (s *Store) mustBind(name string, in BindInput) Bound {
	b, err := s.Bind(name, in)
	if err != nil {
		panic(err)
	}
	return b
}

// finishPersonaPG holds finishPersonaSQL's variants, [holds][success],
// converted once.
var finishPersonaPG = func() (out [2][2]string) {
	for h := range 2 {
		for ok := range 2 {
			out[h][ok] = toPostgresPlaceholders(finishPersonaSQL(h == 1, ok == 1))
		}
	}
	return out
}()

func boolIndex(b bool) int {
	if b {
		return 1
	}
	return 0
}

// staleCount is 1 for a call whose token does not hold the lease.
func staleCount(token string, holds bool) int {
	if token != "" && !holds {
		return 1
	}
	return 0
}

// actionsPayload is insertActions' ?2: the batch as JSON, each row with its
// deterministic id, a repeated id kept only the first time.
func actionsPayload(rows []ActionInput) (json.RawMessage, error) {
	payload := make([]actionRow, 0, len(rows))
	seen := make(map[string]struct{}, len(rows))
	for i, r := range rows {
		idx := i
		if r.Seq != nil {
			idx = *r.Seq
		}
		id := ActionID(r.TickID, idx, r.ToolName)
		if _, dup := seen[id]; dup {
			continue // the first occurrence wins; this one counts as a duplicate
		}
		seen[id] = struct{}{}
		payload = append(payload, actionRow{
			ID: id, TickID: r.TickID, Seq: r.Seq, ToolName: r.ToolName,
			InputHash: r.InputHash, Result: r.Result, ErrorMessage: r.ErrorMessage, LatencyMs: r.LatencyMs,
		})
	}
	raw, err := fastjson.Marshal(payload)
	if err != nil {
		return nil, fmt.Errorf("encode actions: %w", err)
	}
	// As json.RawMessage, not a string: a batch can be tens of MB, and the
	// driver sends the bytes as they are.
	return raw, nil
}

// feedbackPayload is insertFeedback's ?2, built like actionsPayload.
func feedbackPayload(rows []FeedbackInput) (json.RawMessage, error) {
	payload := make([]feedbackRow, 0, len(rows))
	seen := make(map[string]struct{}, len(rows))
	for _, r := range rows {
		id := FeedbackID(r.TickID, r.Module)
		if _, dup := seen[id]; dup {
			continue // the first rating wins; this one counts as a duplicate
		}
		seen[id] = struct{}{}
		payload = append(payload, feedbackRow{ID: id, TickID: r.TickID, Module: r.Module, Rating: r.Rating, Notes: r.Notes})
	}
	raw, err := fastjson.Marshal(payload)
	if err != nil {
		return nil, fmt.Errorf("encode feedback: %w", err)
	}
	return raw, nil
}
