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

// seedPersona writes a persona row directly, created at the clock's time.
func seedPersona(t *testing.T, b *bundle, id, archetype string, cadence personas.Cadence) {
	t.Helper()
	_, err := b.store.UpsertPersona(context.Background(), personas.PersonaInput{
		UserID: id, Email: "persona." + id + "@mana.test", Name: strings.ToUpper(id), Archetype: archetype,
		SystemPrompt: "Du bist " + id + ".", ModuleMix: map[string]float64{"todo": 1}, TickCadence: cadence,
	})
	require.NoError(t, err)
}

type listBody struct {
	Personas []struct {
		UserID       string             `json:"userId"`
		Email        string             `json:"email"`
		Name         string             `json:"name"`
		Archetype    string             `json:"archetype"`
		ModuleMix    map[string]float64 `json:"moduleMix"`
		TickCadence  string             `json:"tickCadence"`
		LastActiveAt *string            `json:"lastActiveAt"`
		CreatedAt    string             `json:"createdAt"`
		UpdatedAt    string             `json:"updatedAt"`
		Actions7d    int64              `json:"actions7d"`
	} `json:"personas"`
	NextCursor *string `json:"nextCursor"`
}

// list gets the list with query and returns it decoded and as raw keys.
func (b *bundle) list(t *testing.T, query string) (listBody, map[string]json.RawMessage) {
	t.Helper()
	status, body := b.call(t, http.MethodGet, apiPath+query, "")
	require.Equal(t, http.StatusOK, status, body)
	var out listBody
	require.NoError(t, json.Unmarshal([]byte(body), &out))
	var keys map[string]json.RawMessage
	require.NoError(t, json.Unmarshal([]byte(body), &keys))
	return out, keys
}

func ids(l listBody) []string {
	out := make([]string, len(l.Personas))
	for i, p := range l.Personas {
		out[i] = p.UserID
	}
	return out
}

func TestList(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for i, p := range []struct {
		archetype string
		cadence   personas.Cadence
	}{
		{"adhd-student", personas.CadenceDaily},
		{"ceo-busy", personas.CadenceWeekdays},
		{"adhd-student", personas.CadenceHourly},
		{"solo-dev", personas.CadenceDaily},
		{"adhd-student", personas.CadenceDaily},
	} {
		seedPersona(t, b, fmt.Sprintf("p%d", i), p.archetype, p.cadence)
		b.clock.Advance(time.Minute)
	}

	t.Run("AllNewestFirstWithoutCursorField", func(t *testing.T) {
		t.Parallel()
		l, keys := b.list(t, "")
		require.Equal(t, []string{"p4", "p3", "p2", "p1", "p0"}, ids(l))
		require.NotContains(t, keys, "nextCursor", "the historical shape")
		p0 := l.Personas[4]
		require.Equal(t, "persona.p0@mana.test", p0.Email)
		require.Equal(t, "P0", p0.Name)
		require.Equal(t, "adhd-student", p0.Archetype)
		require.Equal(t, "daily", p0.TickCadence)
		require.Equal(t, map[string]float64{"todo": 1}, p0.ModuleMix)
		require.Nil(t, p0.LastActiveAt)
		require.Equal(t, "2026-11-23T12:00:00.000Z", p0.CreatedAt)
		require.Equal(t, "2026-11-23T12:04:00.000Z", l.Personas[0].UpdatedAt)
		require.Zero(t, p0.Actions7d)
	})

	t.Run("Pages", func(t *testing.T) {
		t.Parallel()
		var got []string
		query := "?limit=2"
		for range 3 {
			l, keys := b.list(t, query)
			require.Contains(t, keys, "nextCursor")
			got = append(got, ids(l)...)
			if l.NextCursor == nil {
				break
			}
			query = "?limit=2&cursor=" + *l.NextCursor
		}
		require.Equal(t, []string{"p4", "p3", "p2", "p1", "p0"}, got)
		l, keys := b.list(t, "?limit=5")
		require.Len(t, l.Personas, 5)
		require.Equal(t, "null", string(keys["nextCursor"]), "null on the last page")
	})

	t.Run("Filters", func(t *testing.T) {
		t.Parallel()
		for query, want := range map[string][]string{
			"?archetype=adhd-student":               {"p4", "p2", "p0"},
			"?cadence=daily":                        {"p4", "p3", "p0"},
			"?archetype=adhd-student&cadence=daily": {"p4", "p0"},
			"?q=PERSONA.P1":                         {"p1"},
			"?q=p3":                                 {"p3"},
			"?q=nobody":                             {},
			"?archetype=adhd-student&limit=1":       {"p4"},
		} {
			l, _ := b.list(t, query)
			require.Equal(t, want, ids(l), query)
		}
	})

	t.Run("ErrBadParams", func(t *testing.T) {
		t.Parallel()
		for query, field := range map[string]string{
			"?limit=0":                       "limit",
			"?limit=501":                     "limit",
			"?limit=abc":                     "limit",
			"?limit=1.5":                     "limit",
			"?cadence=monthly":               "cadence",
			"?limit=2&cursor=garbage!":       "cursor",
			"?cursor=abc":                    "cursor",
			"?q=" + strings.Repeat("x", 201): "q",
		} {
			status, body := b.call(t, http.MethodGet, apiPath+query, "")
			require.Equal(t, http.StatusBadRequest, status, query)
			var e struct {
				Error   string
				Details []struct{ Field string }
			}
			require.NoError(t, json.Unmarshal([]byte(body), &e))
			require.Equal(t, "ValidationError", e.Error, query)
			require.Equal(t, field, e.Details[0].Field, query)
		}
	})
}

