package personas

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/uptrace/bun"
)

// TickStatus is where a tick stands.
type TickStatus string

// The statuses. Running until finished; crashed when the lease it was
// started under lapsed without a finish.
const (
	TickRunning TickStatus = "running"
	TickOK      TickStatus = "ok"
	TickEmpty   TickStatus = "empty"
	TickFailed  TickStatus = "failed"
	TickTimeout TickStatus = "timeout"
	TickCrashed TickStatus = "crashed"
)

// Valid reports whether s is a known status.
func (s TickStatus) Valid() bool {
	switch s {
	case TickRunning, TickOK, TickEmpty, TickFailed, TickTimeout, TickCrashed:
		return true
	}
	return false
}

// Success reports whether s completes the persona's period.
func (s TickStatus) Success() bool { return s == TickOK || s == TickEmpty }

// ErrorKind classifies a failed tick.
type ErrorKind string

// The error kinds.
const (
	ErrorAuth        ErrorKind = "auth"
	ErrorLLM         ErrorKind = "llm"
	ErrorRateLimited ErrorKind = "rate_limited"
	ErrorTool        ErrorKind = "tool"
	ErrorTimeout     ErrorKind = "timeout"
	ErrorInternal    ErrorKind = "internal"
)

// Valid reports whether k is a known kind.
func (k ErrorKind) Valid() bool {
	switch k {
	case ErrorAuth, ErrorLLM, ErrorRateLimited, ErrorTool, ErrorTimeout, ErrorInternal:
		return true
	}
	return false
}

// RatingStatus says whether the tick's ratings could be read.
type RatingStatus string

// The rating statuses.
const (
	RatingOK         RatingStatus = "ok"
	RatingUnparsable RatingStatus = "unparsable"
	RatingMissing    RatingStatus = "missing"
)

// Valid reports whether r is a known rating status.
func (r RatingStatus) Valid() bool {
	return r == RatingOK || r == RatingUnparsable || r == RatingMissing
}

// Limits on tick records.
const (
	MaxModelLen           = 200
	MaxPlatformVersionLen = 100
	MaxSummaryLen         = 8000
	MaxTokens             = 1_000_000_000_000
	// MaxClockSkew is how far in the future a runner's startedAt or
	// finishedAt may lie (its clock may run ahead of the store's).
	MaxClockSkew = 5 * time.Minute
	// DefaultTickLimit and MaxTickLimit page ListTicks.
	DefaultTickLimit = 50
	MaxTickLimit     = 200
	// MaxTickRows bounds TickActions and TickFeedback.
	MaxTickRows = 5000
)

// Tick is one recorded tick with what was derived from its stored rows.
type Tick struct {
	TickID          string        `bun:"tick_id" json:"tickId"`
	RunnerID        *string       `bun:"runner_id" json:"runnerId"`
	Model           *string       `bun:"model" json:"model"`
	PlatformVersion *string       `bun:"platform_version" json:"platformVersion"`
	StartedAt       *time.Time    `bun:"started_at" json:"startedAt"`
	FinishedAt      *time.Time    `bun:"finished_at" json:"finishedAt"`
	Status          TickStatus    `bun:"status" json:"status,omitempty"`
	ErrorKind       *ErrorKind    `bun:"error_kind" json:"errorKind"`
	ErrorMessage    *string       `bun:"error_message" json:"errorMessage"`
	Summary         *string       `bun:"summary" json:"summary"`
	RatingStatus    *RatingStatus `bun:"rating_status" json:"ratingStatus"`
	TokensIn        *int64        `bun:"tokens_in" json:"tokensIn"`
	TokensOut       *int64        `bun:"tokens_out" json:"tokensOut"`
	// StaleWrites counts starts, write batches and finishes for this tick
	// that carried a token other than the persona's current lease.
	StaleWrites int       `bun:"stale_writes" json:"staleWrites"`
	CreatedAt   time.Time `bun:"created_at" json:"createdAt"`
	// Recorded is false for a tick id known only from actions or feedback
	// (a runner that predates tick records): then only the counts and the
	// duration are known.
	Recorded bool `bun:"recorded" json:"recorded"`
	// Derived from the stored actions and feedback of this tick. Ratings
	// counts every stored rating row, parse markers included;
	// UnparsableRatings how many of them are parse markers (modules
	// starting with "__", see IsParseMarker), which no aggregate counts.
	Actions           int `bun:"actions" json:"actions"`
	Errors            int `bun:"errors" json:"errors"`
	Ratings           int `bun:"ratings" json:"ratings"`
	UnparsableRatings int `bun:"unparsable_ratings" json:"unparsableRatings"`
	// DurationMs: finishedAt − startedAt; where either is unknown, the
	// first or last stored row stands in. Nil when nothing is known.
	DurationMs *int64 `bun:"duration_ms" json:"durationMs"`
}

