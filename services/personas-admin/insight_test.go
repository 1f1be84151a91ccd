package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mana/personas/pkg/personas"
)

// seedInsight writes 6 weeks of ratings of todo by two personas, with a
// drop by 1.0 over the last three complete weeks, a chaos persona, parse
// markers, tool calls with errors and a finished tick. The clock ends at t0.
func seedInsight(t *testing.T, b *bundle) {
	t.Helper()
	ctx := context.Background()
	seedPersona(t, b, "a", "adhd-student", personas.CadenceDaily)
	seedPersona(t, b, "b", "ceo-busy", personas.CadenceWeekdays)
	_, err := b.store.UpsertPersona(ctx, personas.PersonaInput{
		UserID: "c", Email: "persona.c@mana.test", Name: "C", Archetype: "chaos-monkey", SystemPrompt: "Du bist c.",
		ModuleMix: map[string]float64{"todo": 1}, Tags: []string{"chaos"},
	})
	require.NoError(t, err)
	for w := 6; w >= 1; w-- {
		b.clock.Set(t0.AddDate(0, 0, -7*w+2))
		ratings := []int{4, 5, 4, 5, 4, 5}
		if w <= 3 {
			ratings = []int{3, 4, 3, 4, 3, 4}
		}
		for i, r := range ratings {
			notes := fmt.Sprintf("Woche %d, Notiz %d", w, i)
			_, err := b.store.InsertFeedback(ctx, []string{"a", "b"}[i%2], []personas.FeedbackInput{
				{TickID: fmt.Sprintf("w%d-%d", w, i), Module: "todo", Rating: r, Notes: &notes},
				{TickID: fmt.Sprintf("w%d-%d", w, i), Module: "__parse", Rating: 3},
			}, personas.WriteOptions{})
			require.NoError(t, err)
		}
		_, err := b.store.InsertFeedback(ctx, "c", []personas.FeedbackInput{{TickID: fmt.Sprintf("c%d", w), Module: "todo", Rating: 1}},
			personas.WriteOptions{})
		require.NoError(t, err)
	}
	b.clock.Set(t0.Add(-time.Hour))
	_, err = b.store.StartTick(ctx, "a", personas.TickStart{TickID: "tick-now", RunnerID: "r1"})
	require.NoError(t, err)
	_, err = b.store.InsertActions(ctx, "a", []personas.ActionInput{
		{TickID: "tick-now", ToolName: "todo.create", Result: personas.ResultOK, LatencyMs: ptrTo(120)},
		{TickID: "tick-now", ToolName: "todo.create", Result: personas.ResultError, ErrorMessage: ptrTo("HTTP 500 from /api/todo/17")},
		{TickID: "tick-now", ToolName: "journal.write", Result: personas.ResultOK, LatencyMs: ptrTo(40)},
	}, personas.WriteOptions{})
	require.NoError(t, err)
	_, err = b.store.FinishTick(ctx, "a", "tick-now", personas.TickFinish{Status: personas.TickOK}, "")
	require.NoError(t, err)
	b.clock.Set(t0)
}

func ptrTo[T any](v T) *T { return &v }

func (b *bundle) getJSON(t *testing.T, path string, out any) {
	t.Helper()
	status, body := b.call(t, http.MethodGet, apiPath+path, "")
	require.Equal(t, http.StatusOK, status, body)
	require.NoError(t, json.Unmarshal([]byte(body), out), body)
}

