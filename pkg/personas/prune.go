package personas

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/uptrace/bun/dialect/pgdialect"

	"github.com/mana/personas/pkg/errs"
)

// Retention: raw rows (actions, feedback, ticks) are kept for
// PERSONAS_RETENTION_DAYS, rollups (hourly activity buckets, and the daily
// rollups as they are added to PruneTables) for
// PERSONAS_ROLLUP_RETENTION_DAYS, so every aggregate over a range that
// crosses the raw window's edge reads the rollups there. A persona with
// its own MaxHistoryDays keeps less raw history; rollups follow the global
// rule only.
const (
	DefaultRetentionDays       = 90
	DefaultRollupRetentionDays = 730
	// MinRetentionDays bounds both settings from below: the admin views'
	// windows (7 days) must lie wholly inside them.
	MinRetentionDays = 8
	MaxRetentionDays = 36500

	DefaultPruneBatch = 5000
	MaxPruneBatch     = 100_000
	// DefaultPruneDuty: the share of wall time a prune spends in its delete
	// statements unless told otherwise. On 2 cores, back-to-back batches
	// left ingest a third of its rate (BENCHMARKS.md, "Prune under
	// ingest"); a quarter leaves it most of it, and a night's share (~0.5M
	// rows for 10,000 personas) still takes minutes.
	DefaultPruneDuty = 0.25
	// pruneChunk personas are walked by one statement (see pruneTable).
	pruneChunk = 500
	// pruneRunsKept rows of prune_runs survive each run.
	pruneRunsKept = 100
)

// pruneLockKey is the pg_advisory_lock key that keeps two prunes from
// running at once ("prune" in ASCII; the migrations use "personas").
const pruneLockKey int64 = 0x7072756e65

// ErrPruneRunning: another prune holds the lock. The subcommand exits 3.
var ErrPruneRunning = errs.E(errs.Conflict, "prune is already running (another process holds its advisory lock)")

// RetentionClass says which window of PruneOptions governs a table.
type RetentionClass int

// The classes.
const (
	// RetainRaw tables keep rows newer than PruneOptions.RawBefore, or the
	// persona's own MaxHistoryDays when that is shorter.
	RetainRaw RetentionClass = iota
	// RetainRollup tables keep rows newer than PruneOptions.RollupBefore.
	RetainRollup
)

func (c RetentionClass) String() string {
	if c == RetainRollup {
		return "rollup"
	}
	return "raw"
}

// PruneTable is one table prune keeps bounded. Add an entry to PruneTables
// for each new table that grows with time; nothing else changes.
type PruneTable struct {
	// Name, schema-qualified: personas.persona_actions.
	Name string
	// TimeColumn: a timestamptz column (or expression over alias t) that
	// dates the row. For a bucket (see Span) it is the bucket's start.
	TimeColumn string
	// Retention: which window applies.
	Retention RetentionClass
	// PersonaColumn, when set, names the persona a row belongs to; prune
	// then walks the table persona by persona through an index that leads
	// with this column (the tables' own indexes do; no index on the time
	// column alone is needed, so ingest maintains nothing extra), and raw
	// tables apply the persona's MaxHistoryDays. Empty: a plain time-range
	// delete, which wants an index on TimeColumn.
	PersonaColumn string
	// Span: the length of the bucket a row covers (an hour for the hourly
	// activity, a day for daily rollups). Only buckets that end at or before
	// the cutoff are deleted, so no part of a bucket inside the window goes.
	Span time.Duration
	// Floor: rows newer than now − Floor are kept whatever the windows say
	// (persona_actions: the 7-day count reads the raw rows of its first,
	// partial hour, so a persona's MaxHistoryDays below 7 never takes them).
	Floor time.Duration
	// Keep: an SQL condition on the row (alias t; $now is the store's
	// clock) that protects it whatever its age.
	Keep string
}

