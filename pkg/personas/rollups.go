package personas

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"
)

// Rollups. The product-wide views read per-day rollups that the write
// statements keep up to date, counting exactly the rows they inserted
// (the RETURNING of their insert), never the batch as sent:
//
//   - rating_daily: ratings per (UTC day, module, persona) with the 1–5
//     distribution (sum and sum of squares are generated from it);
//   - rating_unparsable_daily: parse markers (modules starting with "__")
//     per (day, persona), kept out of every rating aggregate;
//   - action_daily: tool calls per (day, tool, persona): calls, errors,
//     latency count, sum and histogram (LatencyThresholds);
//   - action_error_daily: error messages per (day, tool, persona,
//     normalised message), at most MaxErrorGroups groups, the rest in "";
//   - module_raters (migration 0011): each persona's latest rating per
//     module, for the personas who rated a module in a window ending now;
//   - rating_fleet_daily and action_fleet_daily (migration 0010): the
//     figures of rating_daily and action_daily without the persona, per
//     (day, module or tool, shard of the persona id), for the views that
//     need no persona filter. Ingest adds to them in the same statement;
//     deletes of per-persona rows (cascade, prune, rebuild) subtract
//     through the tables' delete triggers.
//
// BackfillRollups builds them from the raw rows stored before they existed.

// LatencyThresholds are the lower bounds (ms) of the latency histogram's
// buckets after the first ([0, 1) ms): round(2^(k/2)), so each bucket is
// about 41% wide and a percentile read from it is within that of the truth.
// The histogram has len(LatencyThresholds)+1 buckets (the migration checks
// 53).
var LatencyThresholds = []int{
	1, 2, 3, 4, 6, 8, 11, 16, 23, 32, 45, 64, 91, 128, 181, 256, 362, 512, 724, 1024, 1448, 2048, 2896,
	4096, 5793, 8192, 11585, 16384, 23170, 32768, 46341, 65536, 92682, 131072, 185364, 262144, 370728,
	524288, 741455, 1048576, 1482910, 2097152, 2965821, 4194304, 5931642, 8388608, 11863283, 16777216,
	23726566, 33554432, 47453133, 67108864,
}

// MaxErrorGroups bounds the distinct error messages kept per day, tool and
// persona; further messages are counted in the group with an empty hash.
const MaxErrorGroups = 20

// IsParseMarker reports whether a feedback module is a marker rather than a
// module: the runner writes "__parse" when it could not read its own
// ratings. Markers are stored but never rated.
func IsParseMarker(module string) bool { return strings.HasPrefix(module, "__") }

// dayOf is the UTC day of the write statements' timestamp ?1.
const dayOf = `(?1::timestamptz AT TIME ZONE 'UTC')::date`

// normalisedMessage folds an error message into its group: ids, hex runs
// and numbers become "#", case and spacing are folded.
func normalisedMessage(col string) string {
	return `left(regexp_replace(regexp_replace(regexp_replace(regexp_replace(lower(COALESCE(` + col + `, '')),
        '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}', '#', 'g'),
        '[0-9a-f]{8,}', '#', 'g'), '[0-9]+', '#', 'g'), '\s+', ' ', 'g'), 500)`
}

// histogramAgg is the latency histogram of the rows in scope as an
// integer[] aggregate over column col.
func histogramAgg(col string) string {
	thr := make([]string, len(LatencyThresholds))
	for i, t := range LatencyThresholds {
		thr[i] = strconv.Itoa(t)
	}
	wb := "width_bucket(" + col + ", ARRAY[" + strings.Join(thr, ",") + "]::integer[])"
	parts := make([]string, len(LatencyThresholds)+1)
	for i := range parts {
		parts[i] = "count(*) FILTER (WHERE " + wb + " = " + strconv.Itoa(i) + ")"
	}
	return "ARRAY[" + strings.Join(parts, ", ") + "]::integer[]"
}