// tickSelect reads ticks with their derived counts; the caller adds WHERE,
// ORDER and LIMIT on t.
const tickSelect = `
SELECT t.tick_id, t.runner_id, t.model, t.platform_version, t.started_at, t.finished_at, t.status,
       t.error_kind, t.error_message, t.summary, t.rating_status, t.tokens_in, t.tokens_out,
       t.stale_writes, t.created_at, true AS recorded, a.actions, a.errors, f.ratings, f.unparsable_ratings,
       (extract(epoch FROM COALESCE(t.finished_at, GREATEST(a.last_at, f.last_at))
                         - COALESCE(t.started_at, LEAST(a.first_at, f.first_at))) * 1000)::bigint AS duration_ms
  FROM personas.persona_ticks AS t
 CROSS JOIN LATERAL (
       SELECT count(*) AS actions, count(*) FILTER (WHERE x.result = 'error') AS errors,
              min(x.created_at) AS first_at, max(x.created_at) AS last_at
         FROM personas.persona_actions AS x
        WHERE x.persona_id = t.persona_id AND x.tick_id = t.tick_id) AS a
 CROSS JOIN LATERAL (
       SELECT count(*) AS ratings, count(*) FILTER (WHERE left(y.module, 2) = '__') AS unparsable_ratings,
              min(y.created_at) AS first_at, max(y.created_at) AS last_at
         FROM personas.persona_feedback AS y
        WHERE y.persona_id = t.persona_id AND y.tick_id = t.tick_id) AS f`

// TickStart opens a tick record.
type TickStart struct {
	TickID   string
	RunnerID string
	// LeaseToken (optional, the X-Lease-Token header): the claim's token.
	// With the current token the lease is bound to this tick (see FinishTick
	// and the crash sweep); with a stale one the start is stored and counted
	// as stale; without one the lease is not touched.
	LeaseToken      string
	Model           *string
	PlatformVersion *string
	StartedAt       *time.Time // nil: the store's clock
}

// Validate reports every problem; field names are the internal API's.
func (in *TickStart) Validate(now time.Time) error {
	var p Problems
	checkText(&p, "tickId", in.TickID, 1, MaxTickIDLen)
	checkText(&p, "runnerId", in.RunnerID, 1, MaxRunnerIDLen)
	checkToken(&p, "leaseToken", in.LeaseToken, false)
	if in.Model != nil {
		checkText(&p, "model", *in.Model, 0, MaxModelLen)
	}
	if in.PlatformVersion != nil {
		checkText(&p, "platformVersion", *in.PlatformVersion, 0, MaxPlatformVersionLen)
	}
	if in.StartedAt != nil && in.StartedAt.After(now.Add(MaxClockSkew)) {
		p.Add("startedAt", "must not lie in the future")
	}
	return p.Err()
}

// TickFinish closes a tick.
type TickFinish struct {
	Status       TickStatus // ok, empty, failed or timeout
	ErrorKind    *ErrorKind
	ErrorMessage *string
	Summary      *string // the persona's own summary of the day
	RatingStatus *RatingStatus
	TokensIn     *int64
	TokensOut    *int64
	FinishedAt   *time.Time // nil: the store's clock
}

// Validate reports every problem; field names are the internal API's.
func (in *TickFinish) Validate(now time.Time) error {
	var p Problems
	switch in.Status {
	case TickOK, TickEmpty, TickFailed, TickTimeout:
	case "":
		p.Add("status", "is required")
	default:
		p.Add("status", "must be one of ok, empty, failed, timeout")
	}
	if in.ErrorKind != nil && !in.ErrorKind.Valid() {
		p.Add("errorKind", "must be one of auth, llm, rate_limited, tool, timeout, internal")
	}
	if in.ErrorMessage != nil {
		checkText(&p, "errorMessage", *in.ErrorMessage, 0, MaxErrorMessageLen)
	}
	if in.Summary != nil {
		checkText(&p, "summary", *in.Summary, 0, MaxSummaryLen)
	}
	if in.RatingStatus != nil && !in.RatingStatus.Valid() {
		p.Add("ratingStatus", "must be one of ok, unparsable, missing")
	}
	if in.TokensIn != nil && (*in.TokensIn < 0 || *in.TokensIn > MaxTokens) {
		p.Add("tokensIn", "must be an integer from 0 to %d", int64(MaxTokens))
	}
	if in.TokensOut != nil && (*in.TokensOut < 0 || *in.TokensOut > MaxTokens) {
		p.Add("tokensOut", "must be an integer from 0 to %d", int64(MaxTokens))
	}
	if in.FinishedAt != nil && in.FinishedAt.After(now.Add(MaxClockSkew)) {
		p.Add("finishedAt", "must not lie in the future")
	}
	return p.Err()
}