// PruneTables are the tables prune bounds, in the order it prunes them.
var PruneTables = []PruneTable{
	{Name: "personas.persona_actions", TimeColumn: "t.created_at", Retention: RetainRaw, PersonaColumn: "persona_id", Floor: ActivityWindow},
	{Name: "personas.persona_feedback", TimeColumn: "t.created_at", Retention: RetainRaw, PersonaColumn: "persona_id"},
	// A tick still running is kept while its persona's lease is held:
	// whatever its age, a runner may still finish it.
	{Name: "personas.persona_ticks", TimeColumn: "t.created_at", Retention: RetainRaw, PersonaColumn: "persona_id",
		Keep: `t.finished_at IS NULL AND EXISTS (SELECT 1 FROM personas.personas AS lp
             WHERE lp.user_id = t.persona_id AND lp.lease_token_hash IS NOT NULL AND lp.lease_expires_at > $now)`},
	{Name: "personas.persona_activity_hourly", TimeColumn: "t.hour", Retention: RetainRollup, PersonaColumn: "persona_id", Span: time.Hour},
	// The insight rollups (migration 0004), one row per UTC day.
	{Name: "personas.rating_daily", TimeColumn: utcDay, Retention: RetainRollup, PersonaColumn: "persona_id", Span: 24 * time.Hour},
	{Name: "personas.rating_unparsable_daily", TimeColumn: utcDay, Retention: RetainRollup, PersonaColumn: "persona_id", Span: 24 * time.Hour},
	{Name: "personas.action_daily", TimeColumn: utcDay, Retention: RetainRollup, PersonaColumn: "persona_id", Span: 24 * time.Hour},
	{Name: "personas.action_error_daily", TimeColumn: utcDay, Retention: RetainRollup, PersonaColumn: "persona_id", Span: 24 * time.Hour},
	// A persona's latest rating of a module (migration 0011), once older
	// than the rollups kept.
	{Name: "personas.module_raters", TimeColumn: "t.last_at", Retention: RetainRollup, PersonaColumn: "persona_id"},
	// The fleet rollups (migration 0010), after the per-persona ones whose
	// deletes subtract from them.
	{Name: "personas.rating_fleet_daily", TimeColumn: utcDay, Retention: RetainRollup, Span: 24 * time.Hour},
	{Name: "personas.action_fleet_daily", TimeColumn: utcDay, Retention: RetainRollup, Span: 24 * time.Hour},
}

// utcDay is a daily rollup's date as the instant its UTC day starts.
const utcDay = "(t.day::timestamp AT TIME ZONE 'UTC')"

// PruneOptions say what one prune deletes.
type PruneOptions struct {
	// RawBefore: raw rows dated before it go (now − PERSONAS_RETENTION_DAYS).
	RawBefore time.Time
	// RollupBefore: rollup rows before it go (now −
	// PERSONAS_ROLLUP_RETENTION_DAYS); not after RawBefore.
	RollupBefore time.Time
	// BatchSize rows at most per statement, each its own short transaction
	// (0: DefaultPruneBatch).
	BatchSize int
	// Duty paces the deletes: the share of wall time spent in them. After a
	// batch that took d, prune waits d×(1/Duty − 1) before the next, so
	// whatever else uses the database (ingest) keeps the rest. 1: no pause;
	// 0: DefaultPruneDuty.
	Duty float64
	// DryRun counts what would be deleted and deletes nothing.
	DryRun bool
	// OnBatch, if set, is called after each committed batch (progress,
	// tests).
	OnBatch func(table string, deleted int64)
}

// RetentionCutoffs returns the options' windows for now and the settings.
func RetentionCutoffs(now time.Time, rawDays, rollupDays int) (rawBefore, rollupBefore time.Time) {
	day := 24 * time.Hour
	return now.Add(-time.Duration(rawDays) * day), now.Add(-time.Duration(rollupDays) * day)
}

// PruneCount is what prune did to one table.
type PruneCount struct {
	Table     string `json:"table"`
	Retention string `json:"retention"`
	// Rows deleted (in a dry run: that would be).
	Rows    int64 `json:"rows"`
	Batches int   `json:"batches"`
}

// PruneResult is what one prune did.
type PruneResult struct {
	Tables       []PruneCount `json:"tables"`
	Total        int64        `json:"total"`
	DryRun       bool         `json:"dryRun"`
	RawBefore    time.Time    `json:"rawBefore"`
	RollupBefore time.Time    `json:"rollupBefore"`
	// Duty the run was paced at (see PruneOptions.Duty).
	Duty     float64       `json:"duty"`
	Duration time.Duration `json:"-"`
	// Paused: the part of Duration spent waiting between batches.
	Paused time.Duration `json:"-"`
}

// Rows returns the rows deleted from table (0 for an unknown one).
func (r PruneResult) Rows(table string) int64 {
	for _, c := range r.Tables {
		if c.Table == table {
			return c.Rows
		}
	}
	return 0
}

