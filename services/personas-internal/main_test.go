package main

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/mana/personas/pkg/dbtest"
	"github.com/mana/personas/pkg/edge"
	"github.com/mana/personas/pkg/personas"
)

func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

func TestConfigSchedule(t *testing.T) {
	t.Parallel()
	c, err := loadConfig(env(nil))
	require.NoError(t, err)
	require.Equal(t, personas.DefaultBackoffMin, c.BackoffMin)
	require.Zero(t, c.BackoffMax, "0: the cadence's period")
	require.Equal(t, 5, c.QuarantineAfter)
	require.Equal(t, 2*time.Hour, c.OverdueGrace)
	c, err = loadConfig(env(map[string]string{"PERSONAS_BACKOFF_MIN": "5s", "PERSONAS_BACKOFF_MAX": "30s",
		"PERSONAS_QUARANTINE_AFTER": "3", "PERSONAS_OVERDUE_GRACE": "90m"}))
	require.NoError(t, err)
	require.Equal(t, 5*time.Second, c.BackoffMin)
	require.Equal(t, 30*time.Second, c.BackoffMax)
	require.Equal(t, 3, c.QuarantineAfter)
	require.Equal(t, 90*time.Minute, c.OverdueGrace)
	require.Len(t, c.settings().StoreOptions, 3)
	require.Zero(t, c.DevDayLength, "real days unless asked")
	c, err = loadConfig(env(map[string]string{"PERSONAS_DEV_DAY_LENGTH": "4m"}))
	require.NoError(t, err)
	require.Equal(t, 4*time.Minute, c.DevDayLength)
}

func TestRun(t *testing.T) {
	t.Parallel()

	t.Run("Usage", func(t *testing.T) {
		t.Parallel()
		var out, errOut bytes.Buffer
		require.Equal(t, 2, run(context.Background(), []string{"frobnicate"}, env(nil), &out, &errOut))
		require.Contains(t, errOut.String(), "usage: personas-internal")
		require.Equal(t, 0, run(context.Background(), []string{"--help"}, env(nil), &out, &errOut))
	})

	t.Run("ProductionRefusesDevelopmentDefaults", func(t *testing.T) {
		t.Parallel()
		cases := map[string]map[string]string{
			"NoKey":       {"NODE_ENV": "production", "DATABASE_URL": "postgres://x@127.0.0.1/db"},
			"DevKey":      {"NODE_ENV": "production", "DATABASE_URL": "postgres://x@127.0.0.1/db", "MANA_SERVICE_KEY": "dev-service-key"},
			"ShortKey":    {"NODE_ENV": "production", "DATABASE_URL": "postgres://x@127.0.0.1/db", "MANA_SERVICE_KEY": "short"},
			"ShortPrev":   {"NODE_ENV": "production", "DATABASE_URL": "postgres://x@127.0.0.1/db", "MANA_SERVICE_KEY": strings.Repeat("k", 32), "MANA_SERVICE_KEY_PREVIOUS": "old"},
			"NoDatabase":  {"NODE_ENV": "production", "MANA_SERVICE_KEY": strings.Repeat("k", 32)},
			"BadPort":     {"PORT": "99999"},
			"BadLogLevel": {"LOG_LEVEL": "chatty"},
			"BadBackoff":  {"PERSONAS_BACKOFF_MIN": "5"},
			"MaxBelowMin": {"PERSONAS_BACKOFF_MIN": "10m", "PERSONAS_BACKOFF_MAX": "1m"},
			"Quarantine0": {"PERSONAS_QUARANTINE_AFTER": "0"},
			"BadGrace":    {"PERSONAS_OVERDUE_GRACE": "soon"},
			"DayTooShort": {"PERSONAS_DEV_DAY_LENGTH": "10s"},
			"DevDayInProduction": {"NODE_ENV": "production", "DATABASE_URL": "postgres://x@127.0.0.1/db", "MANA_SERVICE_KEY": strings.Repeat("k", 32),
				"PERSONAS_DEV_DAY_LENGTH": "4m"},
		}
		for name, vars := range cases {
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				var out, errOut bytes.Buffer
				require.Equal(t, 1, run(context.Background(), nil, env(vars), &out, &errOut))
				require.NotContains(t, out.String()+errOut.String(), strings.Repeat("k", 32), "secrets never reach the log")
			})
		}
	})

	t.Run("MigrateThenServeThenStop", func(t *testing.T) {
		t.Parallel()
		dsn := dbtest.Empty(t, "run")
		var out, errOut bytes.Buffer
		vars := map[string]string{"DATABASE_URL": dsn, "MANA_SERVICE_KEY": "a-long-enough-service-key-for-tests", "PERSONAS_AUTO_MIGRATE": "false"}
		require.Equal(t, 0, run(context.Background(), []string{"migrate"}, env(vars), &out, &errOut), out.String())
		require.Equal(t, 0, run(context.Background(), []string{"migrate"}, env(vars), &out, &errOut), "migrate is idempotent")
		db, err := personas.OpenDB(dsn, personas.PoolConfig{MaxConns: 1})
		require.NoError(t, err)
		defer db.Close()
		require.NoError(t, personas.New(db).CheckSchema(context.Background()))

		ln, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", "127.0.0.1:0")
		require.NoError(t, err)
		port := ln.Addr().(*net.TCPAddr).Port
		require.NoError(t, ln.Close())
		vars["PORT"] = fmt.Sprint(port)
		ctx, cancel := context.WithCancel(context.Background())
		code := make(chan int, 1)
		var logs bytes.Buffer
		go func() { code <- run(ctx, nil, env(vars), &logs, &errOut) }()
		require.Eventually(t, func() bool {
			req, _ := http.NewRequestWithContext(context.Background(), "GET", fmt.Sprintf("http://127.0.0.1:%d/readyz", port), nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return false
			}
			resp.Body.Close()
			return resp.StatusCode == http.StatusOK
		}, 10*time.Second, 50*time.Millisecond)
		cancel() // what SIGTERM does
		require.Equal(t, 0, <-code)
		require.Contains(t, logs.String(), `"msg":"stopped"`)
		require.NotContains(t, logs.String(), "a-long-enough-service-key-for-tests")
	})
}

