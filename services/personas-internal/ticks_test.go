package main

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mana/personas/pkg/internalclient"
	"github.com/mana/personas/pkg/personas"
	"github.com/mana/personas/pkg/personas/personastest"
	"github.com/mana/personas/pkg/runnersim"
)

const api = "/api/v1/personas/internal"

// claimOne claims the one due persona for runner and returns its token.
func (b *bundle) claimOne(t *testing.T, runner string, leaseSeconds int) internalclient.DuePersona {
	t.Helper()
	got, err := b.client.Claim(context.Background(), internalclient.ClaimRequest{RunnerID: runner, Limit: 1, LeaseSeconds: leaseSeconds})
	require.NoError(t, err)
	require.Len(t, got.Personas, 1)
	return got.Personas[0]
}

func TestTickProtocol(t *testing.T) {
	t.Parallel()

	t.Run("WholeLoopOverHTTP", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		ctx := context.Background()
		b.persona(t, "p1", personas.CadenceHourly)
		p := b.claimOne(t, "r1", 60)
		require.Equal(t, 1, p.Attempt)

		// start: 201, then a retry: 200 with the stored record.
		body := `{"tickId":"t1","runnerId":"r1","model":"m","platformVersion":"v1","startedAt":"2026-11-23T11:59:30Z"}`
		status, raw := b.call(t, "POST", api+"/p1/ticks", body, "X-Lease-Token", p.LeaseToken)
		require.Equal(t, http.StatusCreated, status, raw)
		require.Contains(t, raw, `"created":true`)
		require.Contains(t, raw, `"status":"running"`)
		status, raw = b.call(t, "POST", api+"/p1/ticks", body, "X-Lease-Token", p.LeaseToken)
		require.Equal(t, http.StatusOK, status, raw)
		require.Contains(t, raw, `"created":false`)

		tok := internalclient.WithLeaseToken(p.LeaseToken)
		seq := func(n int) *int { return &n }
		for batch := range 2 {
			rows := []internalclient.Action{
				{TickID: "t1", Seq: seq(batch * 2), ToolName: "todo.create", Result: "ok"},
				{TickID: "t1", Seq: seq(batch*2 + 1), ToolName: "notes.search", Result: "error"},
			}
			res, err := b.client.PostActions(ctx, "p1", rows, tok)
			require.NoError(t, err)
			require.Equal(t, 2, res.Written)
			require.False(t, res.StaleLease)
			until, err := b.client.RenewLease(ctx, "p1", p.LeaseToken, 120)
			require.NoError(t, err)
			require.True(t, monday.Add(2*time.Minute).Equal(until), until)
		}
		_, err := b.client.PostFeedback(ctx, "p1", []internalclient.Feedback{
			{TickID: "t1", Module: "todo", Rating: 4}, {TickID: "t1", Module: "todo", Rating: 2}, {TickID: "t1", Module: "__parse", Rating: 3},
		}, tok)
		require.NoError(t, err)
		due, err := b.client.ListDue(ctx, 0)
		require.NoError(t, err)
		require.Empty(t, due.Personas, "still leased: writes do not end the lease")

		b.clock.Advance(time.Minute)
		summary := "Heute drei Aufgaben erledigt."
		fin, err := b.client.FinishTick(ctx, "p1", "t1", internalclient.TickFinish{Status: "ok", Summary: &summary}, tok)
		require.NoError(t, err)
		require.True(t, fin.LeaseEnded)
		require.Equal(t, "ok", fin.Tick.Status)
		require.Equal(t, 4, fin.Tick.Actions)
		require.Equal(t, 2, fin.Tick.Errors)
		require.Equal(t, 2, fin.Tick.Ratings)
		require.Equal(t, int64(90_000), *fin.Tick.DurationMs)
		again, err := b.client.FinishTick(ctx, "p1", "t1", internalclient.TickFinish{Status: "failed"}, tok)
		require.NoError(t, err)
		require.True(t, again.AlreadyFinished)
		require.Equal(t, "ok", again.Tick.Status, "a repeated finish changes nothing")

		// The lease is over: renew and release are 409.
		_, err = b.client.RenewLease(ctx, "p1", p.LeaseToken, 0)
		require.ErrorIs(t, err, internalclient.ErrLeaseLost)
		err = b.client.ReleaseLease(ctx, "p1", p.LeaseToken, "")
		require.ErrorIs(t, err, internalclient.ErrLeaseLost)

		// Done for this clock hour; due again in the next one.
		due, err = b.client.ListDue(ctx, 0)
		require.NoError(t, err)
		require.Empty(t, due.Personas)
		b.clock.Set(monday.Add(time.Hour))
		p = b.claimOne(t, "r1", 60)
		// Shutdown: release, abandoned; due again at once.
		require.NoError(t, b.client.ReleaseLease(ctx, "p1", p.LeaseToken, internalclient.ReleaseAbandoned))
		due, err = b.client.ListDue(ctx, 0)
		require.NoError(t, err)
		require.Len(t, due.Personas, 1)
	})

	t.Run("FailureBacksOffAndCountsAttempts", func(t *testing.T) {
		t.Parallel()
		clock := personastest.NewClock(monday)
		store := personastest.New(t, personas.WithClock(clock.Now), personas.WithBackoff(time.Minute, time.Minute), personas.WithQuarantineAfter(2))
		b := serve(t, store, clock)
		ctx := context.Background()
		b.persona(t, "p1", personas.CadenceHourly)
		for attempt := 1; attempt <= 2; attempt++ {
			p := b.claimOne(t, "r1", 60)
			require.Equal(t, attempt, p.Attempt)
			kind := "rate_limited"
			_, err := b.client.FinishTick(ctx, "p1", "f"+string(rune('0'+attempt)), internalclient.TickFinish{Status: "failed", ErrorKind: &kind},
				internalclient.WithLeaseToken(p.LeaseToken))
			require.NoError(t, err)
			due, err := b.client.ListDue(ctx, 0)
			require.NoError(t, err)
			require.Empty(t, due.Personas, "backing off")
			clock.Advance(time.Minute)
		}
		due, err := b.client.ListDue(ctx, 0)
		require.NoError(t, err)
		require.Empty(t, due.Personas, "quarantined after 2 failures")
	})

	t.Run("StaleTokenIsStoredAndCountedNeverDisturbsTheHolder", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		ctx := context.Background()
		b.persona(t, "p1", personas.CadenceHourly)
		old := b.claimOne(t, "r1", 10)
		_, err := b.client.StartTick(ctx, "p1", internalclient.TickStart{TickID: "old", RunnerID: "r1", LeaseToken: old.LeaseToken})
		require.NoError(t, err)
		b.clock.Advance(11 * time.Second) // r1 hangs; its lease lapses
		_, err = b.client.ListDue(ctx, 0) // the lapse is counted as a crash when the schedule is next looked at
		require.NoError(t, err)
		b.clock.Advance(personas.DefaultBackoffMin)
		current := b.claimOne(t, "r2", 60)
		require.Equal(t, 2, current.Attempt, "the lapse counted as one failure")

		status, raw := b.call(t, "POST", api+"/p1/actions", actionsBody("old", 2, 0), "X-Lease-Token", old.LeaseToken)
		require.Equal(t, http.StatusOK, status, raw)
		require.JSONEq(t, `{"ok":true,"written":2,"duplicates":0,"staleLease":true}`, raw)
		fin, err := b.client.FinishTick(ctx, "p1", "old", internalclient.TickFinish{Status: "ok"}, internalclient.WithLeaseToken(old.LeaseToken))
		require.NoError(t, err)
		require.True(t, fin.AlreadyFinished, "the sweep closed the old tick as crashed")
		require.Equal(t, "crashed", fin.Tick.Status)
		require.Equal(t, 1, fin.Tick.StaleWrites)

		_, err = b.client.RenewLease(ctx, "p1", old.LeaseToken, 0)
		require.ErrorIs(t, err, internalclient.ErrLeaseLost)
		_, err = b.client.RenewLease(ctx, "p1", current.LeaseToken, 0)
		require.NoError(t, err, "the new holder's lease is untouched")
		other, err := b.client.Claim(ctx, internalclient.ClaimRequest{RunnerID: "r3"})
		require.NoError(t, err)
		require.Empty(t, other.Personas)
	})

	t.Run("RenewAfterLapseIs409", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.persona(t, "p1", personas.CadenceHourly)
		p := b.claimOne(t, "r1", 10)
		b.clock.Advance(10 * time.Second)
		status, raw := b.call(t, "POST", api+"/p1/lease/renew", `{"leaseToken":"`+p.LeaseToken+`"}`)
		require.Equal(t, http.StatusConflict, status, raw)
		require.Contains(t, raw, `"error":"Lease lost"`)
		status, _ = b.call(t, "POST", api+"/p1/lease/renew", `{"leaseToken":"not-the-token"}`)
		require.Equal(t, http.StatusConflict, status)
	})

	t.Run("LegacyRunnerUnchanged", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		ctx := context.Background()
		b.persona(t, "p1", personas.CadenceDaily)
		due, err := b.client.ListDue(ctx, 0)
		require.NoError(t, err)
		require.Len(t, due.Personas, 1)
		status, raw := b.call(t, "POST", api+"/p1/actions", `{"actions":[{"tickId":"L","toolName":"todo.create","result":"ok","extra":1}]}`)
		require.Equal(t, http.StatusOK, status, raw)
		status, raw = b.call(t, "POST", api+"/p1/feedback", `{"feedback":[{"tickId":"L","module":"todo","rating":4}]}`)
		require.Equal(t, http.StatusOK, status, raw)
		due, err = b.client.ListDue(ctx, 0)
		require.NoError(t, err)
		require.Empty(t, due.Personas, "a legacy write marks the period done")
		tick, err := b.store.GetTick(ctx, "p1", "L")
		require.NoError(t, err)
		require.False(t, tick.Recorded)
		require.Equal(t, 1, tick.Actions)
		require.Equal(t, 1, tick.Ratings)
		b.clock.Advance(24 * time.Hour)
		due, err = b.client.ListDue(ctx, 0)
		require.NoError(t, err)
		require.Len(t, due.Personas, 1, "due again the next day")
	})

	t.Run("PauseStopsDueAndClaims", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		ctx := context.Background()
		b.persona(t, "p1", personas.CadenceDaily)
		_, err := b.store.SetFleetPaused(ctx, true, "admin@mana.test")
		require.NoError(t, err)
		status, raw := b.call(t, "GET", api+"/due", "")
		require.Equal(t, http.StatusOK, status)
		require.JSONEq(t, `{"personas":[],"serverTime":"2026-11-23T12:00:00.000Z","paused":true}`, raw)
		status, raw = b.call(t, "POST", api+"/due/claim", `{"runnerId":"r1"}`)
		require.Equal(t, http.StatusOK, status)
		require.JSONEq(t, `{"personas":[],"serverTime":"2026-11-23T12:00:00.000Z","paused":true}`, raw)
		got, err := b.client.Claim(ctx, internalclient.ClaimRequest{RunnerID: "r1"})
		require.NoError(t, err)
		require.True(t, got.Paused)
		_, err = b.store.SetFleetPaused(ctx, false, "")
		require.NoError(t, err)
		got, err = b.client.Claim(ctx, internalclient.ClaimRequest{RunnerID: "r1"})
		require.NoError(t, err)
		require.False(t, got.Paused)
		require.Len(t, got.Personas, 1)
	})

	t.Run("Metrics", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		ctx := context.Background()
		b.persona(t, "p1", personas.CadenceHourly)
		b.persona(t, "p2", personas.CadenceHourly)
		p := b.claimOne(t, "r1", 60)
		rows := []internalclient.Action{
			{TickID: "t", ToolName: "todo.create", Result: "ok"}, {TickID: "t", ToolName: "todo.list", Result: "error"},
			{TickID: "t", ToolName: "journal", Result: "ok"},
		}
		_, err := b.client.PostActions(ctx, p.UserID, rows, internalclient.WithLeaseToken(p.LeaseToken))
		require.NoError(t, err)
		_, err = b.client.PostActions(ctx, p.UserID, rows, internalclient.WithLeaseToken(p.LeaseToken)) // a retry: not counted again
		require.NoError(t, err)
		kind := "llm"
		_, err = b.client.FinishTick(ctx, p.UserID, "t", internalclient.TickFinish{Status: "failed", ErrorKind: &kind}, internalclient.WithLeaseToken(p.LeaseToken))
		require.NoError(t, err)
		_, err = b.client.FinishTick(ctx, p.UserID, "t", internalclient.TickFinish{Status: "failed", ErrorKind: &kind}) // repeat: not counted
		require.NoError(t, err)
		b.claimOne(t, "r1", 60) // p2 leased
		_, err = b.client.FinishTick(ctx, "p2", "u", internalclient.TickFinish{Status: "empty"})
		require.NoError(t, err)

		status, body := b.call(t, "GET", "/metrics", "")
		require.Equal(t, http.StatusOK, status)
		for _, want := range []string{
			`personas_ticks_finished_total{error_kind="llm",status="failed"} 1`,
			`personas_ticks_finished_total{error_kind="none",status="empty"} 1`,
			`personas_action_results_total{module="todo",result="ok"} 1`,
			`personas_action_results_total{module="todo",result="error"} 1`,
			`personas_action_results_total{module="journal",result="ok"} 1`,
			"personas_leased 1",
			"personas_backing_off 1",
			"personas_quarantined 0",
			"personas_fleet_paused 0",
			"personas_overdue 0",
			"personas_total 2",
		} {
			require.Contains(t, body, want)
		}
	})
}

