package personas_test

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mana/personas/pkg/errs"
	"github.com/mana/personas/pkg/personas"
)

const day = 24 * time.Hour

// pruneDays of history end at monday: one tick a day per persona, at
// 09:xx, with 3 actions and 2 ratings.
const pruneDays = 120

// pruneFixture: "a" keeps the global rule, "b" has maxHistoryDays 3, "c"
// has maxHistoryDays 200 (longer than the global window: no effect). Two
// ticks were left running 100 days ago: "a"'s persona is leased now (kept),
// "c"'s is not (pruned).
func pruneFixture(t *testing.T) bundle {
	t.Helper()
	ctx := context.Background()
	b := setup(t)
	start := monday.Add(-pruneDays * day).Add(-3 * time.Hour) // 09:00
	b.clock.Set(start)
	for _, id := range []string{"a", "b", "c"} {
		in := persona(id, personas.CadenceDaily)
		switch id {
		case "b":
			in.MaxHistoryDays = ptr(3)
		case "c":
			in.MaxHistoryDays = ptr(200)
		}
		_, err := b.store.UpsertPersona(ctx, in)
		require.NoError(t, err)
	}
	// The history is written in bulk, in the shape the store writes it
	// (ids, one bucket per persona and hour holding the actions inserted).
	_, err := b.store.DB().NewRaw(`
WITH d AS (
    SELECT p.id, p.i, g.d, ?0::timestamptz + g.d * interval '1 day' + p.i * interval '1 minute' AS at,
           p.id || '-d' || lpad(g.d::text, 3, '0') AS tick
      FROM (VALUES ('a', 0), ('b', 1), ('c', 2)) AS p(id, i), generate_series(0, ?1::integer - 1) AS g(d)
), t AS (
    INSERT INTO personas.persona_ticks (persona_id, tick_id, runner_id, started_at, finished_at, status, created_at)
    SELECT id, tick, 'r', at, CASE WHEN d = 20 AND id <> 'b' THEN NULL ELSE at + interval '30 seconds' END,
           CASE WHEN d = 20 AND id <> 'b' THEN 'running' ELSE 'ok' END, at FROM d
), a AS (
    INSERT INTO personas.persona_actions (id, persona_id, tick_id, tool_name, result, created_at)
    SELECT tick || '-' || k || '-tool' || k, id, tick, 'tool' || k, 'ok', at FROM d, generate_series(0, 2) AS k
), f AS (
    INSERT INTO personas.persona_feedback (id, persona_id, tick_id, module, rating, created_at)
    SELECT tick || '-' || m, id, tick, m, 1 + (d + CASE m WHEN 'todo' THEN 0 ELSE i END) % 5, at
      FROM d, unnest(ARRAY['todo', 'calendar']) AS m
)
INSERT INTO personas.persona_activity_hourly (persona_id, hour, actions)
SELECT id, date_trunc('hour', at), 3 FROM d`, start, pruneDays).Exec(ctx)
	require.NoError(t, err)
	// The daily rollups, as ingest would have kept them.
	_, err = b.store.BackfillRollups(ctx, 100, nil)
	require.NoError(t, err)
	b.clock.Set(monday)
	// a's lease is held now (a is due: its last tick was at 09:00 today,
	// but its tick hour makes no difference to a claim with a fresh lease
	// set directly).
	_, err = b.store.DB().NewRaw(`UPDATE personas.personas SET lease_owner = 'r', lease_expires_at = ?0,
        lease_token_hash = sha256('x'::bytea) WHERE user_id = 'a'`, monday.Add(time.Hour)).Exec(ctx)
	require.NoError(t, err)
	return b
}

// snapshot is every row's identity per pruned table, for comparing end states.
func snapshot(t *testing.T, s *personas.Store) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for table, q := range map[string]string{
		"actions":  `SELECT persona_id || '/' || id FROM personas.persona_actions`,
		"feedback": `SELECT persona_id || '/' || id FROM personas.persona_feedback`,
		"ticks":    `SELECT persona_id || '/' || tick_id FROM personas.persona_ticks`,
		"hourly":   `SELECT persona_id || '/' || hour::text || '/' || actions FROM personas.persona_activity_hourly`,
	} {
		var ids []string
		require.NoError(t, s.DB().NewRaw(q).Scan(context.Background(), &ids))
		sort.Strings(ids)
		out[table] = ids
	}
	return out
}