// finishedAt is when the tick ended: the runner's FinishedAt, else now.
func (in *TickFinish) finishedAt(now time.Time) time.Time {
	if in.FinishedAt != nil {
		return in.FinishedAt.UTC().Truncate(time.Microsecond)
	}
	return now
}

// TickResult is what StartTick and FinishTick did.
type TickResult struct {
	Tick Tick `json:"tick"`
	// Created: this call created the tick record (false for a repeat).
	Created bool `json:"created"`
	// AlreadyFinished: the tick was finished before this call, which
	// changed nothing (a retried finish, or a finish after a crash).
	AlreadyFinished bool `json:"alreadyFinished,omitempty"`
	// StaleLease: the call carried a token that is not the persona's
	// current lease; it was stored and counted, the lease was not touched.
	StaleLease bool `json:"staleLease,omitempty"`
	// LeaseEnded: this finish ended the persona's lease.
	LeaseEnded bool `json:"leaseEnded,omitempty"`
}

type leaseRow struct {
	Owner     *string `bun:"lease_owner"`
	TokenHash []byte  `bun:"lease_token_hash"`
	TickID    *string `bun:"lease_tick_id"`
}

// The statements of the tick start and finish transactions; Bind gives
// them their arguments.
const (
	// lockLeaseSQL locks the persona row (always the first lock a tick
	// operation takes, as in the write statements, so they cannot deadlock)
	// and reads its lease.
	lockLeaseSQL = `SELECT lease_owner, lease_token_hash, lease_tick_id FROM personas.personas WHERE user_id = ?0 FOR UPDATE`
	startTickSQL = `
INSERT INTO personas.persona_ticks AS t
       (persona_id, tick_id, runner_id, lease_token_hash, model, platform_version, started_at, stale_writes, created_at)
VALUES (?0, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
ON CONFLICT (persona_id, tick_id) DO UPDATE SET stale_writes = t.stale_writes + EXCLUDED.stale_writes
RETURNING (xmax = 0) AS created, status`
	// bindTickSQL binds the lease to the tick just started.
	bindTickSQL   = `UPDATE personas.personas SET lease_tick_id = ?1 WHERE user_id = ?0`
	getTickSQL    = tickSelect + ` WHERE t.persona_id = ?0 AND t.tick_id = ?1`
	tickStatusSQL = `SELECT status FROM personas.persona_ticks WHERE persona_id = ?0 AND tick_id = ?1 FOR UPDATE`
	finishTickSQL = `
INSERT INTO personas.persona_ticks AS t
       (persona_id, tick_id, runner_id, status, error_kind, error_message, summary, rating_status,
        tokens_in, tokens_out, finished_at, stale_writes, created_at)
VALUES (?0, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
ON CONFLICT (persona_id, tick_id) DO UPDATE
   SET runner_id = COALESCE(t.runner_id, EXCLUDED.runner_id), status = EXCLUDED.status,
       error_kind = EXCLUDED.error_kind, error_message = EXCLUDED.error_message, summary = EXCLUDED.summary,
       rating_status = EXCLUDED.rating_status, tokens_in = EXCLUDED.tokens_in, tokens_out = EXCLUDED.tokens_out,
       finished_at = EXCLUDED.finished_at, stale_writes = t.stale_writes + EXCLUDED.stale_writes
RETURNING (xmax = 0) AS created`
)

// finishPersonaSQL applies a finish to the persona: ?0 persona id, ?1 the
// status, ?2 now, ?3 the tick's finishedAt (lastTick mirrors the tick
// record, as after a crash; the schedule follows the store's clock); a
// failure also ?4 backoff min, ?5 max, ?6 the threshold. holds: the finish
// ends the lease.
func finishPersonaSQL(holds, success bool) string {
	set := `last_tick_status = ?1, last_tick_finished_at = ?3::timestamptz`
	if holds {
		set += ", " + leaseCleared
	}
	if success {
		set += `, last_active_at = ?2::timestamptz, last_done_at = ?2::timestamptz,
       consecutive_failures = 0, next_attempt_at = NULL`
	} else {
		set += ", " + failureSet("?2::timestamptz", "?4::float8", "?5::float8", "?6::integer")
	}
	return `UPDATE personas.personas AS p SET ` + set + ` WHERE user_id = ?0`
}