// TestPruneCommand: the prune subcommand as the CronJob runs it.
func TestPruneCommand(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := dbtest.Empty(t, "prune")
	vars := map[string]string{"DATABASE_URL": dsn, "PERSONAS_AUTO_MIGRATE": "false"}
	var out, errOut bytes.Buffer
	require.Equal(t, 1, run(ctx, []string{"prune"}, env(vars), &out, &errOut), "schema not migrated yet")
	require.Contains(t, out.String(), "personas-internal migrate")
	require.Equal(t, 0, run(ctx, []string{"migrate"}, env(vars), &out, &errOut), out.String())

	db, err := personas.OpenDB(dsn, personas.PoolConfig{MaxConns: 2})
	require.NoError(t, err)
	defer db.Close()
	store := personas.New(db)
	_, err = store.UpsertPersona(ctx, personas.PersonaInput{UserID: "p1", Email: "persona.p1@mana.test", Archetype: "solo-dev",
		SystemPrompt: "x", ModuleMix: map[string]float64{"todo": 1}})
	require.NoError(t, err)
	_, err = db.ExecContext(ctx, `INSERT INTO personas.persona_actions (id, persona_id, tick_id, tool_name, result, created_at)
VALUES ('old', 'p1', 't', 'todo.create', 'ok', now() - interval '100 days'),
       ('new', 'p1', 't', 'todo.create', 'ok', now() - interval '80 days')`)
	require.NoError(t, err)
	count := func() int {
		var n int
		require.NoError(t, db.QueryRowContext(ctx, `SELECT count(*) FROM personas.persona_actions`).Scan(&n))
		return n
	}

	out.Reset()
	require.Equal(t, 0, run(ctx, []string{"prune", "--dry-run"}, env(vars), &out, &errOut), out.String())
	require.Equal(t, 2, count(), "a dry run deletes nothing")
	require.Contains(t, out.String(), `"msg":"prune summary","service":"personas-internal","dry_run":true,"completed":true,"rows_deleted":1,`)

	for name, args := range map[string][]string{"BatchZero": {"prune", "--batch-size", "0"},
		"DutyZero": {"prune", "--duty", "0"}, "DutyAboveOne": {"prune", "--duty", "1.5"}, "DutyNaN": {"prune", "--duty", "NaN"}, "Unknown": {"prune", "--now"}, "Extra": {"prune", "x"}} {
		require.Equal(t, 2, run(ctx, args, env(vars), &out, &errOut), name)
	}
	require.Equal(t, 1, run(ctx, []string{"prune"}, env(map[string]string{"DATABASE_URL": dsn, "PERSONAS_RETENTION_DAYS": "3"}), &out, &errOut))
	require.Equal(t, 1, run(ctx, []string{"prune"}, env(map[string]string{"DATABASE_URL": dsn, "PERSONAS_ROLLUP_RETENTION_DAYS": "30"}), &out, &errOut),
		"rollups kept shorter than raw rows")

	// Another prune holds the lock (the key is the store's, "prune" in ASCII).
	conn, err := db.Conn(ctx)
	require.NoError(t, err)
	_, err = conn.ExecContext(ctx, `SELECT pg_advisory_lock(x'7072756e65'::bigint)`)
	require.NoError(t, err)
	out.Reset()
	require.Equal(t, 3, run(ctx, []string{"prune"}, env(vars), &out, &errOut), out.String())
	require.Contains(t, out.String(), "already running")
	_, err = conn.ExecContext(ctx, `SELECT pg_advisory_unlock(x'7072756e65'::bigint)`)
	require.NoError(t, err)
	require.NoError(t, conn.Close())

	out.Reset()
	require.Equal(t, 0, run(ctx, []string{"prune", "--batch-size", "1", "--duty", "1"}, env(vars), &out, &errOut), out.String())
	require.Contains(t, out.String(), `"duty":1,"paused_ms":0,`)
	require.Equal(t, 1, count(), "the action inside the 90 days stays")
	require.Contains(t, out.String(), `"msg":"prune table","service":"personas-internal","table":"personas.persona_actions","retention":"raw","rows":1,`)

	// The services' gauges show the run.
	reg := prometheus.NewRegistry()
	reg.MustRegister(edge.NewPruneCollector(store, slog.New(slog.DiscardHandler)))
	got := map[string]float64{}
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			name := mf.GetName()
			for _, l := range m.GetLabel() {
				name += "/" + l.GetValue()
			}
			got[name] = m.GetGauge().GetValue()
		}
	}
	require.Equal(t, 1.0, got["personas_prune_last_rows_deleted"])
	require.Equal(t, 1.0, got["personas_prune_last_completed"])
	require.Equal(t, 1.0, got["personas_prune_last_table_rows_deleted/personas.persona_actions"])
	require.InDelta(t, float64(time.Now().Unix()), got["personas_prune_last_run_timestamp_seconds"], 60)
}