// oldest returns the oldest time in table (column col) for a persona.
func oldest(t *testing.T, s *personas.Store, table, col, id string) time.Time {
	t.Helper()
	var ts time.Time
	require.NoError(t, s.DB().NewRaw(fmt.Sprintf(`SELECT min(%s) FROM personas.%s WHERE persona_id = ?`, col, table), id).
		Scan(context.Background(), &ts))
	return ts.UTC()
}

func countWhere(t *testing.T, s *personas.Store, q string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, s.DB().NewRaw(q, args...).Scan(context.Background(), &n))
	return n
}

func pruneOpts(now time.Time) personas.PruneOptions {
	raw, rollup := personas.RetentionCutoffs(now, 90, 100)
	return personas.PruneOptions{RawBefore: raw, RollupBefore: rollup, BatchSize: 25}
}

func TestPrune(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("WindowsAndMaxHistoryDays", func(t *testing.T) {
		t.Parallel()
		b := pruneFixture(t)
		opts := pruneOpts(monday)
		before := snapshot(t, b.store)
		var before7d []int64
		for _, id := range []string{"a", "b", "c"} {
			n, err := b.store.Actions7d(ctx, id)
			require.NoError(t, err)
			before7d = append(before7d, n)
		}
		feedbackBefore, err := b.store.FeedbackByModule(ctx, "a")
		require.NoError(t, err)
		type query struct {
			q   string
			arg time.Time
		}
		inside := []query{
			{`SELECT count(*) FROM personas.persona_actions WHERE created_at >= ? AND persona_id <> 'b'`, opts.RawBefore},
			{`SELECT count(*) FROM personas.persona_feedback WHERE created_at >= ? AND persona_id <> 'b'`, opts.RawBefore},
			{`SELECT count(*) FROM personas.persona_ticks WHERE created_at >= ? AND persona_id <> 'b'`, opts.RawBefore},
			{`SELECT count(*) FROM personas.persona_actions WHERE created_at >= ? AND persona_id = 'b'`, monday.Add(-personas.ActivityWindow)},
			{`SELECT count(*) FROM personas.persona_feedback WHERE created_at >= ? AND persona_id = 'b'`, monday.Add(-3 * day)},
			{`SELECT count(*) FROM personas.persona_activity_hourly WHERE hour + interval '1 hour' > ?`, opts.RollupBefore},
		}
		var insideBefore []int
		for _, q := range inside {
			insideBefore = append(insideBefore, countWhere(t, b.store, q.q, q.arg))
		}
		require.Positive(t, insideBefore[0])
		// The days whose rating rollup outlives the prune (a day's bucket
		// goes once it ended by RollupBefore).
		aKept := countWhere(t, b.store, `SELECT count(*) FROM personas.persona_feedback WHERE created_at >= date_trunc('day', ?0::timestamptz AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AND persona_id = 'a' AND module = 'calendar'`, opts.RollupBefore)
		require.Greater(t, aKept, countWhere(t, b.store, `SELECT count(*) FROM personas.persona_feedback WHERE created_at >= ?0 AND persona_id = 'a' AND module = 'calendar'`, opts.RawBefore))

		dry := opts
		dry.DryRun = true
		dres, err := b.store.Prune(ctx, dry)
		require.NoError(t, err)
		require.Equal(t, before, snapshot(t, b.store), "a dry run deletes nothing")
		require.Positive(t, dres.Total)

		res, err := b.store.Prune(ctx, opts)
		require.NoError(t, err)
		require.Len(t, res.Tables, len(personas.PruneTables))
		for i := range res.Tables {
			require.Equal(t, dres.Tables[i].Rows, res.Tables[i].Rows, "%s: the dry run reports what the run deletes", res.Tables[i].Table)
			switch tb := res.Tables[i].Table; {
			case tb == "personas.module_raters":
				// Every persona of the fixture rated both modules lately.
				require.Zero(t, res.Tables[i].Rows, tb)
			case !strings.HasSuffix(tb, "_daily"): // the fixture rates no parse markers and has no errors
				require.Positive(t, res.Tables[i].Rows, tb)
			}
		}

		// The global window: 90 days for a and c (c's 200 days are longer).
		for _, id := range []string{"a", "c"} {
			for _, tc := range []struct{ table, col string }{{"persona_actions", "created_at"}, {"persona_feedback", "created_at"}} {
				got := oldest(t, b.store, tc.table, tc.col, id)
				require.False(t, got.Before(opts.RawBefore), "%s %s: %s is before the window", id, tc.table, got)
				require.True(t, got.Before(opts.RawBefore.Add(day)), "%s %s: the oldest row inside the window is kept", id, tc.table)
			}
		}
		// b keeps 3 days of feedback and ticks, and the 7-day count's window of actions.
		require.False(t, oldest(t, b.store, "persona_feedback", "created_at", "b").Before(monday.Add(-3*day)))
		require.False(t, oldest(t, b.store, "persona_ticks", "created_at", "b").Before(monday.Add(-3*day)))
		require.Equal(t, 2, countWhere(t, b.store, `SELECT count(*) FROM personas.persona_ticks WHERE persona_id = 'b'`), "the ticks of the last 3 days (the newest is a day old)")
		ba := oldest(t, b.store, "persona_actions", "created_at", "b")
		require.False(t, ba.Before(monday.Add(-personas.ActivityWindow)))
		require.True(t, ba.Before(monday.Add(-6*day)))

		// Nothing inside a window went: every row dated inside is still there.
		for i, q := range inside {
			require.Equal(t, insideBefore[i], countWhere(t, b.store, q.q, q.arg), q.q)
		}
		// Running ticks: a's (lease held) is kept, c's (no lease) is pruned.
		require.Equal(t, 1, countWhere(t, b.store, `SELECT count(*) FROM personas.persona_ticks WHERE tick_id = 'a-d020'`))
		require.Zero(t, countWhere(t, b.store, `SELECT count(*) FROM personas.persona_ticks WHERE tick_id = 'c-d020'`))
		// Hourly buckets: only those that ended by the rollup cutoff.
		require.Zero(t, countWhere(t, b.store, `SELECT count(*) FROM personas.persona_activity_hourly WHERE hour + interval '1 hour' <= ?0`, opts.RollupBefore))
		require.Positive(t, countWhere(t, b.store, `SELECT count(*) FROM personas.persona_activity_hourly WHERE hour < ?0`, opts.RawBefore),
			"buckets older than the raw window are kept")

		// The aggregates that read rollups are what they were, now and a
		// few days on, where the raw rows they start from are gone for b.
		for i, id := range []string{"a", "b", "c"} {
			n, err := b.store.Actions7d(ctx, id)
			require.NoError(t, err)
			require.Equal(t, before7d[i], n, id)
		}
		// The admin detail's rating aggregate reads the daily rollup: the
		// ratings past the raw window still count, as far back as the
		// rollup retention reaches.
		feedbackAfter, err := b.store.FeedbackByModule(ctx, "a")
		require.NoError(t, err)
		require.Equal(t, feedbackBefore[0].LastRatedAt, feedbackAfter[0].LastRatedAt)
		require.Equal(t, "calendar", feedbackAfter[0].Module)
		require.Equal(t, aKept, feedbackAfter[0].Count)

		// Idempotent: a second run finds nothing.
		again, err := b.store.Prune(ctx, opts)
		require.NoError(t, err)
		require.Zero(t, again.Total)

		last, err := b.store.LastPrune(ctx)
		require.NoError(t, err)
		require.NotNil(t, last)
		require.True(t, last.Completed)
		require.Zero(t, last.RowsDeleted, "the latest run deleted nothing")
		require.Equal(t, 3, countWhere(t, b.store, `SELECT count(*) FROM personas.prune_runs`), "the dry run and both runs are recorded")
	})

	t.Run("KilledMidRunConverges", func(t *testing.T) {
		t.Parallel()
		killed, whole := pruneFixture(t), pruneFixture(t)
		opts := pruneOpts(monday)

		cctx, cancel := context.WithCancel(ctx)
		kill := opts
		var batches atomic.Int32
		kill.OnBatch = func(string, int64) {
			if batches.Add(1) == 1 {
				cancel()
			}
		}
		res, err := killed.store.Prune(cctx, kill)
		require.Error(t, err, "the run was cancelled")
		require.Positive(t, res.Total, "the first batch stays deleted")
		last, err := killed.store.LastPrune(ctx)
		require.NoError(t, err)
		require.False(t, last.Completed, "the cancelled run is recorded as such")

		_, err = killed.store.Prune(ctx, opts)
		require.NoError(t, err)
		_, err = whole.store.Prune(ctx, opts)
		require.NoError(t, err)
		require.Equal(t, snapshot(t, whole.store), snapshot(t, killed.store), "rerun after a kill ends where one whole run does")

		// Days on, the 7-day counts of the pruned store equal those of an
		// unpruned twin: the window now starts among pruned raw rows for b.
		twin := pruneFixture(t)
		for _, s := range []bundle{killed, twin} {
			s.clock.Set(monday.Add(2*day + 30*time.Minute))
		}
		for _, id := range []string{"a", "b", "c"} {
			want, err := twin.store.Actions7d(ctx, id)
			require.NoError(t, err)
			got, err := killed.store.Actions7d(ctx, id)
			require.NoError(t, err)
			require.Equal(t, want, got, id)
		}
		wantList, _, err := twin.store.ListPersonas(ctx, personas.ListFilter{})
		require.NoError(t, err)
		gotList, _, err := killed.store.ListPersonas(ctx, personas.ListFilter{})
		require.NoError(t, err)
		for i := range wantList {
			require.Equal(t, wantList[i].Actions7d, gotList[i].Actions7d, wantList[i].UserID)
		}
	})

	// Pacing changes when the batches run, never what they delete.
	t.Run("PacedDeletesWhatUnpacedDoes", func(t *testing.T) {
		t.Parallel()
		paced, unpaced := pruneFixture(t), pruneFixture(t)
		opts := pruneOpts(monday)
		fast := opts
		fast.Duty = 1
		want, err := unpaced.store.Prune(ctx, fast)
		require.NoError(t, err)
		require.Equal(t, 1.0, want.Duty)
		require.Zero(t, want.Paused, "duty 1 never waits")
		slow := opts
		slow.Duty = 0.5
		got, err := paced.store.Prune(ctx, slow)
		require.NoError(t, err)
		require.Equal(t, 0.5, got.Duty)
		require.Positive(t, got.Paused)
		require.Equal(t, want.Tables, got.Tables, "the same rows in the same batches")
		require.Equal(t, snapshot(t, unpaced.store), snapshot(t, paced.store))
		require.Equal(t, rollupRows(t, unpaced.store), rollupRows(t, paced.store))

		// Unset, the duty is the default; a cancelled pause ends the run.
		b := pruneFixture(t)
		cctx, cancel := context.WithCancel(ctx)
		def := opts
		def.OnBatch = func(string, int64) { cancel() }
		res, err := b.store.Prune(cctx, def)
		require.ErrorIs(t, err, context.Canceled)
		require.Equal(t, personas.DefaultPruneDuty, res.Duty)
		require.Equal(t, 1, res.Tables[0].Batches, "cancelled in the pause after the first batch")
	})

	t.Run("ConcurrentRunRefuses", func(t *testing.T) {
		t.Parallel()
		b := pruneFixture(t)
		opts := pruneOpts(monday)
		var second error
		var once atomic.Bool
		first := opts
		first.OnBatch = func(string, int64) {
			if once.CompareAndSwap(false, true) {
				_, second = b.store.Prune(ctx, opts)
			}
		}
		_, err := b.store.Prune(ctx, first)
		require.NoError(t, err)
		require.ErrorIs(t, second, personas.ErrPruneRunning)
		require.Equal(t, errs.Conflict, errs.As(second).Code)
		// Once the first is done, a prune runs again.
		_, err = b.store.Prune(ctx, opts)
		require.NoError(t, err)
	})

	t.Run("Validation", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		for _, o := range []personas.PruneOptions{
			{},
			{RawBefore: monday.Add(day), RollupBefore: monday},
			{RawBefore: monday.Add(-90 * day), RollupBefore: monday.Add(-10 * day)},
			{RawBefore: monday.Add(-90 * day), RollupBefore: monday.Add(-700 * day), BatchSize: -1},
			{RawBefore: monday.Add(-90 * day), RollupBefore: monday.Add(-700 * day), Duty: -0.25},
			{RawBefore: monday.Add(-90 * day), RollupBefore: monday.Add(-700 * day), Duty: 1.5},
			{RawBefore: monday.Add(-90 * day), RollupBefore: monday.Add(-700 * day), Duty: math.NaN()},
		} {
			_, err := b.store.Prune(ctx, o)
			e := errs.As(err)
			require.True(t, e != nil && e.Code == errs.Invalid, "%+v: %v", o, err)
		}
	})

	t.Run("MaxHistoryDaysBounds", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		for _, v := range []int{0, 3651, -1} {
			in := persona("x", personas.CadenceDaily)
			in.MaxHistoryDays = ptr(v)
			_, err := b.store.UpsertPersona(ctx, in)
			require.Equal(t, []string{"maxHistoryDays"}, invalidFields(t, err), "%d", v)
		}
		in := persona("x", personas.CadenceDaily)
		in.MaxHistoryDays = ptr(30)
		_, err := b.store.UpsertPersona(ctx, in)
		require.NoError(t, err)
		due, err := b.store.Due(ctx, nil)
		require.NoError(t, err)
		require.Equal(t, ptr(30), due.Personas[0].MaxHistoryDays)
		claim, err := b.store.Claim(ctx, personas.ClaimRequest{RunnerID: "r"})
		require.NoError(t, err)
		require.Equal(t, ptr(30), claim.Personas[0].MaxHistoryDays)
		in.MaxHistoryDays = nil
		_, err = b.store.UpsertPersona(ctx, in)
		require.NoError(t, err)
		p, err := b.store.GetPersona(ctx, "x")
		require.NoError(t, err)
		require.Nil(t, p.MaxHistoryDays)
	})
}