func (o *PruneOptions) validate(now time.Time) error {
	var p Problems
	if o.RawBefore.IsZero() || o.RawBefore.After(now) {
		p.Add("rawBefore", "must be set and not in the future")
	}
	if o.RollupBefore.IsZero() || o.RollupBefore.After(o.RawBefore) {
		p.Add("rollupBefore", "must be set and not after rawBefore (rollups outlive the raw rows they summarise)")
	}
	if o.BatchSize < 0 || o.BatchSize > MaxPruneBatch {
		p.Add("batchSize", "must be an integer from 1 to %d", MaxPruneBatch)
	}
	// !(a && b) rejects NaN too.
	if !(o.Duty >= 0 && o.Duty <= 1) {
		p.Add("duty", "must be above 0 and at most 1 (1: no pause between batches)")
	}
	return p.Err()
}

// Prune deletes what the retention rules no longer keep from every table of
// PruneTables and records the run in prune_runs.
//
// It holds a session advisory lock for the whole run: a second prune gets
// ErrPruneRunning at once. Deletes go in batches of at most BatchSize rows,
// each one statement and so its own transaction, committed before the
// next: ingest waits on no long transaction, and a prune killed at any
// point leaves every committed batch done and the rest for the next run,
// which converges to the same end state (deleting is idempotent). Nothing
// dated inside the windows is ever deleted. Between batches it waits as
// PruneOptions.Duty says, leaving the database to ingest.
//
// Per persona, a raw row goes when dated before the later of RawBefore and
// now − MaxHistoryDays; persona_actions also keeps the 7-day count's window
// (see PruneTable.Floor); a running tick whose persona's lease is held is
// kept. Rollups go when their bucket ends at or before RollupBefore.
func (s *Store) Prune(ctx context.Context, opts PruneOptions) (PruneResult, error) {
	return s.prune(ctx, PruneTables, opts)
}