// histogramAdd adds two histograms element by element.
func histogramAdd(a, b string) string {
	parts := make([]string, len(LatencyThresholds)+1)
	for i := range parts {
		n := strconv.Itoa(i + 1)
		parts[i] = a + "[" + n + "] + " + b + "[" + n + "]"
	}
	return "ARRAY[" + strings.Join(parts, ", ") + "]"
}

// ratingCounts are the distribution columns aggregated over rating column col.
func ratingCounts(col string) string {
	var b strings.Builder
	for v := 1; v <= 5; v++ {
		if v > 1 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "count(*) FILTER (WHERE %s = %d)", col, v)
	}
	return b.String()
}

// ratingCountsAs is ratingCounts with the columns named r1..r5.
func ratingCountsAs(col string) string {
	var b strings.Builder
	for v := 1; v <= 5; v++ {
		if v > 1 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "count(*) FILTER (WHERE %s = %d) AS r%d", col, v, v)
	}
	return b.String()
}

// fleetShard is the fleet rollups' shard of persona id expression col
// (migration 0010 backfills and its triggers subtract with the same one).
// It only spreads concurrent batches over rows; no view depends on it.
func fleetShard(col string) string { return "(hashtext(" + col + ") & 7)::smallint" }

// ratingRollupCTE and unparsableRollupCTE add the inserted ratings (CTE
// ins: module, rating) to the rollups, the persona's and the fleet's, and
// move the persona's latest rating of each module rated: ?0 persona id, ?1
// now. A batch leaves out the one it has no rows for (see
// insertFeedbackSQL).
var ratingRollupCTE = `, ragg AS (
    SELECT ins.module, count(*) AS n, ` + ratingCountsAs("ins.rating") + `
      FROM ins
     WHERE left(ins.module, 2) <> '__'
     GROUP BY ins.module
), rated AS (
    INSERT INTO personas.rating_daily AS d (day, module, persona_id, n, r1, r2, r3, r4, r5, last_at)
    SELECT ` + dayOf + `, ragg.module, ?0::text, ragg.n, ragg.r1, ragg.r2, ragg.r3, ragg.r4, ragg.r5, ?1::timestamptz
      FROM ragg
     ORDER BY ragg.module
        ON CONFLICT (day, module, persona_id) DO UPDATE
       SET n = d.n + EXCLUDED.n, r1 = d.r1 + EXCLUDED.r1, r2 = d.r2 + EXCLUDED.r2, r3 = d.r3 + EXCLUDED.r3,
           r4 = d.r4 + EXCLUDED.r4, r5 = d.r5 + EXCLUDED.r5, last_at = GREATEST(d.last_at, EXCLUDED.last_at)
), rated_fleet AS (
    INSERT INTO personas.rating_fleet_daily AS d (day, module, shard, n, r1, r2, r3, r4, r5)
    SELECT ` + dayOf + `, ragg.module, ` + fleetShard("?0::text") + `, ragg.n, ragg.r1, ragg.r2, ragg.r3, ragg.r4, ragg.r5
      FROM ragg
     ORDER BY ragg.module
        ON CONFLICT (day, module, shard) DO UPDATE
       SET n = d.n + EXCLUDED.n, r1 = d.r1 + EXCLUDED.r1, r2 = d.r2 + EXCLUDED.r2, r3 = d.r3 + EXCLUDED.r3,
           r4 = d.r4 + EXCLUDED.r4, r5 = d.r5 + EXCLUDED.r5
), raters AS (
    INSERT INTO personas.module_raters AS m (persona_id, module, last_at)
    SELECT ?0::text, ragg.module, ?1::timestamptz
      FROM ragg
     ORDER BY ragg.module
        ON CONFLICT (persona_id, module) DO UPDATE SET last_at = GREATEST(m.last_at, EXCLUDED.last_at)
)`