// rollupRows is every rollup row's content, for comparing before and after.
func rollupRows(t *testing.T, s *personas.Store) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, table := range []string{"rating_daily", "rating_unparsable_daily", "action_daily", "action_error_daily"} {
		var rows []string
		require.NoError(t, s.DB().NewRaw(`SELECT r::text FROM personas.`+table+` AS r`).Scan(context.Background(), &rows))
		sort.Strings(rows)
		out[table] = rows
	}
	// The fleet rollups (shards summed, emptied rows left out) must equal
	// the per-persona rows summed.
	for _, q := range []struct{ fleet, perPersona, sel string }{
		{"rating_fleet_daily", "rating_daily", `concat_ws(' ', day, module, sum(n), sum(r1), sum(r2), sum(r3), sum(r4), sum(r5)) FROM personas.%s
 GROUP BY day, module HAVING sum(n) > 0`},
		{"action_fleet_daily", "action_daily", `concat_ws(' ', day, tool_name, sum(calls), sum(errors), sum(latency_n), sum(latency_sum),
       personas.hist_sum(latency_hist)) FROM personas.%s GROUP BY day, tool_name HAVING sum(calls) > 0`},
	} {
		var fleet, per []string
		require.NoError(t, s.DB().NewRaw(`SELECT `+fmt.Sprintf(q.sel, q.fleet)).Scan(context.Background(), &fleet))
		require.NoError(t, s.DB().NewRaw(`SELECT `+fmt.Sprintf(q.sel, q.perPersona)).Scan(context.Background(), &per))
		sort.Strings(fleet)
		sort.Strings(per)
		require.Equal(t, per, fleet, "%s sums %s", q.fleet, q.perPersona)
		out[q.fleet] = fleet
	}
	return out
}

