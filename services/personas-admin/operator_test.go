package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mana/personas/pkg/personas"
)

// personaBody is the persona as the operator endpoints answer it, with the
// run-state fields.
type personaBody struct {
	UserID              string  `json:"userId"`
	TickHour            int     `json:"tickHour"`
	MaxHistoryDays      *int    `json:"maxHistoryDays"`
	Enabled             bool    `json:"enabled"`
	Quarantined         bool    `json:"quarantined"`
	ConsecutiveFailures int     `json:"consecutiveFailures"`
	NextAttemptAt       *string `json:"nextAttemptAt"`
	LastTick            *struct {
		Status     string  `json:"status"`
		FinishedAt *string `json:"finishedAt"`
	} `json:"lastTick"`
	Lease *struct {
		RunnerID  string `json:"runnerId"`
		ExpiresAt string `json:"expiresAt"`
	} `json:"lease"`
}

// decodeInto decodes body into a new T, failing the test otherwise.
func decodeInto[T any](t *testing.T, body string) T {
	t.Helper()
	var v T
	require.NoError(t, json.Unmarshal([]byte(body), &v), body)
	return v
}

// detailPersona gets GET /:id and returns its persona.
func (b *bundle) detailPersona(t *testing.T, id string) personaBody {
	t.Helper()
	status, body := b.call(t, http.MethodGet, apiPath+"/"+id, "")
	require.Equal(t, http.StatusOK, status, body)
	return decodeInto[struct {
		Persona personaBody `json:"persona"`
	}](t, body).Persona
}

// dueIDs returns the ids store.Due answers, and whether it says paused.
func (b *bundle) dueIDs(t *testing.T) ([]string, bool) {
	t.Helper()
	res, err := b.store.Due(context.Background(), nil)
	require.NoError(t, err)
	out := []string{}
	for _, p := range res.Personas {
		out = append(out, p.UserID)
	}
	return out, res.Paused
}

// requireProblem requires a 400 whose details name field.
func requireProblem(t *testing.T, status int, body, field string) {
	t.Helper()
	require.Equal(t, http.StatusBadRequest, status, body)
	e := decodeInto[struct {
		Error   string `json:"error"`
		Details []struct{ Field, Message string }
	}](t, body)
	require.Equal(t, "ValidationError", e.Error, body)
	var fields []string
	for _, d := range e.Details {
		fields = append(fields, d.Field)
	}
	require.Contains(t, fields, field, body)
}

func TestFleetSwitch(t *testing.T) {
	t.Parallel()
	b := setup(t)
	seedPersona(t, b, "p1", "solo-dev", personas.CadenceDaily)
	type fleet struct {
		Paused    bool    `json:"paused"`
		UpdatedAt string  `json:"updatedAt"`
		UpdatedBy *string `json:"updatedBy"`
	}

	status, body := b.call(t, http.MethodGet, apiPath+"/runner", "")
	require.Equal(t, http.StatusOK, status, body)
	require.False(t, decodeInto[fleet](t, body).Paused)

	b.clock.Advance(time.Minute)
	status, body = b.call(t, http.MethodPut, apiPath+"/runner", `{"paused":true}`)
	require.Equal(t, http.StatusOK, status, body)
	got := decodeInto[fleet](t, body)
	require.True(t, got.Paused)
	require.Equal(t, "2026-11-23T12:01:00.000Z", got.UpdatedAt)
	require.NotNil(t, got.UpdatedBy)
	require.Equal(t, testAdminEmail, *got.UpdatedBy, "the admin of the verified token")

	due, paused := b.dueIDs(t)
	require.True(t, paused, "the store's Due sees the switch")
	require.Empty(t, due)
	status, body = b.call(t, http.MethodGet, apiPath+"/runner", "")
	require.Equal(t, http.StatusOK, status, body)
	require.Equal(t, got, decodeInto[fleet](t, body))

	status, body = b.call(t, http.MethodPut, apiPath+"/runner", `{"paused":false}`)
	require.Equal(t, http.StatusOK, status, body)
	require.False(t, decodeInto[fleet](t, body).Paused)
	due, paused = b.dueIDs(t)
	require.False(t, paused)
	require.Equal(t, []string{"p1"}, due)

	t.Run("Validation", func(t *testing.T) {
		t.Parallel()
		for name, tc := range map[string]struct{ body, field string }{
			"Missing":      {`{}`, "paused"},
			"Null":         {`{"paused":null}`, "paused"},
			"String":       {`{"paused":"true"}`, "paused"},
			"Number":       {`{"paused":1}`, "paused"},
			"UnknownField": {`{"paused":true,"reason":"deploy"}`, "reason"},
			"Typo":         {`{"pasued":true}`, "pasued"},
			"NotAnObject":  {`[true]`, "body"},
			"NotJSON":      {`{"paused":`, "body"},
		} {
			t.Run(name, func(t *testing.T) {
				status, body := b.call(t, http.MethodPut, apiPath+"/runner", tc.body)
				requireProblem(t, status, body, tc.field)
			})
		}
		_, paused := b.dueIDs(t)
		require.False(t, paused, "no refused request switched the fleet")
	})
}