func TestInsight(t *testing.T) {
	t.Parallel()
	b := setup(t)
	seedInsight(t, b)

	t.Run("Modules", func(t *testing.T) {
		t.Parallel()
		var res struct {
			Window  string
			Modules []struct {
				Module   string
				Mean     float64
				Count    int
				Personas int
				Change   *struct{ Delta float64 }
			}
		}
		b.getJSON(t, "/modules", &res)
		require.Equal(t, "7d", res.Window)
		require.Len(t, res.Modules, 1, "parse markers are not modules")
		require.Equal(t, "todo", res.Modules[0].Module)
		require.Equal(t, 7, res.Modules[0].Count)
		require.Equal(t, 3, res.Modules[0].Personas)

		b.getJSON(t, "/modules?window=28d&excludeTag=chaos", &res)
		require.Equal(t, 24, res.Modules[0].Count)
		require.InDelta(t, 3.75, res.Modules[0].Mean, 1e-9) // one week at 4.5, three at 3.5
		b.getJSON(t, "/modules?includeTag=chaos", &res)
		require.InDelta(t, 1.0, res.Modules[0].Mean, 1e-9)
	})

	t.Run("Trend", func(t *testing.T) {
		t.Parallel()
		var res struct {
			Buckets []struct {
				Start   string
				Count   int
				Partial bool
			}
			Verdict struct {
				Flagged bool
				Since   *string
				Drop    *float64
			}
		}
		b.getJSON(t, "/modules/todo/trend", &res)
		require.True(t, res.Verdict.Flagged)
		require.Equal(t, "2026-11-02", *res.Verdict.Since)
		require.InDelta(t, 1.0, *res.Verdict.Drop, 1e-9, "the chaos persona is left out of the verdict")
		require.True(t, res.Buckets[len(res.Buckets)-1].Partial)
		require.Equal(t, 7, res.Buckets[len(res.Buckets)-2].Count, "buckets include everyone")

		b.getJSON(t, "/modules/todo/trend?k=4", &res)
		require.False(t, res.Verdict.Flagged)
		b.getJSON(t, "/modules/todo/trend?excludeTag=", &res)
		require.Equal(t, 7, res.Buckets[len(res.Buckets)-2].Count)
		b.getJSON(t, "/modules/todo/trend?bucket=day&from=2026-11-16&to=2026-11-22&archetype=adhd-student", &res)
		require.Len(t, res.Buckets, 7)
		require.Equal(t, 3, res.Buckets[2].Count)
		b.getJSON(t, "/modules/todo/trend?persona=b&cadence=weekdays&delta=0.25&n=3", &res)
		require.True(t, res.Verdict.Flagged)
	})

	t.Run("ToolsAndOverview", func(t *testing.T) {
		t.Parallel()
		var tools struct {
			Tools []struct {
				Name      string
				Calls     int
				ErrorRate float64
				TopErrors []struct {
					Sample string
					Count  int
				}
			}
			Modules []struct{ Name string }
		}
		b.getJSON(t, "/tools?window=24h", &tools)
		require.Len(t, tools.Tools, 2)
		require.Equal(t, "todo.create", tools.Tools[1].Name)
		require.InDelta(t, 0.5, tools.Tools[1].ErrorRate, 1e-9)
		require.Equal(t, "HTTP 500 from /api/todo/17", tools.Tools[1].TopErrors[0].Sample)
		require.Len(t, tools.Modules, 2)

		var o struct {
			Personas struct {
				Total   int
				Overdue struct{ IDs []string }
			}
			Ticks struct {
				Finished    int
				SuccessRate *float64
			}
			FlaggedModules []struct{ Module, Since string }
			Ratings        struct{ Rated, Unparsable int }
		}
		b.getJSON(t, "/overview?window=7d", &o)
		require.Equal(t, 3, o.Personas.Total)
		require.Equal(t, 1, o.Ticks.Finished)
		require.InDelta(t, 1.0, *o.Ticks.SuccessRate, 1e-9)
		require.Len(t, o.FlaggedModules, 1)
		require.Equal(t, "2026-11-02", o.FlaggedModules[0].Since)
		require.Equal(t, 6, o.Ratings.Unparsable)
		require.Equal(t, 7, o.Ratings.Rated)
		b.getJSON(t, "/overview?window=24h", &o)
		require.Zero(t, o.Ratings.Unparsable)
	})

	t.Run("FeedPages", func(t *testing.T) {
		t.Parallel()
		type page struct {
			Feedback []struct {
				PersonaName, PersonaArchetype, Module string
				Rating                                int
				Notes                                 *string
			}
			NextCursor *string
		}
		var all []string
		q := url.Values{"module": {"todo"}, "limit": {"5"}, "maxRating": {"4"}, "minRating": {"3"}}
		for {
			var p page
			b.getJSON(t, "/feedback?"+q.Encode(), &p)
			for _, f := range p.Feedback {
				require.Equal(t, "todo", f.Module)
				require.NotEmpty(t, f.PersonaName)
				all = append(all, *f.Notes)
			}
			if p.NextCursor == nil {
				break
			}
			q.Set("cursor", *p.NextCursor)
		}
		require.Len(t, all, 6*6-9, "every rating from 3 to 4: the 27 of 36 that are not 5s")
		require.Equal(t, "Woche 1, Notiz 5", all[0], "newest first")

		var p page
		b.getJSON(t, "/feedback?archetype=ceo-busy&from=2026-11-16&to=2026-11-23", &p)
		require.Len(t, p.Feedback, 6, "b's 3 ratings and 3 markers of the last week")
	})

	t.Run("InvalidParameters", func(t *testing.T) {
		t.Parallel()
		for _, tc := range []struct {
			path   string
			fields []string
		}{
			{"/modules?window=3d", []string{"window"}},
			{"/modules?window=24h&excludeTag=Chaos", []string{"window", "excludeTag[0]"}},
			{"/tools?window=1y", []string{"window"}},
			{"/overview?window=28d", []string{"window"}},
			{"/modules/todo/trend?bucket=month&k=0&delta=x&n=0&from=yesterday", []string{"from", "delta", "bucket", "k", "n"}},
			{"/modules/todo/trend?from=2026-11-20&to=2026-11-01", []string{"from"}},
			{"/modules/todo/trend?cadence=monthly", []string{"cadence"}},
			{"/feedback?limit=0&minRating=6&maxRating=x&cursor=zzz&to=soon", []string{"to", "maxRating", "limit", "minRating", "cursor"}},
		} {
			status, body := b.call(t, http.MethodGet, apiPath+tc.path, "")
			require.Equal(t, http.StatusBadRequest, status, tc.path+": "+body)
			var e struct{ Details []struct{ Field string } }
			require.NoError(t, json.Unmarshal([]byte(body), &e))
			var fields []string
			for _, d := range e.Details {
				fields = append(fields, d.Field)
			}
			require.ElementsMatch(t, tc.fields, fields, tc.path)
		}
	})

	t.Run("NeedsAdmin", func(t *testing.T) {
		t.Parallel()
		status, _ := b.call(t, http.MethodGet, apiPath+"/overview", "", "Authorization", "")
		require.Equal(t, http.StatusUnauthorized, status)
	})
}