func TestTickValidation(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.persona(t, "p1", personas.CadenceDaily)
	long := strings.Repeat("x", 129)
	cases := []struct {
		name, path, body, field string
		headers                 []string
	}{
		{"StartUnknownField", "ticks", `{"tickId":"t","runnerId":"r","tickid":"x"}`, "tickid", nil},
		{"StartMissingTick", "ticks", `{"runnerId":"r"}`, "tickId", nil},
		{"StartMissingRunner", "ticks", `{"tickId":"t"}`, "runnerId", nil},
		{"StartTickTooLong", "ticks", `{"tickId":"` + long + `","runnerId":"r"}`, "tickId", nil},
		{"StartNotRFC3339", "ticks", `{"tickId":"t","runnerId":"r","startedAt":"23.11.2026 12:00"}`, "startedAt", nil},
		{"StartInTheFuture", "ticks", `{"tickId":"t","runnerId":"r","startedAt":"2026-11-23T13:00:00Z"}`, "startedAt", nil},
		{"StartModelNotText", "ticks", `{"tickId":"t","runnerId":"r","model":5}`, "model", nil},
		{"StartTokensDisagree", "ticks", `{"tickId":"t","runnerId":"r","leaseToken":"a"}`, "leaseToken", []string{"X-Lease-Token", "b"}},
		{"StartNotObject", "ticks", `[]`, "body", nil},
		{"FinishBadStatus", "ticks/t/finish", `{"status":"great"}`, "status", nil},
		{"FinishCrashedIsNotARunnerStatus", "ticks/t/finish", `{"status":"crashed"}`, "status", nil},
		{"FinishMissingStatus", "ticks/t/finish", `{}`, "status", nil},
		{"FinishUnknownField", "ticks/t/finish", `{"status":"ok","errorkind":"llm"}`, "errorkind", nil},
		{"FinishBadErrorKind", "ticks/t/finish", `{"status":"failed","errorKind":"oops"}`, "errorKind", nil},
		{"FinishBadRatingStatus", "ticks/t/finish", `{"status":"ok","ratingStatus":"meh"}`, "ratingStatus", nil},
		{"FinishTokensFloat", "ticks/t/finish", `{"status":"ok","tokensIn":1.5}`, "tokensIn", nil},
		{"FinishTokensNegative", "ticks/t/finish", `{"status":"ok","tokensOut":-1}`, "tokensOut", nil},
		{"FinishSummaryTooLong", "ticks/t/finish", `{"status":"ok","summary":"` + strings.Repeat("s", 8001) + `"}`, "summary", nil},
		{"FinishBadTime", "ticks/t/finish", `{"status":"ok","finishedAt":"yesterday"}`, "finishedAt", nil},
		{"FinishTickIDTooLong", "ticks/" + long + "/finish", `{"status":"ok"}`, "tickId", nil},
		{"RenewUnknownField", "lease/renew", `{"leaseToken":"a","lease":5}`, "lease", nil},
		{"RenewMissingToken", "lease/renew", `{}`, "leaseToken", nil},
		{"RenewLeaseZero", "lease/renew", `{"leaseToken":"a","leaseSeconds":0}`, "leaseSeconds", nil},
		{"RenewLeaseTooShort", "lease/renew", `{"leaseToken":"a","leaseSeconds":5}`, "leaseSeconds", nil},
		{"RenewLeaseHuge", "lease/renew", `{"leaseToken":"a","leaseSeconds":1e15}`, "leaseSeconds", nil},
		{"RenewTokenTooLong", "lease/renew", `{"leaseToken":"` + long + `"}`, "leaseToken", nil},
		{"ReleaseBadOutcome", "lease/release", `{"leaseToken":"a","outcome":"gone"}`, "outcome", nil},
		{"ReleaseUnknownField", "lease/release", `{"leaseToken":"a","why":"x"}`, "why", nil},
		{"ReleaseMissingToken", "lease/release", `{"outcome":"done"}`, "leaseToken", nil},
		{"WriteTokenTooLong", "actions", actionsBody("t", 1, -1), "leaseToken", []string{"X-Lease-Token", long}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, raw := b.call(t, "POST", api+"/p1/"+tc.path, tc.body, tc.headers...)
			require.Equal(t, http.StatusBadRequest, status, raw)
			var e struct {
				Error   string
				Details []struct{ Field, Message string }
			}
			require.NoError(t, json.Unmarshal([]byte(raw), &e), raw)
			require.Equal(t, "ValidationError", e.Error, raw)
			fields := []string{}
			for _, d := range e.Details {
				fields = append(fields, d.Field)
			}
			require.Contains(t, fields, tc.field, raw)
		})
	}

	t.Run("MergesDecodeAndStoreProblems", func(t *testing.T) {
		status, raw := b.call(t, "POST", api+"/p1/ticks", `{"runnerId":"r","bogus":1}`)
		require.Equal(t, http.StatusBadRequest, status)
		require.Contains(t, raw, `"field":"bogus"`)
		require.Contains(t, raw, `"field":"tickId"`)
	})

	t.Run("UnknownPersona", func(t *testing.T) {
		for path, body := range map[string]string{
			"ticks":          `{"tickId":"t","runnerId":"r"}`,
			"ticks/t/finish": `{"status":"ok"}`,
			"lease/renew":    `{"leaseToken":"a"}`,
			"lease/release":  `{"leaseToken":"a"}`,
		} {
			status, raw := b.call(t, "POST", api+"/nobody/"+path, body)
			require.Equal(t, http.StatusNotFound, status, path)
			require.JSONEq(t, `{"error":"Persona not found"}`, raw, path)
		}
	})
}