// sqlConn runs the tick statements: the pool, or a transaction's Tx.
type sqlConn interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// scanOne runs a bound statement as a cached prepared statement (like the
// hot statements: parsed and planned once per connection, not on every
// call) and scans its first row with bun into dest; sql.ErrNoRows when
// there is none.
func (s *Store) scanOne(ctx context.Context, c sqlConn, b Bound, dest ...any) error {
	rows, err := c.QueryContext(ctx, b.SQL, execArgs(b.Args)...)
	if err != nil {
		return err
	}
	defer func() { _ = rows.Close() }()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return err
		}
		return sql.ErrNoRows
	}
	if err := s.db.ScanRow(ctx, rows, dest...); err != nil {
		return err
	}
	for rows.Next() { //nolint:revive // drain: a statement's error may follow its first row
	}
	return rows.Err()
}

// execBound runs a bound statement that returns no rows, prepared likewise.
func execBound(ctx context.Context, c sqlConn, b Bound) error {
	_, err := c.ExecContext(ctx, b.SQL, execArgs(b.Args)...)
	return err
}

func (s *Store) lockLease(ctx context.Context, tx bun.Tx, b Bound) (leaseRow, error) {
	var l leaseRow
	err := s.scanOne(ctx, tx.Tx, b, &l)
	return l, err
}

// holds reports whether token is the lease's; stale, whether a token was
// given that is not.
func (l leaseRow) holds(token string) (holds, stale bool) {
	if token == "" {
		return false, false
	}
	h := l.TokenHash != nil && bytes.Equal(l.TokenHash, hashToken(token))
	return h, !h
}

func tokenHashOrNil(token string) any {
	if token == "" {
		return nil
	}
	return hashToken(token)
}

// StartTick records the start of a tick, idempotently by tick id: a repeat
// returns the stored record unchanged (only a stale token is counted).
// See TickStart.LeaseToken for what the token does. ErrNotFound for an
// unknown persona.
func (s *Store) StartTick(ctx context.Context, personaID string, in TickStart) (TickResult, error) {
	now := s.Now()
	if err := in.Validate(now); err != nil {
		return TickResult{}, err
	}
	var res TickResult
	err := s.InTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		bi := BindInput{Now: now, PersonaID: personaID, TickID: in.TickID, Start: in}
		l, err := s.lockLease(ctx, tx, s.mustBind("lockLease", bi))
		if err != nil {
			return err
		}
		holds, stale := l.holds(in.LeaseToken)
		res.StaleLease = stale
		bi.Holds = holds
		if err := s.scanOne(ctx, tx.Tx, s.mustBind("startTick", bi), &res.Created, &res.Tick.Status); err != nil {
			return err
		}
		if holds && res.Tick.Status == TickRunning {
			if err := execBound(ctx, tx.Tx, s.mustBind("bindTick", bi)); err != nil {
				return err
			}
		}
		res.Tick, err = s.getTick(ctx, tx.Tx, s.mustBind("getTick", bi))
		return err
	})
	if err != nil {
		return TickResult{}, fmt.Errorf("start tick: %w", translate(err))
	}
	return res, nil
}