func TestPatchEnabled(t *testing.T) {
	t.Parallel()
	b := setup(t)
	seedPersona(t, b, "p1", "solo-dev", personas.CadenceDaily)
	seedPersona(t, b, "p2", "solo-dev", personas.CadenceDaily)
	require.True(t, b.detailPersona(t, "p1").Enabled, "enabled by default")

	status, body := b.call(t, http.MethodPatch, apiPath+"/p1", `{"enabled":false}`)
	require.Equal(t, http.StatusOK, status, body)
	p := decodeInto[personaBody](t, body)
	require.Equal(t, "p1", p.UserID)
	require.False(t, p.Enabled)
	due, _ := b.dueIDs(t)
	require.Equal(t, []string{"p2"}, due, "a disabled persona is never due")
	l, _ := b.list(t, "")
	require.Len(t, l.Personas, 2, "but still listed")

	status, body = b.call(t, http.MethodPatch, apiPath+"/p1", `{"enabled":true}`)
	require.Equal(t, http.StatusOK, status, body)
	require.True(t, decodeInto[personaBody](t, body).Enabled)
	due, _ = b.dueIDs(t)
	require.Equal(t, []string{"p1", "p2"}, due)

	t.Run("UnknownPersona", func(t *testing.T) {
		t.Parallel()
		status, body := b.call(t, http.MethodPatch, apiPath+"/nobody", `{"enabled":false}`)
		require.Equal(t, http.StatusNotFound, status, body)
		require.JSONEq(t, `{"error":"Persona not found"}`, body)
	})
	t.Run("Validation", func(t *testing.T) {
		t.Parallel()
		for name, tc := range map[string]struct{ body, field string }{
			"Empty":        {`{}`, "body"},
			"Null":         {`{"enabled":null}`, "enabled"},
			"String":       {`{"enabled":"false"}`, "enabled"},
			"UnknownField": {`{"enabled":false,"name":"Other"}`, "name"},
			"NotJSON":      {`enabled=false`, "body"},
		} {
			t.Run(name, func(t *testing.T) {
				status, body := b.call(t, http.MethodPatch, apiPath+"/p2", tc.body)
				requireProblem(t, status, body, tc.field)
			})
		}
		require.True(t, b.detailPersona(t, "p2").Enabled, "no refused request changed it")
	})
}

