package main

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mana/personas/pkg/personas"
)

// The seeded data (issue 13's set by default): -personas personas, of which
// -due are due and every chaosEvery-th is tagged chaos; -actions tool calls
// and -ratings ratings spread over -days days, every ratingModules-th rating
// a parse marker; one tick per ratings tick; the rollups built by the
// store's own backfill (personas.Store.BackfillRollups), so they are exactly
// what ingest would have kept.
const (
	chaosEvery  = 25
	parseEvery  = 50
	regressDays = 21 // "calendar" is rated one point worse over the last three weeks
)

// seedTools are the tools the seeded actions call ("module.verb").
var seedTools = []string{"todo.create", "todo.list", "todo.complete", "journal.write", "journal.read",
	"notes.create", "notes.search", "calendar.list", "calendar.create", "mood.log", "habits.track",
	"contacts.find", "search.web"}

// seedModules are the rated modules ("calendar" regresses, see regressDays).
var seedModules = []string{"todo", "journal", "notes", "calendar", "mood", "habits", "contacts"}

// seed builds the bench database from scratch with server-side SQL.
func seed(ctx context.Context, server, dsn string, o options) error {
	admin, err := pgx.Connect(ctx, server)
	if err != nil {
		return err
	}
	defer admin.Close(ctx)
	logf("creating %s", o.db)
	if _, err := admin.Exec(ctx, `DROP DATABASE IF EXISTS `+o.db+` WITH (FORCE)`); err != nil {
		return err
	}
	if _, err := admin.Exec(ctx, `CREATE DATABASE `+o.db); err != nil {
		return err
	}
	db, err := personas.OpenDB(dsn, personas.PoolConfig{MaxConns: 2})
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := personas.Migrate(ctx, db); err != nil {
		return err
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	started := time.Now()
	logf("seeding %d personas (%d due), %d actions, %d ratings over %d days", o.personas, o.due, o.actions, o.ratings, o.days)
	// A bulk load of this session only: no FK triggers (every row names a
	// seeded persona), no fsync wait, and persona_actions' secondary
	// indexes and key built once after the insert from their own
	// definitions (so they stay exactly the migrations').
	for _, q := range []string{`SET session_replication_role = replica`, `SET synchronous_commit = off`, `SET maintenance_work_mem = '256MB'`} {
		if _, err := conn.Exec(ctx, q); err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
	}
	restore, err := dropIndexes(ctx, conn, "persona_actions")
	if err != nil {
		return err
	}
	steps := []struct {
		what string
		sql  string
		args []any
	}{
		// Due personas have never been active nor done; the rest were
		// active within the last 23 hours and are done for today (daily
		// cadence, calendar day: not due until 00:00 UTC).
		{"personas", `INSERT INTO personas.personas (user_id, email, name, archetype, system_prompt, module_mix, tick_cadence, last_active_at, last_done_at, created_at, tags)
SELECT 'bench-' || lpad(i::text, 6, '0'), 'persona.bench' || i || '@mana.test', 'Bench ' || i,
       (ARRAY['adhd-student','ceo-busy','creative-parent','solo-dev','researcher','freelancer','overwhelmed-newbie'])[1 + i % 7],
       'Du bist eine Testperson Nummer ' || i || '. ' || repeat('Du nutzt Mana jeden Tag für Aufgaben, Notizen und dein Journal. ', 5),
       '{"todo":0.4,"notes":0.3,"journal":0.3}', 'daily',
       CASE WHEN i <= $2 THEN NULL ELSE now() - ((i % 1380) + 1) * interval '1 minute' END,
       CASE WHEN i <= $2 THEN NULL ELSE now() END,
       now() - i * interval '1 second',
       CASE WHEN i % $3 = 0 THEN '{chaos}'::text[] ELSE '{}'::text[] END
  FROM generate_series(1, $1) AS i`, []any{o.personas, o.due, chaosEvery}},
		// 20 calls per tick; a tick's time is spread over the days by a
		// multiplicative hash, its persona round-robin. About 4% errors,
		// in three message groups (with ids and numbers, as real ones).
		{"actions", `INSERT INTO personas.persona_actions (id, persona_id, tick_id, seq, tool_name, input_hash, result, error_message, latency_ms, created_at)
SELECT 'seed-' || x.t || '-' || x.s || '-' || x.tool, 'bench-' || lpad((1 + x.t % $2)::text, 6, '0'), 'seed-' || x.t, x.s, x.tool,
       md5(g::text), CASE WHEN x.err THEN 'error' ELSE 'ok' END,
       CASE WHEN x.err THEN (ARRAY['timeout after ' || (g % 5000) || ' ms', 'upstream 503 for request ' || md5(g::text),
                                   'validation failed: title is required'])[1 + g % 3] END,
       x.lat, now() - (x.age + 20 - x.s) * interval '1 second'
  FROM generate_series(0, $1 - 1) AS g,
       LATERAL (SELECT g / 20 AS t, g % 20 AS s, ($4::text[])[1 + (g * 7 + g / 20) % cardinality($4::text[])] AS tool,
                       (hashint4(g)::bigint & 1023) < 41 AS err, 5 + (hashint4(g + 1)::bigint & 1023) AS lat,
                       ((g / 20)::bigint * 7919) % ($3::bigint * 86400) AS age) AS x`,
			[]any{o.actions, o.personas, o.days, seedTools}},
		// 7 ratings per tick (one per module, every parseEvery-th a parse
		// marker with rating 3), a third with a note.
		{"ratings", `INSERT INTO personas.persona_feedback (id, persona_id, tick_id, module, rating, notes, created_at)
SELECT x.tick || '-' || x.module, 'bench-' || lpad((1 + x.t % $2)::text, 6, '0'), x.tick, x.module,
       CASE WHEN x.module LIKE '\_\_%' THEN 3
            WHEN x.module = 'calendar' AND x.age < $6 * 86400 THEN greatest(1, x.base - 1) ELSE x.base END,
       CASE WHEN r % 3 = 0 THEN 'Notiz ' || r || ': ' || x.module || ' war heute ' || (ARRAY['gut','okay','langsam','verwirrend'])[1 + r % 4] END,
       now() - x.age * interval '1 second'
  FROM generate_series(0, $1 - 1) AS r,
       LATERAL (SELECT r / cardinality($4::text[]) AS t, 'seedf-' || (r / cardinality($4::text[])) AS tick,
                       CASE WHEN r % $5 = 0 THEN '__parse' ELSE ($4::text[])[1 + r % cardinality($4::text[])] END AS module,
                       (ARRAY[1,2,3,3,4,4,4,5,5,5])[1 + (hashint4(r)::bigint & 1023) % 10] AS base,
                       ((r / cardinality($4::text[]))::bigint * 7919) % ($3::bigint * 86400) AS age) AS x`,
			[]any{o.ratings, o.personas, o.days, seedModules, parseEvery, regressDays}},
		// The ticks the ratings belong to, finished a minute after they
		// started, mostly ok.
		{"ticks", `INSERT INTO personas.persona_ticks (persona_id, tick_id, runner_id, started_at, finished_at, status, error_kind, rating_status, created_at)
SELECT 'bench-' || lpad((1 + t % $2)::text, 6, '0'), 'seedf-' || t, 'seed', x.at, x.at + interval '1 minute', x.status,
       CASE WHEN x.status IN ('failed', 'timeout', 'crashed') THEN (CASE x.status WHEN 'failed' THEN 'tool' WHEN 'timeout' THEN 'timeout' ELSE 'internal' END) END,
       CASE WHEN x.status IN ('ok', 'empty') THEN 'ok' END, x.at
  FROM generate_series(0, $1 / cardinality($4::text[])) AS t,
       LATERAL (SELECT now() - ((t::bigint * 7919) % ($3::bigint * 86400)) * interval '1 second' - interval '1 minute' AS at,
                       (ARRAY['ok','ok','ok','ok','ok','ok','ok','ok','ok','ok','ok','ok','ok','ok','ok','ok','ok','empty','failed','timeout'])[1 + (hashint4(t)::bigint & 1023) % 20] AS status) AS x`,
			[]any{o.ratings, o.personas, o.days, seedModules}},
		{"actions' indexes", "", nil},
		{"hourly activity", `INSERT INTO personas.persona_activity_hourly (persona_id, hour, actions)
SELECT persona_id, date_trunc('hour', created_at), count(*) FROM personas.persona_actions GROUP BY 1, 2`, nil},
	}
	for _, st := range steps {
		t0 := time.Now()
		if st.sql == "" {
			if err := restore(ctx); err != nil {
				return err
			}
		} else if _, err := conn.Exec(ctx, st.sql, st.args...); err != nil {
			return fmt.Errorf("seed %s: %w", st.what, err)
		}
		logf("  %s: %s", st.what, time.Since(t0).Round(time.Millisecond))
	}
	if err := backfill(ctx, dsn); err != nil {
		return err
	}
	logf("seeded in %s", time.Since(started).Round(time.Second))
	return nil
}

// backfill builds (or finishes: the backfill resumes) the rollups with the
// store's own backfill, then vacuums and analyses every table.
func backfill(ctx context.Context, dsn string) error {
	db, err := personas.OpenDB(dsn, personas.PoolConfig{MaxConns: 2})
	if err != nil {
		return err
	}
	defer db.Close()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	// The largest batch: each batch's statements scan the raw tables, so
	// fewer batches are faster (the bench writes nothing meanwhile).
	t0 := time.Now()
	res, err := personas.New(db).BackfillRollups(ctx, personas.MaxBackfillBatch, nil)
	if err != nil {
		return err
	}
	logf("  rollups (BackfillRollups, %d personas in %d batches): %s", res.Personas, res.Batches, time.Since(t0).Round(time.Millisecond))
	for _, t := range []string{"personas", "persona_actions", "persona_feedback", "persona_ticks", "persona_activity_hourly",
		"rating_daily", "rating_unparsable_daily", "action_daily", "action_error_daily", "rating_fleet_daily", "action_fleet_daily",
		"module_raters"} {
		if _, err := conn.Exec(ctx, `VACUUM ANALYZE personas.`+t); err != nil {
			return fmt.Errorf("vacuum %s: %w", t, err)
		}
	}
	return nil
}

// dropIndexes drops a table's indexes (its primary key too) and returns
// the function that recreates them from the definitions PostgreSQL gave.
func dropIndexes(ctx context.Context, conn *pgx.Conn, table string) (func(context.Context) error, error) {
	rows, err := conn.Query(ctx, `
SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid), c.conname, pg_get_constraintdef(c.oid)
  FROM pg_index i LEFT JOIN pg_constraint c ON c.conindid = i.indexrelid AND c.contype IN ('p', 'u')
 WHERE i.indrelid = ('personas.' || $1)::regclass`, table)
	if err != nil {
		return nil, err
	}
	type index struct {
		name, def string
		conName   *string
		conDef    *string
	}
	var idx []index
	for rows.Next() {
		var x index
		if err := rows.Scan(&x.name, &x.def, &x.conName, &x.conDef); err != nil {
			rows.Close()
			return nil, err
		}
		idx = append(idx, x)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for _, x := range idx {
		q := `DROP INDEX ` + x.name
		if x.conName != nil {
			q = `ALTER TABLE personas.` + table + ` DROP CONSTRAINT ` + *x.conName
		}
		if _, err := conn.Exec(ctx, q); err != nil {
			return nil, fmt.Errorf("%s: %w", q, err)
		}
	}
	return func(ctx context.Context) error {
		for _, x := range idx {
			q := x.def
			if x.conName != nil {
				q = `ALTER TABLE personas.` + table + ` ADD CONSTRAINT ` + *x.conName + ` ` + *x.conDef
			}
			if _, err := conn.Exec(ctx, q); err != nil {
				return fmt.Errorf("%s: %w", q, err)
			}
		}
		return nil
	}, nil
}