// TestSimulator runs the runner simulator for a few seconds against a real
// server (real clock, short backoff) and checks that it recorded ticks of
// several statuses.
func TestSimulator(t *testing.T) {
	t.Parallel()
	store := personastest.New(t, personas.WithBackoff(200*time.Millisecond, 500*time.Millisecond), personas.WithQuarantineAfter(1000))
	b := serve(t, store, nil)
	ids := []string{"s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8"}
	for _, id := range ids {
		b.persona(t, id, personas.CadenceHourly)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel()
	stats, err := runnersim.Run(ctx, runnersim.Config{
		Client: b.client, Runners: 3, Interval: 100 * time.Millisecond, ClaimLimit: 2, LeaseSeconds: 10,
		Work: 30 * time.Millisecond, Seed: 7,
		Mix: runnersim.Mix{runnersim.OK: 2, runnersim.Empty: 1, runnersim.Failed: 3, runnersim.Timeout: 2, runnersim.Crash: 1},
	})
	require.NoError(t, err)
	require.Zero(t, stats.Errors, stats.String())

	seen := map[personas.TickStatus]int{}
	for _, id := range ids {
		ticks, _, err := store.ListTicks(context.Background(), id, personas.TickFilter{Limit: 200})
		require.NoError(t, err)
		for _, tk := range ticks {
			seen[tk.Status]++
		}
	}
	for _, s := range []personas.TickStatus{personas.TickOK, personas.TickFailed, personas.TickTimeout} {
		require.Positive(t, seen[s], "status %s in %v (%s)", s, seen, stats)
	}
	require.Positive(t, stats.Actions)
	require.Positive(t, stats.Ratings)
	require.Positive(t, stats.Renewals)
	// Stopping released what was held: nothing stays leased but crashes.
	c, err := store.FleetCounts(context.Background(), time.Hour)
	require.NoError(t, err)
	require.LessOrEqual(t, c.Leased, stats.Ticks[runnersim.Crash])
}