func TestAdminLeaseRelease(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	seedPersona(t, b, "p1", "solo-dev", personas.CadenceDaily)
	res, err := b.store.Claim(ctx, personas.ClaimRequest{RunnerID: "runner-a"})
	require.NoError(t, err)
	require.Len(t, res.Personas, 1)

	p := b.detailPersona(t, "p1")
	require.NotNil(t, p.Lease)
	require.Equal(t, "runner-a", p.Lease.RunnerID)
	require.Equal(t, "2026-11-23T12:10:00.000Z", p.Lease.ExpiresAt, "the default lease of 10 min")
	l, _ := b.list(t, "")
	require.Len(t, l.Personas, 1)
	due, _ := b.dueIDs(t)
	require.Empty(t, due, "leased")

	status, body := b.call(t, http.MethodPost, apiPath+"/p1/lease/release", "")
	require.Equal(t, http.StatusOK, status, body)
	require.JSONEq(t, `{"ok":true,"released":true}`, body)
	require.Nil(t, b.detailPersona(t, "p1").Lease)
	due, _ = b.dueIDs(t)
	require.Equal(t, []string{"p1"}, due, "due again, no failure counted")
	require.Zero(t, b.detailPersona(t, "p1").ConsecutiveFailures)
	_, err = b.store.RenewLease(ctx, "p1", res.Personas[0].LeaseToken, 0)
	require.ErrorIs(t, err, personas.ErrLeaseLost, "the former holder lost it")

	status, body = b.call(t, http.MethodPost, apiPath+"/p1/lease/release", `{}`)
	require.Equal(t, http.StatusOK, status, body)
	require.JSONEq(t, `{"ok":true,"released":false}`, body, "nothing to release is no error")

	status, body = b.call(t, http.MethodPost, apiPath+"/nobody/lease/release", "")
	require.Equal(t, http.StatusNotFound, status, body)
	require.JSONEq(t, `{"error":"Persona not found"}`, body)

	status, body = b.call(t, http.MethodPost, apiPath+"/p1/lease/release", `{"leaseToken":"x"}`)
	requireProblem(t, status, body, "leaseToken")
	status, body = b.call(t, http.MethodPost, apiPath+"/p1/lease/release", `[1]`)
	requireProblem(t, status, body, "body")
}

func TestUnquarantine(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	seedPersona(t, b, "p1", "solo-dev", personas.CadenceDaily)
	kind := personas.ErrorLLM
	for i := range personas.DefaultQuarantineAfter {
		_, err := b.store.FinishTick(ctx, "p1", fmt.Sprintf("t%d", i),
			personas.TickFinish{Status: personas.TickFailed, ErrorKind: &kind}, "")
		require.NoError(t, err)
		b.clock.Advance(time.Minute)
	}

	p := b.detailPersona(t, "p1")
	require.True(t, p.Quarantined)
	require.Equal(t, personas.DefaultQuarantineAfter, p.ConsecutiveFailures)
	require.NotNil(t, p.LastTick)
	require.Equal(t, "failed", p.LastTick.Status)
	require.NotNil(t, p.LastTick.FinishedAt)
	require.Equal(t, "2026-11-23T12:04:00.000Z", *p.LastTick.FinishedAt)
	l, _ := b.list(t, "")
	require.Len(t, l.Personas, 1)
	due, _ := b.dueIDs(t)
	require.Empty(t, due, "quarantined")

	status, body := b.call(t, http.MethodPost, apiPath+"/p1/unquarantine", "")
	require.Equal(t, http.StatusOK, status, body)
	p = decodeInto[personaBody](t, body)
	require.False(t, p.Quarantined)
	require.Zero(t, p.ConsecutiveFailures)
	require.Nil(t, p.NextAttemptAt)
	require.Equal(t, "failed", p.LastTick.Status, "history is kept")
	due, _ = b.dueIDs(t)
	require.Equal(t, []string{"p1"}, due)

	status, body = b.call(t, http.MethodPost, apiPath+"/p1/unquarantine", " \n")
	require.Equal(t, http.StatusOK, status, body, "repeatable, whitespace is no body")

	status, body = b.call(t, http.MethodPost, apiPath+"/nobody/unquarantine", "")
	require.Equal(t, http.StatusNotFound, status, body)
	require.JSONEq(t, `{"error":"Persona not found"}`, body)
	status, body = b.call(t, http.MethodPost, apiPath+"/p1/unquarantine", `{"force":true}`)
	requireProblem(t, status, body, "force")
}