func TestActivity(t *testing.T) {
	t.Parallel()

	t.Run("Actions7dAcrossTheBoundary", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		ctx := context.Background()
		seedPersona(t, b, "p1", "solo-dev", personas.CadenceDaily)
		write := func(tick string, n int) {
			rows := make([]personas.ActionInput, n)
			for i := range rows {
				rows[i] = personas.ActionInput{TickID: tick, ToolName: fmt.Sprintf("tool%d", i), Result: personas.ResultOK}
			}
			_, err := b.store.InsertActions(ctx, "p1", rows, personas.WriteOptions{})
			require.NoError(t, err)
		}
		write("day0", 3) // 12:00 on day 0
		b.clock.Advance(24 * time.Hour)
		write("day1", 2) // 12:00 on day 1
		actions7d := func() (fromList, fromDetail int64) {
			l, _ := b.list(t, "")
			status, body := b.call(t, http.MethodGet, apiPath+"/p1", "")
			require.Equal(t, http.StatusOK, status, body)
			var d struct {
				Persona struct{ Actions7d int64 } `json:"persona"`
			}
			require.NoError(t, json.Unmarshal([]byte(body), &d))
			return l.Personas[0].Actions7d, d.Persona.Actions7d
		}
		for _, step := range []struct {
			at   time.Time
			want int64
		}{
			{t0.Add(24 * time.Hour), 5},
			{t0.Add(7 * 24 * time.Hour), 5},           // exactly 7 days after day 0's actions
			{t0.Add(7*24*time.Hour + time.Minute), 2}, // a minute later day 0's actions have left the window
			{t0.Add(7*24*time.Hour + time.Hour), 2},   // and stay out
			{t0.Add(8*24*time.Hour + time.Hour), 0},   // so did day 1's
		} {
			b.clock.Set(step.at)
			list, detail := actions7d()
			require.Equal(t, step.want, list, step.at)
			require.Equal(t, step.want, detail, step.at)
		}
	})

	t.Run("DetailRecentActionsAndFeedback", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		ctx := context.Background()
		seedPersona(t, b, "p1", "solo-dev", personas.CadenceDaily)
		hash, msg, latency := "abc123", "boom", 42
		for i := range 25 {
			seq := i
			row := personas.ActionInput{TickID: "tick", Seq: &seq, ToolName: fmt.Sprintf("tool%02d", i), Result: personas.ResultOK}
			if i == 24 {
				row.InputHash, row.Result, row.ErrorMessage, row.LatencyMs = &hash, personas.ResultError, &msg, &latency
			}
			_, err := b.store.InsertActions(ctx, "p1", []personas.ActionInput{row}, personas.WriteOptions{})
			require.NoError(t, err)
			b.clock.Advance(time.Second)
		}
		// Ratings 5, 4, 4, 1 for todo (mean 3.5 over 4 ratings: the old code
		// answered the count, 4) and 2, 3 for notes, a minute apart.
		ratings := []struct {
			module string
			rating int
		}{{"todo", 5}, {"todo", 4}, {"notes", 2}, {"todo", 4}, {"notes", 3}, {"todo", 1}}
		for i, r := range ratings {
			_, err := b.store.InsertFeedback(ctx, "p1", []personas.FeedbackInput{{TickID: fmt.Sprintf("t%d", i), Module: r.module, Rating: r.rating}}, personas.WriteOptions{})
			require.NoError(t, err)
			b.clock.Advance(time.Minute)
		}

		status, body := b.call(t, http.MethodGet, apiPath+"/p1", "")
		require.Equal(t, http.StatusOK, status, body)
		var d struct {
			Persona struct {
				UserID       string  `json:"userId"`
				LastActiveAt *string `json:"lastActiveAt"`
			} `json:"persona"`
			RecentActions []map[string]any `json:"recentActions"`
			FeedbackBy    []struct {
				Module       string         `json:"module"`
				AvgRating    float64        `json:"avgRating"`
				Count        int            `json:"count"`
				Distribution map[string]int `json:"distribution"`
				LastRatedAt  string         `json:"lastRatedAt"`
			} `json:"feedbackByModule"`
		}
		require.NoError(t, json.Unmarshal([]byte(body), &d))
		require.Equal(t, "p1", d.Persona.UserID)
		require.Equal(t, "2026-11-23T12:05:25.000Z", *d.Persona.LastActiveAt)

		require.Len(t, d.RecentActions, 20)
		require.Equal(t, map[string]any{
			"id": "tick-24-tool24", "personaId": "p1", "tickId": "tick", "seq": float64(24), "toolName": "tool24", "inputHash": "abc123",
			"result": "error", "errorMessage": "boom", "latencyMs": float64(42), "createdAt": "2026-11-23T12:00:24.000Z",
		}, d.RecentActions[0])
		require.Equal(t, "tool05", d.RecentActions[19]["toolName"])
		require.Contains(t, d.RecentActions[1], "inputHash")
		require.Nil(t, d.RecentActions[1]["inputHash"])
		require.Nil(t, d.RecentActions[1]["latencyMs"])

		require.Len(t, d.FeedbackBy, 2)
		notes, todo := d.FeedbackBy[0], d.FeedbackBy[1]
		require.Equal(t, "notes", notes.Module)
		require.InDelta(t, 2.5, notes.AvgRating, 1e-9)
		require.Equal(t, 2, notes.Count)
		require.Equal(t, "2026-11-23T12:04:25.000Z", notes.LastRatedAt)
		require.Equal(t, "todo", todo.Module)
		require.InDelta(t, (5.0+4+4+1)/4, todo.AvgRating, 1e-9)
		require.Equal(t, 4, todo.Count)
		require.Equal(t, map[string]int{"1": 1, "2": 0, "3": 0, "4": 2, "5": 1}, todo.Distribution)
		require.Equal(t, "2026-11-23T12:05:25.000Z", todo.LastRatedAt)
	})

	t.Run("DetailOfNewPersonaHasEmptyLists", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		seedPersona(t, b, "p1", "solo-dev", personas.CadenceDaily)
		status, body := b.call(t, http.MethodGet, apiPath+"/p1", "")
		require.Equal(t, http.StatusOK, status, body)
		require.Contains(t, body, `"recentActions":[]`)
		require.Contains(t, body, `"feedbackByModule":[]`)
	})

	t.Run("ErrUnknownPersona", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		status, body := b.call(t, http.MethodGet, apiPath+"/nobody", "")
		require.Equal(t, http.StatusNotFound, status)
		require.JSONEq(t, `{"error":"Persona not found"}`, body)
	})
}
