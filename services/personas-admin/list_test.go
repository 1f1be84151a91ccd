package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
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
		Overdue      bool               `json:"overdue"`
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

// sqlExec runs a statement on the test's database (to put personas into
// states that take many steps to reach through the API).
func (b *bundle) sqlExec(t *testing.T, q string, args ...any) {
	t.Helper()
	_, err := b.store.DB().ExecContext(context.Background(), q, args...)
	require.NoError(t, err)
}

func TestListTagAndStatusFilters(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	tags := map[string][]string{
		"ok": {"chaos", "night"}, "off": {"chaos"}, "wait": {"night"}, "quar": nil, "lease": {"chaos"}, "late": nil,
	}
	for _, id := range []string{"ok", "off", "wait", "quar", "lease", "late"} {
		_, err := b.store.UpsertPersona(ctx, personas.PersonaInput{
			UserID: id, Email: "persona." + id + "@mana.test", Archetype: "solo-dev", SystemPrompt: "Du bist " + id + ".",
			ModuleMix: map[string]float64{"todo": 1}, TickCadence: personas.CadenceHourly, Tags: tags[id],
		})
		require.NoError(t, err)
		b.clock.Advance(time.Minute)
	}
	b.clock.Advance(3 * time.Hour) // past the overview's grace: never done is overdue
	now := b.clock.Now()
	b.sqlExec(t, `UPDATE personas.personas SET last_done_at = ? WHERE user_id <> 'late'`, now)
	require.NoError(t, b.store.SetEnabled(ctx, "off", false))
	b.sqlExec(t, `UPDATE personas.personas SET consecutive_failures = 1, next_attempt_at = ? WHERE user_id = 'wait'`, now.Add(time.Hour))
	b.sqlExec(t, `UPDATE personas.personas SET consecutive_failures = 5, quarantined_at = ? WHERE user_id = 'quar'`, now)
	b.sqlExec(t, `UPDATE personas.personas SET lease_owner = 'r1', lease_expires_at = ? WHERE user_id = 'lease'`, now.Add(time.Minute))

	for query, want := range map[string][]string{
		"?tag=chaos":                 {"lease", "off", "ok"},
		"?tag=chaos&tag=night":       {"ok"},
		"?tag=chaos,night":           {"ok"},
		"?tag=nobody":                {},
		"?status=enabled":            {"late", "lease", "quar", "wait", "ok"},
		"?status=disabled":           {"off"},
		"?status=backing-off":        {"wait"},
		"?status=quarantined":        {"quar"},
		"?status=leased":             {"lease"},
		"?status=overdue":            {"late"},
		"?status=enabled&tag=chaos":  {"lease", "ok"},
		"?status=disabled&tag=night": {},
	} {
		l, _ := b.list(t, query)
		require.Equal(t, want, ids(l), query)
	}

	// The overview counts by the same rules.
	status, body := b.call(t, http.MethodGet, apiPath+"/overview?window=24h", "")
	require.Equal(t, http.StatusOK, status, body)
	var o struct {
		Personas struct {
			Disabled, Quarantined, Overdue struct{ IDs []string }
		}
	}
	require.NoError(t, json.Unmarshal([]byte(body), &o))
	require.Equal(t, []string{"off"}, o.Personas.Disabled.IDs)
	require.Equal(t, []string{"quar"}, o.Personas.Quarantined.IDs)
	require.Equal(t, []string{"late"}, o.Personas.Overdue.IDs)

	// Each list item and the detail carry the same rule as a flag, with
	// and without the prompt (fields=summary).
	for _, query := range []string{"", "?fields=summary", "?limit=2"} {
		l, _ := b.list(t, query)
		require.NotEmpty(t, l.Personas)
		for _, p := range l.Personas {
			require.Equal(t, p.UserID == "late", p.Overdue, "%s%s", p.UserID, query)
		}
	}
	for _, id := range []string{"late", "ok", "off"} {
		status, body := b.call(t, http.MethodGet, apiPath+"/"+id, "")
		require.Equal(t, http.StatusOK, status, body)
		var d struct {
			Persona struct {
				Overdue *bool `json:"overdue"`
			} `json:"persona"`
		}
		require.NoError(t, json.Unmarshal([]byte(body), &d))
		require.NotNil(t, d.Persona.Overdue, id)
		require.Equal(t, id == "late", *d.Persona.Overdue, id)
	}

	t.Run("PagesUnderFilters", func(t *testing.T) {
		t.Parallel()
		for query, want := range map[string][]string{
			"&status=enabled": {"late", "lease", "quar", "wait", "ok"},
			"&tag=chaos":      {"lease", "off", "ok"},
		} {
			var got []string
			q := "?limit=2" + query
			for range 5 {
				l, _ := b.list(t, q)
				require.LessOrEqual(t, len(l.Personas), 2)
				got = append(got, ids(l)...)
				if l.NextCursor == nil {
					break
				}
				q = "?limit=2" + query + "&cursor=" + *l.NextCursor
			}
			require.Equal(t, want, got, query)
		}
	})

	t.Run("ErrBadParams", func(t *testing.T) {
		t.Parallel()
		for query, field := range map[string]string{
			"?status=asleep":     "status",
			"?tag=Not%20A%20Tag": "tag[0]",
			"?tag=ok,BAD":        "tag[1]",
			"?fields=some":       "fields",
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

// TestListItemIsTheDetailsPersona: the list's hand-written encoder says
// exactly what the detail's persona says; fields=summary leaves out only
// the prompt.
func TestListItemIsTheDetailsPersona(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	hour, days := 7, 30
	_, err := b.store.UpsertPersona(ctx, personas.PersonaInput{
		UserID: "p1", Email: "persona.p1@mana.test", Name: "Jö \"Q\" <b>", Archetype: "solo-dev",
		SystemPrompt: "Du bist ein Test.\n\tMit Sonderzeichen: ä ö ü & < > \\ \u2028.",
		ModuleMix:    map[string]float64{"todo": 0.25, "notes": 3}, TickCadence: personas.CadenceDaily,
		TickHour: &hour, Tags: []string{"chaos", "b-side"}, MaxHistoryDays: &days,
	})
	require.NoError(t, err)
	b.sqlExec(t, `UPDATE personas.personas SET lease_owner = 'r1', lease_expires_at = ?, lease_tick_id = 't9',
        last_tick_status = 'failed', last_tick_finished_at = ?, consecutive_failures = 2, next_attempt_at = ?, last_active_at = ?`,
		t0.Add(time.Minute), t0.Add(-time.Minute), t0.Add(time.Hour), t0.Add(-time.Hour))

	status, body := b.call(t, http.MethodGet, apiPath+"/p1", "")
	require.Equal(t, http.StatusOK, status, body)
	var detail struct{ Persona map[string]any }
	require.NoError(t, json.Unmarshal([]byte(body), &detail))
	for _, query := range []string{"", "?limit=10", "?fields=full"} {
		status, body = b.call(t, http.MethodGet, apiPath+query, "")
		require.Equal(t, http.StatusOK, status, body)
		var list struct{ Personas []map[string]any }
		require.NoError(t, json.Unmarshal([]byte(body), &list))
		require.Len(t, list.Personas, 1)
		require.Equal(t, detail.Persona, list.Personas[0], query)
	}
	status, body = b.call(t, http.MethodGet, apiPath+"?fields=summary&limit=10", "")
	require.Equal(t, http.StatusOK, status, body)
	var lean struct{ Personas []map[string]any }
	require.NoError(t, json.Unmarshal([]byte(body), &lean))
	want := detail.Persona
	delete(want, "systemPrompt")
	require.Equal(t, want, lean.Personas[0])
}

// TestListDatabaseFaultMidStream: once the list has started streaming, a
// database fault cannot change the status; the response is cut off, the
// JSON unterminated, and the client's read fails.
func TestListDatabaseFaultMidStream(t *testing.T) {
	t.Parallel()
	b := setup(t)
	// 2,000 personas of 15 kB prompts: 30 MB, far more than the socket
	// buffers between PostgreSQL, the service and the client hold, so the
	// query is still sending when its backend is killed.
	b.sqlExec(t, `INSERT INTO personas.personas (user_id, email, archetype, system_prompt, module_mix)
SELECT 'm' || i, 'persona.m' || i || '@mana.test', 'solo-dev', repeat('Du bist viele. ', 1000), '{"todo":1}'
  FROM generate_series(1, 2000) AS i`)

	req, err := http.NewRequest(http.MethodGet, b.url+apiPath, nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+b.admin)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer func() { _ = resp.Body.Close() }()
	require.Equal(t, http.StatusOK, resp.StatusCode, "streaming began")
	head := make([]byte, 64<<10)
	_, err = io.ReadFull(resp.Body, head)
	require.NoError(t, err)

	var killed int
	require.NoError(t, b.store.DB().QueryRowContext(context.Background(), `
SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
 WHERE datname = current_database() AND pid <> pg_backend_pid() AND query LIKE '%actions_7d%'`).Scan(&killed))
	require.Equal(t, 1, killed, "the list's backend")

	rest, err := io.ReadAll(resp.Body)
	require.Error(t, err, "the body is cut off, not ended cleanly")
	var v any
	require.Error(t, json.Unmarshal(append(head, rest...), &v), "the JSON is unterminated")
}