type tickBody struct {
	TickID       string  `json:"tickId"`
	Recorded     bool    `json:"recorded"`
	Status       *string `json:"status"`
	RunnerID     *string `json:"runnerId"`
	ErrorKind    *string `json:"errorKind"`
	Actions      int     `json:"actions"`
	Errors       int     `json:"errors"`
	Ratings      int     `json:"ratings"`
	DurationMs   *int64  `json:"durationMs"`
	StartedAt    *string `json:"startedAt"`
	FinishedAt   *string `json:"finishedAt"`
	CreatedAt    string  `json:"createdAt"`
	Summary      *string `json:"summary"`
	RatingStatus *string `json:"ratingStatus"`
	// SummaryExcerpt is in the list only.
	SummaryExcerpt *string `json:"summaryExcerpt"`
}

type tickListBody struct {
	Ticks      []tickBody `json:"ticks"`
	NextCursor *string    `json:"nextCursor"`
}

func tickIDs(ts []tickBody) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.TickID
	}
	return out
}

func TestTicks(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	seedPersona(t, b, "p1", "solo-dev", personas.CadenceHourly)
	seedPersona(t, b, "p2", "solo-dev", personas.CadenceHourly)

	// A legacy tick first: rows only, no record.
	_, err := b.store.InsertActions(ctx, "p1", []personas.ActionInput{
		{TickID: "legacy", ToolName: "todo.create", Result: personas.ResultOK},
		{TickID: "legacy", ToolName: "todo.list", Result: personas.ResultError},
	}, personas.WriteOptions{})
	require.NoError(t, err)

	// Five recorded ticks, a minute apart: t0 ok, t1 failed, t2 ok, t3 failed, t4 running.
	summary := "Heute habe ich meine Aufgaben sortiert."
	rating := personas.RatingOK
	kind := personas.ErrorRateLimited
	for i := range 5 {
		id := fmt.Sprintf("t%d", i)
		_, err := b.store.StartTick(ctx, "p1", personas.TickStart{TickID: id, RunnerID: "runner-a"})
		require.NoError(t, err)
		if i == 2 {
			_, err = b.store.InsertActions(ctx, "p1", []personas.ActionInput{
				{TickID: id, ToolName: "notes.create", Result: personas.ResultOK},
				{TickID: id, ToolName: "notes.update", Result: personas.ResultError},
				{TickID: id, ToolName: "notes.list", Result: personas.ResultOK},
			}, personas.WriteOptions{})
			require.NoError(t, err)
			notes := "Gut, aber langsam."
			_, err = b.store.InsertFeedback(ctx, "p1", []personas.FeedbackInput{
				{TickID: id, Module: "notes", Rating: 4, Notes: &notes}, {TickID: id, Module: "articles", Rating: 2},
			}, personas.WriteOptions{})
			require.NoError(t, err)
		}
		b.clock.Advance(30 * time.Second)
		switch i {
		case 0, 2:
			_, err = b.store.FinishTick(ctx, "p1", id, personas.TickFinish{Status: personas.TickOK, Summary: &summary, RatingStatus: &rating}, "")
		case 1, 3:
			_, err = b.store.FinishTick(ctx, "p1", id, personas.TickFinish{Status: personas.TickFailed, ErrorKind: &kind}, "")
		}
		require.NoError(t, err)
		b.clock.Advance(30 * time.Second)
	}

	getList := func(t *testing.T, query string) tickListBody {
		t.Helper()
		status, body := b.call(t, http.MethodGet, apiPath+"/p1/ticks"+query, "")
		require.Equal(t, http.StatusOK, status, body)
		return decodeInto[tickListBody](t, body)
	}

	t.Run("NewestFirstOnePage", func(t *testing.T) {
		t.Parallel()
		l := getList(t, "")
		require.Equal(t, []string{"t4", "t3", "t2", "t1", "t0"}, tickIDs(l.Ticks), "legacy ticks are not listed")
		require.Nil(t, l.NextCursor)
		t4, t2 := l.Ticks[0], l.Ticks[2]
		require.Equal(t, "running", *t4.Status)
		require.Nil(t, t4.FinishedAt)
		require.Equal(t, "ok", *t2.Status)
		require.Equal(t, 3, t2.Actions)
		require.Equal(t, 1, t2.Errors)
		require.Equal(t, 2, t2.Ratings)
		require.Equal(t, "runner-a", *t2.RunnerID)
		require.Equal(t, "2026-11-23T12:02:00.000Z", *t2.StartedAt)
		require.Equal(t, "2026-11-23T12:02:30.000Z", *t2.FinishedAt)
		require.Equal(t, int64(30_000), *t2.DurationMs)
		require.Nil(t, t2.Summary, "the list leaves whole summaries out")
		require.Equal(t, summary, *t2.SummaryExcerpt, "a short summary is its own excerpt")
		require.Nil(t, l.Ticks[1].SummaryExcerpt, "a tick without a summary has no excerpt")
		require.Equal(t, "rate_limited", *l.Ticks[1].ErrorKind)
	})

	t.Run("Pages", func(t *testing.T) {
		t.Parallel()
		var got []string
		query := "?limit=2"
		for range 5 {
			l := getList(t, query)
			require.LessOrEqual(t, len(l.Ticks), 2)
			got = append(got, tickIDs(l.Ticks)...)
			if l.NextCursor == nil {
				break
			}
			query = "?limit=2&cursor=" + *l.NextCursor
		}
		require.Equal(t, []string{"t4", "t3", "t2", "t1", "t0"}, got)
	})

	t.Run("StatusFilter", func(t *testing.T) {
		t.Parallel()
		require.Equal(t, []string{"t3", "t1"}, tickIDs(getList(t, "?status=failed").Ticks))
		l := getList(t, "?status=failed&limit=1")
		require.Equal(t, []string{"t3"}, tickIDs(l.Ticks))
		require.NotNil(t, l.NextCursor)
		require.Equal(t, []string{"t1"}, tickIDs(getList(t, "?status=failed&limit=1&cursor="+*l.NextCursor).Ticks))
		require.Empty(t, getList(t, "?status=crashed").Ticks)
	})

	t.Run("NoTicksIsAnEmptyPage", func(t *testing.T) {
		t.Parallel()
		status, body := b.call(t, http.MethodGet, apiPath+"/p2/ticks", "")
		require.Equal(t, http.StatusOK, status, body)
		require.JSONEq(t, `{"ticks":[],"nextCursor":null}`, body)
	})

	t.Run("ListValidation", func(t *testing.T) {
		t.Parallel()
		for query, field := range map[string]string{
			"?limit=0": "limit", "?limit=201": "limit", "?limit=abc": "limit", "?limit=2.5": "limit",
			"?status=done": "status", "?cursor=not-a-cursor": "cursor",
		} {
			status, body := b.call(t, http.MethodGet, apiPath+"/p1/ticks"+query, "")
			requireProblem(t, status, body, field)
		}
		status, body := b.call(t, http.MethodGet, apiPath+"/nobody/ticks", "")
		require.Equal(t, http.StatusNotFound, status, body)
		require.JSONEq(t, `{"error":"Persona not found"}`, body)
	})

	t.Run("Detail", func(t *testing.T) {
		t.Parallel()
		status, body := b.call(t, http.MethodGet, apiPath+"/p1/ticks/t2", "")
		require.Equal(t, http.StatusOK, status, body)
		d := decodeInto[struct {
			Tick    tickBody `json:"tick"`
			Actions []struct {
				ID, TickID, ToolName, Result, PersonaID string
			} `json:"actions"`
			Feedback []struct {
				Module string  `json:"module"`
				Rating int     `json:"rating"`
				Notes  *string `json:"notes"`
			} `json:"feedback"`
		}](t, body)
		require.True(t, d.Tick.Recorded)
		require.Equal(t, "t2", d.Tick.TickID)
		require.Equal(t, summary, *d.Tick.Summary)
		require.Equal(t, "ok", *d.Tick.RatingStatus)
		require.Equal(t, 3, d.Tick.Actions)
		require.Len(t, d.Actions, 3)
		require.Equal(t, []string{"notes.create", "notes.update", "notes.list"},
			[]string{d.Actions[0].ToolName, d.Actions[1].ToolName, d.Actions[2].ToolName}, "in the order written")
		require.Equal(t, "error", d.Actions[1].Result)
		require.Equal(t, "p1", d.Actions[0].PersonaID)
		require.Len(t, d.Feedback, 2)
		require.Equal(t, "articles", d.Feedback[0].Module, "by module")
		require.Nil(t, d.Feedback[0].Notes)
		require.Equal(t, 4, d.Feedback[1].Rating)
		require.Equal(t, "Gut, aber langsam.", *d.Feedback[1].Notes)

		status, body = b.call(t, http.MethodGet, apiPath+"/p1/ticks/t1", "")
		require.Equal(t, http.StatusOK, status, body)
		require.Contains(t, body, `"summary":null`)
		require.Contains(t, body, `"actions":[]`)
		require.Contains(t, body, `"feedback":[]`)
	})

	t.Run("LegacyTick", func(t *testing.T) {
		t.Parallel()
		status, body := b.call(t, http.MethodGet, apiPath+"/p1/ticks/legacy", "")
		require.Equal(t, http.StatusOK, status, body)
		d := decodeInto[struct {
			Tick    tickBody          `json:"tick"`
			Actions []json.RawMessage `json:"actions"`
		}](t, body)
		require.False(t, d.Tick.Recorded)
		require.Nil(t, d.Tick.Status)
		require.Nil(t, d.Tick.StartedAt)
		require.Equal(t, 2, d.Tick.Actions)
		require.Equal(t, 1, d.Tick.Errors)
		require.Equal(t, "2026-11-23T12:00:00.000Z", d.Tick.CreatedAt)
		require.Len(t, d.Actions, 2)
	})

	t.Run("DetailNotFound", func(t *testing.T) {
		t.Parallel()
		status, body := b.call(t, http.MethodGet, apiPath+"/p1/ticks/no-such-tick", "")
		require.Equal(t, http.StatusNotFound, status, body)
		require.JSONEq(t, `{"error":"Tick not found"}`, body)
		status, body = b.call(t, http.MethodGet, apiPath+"/p2/ticks/t2", "")
		require.Equal(t, http.StatusNotFound, status, body, "another persona's tick")
		require.JSONEq(t, `{"error":"Tick not found"}`, body)
		status, body = b.call(t, http.MethodGet, apiPath+"/nobody/ticks/t2", "")
		require.Equal(t, http.StatusNotFound, status, body)
		require.JSONEq(t, `{"error":"Persona not found"}`, body)
	})

	t.Run("ListAndDetailShowTheRunState", func(t *testing.T) {
		t.Parallel()
		p := b.detailPersona(t, "p1")
		require.NotNil(t, p.LastTick)
		require.Equal(t, "failed", p.LastTick.Status, "t3, the latest finished")
		require.Equal(t, 1, p.ConsecutiveFailures)
		require.NotNil(t, p.NextAttemptAt, "backing off after the failure")
		require.False(t, p.Quarantined)
		require.Nil(t, p.Lease)
		status, body := b.call(t, http.MethodGet, apiPath, "")
		require.Equal(t, http.StatusOK, status, body)
		l := decodeInto[struct {
			Personas []personaBody `json:"personas"`
		}](t, body)
		require.Len(t, l.Personas, 2)
		require.Equal(t, "p2", l.Personas[0].UserID)
		require.Nil(t, l.Personas[0].LastTick)
		require.Nil(t, l.Personas[0].NextAttemptAt)
		require.Equal(t, p, l.Personas[1])
	})
}