var unparsableRollupCTE = `, unparsable AS (
    INSERT INTO personas.rating_unparsable_daily AS u (day, persona_id, n)
    SELECT ` + dayOf + `, ?0::text, count(*)
      FROM ins
     WHERE left(ins.module, 2) = '__'
    HAVING count(*) > 0
        ON CONFLICT (day, persona_id) DO UPDATE SET n = u.n + EXCLUDED.n
)`

// actionToolRollupCTE and actionErrorRollupCTEs add the inserted actions
// (CTE ins: tool_name, result, error_message, latency_ms) to the rollups
// (the tool figures to the persona's and the fleet's): ?0 persona id, ?1 now. Error groups new to the (day, tool, persona) are
// kept while there are fewer than MaxErrorGroups; the rest count in the ""
// group. A batch without error rows leaves out the error part (see
// insertActionsSQL).
var actionToolRollupCTE = `, tagg AS (
    SELECT ins.tool_name, count(*) AS calls, count(*) FILTER (WHERE ins.result = 'error') AS errors,
           count(ins.latency_ms) AS latency_n, COALESCE(sum(ins.latency_ms), 0) AS latency_sum,
           ` + histogramAgg("ins.latency_ms") + ` AS latency_hist
      FROM ins
     GROUP BY ins.tool_name
), tools AS (
    INSERT INTO personas.action_daily AS d
           (day, tool_name, persona_id, calls, errors, latency_n, latency_sum, latency_hist)
    SELECT ` + dayOf + `, tagg.tool_name, ?0::text, tagg.calls, tagg.errors, tagg.latency_n, tagg.latency_sum, tagg.latency_hist
      FROM tagg
     ORDER BY tagg.tool_name
        ON CONFLICT (day, tool_name, persona_id) DO UPDATE
       SET calls = d.calls + EXCLUDED.calls, errors = d.errors + EXCLUDED.errors,
           latency_n = d.latency_n + EXCLUDED.latency_n, latency_sum = d.latency_sum + EXCLUDED.latency_sum,
           latency_hist = ` + histogramAdd("d.latency_hist", "EXCLUDED.latency_hist") + `
), tools_fleet AS (
    INSERT INTO personas.action_fleet_daily AS d
           (day, tool_name, shard, calls, errors, latency_n, latency_sum, latency_hist)
    SELECT ` + dayOf + `, tagg.tool_name, ` + fleetShard("?0::text") + `, tagg.calls, tagg.errors, tagg.latency_n,
           tagg.latency_sum, tagg.latency_hist
      FROM tagg
     ORDER BY tagg.tool_name
        ON CONFLICT (day, tool_name, shard) DO UPDATE
       SET calls = d.calls + EXCLUDED.calls, errors = d.errors + EXCLUDED.errors,
           latency_n = d.latency_n + EXCLUDED.latency_n, latency_sum = d.latency_sum + EXCLUDED.latency_sum,
           latency_hist = ` + histogramAdd("d.latency_hist", "EXCLUDED.latency_hist") + `
)`

var actionErrorRollupCTEs = `, errg AS (
    SELECT ins.tool_name, md5(` + normalisedMessage("ins.error_message") + `) AS h,
           min(left(COALESCE(ins.error_message, ''), 500)) AS sample, count(*) AS n
      FROM ins
     WHERE ins.result = 'error'
     GROUP BY 1, 2
), errk AS (
    SELECT errg.*,
           EXISTS (SELECT 1 FROM personas.action_error_daily AS a
                    WHERE a.day = ` + dayOf + ` AND a.tool_name = errg.tool_name AND a.persona_id = ?0::text
                      AND a.msg_hash = errg.h) AS known,
           (SELECT count(*) FROM personas.action_error_daily AS a
             WHERE a.day = ` + dayOf + ` AND a.tool_name = errg.tool_name AND a.persona_id = ?0::text
               AND a.msg_hash <> '') AS have
      FROM errg
), errb AS (
    SELECT errk.tool_name, errk.sample, errk.n,
           CASE WHEN errk.known OR errk.have + row_number() OVER (PARTITION BY errk.tool_name, errk.known
                                                                ORDER BY errk.n DESC, errk.h) <= ` + strconv.Itoa(MaxErrorGroups) + `
                THEN errk.h ELSE '' END AS h
      FROM errk
), errins AS (
    INSERT INTO personas.action_error_daily AS a (day, tool_name, persona_id, msg_hash, sample, n)
    SELECT ` + dayOf + `, errb.tool_name, ?0::text, errb.h, CASE WHEN errb.h = '' THEN '' ELSE min(errb.sample) END, sum(errb.n)
      FROM errb
     GROUP BY errb.tool_name, errb.h
     ORDER BY errb.tool_name, errb.h
        ON CONFLICT (day, tool_name, persona_id, msg_hash) DO UPDATE
       SET n = a.n + EXCLUDED.n, sample = LEAST(a.sample, EXCLUDED.sample)
)`