func TestExport(t *testing.T) {
	t.Parallel()
	b := setup(t)
	seedInsight(t, b)
	get := func(path string) (int, string) {
		t.Helper()
		return b.call(t, http.MethodGet, apiPath+path, "")
	}

	status, body := get("/export/feedback?persona=c")
	require.Equal(t, http.StatusOK, status, body)
	lines := strings.Split(strings.TrimSuffix(body, "\n"), "\n")
	require.Len(t, lines, 6)
	var row map[string]any
	require.NoError(t, json.Unmarshal([]byte(lines[0]), &row))
	require.Equal(t, "c", row["personaId"])
	require.Equal(t, "todo", row["module"])
	require.EqualValues(t, 1, row["rating"])
	require.Nil(t, row["notes"])
	require.Equal(t, "2026-10-14T12:00:00.000Z", row["createdAt"])
	_, again := get("/export/feedback?persona=c")
	require.Equal(t, body, again, "same snapshot, same bytes")

	status, body = get("/export/feedback?module=__parse&from=2026-11-16&to=2026-11-23&format=csv")
	require.Equal(t, http.StatusOK, status, body)
	recs, err := csv.NewReader(strings.NewReader(body)).ReadAll()
	require.NoError(t, err)
	require.Equal(t, []string{"personaId", "id", "tickId", "module", "rating", "notes", "createdAt"}, recs[0])
	require.Len(t, recs, 1+6, "markers are raw rows: exported")

	status, body = get("/export/actions?module=todo&format=csv")
	require.Equal(t, http.StatusOK, status, body)
	recs, err = csv.NewReader(strings.NewReader(body)).ReadAll()
	require.NoError(t, err)
	require.Len(t, recs, 3)
	require.Equal(t, "HTTP 500 from /api/todo/17", recs[2][7])

	status, body = get("/export/ticks")
	require.Equal(t, http.StatusOK, status, body)
	require.Contains(t, body, `"tickId":"tick-now"`)

	status, body = get("/export/ticks?format=xml&module=todo&from=x")
	require.Equal(t, http.StatusBadRequest, status, body)
	for _, f := range []string{"format", "module", "from"} {
		require.Contains(t, body, `"field":"`+f+`"`)
	}
	status, _ = get("/export/users")
	require.Equal(t, http.StatusBadRequest, status)
}

