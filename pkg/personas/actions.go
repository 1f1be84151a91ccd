package personas

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Limits on action batches.
const (
	MaxActionsPerBatch = 500
	MaxTickIDLen       = 128
	MaxToolNameLen     = 128
	MaxInputHashLen    = 256
	MaxErrorMessageLen = 4000
	MaxLatencyMs       = 86_400_000 // one day
	MaxSeq             = 1_000_000
)

// Result is the outcome of one tool call.
type Result string

// The results.
const (
	ResultOK    Result = "ok"
	ResultError Result = "error"
)

// ActionInput is one tool call reported by the runner.
type ActionInput struct {
	TickID       string
	Seq          *int // position within the whole tick; nil means batch index
	ToolName     string
	InputHash    *string
	Result       Result
	ErrorMessage *string
	LatencyMs    *int
}

// ActionID is the deterministic row id "<tickId>-<i>-<toolName>", where i is
// the row's seq when given and its index in the batch otherwise. Without
// seq the ids are those the previous implementation wrote, so retries of
// its batches still deduplicate.
func ActionID(tickID string, i int, toolName string) string {
	return tickID + "-" + strconv.Itoa(i) + "-" + toolName
}

// ValidateActions checks a batch; field names are the internal API's JSON
// paths ("actions[3].toolName"). Rows that repeat an id (same tickId,
// index or seq, and toolName) are valid: the first is stored, the others
// count as duplicates.
func ValidateActions(rows []ActionInput) error {
	var p Problems
	switch {
	case len(rows) == 0:
		p.Add("actions", "must contain at least one action")
	case len(rows) > MaxActionsPerBatch:
		p.Add("actions", "at most %d actions per request", MaxActionsPerBatch)
	}
	if p.Len() > 0 {
		return p.Err()
	}
	for i, r := range rows {
		f := "actions[" + strconv.Itoa(i) + "]."
		checkText(&p, f+"tickId", r.TickID, 1, MaxTickIDLen)
		checkText(&p, f+"toolName", r.ToolName, 1, MaxToolNameLen)
		if r.InputHash != nil {
			checkText(&p, f+"inputHash", *r.InputHash, 0, MaxInputHashLen)
		}
		if r.Result != ResultOK && r.Result != ResultError {
			p.Add(f+"result", `must be "ok" or "error"`)
		}
		if r.ErrorMessage != nil {
			checkText(&p, f+"errorMessage", *r.ErrorMessage, 0, MaxErrorMessageLen)
		}
		if r.LatencyMs != nil && (*r.LatencyMs < 0 || *r.LatencyMs > MaxLatencyMs) {
			p.Add(f+"latencyMs", "must be an integer from 0 to %d", MaxLatencyMs)
		}
		if r.Seq != nil && (*r.Seq < 0 || *r.Seq > MaxSeq) {
			p.Add(f+"seq", "must be an integer from 0 to %d", MaxSeq)
		}
	}
	return p.Err()
}

// WriteResult says what a batch did: Written rows were inserted;
// Duplicates were already stored (a retried batch) or repeated an earlier
// row of the same batch, so Written + Duplicates is the batch size.
// StaleLease: the batch carried a lease token that is not the persona's
// current lease; its rows were stored all the same, the lease untouched.
type WriteResult struct {
	Written    int  `bun:"written" json:"written"`
	Duplicates int  `json:"duplicates"`
	StaleLease bool `json:"staleLease,omitempty"`
}

// WriteOptions go with a batch of actions or feedback.
type WriteOptions struct {
	// LeaseToken (the X-Lease-Token header) is the claim's token, if the
	// runner claimed. Writes never end or change a lease; the token only
	// tells a current holder's write from a stale one (counted on the tick
	// and in WriteResult.StaleLease) and keeps the write from marking the
	// period done (the finish decides that).
	LeaseToken string
}

// Validate reports problems with the options.
func (o WriteOptions) Validate() error {
	var p Problems
	checkToken(&p, "leaseToken", o.LeaseToken, false)
	return p.Err()
}

type actionRow struct {
	ID           string  `json:"id"`
	TickID       string  `json:"tick_id"`
	Seq          *int    `json:"seq"`
	ToolName     string  `json:"tool_name"`
	InputHash    *string `json:"input_hash"`
	Result       Result  `json:"result"`
	ErrorMessage *string `json:"error_message"`
	LatencyMs    *int    `json:"latency_ms"`
}