// A backfill after a prune must not shrink the rollups to what the raw
// rows still hold: the days whose raw rows are gone (or partly gone) keep
// their rollups; the days wholly in the raw window are rebuilt as before.
func TestBackfillAfterPruneKeepsHistory(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := pruneFixture(t)
	_, err := b.store.Prune(ctx, pruneOpts(monday))
	require.NoError(t, err)
	want := rollupRows(t, b.store)
	require.NotEmpty(t, want["rating_daily"])
	require.Less(t, countWhere(t, b.store, `SELECT count(*) FROM personas.persona_feedback`),
		countWhere(t, b.store, `SELECT sum(n)::int FROM personas.rating_daily`), "the prune removed raw ratings the rollups still count")
	require.Less(t, countWhere(t, b.store, `SELECT count(*) FROM personas.persona_actions`),
		countWhere(t, b.store, `SELECT sum(calls)::int FROM personas.action_daily`), "the prune removed raw actions the rollups still count")

	_, err = b.store.BackfillRollups(ctx, 2, nil)
	require.NoError(t, err)
	require.Equal(t, want, rollupRows(t, b.store))

	// Inside the raw window the backfill still repairs: a rollup row of a
	// day wholly in the window, lost, comes back.
	_, err = b.store.DB().NewRaw(`DELETE FROM personas.rating_daily WHERE day = (SELECT max(day) FROM personas.rating_daily)`).Exec(ctx)
	require.NoError(t, err)
	_, err = b.store.BackfillRollups(ctx, 2, nil)
	require.NoError(t, err)
	require.Equal(t, want, rollupRows(t, b.store))
}