func TestUpsertTags(t *testing.T) {
	t.Parallel()
	b := setup(t)
	email := "persona.tagged@mana.test"
	status, body := b.call(t, http.MethodPost, apiPath, upsertBody(email, map[string]any{"tags": []string{"chaos", "beta", "chaos"}}))
	require.Equal(t, http.StatusOK, status, body)
	tagsOf := func() []string {
		t.Helper()
		_, raw := b.list(t, "")
		var l struct{ Personas []struct{ Tags []string } }
		require.NoError(t, json.Unmarshal(raw["personas"], &l.Personas))
		require.Len(t, l.Personas, 1)
		return l.Personas[0].Tags
	}
	require.Equal(t, []string{"beta", "chaos"}, tagsOf())
	// Left out of an update, tags stay; an empty list clears them.
	status, body = b.call(t, http.MethodPost, apiPath, upsertBody(email, map[string]any{"name": "Tagged"}))
	require.Equal(t, http.StatusOK, status, body)
	require.Equal(t, []string{"beta", "chaos"}, tagsOf())
	status, body = b.call(t, http.MethodPost, apiPath, upsertBody(email, map[string]any{"tags": []string{}}))
	require.Equal(t, http.StatusOK, status, body)
	require.Equal(t, []string{}, tagsOf())

	status, body = b.call(t, http.MethodPost, apiPath, upsertBody(email, map[string]any{"tags": []any{"Chaos", 7}}))
	require.Equal(t, http.StatusBadRequest, status, body)
	require.Contains(t, body, `"field":"tags[0]"`)
	require.Contains(t, body, `"field":"tags[1]"`)
	many := make([]string, 11)
	for i := range many {
		many[i] = fmt.Sprintf("t%d", i)
	}
	status, body = b.call(t, http.MethodPost, apiPath, upsertBody(email, map[string]any{"tags": many}))
	require.Equal(t, http.StatusBadRequest, status, body)
	require.Contains(t, body, "at most 10 tags")
}

func TestInsightMetrics(t *testing.T) {
	t.Parallel()
	b := setup(t)
	seedInsight(t, b)
	resp, err := http.Get(b.url + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	body := string(raw)
	require.Contains(t, body, `personas_module_ratings_7d{module="todo"} 7`)
	require.Contains(t, body, `personas_module_regression_flagged{module="todo"} 1`)
	require.Contains(t, body, `personas_tool_error_rate_24h{tool="todo.create"} 0.5`)
	require.NotContains(t, body, `module="__parse"`)
	require.Contains(t, body, "personas_overdue ")
}