// InsertActions appends a batch for a persona, idempotently. In one
// statement it marks the persona active (and, for a runner that predates
// ticks, its period done: see WriteOptions), inserts the rows that are not
// there yet, adds the number really inserted to the persona's hourly
// activity bucket, and counts a stale token on the batch's ticks. Unknown
// personas are ErrNotFound and nothing is written.
func (s *Store) InsertActions(ctx context.Context, personaID string, rows []ActionInput, opts WriteOptions) (WriteResult, error) {
	if err := ValidateActions(rows); err != nil {
		return WriteResult{}, err
	}
	if err := opts.Validate(); err != nil {
		return WriteResult{}, err
	}
	// Nothing below the encoding refers to rows again, so the GC may reclaim
	// them while the statement runs (a batch can be tens of MB).
	n := len(rows)
	b, err := s.Bind("insertActions", BindInput{PersonaID: personaID, Actions: rows, LeaseToken: opts.LeaseToken})
	if err != nil {
		return WriteResult{}, err
	}
	var found, written int
	var stale bool
	err = s.queryRowBound(ctx, b).Scan(&found, &written, &stale)
	if err != nil {
		return WriteResult{}, fmt.Errorf("insert actions: %w", translate(err))
	}
	if found == 0 {
		return WriteResult{}, ErrNotFound
	}
	return WriteResult{Written: written, Duplicates: n - written, StaleLease: stale}, nil
}

// What a write costs PostgreSQL. Each write statement is a cached generic
// plan, but its executor is set up anew on every call: every CTE that
// modifies a table opens that table and all its indexes and takes their
// locks, even when it ends up writing nothing. The write statements
// therefore come in variants (Bind picks one from the batch), each
// holding only the steps that batch can need: the stale-token count only
// with a token, the legacy "period done" rule only without one, the error
// groups only for a batch with an error row, parse markers and ratings
// only when the batch has them. Every variant keeps the same row lock,
// insert and rollups for the rows it can contain, so they differ in cost,
// not in effect.
//
// The persona row. An update that changes no indexed column can be HOT (no
// new index entries) when the row's page has room (migration 0006 leaves
// some). last_active_at is in no index; last_done_at is (personas_due_idx),
// so a legacy write moves it only when the stored value is from an earlier
// clock hour: every reader of last_done_at compares it with hour or day
// boundaries (due, overdue), to which a value anywhere in the current hour
// answers alike, so repeated writes within an hour keep the first one and
// stay HOT. Only the order among personas done in the same hour can differ.

// writePersonaCTE is the first step of both write statements: it locks the
// persona row (so batches for one persona are serialised and cannot
// deadlock with tick operations, which lock it first too), marks it active,
// and either (tok empty: no token) marks its period done when no tick
// record exists for any of the batch's ticks, or (tok: the token's
// placeholder) says whether the token is stale and counts that on the
// batch's ticks. Arguments: ?0 persona id, ?1 now; it reads the batch's
// tick ids from the CTE r.
func writePersonaCTE(tok string) string {
	if tok == "" {
		return `p AS (
    UPDATE personas.personas AS p
       SET last_active_at = ?1::timestamptz,
           last_done_at = CASE WHEN (p.last_done_at IS NULL OR p.last_done_at < date_trunc('hour', ?1::timestamptz, 'UTC'))
                                    AND NOT EXISTS (
                                        SELECT 1 FROM personas.persona_ticks AS t
                                         WHERE t.persona_id = p.user_id AND t.tick_id IN (SELECT r.tick_id FROM r))
                               THEN ?1::timestamptz ELSE p.last_done_at END
     WHERE p.user_id = ?0::text
 RETURNING p.user_id, false AS stale
)`
	}
	return strings.ReplaceAll(`p AS (
    UPDATE personas.personas AS p
       SET last_active_at = ?1::timestamptz
     WHERE p.user_id = ?0::text
 RETURNING p.user_id, (p.lease_token_hash IS DISTINCT FROM sha256(convert_to(?tok::text, 'UTF8'))) AS stale
), stale AS (
    UPDATE personas.persona_ticks AS t
       SET stale_writes = t.stale_writes + 1
      FROM p
     WHERE p.stale AND t.persona_id = p.user_id AND t.tick_id IN (SELECT r.tick_id FROM r)
)`, "?tok", tok)
}