// FinishTick closes a tick with the runner's verdict, creating the record
// if the tick was never started. Idempotent: finishing a tick that is
// already finished (crashed included) changes nothing and returns the
// stored record with AlreadyFinished.
//
// The lease: a finish with the current token ends the lease; a finish
// without a token ends it only when the lease is bound to this very tick
// (a tokened StartTick bound it), since the tick id then identifies the
// holder; a finish with a stale token is stored, counted on the tick, and
// changes nothing on the persona.
//
// The schedule (every finish except a stale one): ok and empty complete
// the period, mark the persona active and reset its failures; failed and
// timeout count one consecutive failure, delay the next attempt by the
// backoff and, at the threshold, quarantine the persona.
func (s *Store) FinishTick(ctx context.Context, personaID, tickID string, in TickFinish, leaseToken string) (TickResult, error) {
	now := s.Now()
	var p Problems
	checkText(&p, "tickId", tickID, 1, MaxTickIDLen)
	checkToken(&p, "leaseToken", leaseToken, false)
	if err := p.Err(); err != nil {
		return TickResult{}, err
	}
	if err := in.Validate(now); err != nil {
		return TickResult{}, err
	}
	var res TickResult
	err := s.InTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		bi := BindInput{Now: now, PersonaID: personaID, TickID: tickID, LeaseToken: leaseToken, Finish: in}
		l, err := s.lockLease(ctx, tx, s.mustBind("lockLease", bi))
		if err != nil {
			return err
		}
		var status TickStatus
		err = s.scanOne(ctx, tx.Tx, s.mustBind("tickStatus", bi), &status)
		switch {
		case errors.Is(err, sql.ErrNoRows):
		case err != nil:
			return err
		case status != TickRunning:
			res.AlreadyFinished = true
			res.Tick, err = s.getTick(ctx, tx.Tx, s.mustBind("getTick", bi))
			return err
		}
		holds, stale := l.holds(leaseToken)
		if leaseToken == "" && l.TokenHash != nil && l.TickID != nil && *l.TickID == tickID {
			holds = true
		}
		res.StaleLease, res.LeaseEnded = stale, holds
		bi.Holds = holds
		if holds && l.Owner != nil {
			bi.RunnerID = *l.Owner
		}
		if err := s.scanOne(ctx, tx.Tx, s.mustBind("finishTick", bi), &res.Created); err != nil {
			return err
		}
		if !stale {
			if err := execBound(ctx, tx.Tx, s.mustBind("finishPersona", bi)); err != nil {
				return err
			}
		}
		res.Tick, err = s.getTick(ctx, tx.Tx, s.mustBind("getTick", bi))
		return err
	})
	if err != nil {
		return TickResult{}, fmt.Errorf("finish tick: %w", translate(err))
	}
	return res, nil
}

func (s *Store) getTick(ctx context.Context, c sqlConn, b Bound) (Tick, error) {
	var t Tick
	err := s.scanOne(ctx, c, b, &t)
	return t, err
}

// GetTick returns one tick with its derived counts and duration. A tick id
// with stored actions or feedback but no record (runners that predate
// ticks) is returned with Recorded false. ErrNotFound when neither exists.
func (s *Store) GetTick(ctx context.Context, personaID, tickID string) (Tick, error) {
	t, err := s.getTick(ctx, s.db.DB, s.mustBind("getTick", BindInput{PersonaID: personaID, TickID: tickID}))
	if err == nil {
		return t, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return Tick{}, fmt.Errorf("get tick: %w", translate(err))
	}
	err = s.db.NewRaw(`
SELECT ?1 AS tick_id, false AS recorded, a.actions, a.errors, f.ratings, f.unparsable_ratings,
       a.first_at AS created_at,
       (extract(epoch FROM GREATEST(a.last_at, f.last_at) - LEAST(a.first_at, f.first_at)) * 1000)::bigint AS duration_ms
  FROM (SELECT count(*) AS actions, count(*) FILTER (WHERE result = 'error') AS errors,
               min(created_at) AS first_at, max(created_at) AS last_at
          FROM personas.persona_actions WHERE persona_id = ?0 AND tick_id = ?1) AS a,
       (SELECT count(*) AS ratings, count(*) FILTER (WHERE left(module, 2) = '__') AS unparsable_ratings,
               min(created_at) AS first_at, max(created_at) AS last_at
          FROM personas.persona_feedback WHERE persona_id = ?0 AND tick_id = ?1) AS f
 WHERE a.actions > 0 OR f.ratings > 0`, personaID, tickID).Scan(ctx, &t)
	if err != nil {
		return Tick{}, fmt.Errorf("get tick: %w", translate(err))
	}
	if t.Actions == 0 { // only feedback: its first row dates the tick
		err = s.db.NewRaw(`SELECT min(created_at) FROM personas.persona_feedback WHERE persona_id = ?0 AND tick_id = ?1`,
			personaID, tickID).Scan(ctx, &t.CreatedAt)
		if err != nil {
			return Tick{}, fmt.Errorf("get tick: %w", translate(err))
		}
	}
	return t, nil
}

// TickFilter narrows and pages ListTicks. Zero values mean no filter and
// DefaultTickLimit.
type TickFilter struct {
	Cursor string
	Status TickStatus
	Limit  int
}

type tickCursor struct {
	CreatedAt time.Time `json:"c"`
	TickID    string    `json:"t"`
}