func TestUpsertTickHour(t *testing.T) {
	t.Parallel()
	b := setup(t)
	res := b.upsert(t, "persona.hour@mana.test", map[string]any{"tickHour": 7})
	require.Equal(t, 7, b.detailPersona(t, res.UserID).TickHour)

	b.upsert(t, "persona.hour@mana.test", map[string]any{"name": "Renamed"})
	require.Equal(t, 7, b.detailPersona(t, res.UserID).TickHour, "left out: kept")

	status, body := b.call(t, http.MethodPost, apiPath,
		strings.Replace(upsertBody("persona.hour@mana.test", nil), `"tickCadence"`, `"tickHour":null,"tickCadence"`, 1))
	require.Equal(t, http.StatusOK, status, body)
	require.Equal(t, personas.DefaultTickHour(res.UserID), b.detailPersona(t, res.UserID).TickHour, "null: derived again")

	fresh := b.upsert(t, "persona.fresh@mana.test", nil)
	require.Equal(t, personas.DefaultTickHour(fresh.UserID), b.detailPersona(t, fresh.UserID).TickHour)

	for name, v := range map[string]any{"TooLarge": 24, "Negative": -1, "Fraction": 4.5, "String": "7", "Huge": 1e15} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			status, body := b.call(t, http.MethodPost, apiPath, upsertBody("persona.bad@mana.test", map[string]any{"tickHour": v}))
			requireProblem(t, status, body, "tickHour")
		})
	}
}