// insertActionsSQL: ?0 persona id, ?1 now, ?2 rows as JSON (ids unique),
// ?3 the hour, and when tokened ?4 the lease token. The insert reads from
// the persona update, so the persona row is locked first; the hourly bucket
// and the daily rollups (rollups.go) add up what the insert returned. The
// error groups are left out when no row of the batch is an error (errors
// false): then no inserted row is one either.
func insertActionsSQL(tokened, errors bool) string {
	tok := ""
	if tokened {
		tok = "?4"
	}
	q := `
WITH r AS (
    SELECT * FROM jsonb_to_recordset(?2::jsonb) AS r(id text, tick_id text, seq integer, tool_name text,
                                                     input_hash text, result text, error_message text, latency_ms integer)
), ` + writePersonaCTE(tok) + `, ins AS (
    INSERT INTO personas.persona_actions
           (id, persona_id, tick_id, seq, tool_name, input_hash, result, error_message, latency_ms, created_at)
    SELECT r.id, p.user_id, r.tick_id, r.seq, r.tool_name, r.input_hash, r.result, r.error_message, r.latency_ms, ?1::timestamptz
      FROM p, r
        ON CONFLICT (persona_id, id) DO NOTHING
 RETURNING tool_name, result, error_message, latency_ms
), n AS (
    SELECT count(*) AS written FROM ins
), bucket AS (
    INSERT INTO personas.persona_activity_hourly AS h (persona_id, hour, actions)
    SELECT ?0::text, ?3::timestamptz, n.written FROM n WHERE n.written > 0
        ON CONFLICT (persona_id, hour) DO UPDATE SET actions = h.actions + EXCLUDED.actions
)` + actionToolRollupCTE
	if errors {
		q += actionErrorRollupCTEs
	}
	return q + `
SELECT (SELECT count(*) FROM p) AS found, (SELECT written FROM n) AS written,
       COALESCE((SELECT stale FROM p), false) AS stale`
}

// insertActionsPG holds insertActionsSQL's variants, [tokened][errors],
// converted once.
var insertActionsPG = func() (out [2][2]string) {
	for tok := range 2 {
		for e := range 2 {
			out[tok][e] = toPostgresPlaceholders(insertActionsSQL(tok == 1, e == 1))
		}
	}
	return out
}()

// Action is one stored tool call.
type Action struct {
	ID           string    `bun:"id" json:"id"`
	TickID       string    `bun:"tick_id" json:"tickId"`
	Seq          *int      `bun:"seq" json:"seq,omitempty"`
	ToolName     string    `bun:"tool_name" json:"toolName"`
	InputHash    *string   `bun:"input_hash" json:"inputHash"`
	Result       Result    `bun:"result" json:"result"`
	ErrorMessage *string   `bun:"error_message" json:"errorMessage"`
	LatencyMs    *int      `bun:"latency_ms" json:"latencyMs"`
	CreatedAt    time.Time `bun:"created_at" json:"createdAt"`
	// N orders the rows of one batch (insertion order); not in the API.
	N int64 `bun:"n" json:"-"`
}

// RecentActions returns the persona's newest actions, newest first (within
// one batch, the later row first): recentActionsExpr, as in the detail.
func (s *Store) RecentActions(ctx context.Context, personaID string, limit int) ([]Action, error) {
	out := []Action{}
	q := strings.NewReplacer("$p", "?0::text", "$limit", "?1").Replace(recentActionsExpr)
	err := s.db.NewRaw(q, personaID, limit).Scan(ctx, &out)
	if err != nil {
		return nil, fmt.Errorf("recent actions: %w", translate(err))
	}
	return out, nil
}

// Actions7d returns the number of actions the persona recorded in the
// activity window (see ActivityWindow), from the hourly buckets.
func (s *Store) Actions7d(ctx context.Context, personaID string) (int64, error) {
	var n int64
	start, _, hourEnd := s.activityWindow()
	err := s.db.NewRaw("SELECT "+actions7dExpr("?2::text", "?0", "?1"), start, hourEnd, personaID).Scan(ctx, &n)
	if err != nil {
		return 0, fmt.Errorf("actions in window: %w", translate(err))
	}
	return n, nil
}