// ListTicks returns a persona's tick records newest first (by when the
// record was created), keyset-paginated: nextCursor is empty on the last
// page. ErrNotFound for an unknown persona.
func (s *Store) ListTicks(ctx context.Context, personaID string, f TickFilter) (items []Tick, nextCursor string, err error) {
	var p Problems
	if f.Limit < 0 || f.Limit > MaxTickLimit {
		p.Add("limit", "must be an integer from 1 to %d", MaxTickLimit)
	}
	if f.Status != "" && !f.Status.Valid() {
		p.Add("status", "must be one of running, ok, empty, failed, timeout, crashed")
	}
	var cur *tickCursor
	if f.Cursor != "" {
		cur = new(tickCursor)
		raw, decErr := base64.RawURLEncoding.DecodeString(f.Cursor)
		if decErr != nil || json.Unmarshal(raw, cur) != nil || cur.TickID == "" {
			p.Add("cursor", "is not a cursor returned by this API")
		}
	}
	if err := p.Err(); err != nil {
		return nil, "", err
	}
	limit := f.Limit
	if limit == 0 {
		limit = DefaultTickLimit
	}
	q := tickSelect + ` WHERE t.persona_id = ?0`
	args := []any{personaID, limit + 1}
	if f.Status != "" {
		q += ` AND t.status = ?2`
		args = append(args, string(f.Status))
	} else {
		q += ` AND ?2::text IS NULL`
		args = append(args, nil)
	}
	if cur != nil {
		q += ` AND (t.created_at, t.tick_id) < (?3, ?4)`
		args = append(args, cur.CreatedAt, cur.TickID)
	}
	q += ` ORDER BY t.created_at DESC, t.tick_id DESC LIMIT ?1`
	items = []Tick{}
	if err := s.db.NewRaw(q, args...).Scan(ctx, &items); err != nil {
		return nil, "", fmt.Errorf("list ticks: %w", translate(err))
	}
	if len(items) == 0 {
		if err := s.requirePersona(ctx, personaID); err != nil {
			return nil, "", err
		}
	}
	if len(items) > limit {
		items = items[:limit]
		last := items[len(items)-1]
		raw, _ := json.Marshal(tickCursor{CreatedAt: last.CreatedAt, TickID: last.TickID})
		nextCursor = base64.RawURLEncoding.EncodeToString(raw)
	}
	return items, nextCursor, nil
}

func (s *Store) requirePersona(ctx context.Context, personaID string) error {
	exists, err := s.db.NewSelect().Table("personas.personas").Where("user_id = ?", personaID).Exists(ctx)
	if err != nil {
		return fmt.Errorf("look up persona: %w", translate(err))
	}
	if !exists {
		return ErrNotFound
	}
	return nil
}

// TickActions returns the tick's stored actions in the order they were
// written (at most MaxTickRows).
func (s *Store) TickActions(ctx context.Context, personaID, tickID string) ([]Action, error) {
	out := []Action{}
	err := s.db.NewRaw(`
SELECT id, tick_id, seq, tool_name, input_hash, result, error_message, latency_ms, created_at
  FROM personas.persona_actions
 WHERE persona_id = ?0 AND tick_id = ?1
 ORDER BY n
 LIMIT ?2`, personaID, tickID, MaxTickRows).Scan(ctx, &out)
	if err != nil {
		return nil, fmt.Errorf("tick actions: %w", translate(err))
	}
	return out, nil
}

// Feedback is one stored rating.
type Feedback struct {
	ID        string    `bun:"id" json:"id"`
	TickID    string    `bun:"tick_id" json:"tickId"`
	Module    string    `bun:"module" json:"module"`
	Rating    int       `bun:"rating" json:"rating"`
	Notes     *string   `bun:"notes" json:"notes"`
	CreatedAt time.Time `bun:"created_at" json:"createdAt"`
}

// TickFeedback returns the tick's stored ratings by module (at most
// MaxTickRows).
func (s *Store) TickFeedback(ctx context.Context, personaID, tickID string) ([]Feedback, error) {
	out := []Feedback{}
	err := s.db.NewRaw(`
SELECT id, tick_id, module, rating, notes, created_at
  FROM personas.persona_feedback
 WHERE persona_id = ?0 AND tick_id = ?1
 ORDER BY module
 LIMIT ?2`, personaID, tickID, MaxTickRows).Scan(ctx, &out)
	if err != nil {
		return nil, fmt.Errorf("tick feedback: %w", translate(err))
	}
	return out, nil
}