func (s *Store) prune(ctx context.Context, tables []PruneTable, opts PruneOptions) (PruneResult, error) {
	start := time.Now()
	now := s.Now()
	res := PruneResult{DryRun: opts.DryRun, RawBefore: opts.RawBefore.UTC(), RollupBefore: opts.RollupBefore.UTC(), Tables: []PruneCount{}}
	if err := opts.validate(now); err != nil {
		return res, err
	}
	if opts.BatchSize == 0 {
		opts.BatchSize = DefaultPruneBatch
	}
	if opts.Duty == 0 {
		opts.Duty = DefaultPruneDuty
	}
	res.Duty = opts.Duty
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return res, fmt.Errorf("prune: connect: %w", translate(err))
	}
	defer func() { _ = conn.Close() }()
	var locked bool
	if err := conn.QueryRowContext(ctx, `SELECT pg_try_advisory_lock(?)`, pruneLockKey).Scan(&locked); err != nil {
		return res, fmt.Errorf("prune: advisory lock: %w", translate(err))
	}
	if !locked {
		return res, ErrPruneRunning
	}
	defer func() {
		// A fresh context: the caller's may be cancelled, the lock must go
		// (closing the session would release it too).
		_, _ = conn.ExecContext(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock(?)`, pruneLockKey)
	}()

	var runErr error
	for _, t := range tables {
		c := PruneCount{Table: t.Name, Retention: t.Retention.String()}
		runErr = s.pruneTable(ctx, t, now, opts, &c, &res.Paused)
		res.Tables = append(res.Tables, c)
		res.Total += c.Rows
		if runErr != nil {
			runErr = fmt.Errorf("prune %s: %w", t.Name, translate(runErr))
			break
		}
	}
	res.Duration = time.Since(start)
	if err := s.recordPrune(context.WithoutCancel(ctx), now, res, runErr); err != nil && runErr == nil {
		runErr = err
	}
	return res, runErr
}

// pruneTable empties one table of what its window no longer keeps.
func (s *Store) pruneTable(ctx context.Context, t PruneTable, now time.Time, opts PruneOptions, c *PruneCount, paused *time.Duration) error {
	cut := opts.RawBefore
	if t.Retention == RetainRollup {
		cut = opts.RollupBefore
	}
	bound := func(cut time.Time) time.Time {
		if t.Floor > 0 && cut.After(now.Add(-t.Floor)) {
			cut = now.Add(-t.Floor)
		}
		if t.Span > 0 {
			// Buckets starting at or before cut − span end by cut.
			cut = cut.Add(-t.Span + time.Microsecond)
		}
		return cut.UTC()
	}
	keep := "false"
	if t.Keep != "" {
		keep = strings.ReplaceAll(t.Keep, "$now", "?3::timestamptz")
	}
	if t.PersonaColumn == "" {
		return s.pruneBatches(ctx, t, opts, c, paused, fmt.Sprintf(
			`SELECT t.ctid FROM %s AS t WHERE %s < ?0::timestamptz AND NOT (%s)`, t.Name, t.TimeColumn, keep),
			bound(cut), nil, nil, now)
	}
	// Walk the personas in chunks of ids, each with its own cutoff.
	after := ""
	for {
		var rows []struct {
			UserID         string `bun:"user_id"`
			MaxHistoryDays *int   `bun:"max_history_days"`
		}
		if err := s.db.NewRaw(`SELECT user_id, max_history_days FROM personas.personas WHERE user_id > ?0 ORDER BY user_id LIMIT ?1`,
			after, pruneChunk).Scan(ctx, &rows); err != nil {
			return err
		}
		if len(rows) == 0 {
			return nil
		}
		ids := make([]string, len(rows))
		cuts := make([]time.Time, len(rows))
		for i, r := range rows {
			ids[i] = r.UserID
			pc := cut
			if t.Retention == RetainRaw && r.MaxHistoryDays != nil {
				if own := now.Add(-time.Duration(*r.MaxHistoryDays) * 24 * time.Hour); own.After(pc) {
					pc = own
				}
			}
			cuts[i] = bound(pc)
		}
		sel := fmt.Sprintf(`SELECT x.ctid
  FROM unnest(?1::text[], ?2::timestamptz[]) AS c(pid, cut)
 CROSS JOIN LATERAL (
       SELECT t.ctid FROM %[1]s AS t
        WHERE t.%[2]s = c.pid AND %[3]s < c.cut AND NOT (%[4]s)
        LIMIT ?0::integer) AS x`, t.Name, t.PersonaColumn, t.TimeColumn, keep)
		if err := s.pruneBatches(ctx, t, opts, c, paused, sel, nil, ids, cuts, now); err != nil {
			return err
		}
		after = rows[len(rows)-1].UserID
		if len(rows) < pruneChunk {
			return nil
		}
	}
}

// pruneBatches deletes (or counts) the rows sel selects, a batch at a time.
// sel selects ctids; its arguments: ?0 the batch size (persona walk) or the
// cutoff (plain), ?1 ids, ?2 their cutoffs, ?3 now.
//
// A persona walk skips the personas earlier batches emptied. The statement
// walks ids in order and stops at BatchSize rows, so after a full batch
// every persona before the last one it deleted from has nothing left to
// delete; walking them again would re-read all their deleted rows (a bitmap
// heap scan visits dead tuples until vacuum removes them), which made each
// batch slower than the last. The next batch starts at that persona (the
// frontier), and the walk ends with one statement over all of ids that
// deletes fewer than BatchSize rows: the end state does not rest on the
// order of the walk, only the speed does.
func (s *Store) pruneBatches(ctx context.Context, t PruneTable, opts PruneOptions, c *PruneCount, paused *time.Duration, sel string, cut any, ids []string, cuts []time.Time, now time.Time) error {
	first := any(opts.BatchSize)
	if cut != nil {
		first = cut
	}
	if ids == nil {
		ids, cuts = []string{}, []time.Time{}
	}
	args := func(from int) []any {
		return []any{first, pgdialect.Array(ids[from:]), pgdialect.Array(cuts[from:]), now}
	}
	if opts.DryRun {
		var n int64
		q := strings.Replace(sel, "LIMIT ?0::integer", "", 1)
		if err := s.db.NewRaw(`SELECT count(*) FROM (`+q+`) AS d`, args(0)...).Scan(ctx, &n); err != nil {
			return err
		}
		c.Rows += n
		return nil
	}
	limit := ""
	if cut != nil {
		limit = fmt.Sprintf(" LIMIT %d", opts.BatchSize)
	} else {
		limit = " LIMIT ?0::integer"
	}
	// ctid = ANY(ARRAY(...)) is a TID scan: the rows found are deleted by
	// their address, in the same statement (same snapshot) that found them.
	del := fmt.Sprintf(`DELETE FROM %s WHERE ctid = ANY(ARRAY(%s%s))`, t.Name, sel, limit)
	if cut == nil {
		// Which personas lost rows, for the frontier.
		del = fmt.Sprintf(`WITH d AS (%s RETURNING %s AS pid) SELECT pid, count(*) AS n FROM d GROUP BY pid`, del, t.PersonaColumn)
	}
	pos := make(map[string]int, len(ids))
	for i, id := range ids {
		pos[id] = i
	}
	from := 0
	for {
		t0 := time.Now()
		var n int64
		last := from
		if cut != nil {
			r, err := s.db.NewRaw(del, args(from)...).Exec(ctx)
			if err != nil {
				return err
			}
			n, _ = r.RowsAffected()
		} else {
			var lost []struct {
				PID string `bun:"pid"`
				N   int64  `bun:"n"`
			}
			if err := s.db.NewRaw(del, args(from)...).Scan(ctx, &lost); err != nil {
				return err
			}
			for _, l := range lost {
				n += l.N
				if i, ok := pos[l.PID]; ok && i > last {
					last = i
				}
			}
		}
		took := time.Since(t0)
		if n > 0 {
			c.Rows += n
			c.Batches++
			if opts.OnBatch != nil {
				opts.OnBatch(t.Name, n)
			}
		}
		if n < int64(opts.BatchSize) {
			if from == 0 {
				return nil
			}
			// The closing statement over every persona of ids.
			last = 0
		}
		from = last
		if err := pace(ctx, opts.Duty, took, paused); err != nil {
			return err
		}
	}
}

// pace waits after a delete statement that took d so that statements take
// the share duty of the wall time; it returns early with ctx's error.
func pace(ctx context.Context, duty float64, d time.Duration, paused *time.Duration) error {
	if duty >= 1 || d <= 0 {
		return nil
	}
	wait := time.Duration(float64(d) * (1/duty - 1))
	timer := time.NewTimer(wait)
	defer timer.Stop()
	t0 := time.Now()
	select {
	case <-ctx.Done():
		*paused += time.Since(t0)
		return ctx.Err()
	case <-timer.C:
		*paused += time.Since(t0)
		return nil
	}
}

func (s *Store) recordPrune(ctx context.Context, started time.Time, res PruneResult, runErr error) error {
	deleted := map[string]int64{}
	for _, c := range res.Tables {
		deleted[c.Table] = c.Rows
	}
	raw, _ := json.Marshal(deleted)
	var msg *string
	if runErr != nil {
		m := runErr.Error()
		if len(m) > 4000 {
			m = m[:4000]
		}
		msg = &m
	}
	_, err := s.db.NewRaw(`
WITH ins AS (
    INSERT INTO personas.prune_runs
           (started_at, finished_at, dry_run, completed, raw_before, rollup_before, deleted, rows_deleted, error)
    VALUES (?0, ?1, ?2, ?3, ?4, ?5, ?6::jsonb, ?7, ?8)
)
DELETE FROM personas.prune_runs
 WHERE id <= (SELECT id FROM personas.prune_runs ORDER BY id DESC OFFSET ?9 LIMIT 1)`,
		started, started.Add(res.Duration), res.DryRun, runErr == nil, res.RawBefore, res.RollupBefore,
		string(raw), res.Total, msg, pruneRunsKept-1).Exec(ctx)
	if err != nil {
		return fmt.Errorf("record prune run: %w", translate(err))
	}
	return nil
}

// PruneRun is the latest prune recorded (see LastPrune).
type PruneRun struct {
	StartedAt   time.Time        `bun:"started_at"`
	FinishedAt  time.Time        `bun:"finished_at"`
	Completed   bool             `bun:"completed"`
	RowsDeleted int64            `bun:"rows_deleted"`
	Deleted     map[string]int64 `bun:"deleted,type:jsonb"`
}

// Duration is how long the run took.
func (r PruneRun) Duration() time.Duration { return r.FinishedAt.Sub(r.StartedAt) }

// LastPrune returns the latest prune that was not a dry run, or nil when
// none is recorded.
func (s *Store) LastPrune(ctx context.Context) (*PruneRun, error) {
	var r PruneRun
	err := s.db.NewRaw(`SELECT started_at, finished_at, completed, rows_deleted, deleted
  FROM personas.prune_runs WHERE NOT dry_run ORDER BY id DESC LIMIT 1`).Scan(ctx, &r)
	if errors.Is(translate(err), ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("last prune: %w", translate(err))
	}
	return &r, nil
}