// BackfillResult says what BackfillRollups did.
type BackfillResult struct {
	Personas int  `json:"personas"` // personas whose rollups were rebuilt by this call
	Batches  int  `json:"batches"`
	Resumed  bool `json:"resumed"` // the call continued a run that had stopped half-way
}

// MaxBackfillBatch bounds BackfillRollups' batch size.
const MaxBackfillBatch = 10_000

// BackfillRollups rebuilds the rollups from the raw rows (after a prune,
// only the days the raw rows still hold whole: see rebuildRollups), batchSize
// personas per transaction (in user id order): each batch locks its
// personas (so no write for them runs meanwhile), deletes their rollup rows
// and recomputes them, and records the last persona done in the same
// transaction. It is idempotent (recompute and replace: running it again
// gives the same rollups) and resumable (a run that stopped continues after
// the last committed batch; a finished run starts over next time). Writes
// may go on while it runs. progress, when not nil, is called after each
// batch with the personas done so far.
func (s *Store) BackfillRollups(ctx context.Context, batchSize int, progress func(done int)) (BackfillResult, error) {
	var res BackfillResult
	if batchSize < 1 || batchSize > MaxBackfillBatch {
		return res, Invalid("batchSize", fmt.Sprintf("must be an integer from 1 to %d", MaxBackfillBatch))
	}
	for {
		var n int
		var more bool
		err := s.InTx(ctx, func(ctx context.Context, tx bun.Tx) error {
			// The rebuild subtracts from and adds to the fleet rollups in
			// two steps; holding them meanwhile (writes wait for the batch)
			// keeps a concurrent write from deadlocking with it. Taken
			// before the persona locks, which writes take after their
			// table locks.
			if _, err := tx.NewRaw(`LOCK TABLE personas.rating_fleet_daily, personas.action_fleet_daily IN EXCLUSIVE MODE`).Exec(ctx); err != nil {
				return err
			}
			var cursor *string
			if err := tx.NewRaw(`SELECT last_persona FROM personas.rollup_backfill FOR UPDATE`).Scan(ctx, &cursor); err != nil {
				return err
			}
			if res.Batches == 0 && cursor != nil {
				res.Resumed = true
			}
			from := ""
			if cursor != nil {
				from = *cursor
			}
			var ids []string
			if err := tx.NewRaw(`SELECT user_id FROM personas.personas WHERE user_id > ?0 ORDER BY user_id LIMIT ?1 FOR UPDATE`,
				from, batchSize).Scan(ctx, &ids); err != nil {
				return err
			}
			n = len(ids)
			more = n == batchSize
			if n > 0 {
				if err := rebuildRollups(ctx, tx, ids); err != nil {
					return err
				}
			}
			var next *string
			if more {
				next = &ids[n-1]
			}
			_, err := tx.NewRaw(`UPDATE personas.rollup_backfill SET last_persona = ?0, updated_at = ?1`, next, s.Now()).Exec(ctx)
			return err
		})
		if err != nil {
			return res, fmt.Errorf("backfill rollups: %w", err)
		}
		res.Batches++
		res.Personas += n
		if progress != nil {
			progress(res.Personas)
		}
		if !more {
			return res, nil
		}
	}
}