func TestUpsertMaxHistoryDays(t *testing.T) {
	t.Parallel()
	b := setup(t)
	res := b.upsert(t, "persona.history@mana.test", nil)
	require.Nil(t, b.detailPersona(t, res.UserID).MaxHistoryDays, "unset: the global rule")
	b.upsert(t, "persona.history@mana.test", map[string]any{"maxHistoryDays": 30})
	require.Equal(t, ptr(30), b.detailPersona(t, res.UserID).MaxHistoryDays)
	b.upsert(t, "persona.history@mana.test", map[string]any{"name": "Renamed"})
	require.Equal(t, ptr(30), b.detailPersona(t, res.UserID).MaxHistoryDays, "left out: kept")
	status, body := b.call(t, http.MethodPost, apiPath,
		strings.Replace(upsertBody("persona.history@mana.test", nil), `"tickCadence"`, `"maxHistoryDays":null,"tickCadence"`, 1))
	require.Equal(t, http.StatusOK, status, body)
	require.Nil(t, b.detailPersona(t, res.UserID).MaxHistoryDays, "null: the global rule again")

	for name, v := range map[string]any{"Zero": 0, "TooLarge": 3651, "Fraction": 4.5, "String": "7"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			status, body := b.call(t, http.MethodPost, apiPath, upsertBody("persona.bad@mana.test", map[string]any{"maxHistoryDays": v}))
			requireProblem(t, status, body, "maxHistoryDays")
		})
	}
}
func ptr[T any](v T) *T { return &v }

func TestSummaryExcerpt(t *testing.T) {
	t.Parallel()
	require.Nil(t, excerpt(nil, 5))
	short := "Kurz."
	require.Equal(t, short, *excerpt(&short, 5))
	long := strings.Repeat("ä", 10) + " Übermorgen"
	got := *excerpt(&long, 11)
	require.Equal(t, strings.Repeat("ä", 10)+"…", got, "cut after whole characters, trailing space trimmed")
}