// rebuildRollups replaces the rollups of the (locked) personas ids with
// aggregates of their raw rows. Once a prune has deleted raw rows, the
// rollups are the only record of the days before the raw window: then
// only the days after a persona's oldest remaining raw row of a table
// (whole days of raw rows) are rebuilt, and the earlier days, whose raw
// rows are gone or partly gone, keep their rollups. The deletes take the
// rebuilt days' old rows out of the fleet rollups (triggers); the last two
// statements add their new rows back (the same days).
func rebuildRollups(ctx context.Context, tx bun.Tx, ids []string) error {
	arr := pgdialect.Array(ids)
	var pruned bool
	if err := tx.NewRaw(`SELECT EXISTS (SELECT 1 FROM personas.prune_runs WHERE NOT dry_run AND rows_deleted > 0)`).
		Scan(ctx, &pruned); err != nil {
		return err
	}
	// whole(table, alias) is the condition "day d of persona p lies wholly
	// in table's raw rows" for a rollup row (alias.day, alias.persona_id).
	whole := func(table, alias string) string {
		if !pruned {
			return `true`
		}
		return alias + `.day > (SELECT (min(w.created_at) AT TIME ZONE 'UTC')::date FROM personas.` + table +
			` AS w WHERE w.persona_id = ` + alias + `.persona_id)`
	}
	// fromWhole is the same condition for a raw row r of table.
	fromWhole := func(table, r string) string {
		if !pruned {
			return `true`
		}
		return `(` + r + `.created_at AT TIME ZONE 'UTC')::date > (SELECT (min(w.created_at) AT TIME ZONE 'UTC')::date FROM personas.` +
			table + ` AS w WHERE w.persona_id = ` + r + `.persona_id)`
	}
	stmts := []string{
		`DELETE FROM personas.rating_daily AS d WHERE d.persona_id = ANY(?0) AND ` + whole("persona_feedback", "d"),
		`DELETE FROM personas.rating_unparsable_daily AS d WHERE d.persona_id = ANY(?0) AND ` + whole("persona_feedback", "d"),
		`DELETE FROM personas.action_daily AS d WHERE d.persona_id = ANY(?0) AND ` + whole("persona_actions", "d"),
		`DELETE FROM personas.action_error_daily AS d WHERE d.persona_id = ANY(?0) AND ` + whole("persona_actions", "d"),
		`DELETE FROM personas.module_raters AS m WHERE m.persona_id = ANY(?0)`,
		`INSERT INTO personas.rating_daily (day, module, persona_id, n, r1, r2, r3, r4, r5, last_at)
SELECT (f.created_at AT TIME ZONE 'UTC')::date, f.module, f.persona_id, count(*), ` + ratingCounts("f.rating") + `, max(f.created_at)
  FROM personas.persona_feedback AS f
 WHERE f.persona_id = ANY(?0) AND left(f.module, 2) <> '__' AND ` + fromWhole("persona_feedback", "f") + `
 GROUP BY 1, 2, 3`,
		// After rating_daily's rebuild: its rows, kept and rebuilt, hold
		// every day a persona rated a module.
		`INSERT INTO personas.module_raters (persona_id, module, last_at)
SELECT r.persona_id, r.module, max(r.last_at)
  FROM personas.rating_daily AS r
 WHERE r.persona_id = ANY(?0)
 GROUP BY 1, 2`,
		`INSERT INTO personas.rating_unparsable_daily (day, persona_id, n)
SELECT (f.created_at AT TIME ZONE 'UTC')::date, f.persona_id, count(*)
  FROM personas.persona_feedback AS f
 WHERE f.persona_id = ANY(?0) AND left(f.module, 2) = '__' AND ` + fromWhole("persona_feedback", "f") + `
 GROUP BY 1, 2`,
		`INSERT INTO personas.action_daily (day, tool_name, persona_id, calls, errors, latency_n, latency_sum, latency_hist)
SELECT (a.created_at AT TIME ZONE 'UTC')::date, a.tool_name, a.persona_id, count(*), count(*) FILTER (WHERE a.result = 'error'),
       count(a.latency_ms), COALESCE(sum(a.latency_ms), 0), ` + histogramAgg("a.latency_ms") + `
  FROM personas.persona_actions AS a
 WHERE a.persona_id = ANY(?0) AND ` + fromWhole("persona_actions", "a") + `
 GROUP BY 1, 2, 3`,
		`INSERT INTO personas.action_error_daily (day, tool_name, persona_id, msg_hash, sample, n)
SELECT g.day, g.tool_name, g.persona_id, g.h, CASE WHEN g.h = '' THEN '' ELSE min(g.sample) END, sum(g.n)
  FROM (SELECT e.day, e.tool_name, e.persona_id, e.sample, e.n,
               CASE WHEN row_number() OVER (PARTITION BY e.day, e.tool_name, e.persona_id ORDER BY e.n DESC, e.h) <= ` +
			strconv.Itoa(MaxErrorGroups) + ` THEN e.h ELSE '' END AS h
          FROM (SELECT (a.created_at AT TIME ZONE 'UTC')::date AS day, a.tool_name, a.persona_id,
                       md5(` + normalisedMessage("a.error_message") + `) AS h,
                       min(left(COALESCE(a.error_message, ''), 500)) AS sample, count(*) AS n
                  FROM personas.persona_actions AS a
                 WHERE a.persona_id = ANY(?0) AND a.result = 'error' AND ` + fromWhole("persona_actions", "a") + `
                 GROUP BY 1, 2, 3, 4) AS e) AS g
 GROUP BY g.day, g.tool_name, g.persona_id, g.h`,
		`INSERT INTO personas.rating_fleet_daily AS d (day, module, shard, n, r1, r2, r3, r4, r5)
SELECT r.day, r.module, ` + fleetShard("r.persona_id") + `, sum(r.n), sum(r.r1), sum(r.r2), sum(r.r3), sum(r.r4), sum(r.r5)
  FROM personas.rating_daily AS r
 WHERE r.persona_id = ANY(?0) AND ` + whole("persona_feedback", "r") + `
 GROUP BY 1, 2, 3
 ORDER BY 1, 2, 3
    ON CONFLICT (day, module, shard) DO UPDATE
   SET n = d.n + EXCLUDED.n, r1 = d.r1 + EXCLUDED.r1, r2 = d.r2 + EXCLUDED.r2, r3 = d.r3 + EXCLUDED.r3,
       r4 = d.r4 + EXCLUDED.r4, r5 = d.r5 + EXCLUDED.r5`,
		`INSERT INTO personas.action_fleet_daily AS d (day, tool_name, shard, calls, errors, latency_n, latency_sum, latency_hist)
SELECT a.day, a.tool_name, ` + fleetShard("a.persona_id") + `, sum(a.calls), sum(a.errors), sum(a.latency_n), sum(a.latency_sum),
       ` + histogramSum("a.latency_hist", "integer") + `
  FROM personas.action_daily AS a
 WHERE a.persona_id = ANY(?0) AND ` + whole("persona_actions", "a") + `
 GROUP BY 1, 2, 3
 ORDER BY 1, 2, 3
    ON CONFLICT (day, tool_name, shard) DO UPDATE
   SET calls = d.calls + EXCLUDED.calls, errors = d.errors + EXCLUDED.errors,
       latency_n = d.latency_n + EXCLUDED.latency_n, latency_sum = d.latency_sum + EXCLUDED.latency_sum,
       latency_hist = ` + histogramAdd("d.latency_hist", "EXCLUDED.latency_hist"),
	}
	for _, q := range stmts {
		if _, err := tx.NewRaw(q, arr).Exec(ctx); err != nil {
			return err
		}
	}
	return nil
}
