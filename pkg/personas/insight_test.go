package personas_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun/dialect/pgdialect"

	"github.com/mana/personas/pkg/personas"
)

// rate writes one rating per value, each in its own tick, alternating
// between personas, at the clock's time.
func rate(t *testing.T, s *personas.Store, pids []string, module string, tickPrefix string, ratings ...int) {
	t.Helper()
	for i, r := range ratings {
		pid := pids[i%len(pids)]
		_, err := s.InsertFeedback(context.Background(), pid, []personas.FeedbackInput{
			{TickID: fmt.Sprintf("%s-%s-%d", tickPrefix, module, i), Module: module, Rating: r},
		}, personas.WriteOptions{})
		require.NoError(t, err)
	}
}

// insightData: 10 weeks of ratings before monday (2026-11-23). Before the
// drop every module is rated 4 and 5 alternately (mean 4.5); the drop is
// 3 and 4 (mean 3.5, so by 1.0). drop3 dropped for the last three complete
// weeks (from 2026-11-02), drop2 for two, thin for three but with two
// ratings a week; chaosOnly's drop comes only from a chaos persona; parse
// markers (rating 3) come with every week.
func insightData(t *testing.T, b bundle) {
	t.Helper()
	ctx := context.Background()
	createPersona(t, b.store, "a", personas.CadenceDaily)
	createPersona(t, b.store, "b", personas.CadenceDaily)
	chaos := persona("c", personas.CadenceDaily)
	chaos.Tags = []string{"chaos"}
	_, err := b.store.UpsertPersona(ctx, chaos)
	require.NoError(t, err)
	normal := []string{"a", "b"}
	good := []int{4, 5, 4, 5, 4, 5}
	bad := []int{3, 4, 3, 4, 3, 4}
	for w := 10; w >= 1; w-- {
		b.clock.Set(monday.AddDate(0, 0, -7*w+2)) // Wednesday of that week
		prefix := fmt.Sprintf("w%d", w)
		pick := func(dropWeeks int) []int {
			if w <= dropWeeks {
				return bad
			}
			return good
		}
		rate(t, b.store, normal, "steady", prefix, good...)
		rate(t, b.store, normal, "drop3", prefix, pick(3)...)
		rate(t, b.store, normal, "drop2", prefix, pick(2)...)
		rate(t, b.store, normal, "thin", prefix, pick(3)[:2]...)
		rate(t, b.store, normal, "chaosOnly", prefix, good...)
		if w <= 3 {
			rate(t, b.store, []string{"c"}, "chaosOnly", prefix, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1)
		}
		rate(t, b.store, normal, "__parse", prefix, 3, 3)
		rate(t, b.store, []string{"c"}, "__parse", prefix, 3)
	}
	b.clock.Set(monday)
}

func TestModuleTrendRegression(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	insightData(t, b)

	trend := func(module string, mut ...func(*personas.TrendQuery)) personas.Trend {
		t.Helper()
		q := personas.TrendQuery{Module: module}
		for _, m := range mut {
			m(&q)
		}
		tr, err := b.store.ModuleTrend(ctx, q)
		require.NoError(t, err)
		return tr
	}

	t.Run("ThreeWeekDropFlaggedFromItsFirstWeek", func(t *testing.T) {
		t.Parallel()
		tr := trend("drop3")
		v := tr.Verdict
		require.True(t, v.Flagged)
		require.Equal(t, "2026-11-02", *v.Since)
		require.Equal(t, 3, v.Buckets)
		require.InDelta(t, 1.0, *v.Drop, 1e-9)
		require.InDelta(t, 4.5, *v.BaselineMean, 1e-9)
		require.Equal(t, "2026-11-16", *v.NewestComplete)
		require.Len(t, tr.Buckets, 12)
		last := tr.Buckets[len(tr.Buckets)-1]
		require.Equal(t, "2026-11-23", last.Start)
		require.True(t, last.Partial)
		require.Zero(t, last.Count)
		prev := tr.Buckets[len(tr.Buckets)-2]
		require.False(t, prev.Partial)
		require.Equal(t, int64(6), prev.Count)
		require.InDelta(t, 3.5, *prev.Mean, 1e-9)
		require.Equal(t, personas.Distribution{"1": 0, "2": 0, "3": 3, "4": 3, "5": 0}, prev.Distribution)
	})

	t.Run("TwoWeekDropNotFlagged", func(t *testing.T) {
		t.Parallel()
		require.False(t, trend("drop2").Verdict.Flagged)
		// With K=2 it is.
		v := trend("drop2", func(q *personas.TrendQuery) { q.K = 2 }).Verdict
		require.True(t, v.Flagged)
		require.Equal(t, "2026-11-09", *v.Since)
	})

	t.Run("TwoRatingsPerWeekNotFlagged", func(t *testing.T) {
		t.Parallel()
		require.False(t, trend("thin").Verdict.Flagged)
		n := 2
		require.True(t, trend("thin", func(q *personas.TrendQuery) { q.MinRatings = &n }).Verdict.Flagged)
	})

	t.Run("SteadyNotFlaggedAndLargeDeltaNotFlagged", func(t *testing.T) {
		t.Parallel()
		require.False(t, trend("steady").Verdict.Flagged)
		d := 1.5
		v := trend("drop3", func(q *personas.TrendQuery) { q.Delta = &d }).Verdict
		require.True(t, v.Flagged, "below δ, but each bucket's interval lies wholly below the baseline's")
		d = 0.5
		n := 12
		require.False(t, trend("drop3", func(q *personas.TrendQuery) { q.MinRatings = &n }).Verdict.Flagged)
	})

	t.Run("ChaosExcludedFromVerdictNotFromBuckets", func(t *testing.T) {
		t.Parallel()
		tr := trend("chaosOnly")
		require.False(t, tr.Verdict.Flagged)
		require.Equal(t, []string{"chaos"}, tr.Verdict.ExcludedTags)
		prev := tr.Buckets[len(tr.Buckets)-2]
		require.Equal(t, int64(18), prev.Count, "plain aggregates include chaos personas")
		require.True(t, trend("chaosOnly", func(q *personas.TrendQuery) { q.VerdictExclude = []string{} }).Verdict.Flagged)
		tr = trend("chaosOnly", func(q *personas.TrendQuery) { q.Tags.Exclude = []string{"chaos"} })
		require.Equal(t, int64(6), tr.Buckets[len(tr.Buckets)-2].Count)
	})

	t.Run("DayBucketsAndFilters", func(t *testing.T) {
		t.Parallel()
		from := monday.AddDate(0, 0, -12)
		tr := trend("drop3", func(q *personas.TrendQuery) { q.Bucket = personas.BucketDay; q.From = &from })
		require.Len(t, tr.Buckets, 13)
		require.Equal(t, "2026-11-11", tr.Buckets[0].Start)
		require.Equal(t, int64(6), tr.Buckets[0].Count)
		require.Equal(t, int64(6), tr.Buckets[7].Count) // 2026-11-18
		require.False(t, tr.Verdict.Flagged, "daily buckets: most days have no ratings")

		tr = trend("drop3", func(q *personas.TrendQuery) { q.Persona = "a" })
		require.Equal(t, int64(3), tr.Buckets[10].Count)
		tr = trend("drop3", func(q *personas.TrendQuery) { q.Archetype = "ceo-busy" })
		require.Zero(t, tr.Buckets[10].Count)
		tr = trend("drop3", func(q *personas.TrendQuery) { q.Cadence = personas.CadenceHourly })
		require.Zero(t, tr.Buckets[10].Count)
	})

	t.Run("Validation", func(t *testing.T) {
		t.Parallel()
		d := -1.0
		_, err := b.store.ModuleTrend(ctx, personas.TrendQuery{Module: "x", Bucket: "month", K: -1, Delta: &d})
		require.Equal(t, []string{"bucket", "k", "delta"}, invalidFields(t, err))
	})
}

func TestModulesSummaryAndOverview(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	insightData(t, b)
	// This week: drop3 rated by a and b (and a marker).
	b.clock.Set(monday.Add(-time.Hour))
	rate(t, b.store, []string{"a", "b"}, "drop3", "now", 3, 4, 3, 4)
	rate(t, b.store, []string{"a"}, "__parse", "now", 3)
	b.clock.Set(monday)

	w, err := personas.ParseWindow("window", "7d", "7d", "7d", "28d")
	require.NoError(t, err)
	res, err := b.store.ModulesSummary(ctx, personas.ModulesQuery{Window: w})
	require.NoError(t, err)
	require.Equal(t, "2026-11-17", res.From)
	require.Len(t, res.Modules, 5, "markers are not modules")
	byName := map[string]personas.ModuleSummary{}
	for _, m := range res.Modules {
		byName[m.Module] = m
	}
	d3 := byName["drop3"]
	require.Equal(t, int64(10), d3.Count) // Wednesday 2026-11-18 and today
	require.InDelta(t, 3.5, d3.Mean, 1e-9, "parse markers never move a mean")
	require.Equal(t, 2, d3.Personas)
	require.NotNil(t, d3.CI)
	require.NotNil(t, d3.Change)
	require.InDelta(t, 0, d3.Change.Delta, 1e-9) // the week before was a drop week too
	require.Equal(t, monday.Add(-time.Hour), d3.LastRatedAt.UTC())

	w28, _ := personas.ParseWindow("window", "28d", "7d", "7d", "28d")
	res, err = b.store.ModulesSummary(ctx, personas.ModulesQuery{Window: w28})
	require.NoError(t, err)
	for _, m := range res.Modules {
		if m.Module == "steady" {
			require.InDelta(t, 0, m.Change.Delta, 1e-9)
			require.False(t, m.Change.Significant)
		}
		if m.Module == "drop3" {
			require.Less(t, m.Change.Delta, -0.5)
			require.True(t, m.Change.Significant)
		}
	}
	res, err = b.store.ModulesSummary(ctx, personas.ModulesQuery{Window: w, Tags: personas.TagFilter{Include: []string{"chaos"}}})
	require.NoError(t, err)
	require.Len(t, res.Modules, 1, "the chaos persona rated only chaosOnly")
	require.Equal(t, "chaosOnly", res.Modules[0].Module)
	require.InDelta(t, 1.0, res.Modules[0].Mean, 1e-9)

	_, err = personas.ParseWindow("window", "3d", "7d", "7d", "28d")
	require.ErrorContains(t, err, "window")

	day, _ := personas.ParseWindow("window", "24h", "7d", "24h", "7d")
	o, err := b.store.Overview(ctx, day)
	require.NoError(t, err)
	require.Equal(t, 3, o.Personas.Total)
	require.Len(t, o.FlaggedModules, 1, "%+v", o.FlaggedModules)
	require.Equal(t, "drop3", o.FlaggedModules[0].Module)
	require.Equal(t, "2026-11-02", o.FlaggedModules[0].Since)
	require.Equal(t, int64(1), o.Ratings.Unparsable)
	require.Equal(t, int64(4), o.Ratings.Rated)
}

func TestToolsAndFeed(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	createPersona(t, b.store, "a", personas.CadenceDaily)
	createPersona(t, b.store, "b", personas.CadenceDaily)
	// Last week: todo.create 10 calls, 1 error; this week 10 calls, 5 errors.
	write := func(tick string, errors int, latency int) {
		rows := make([]personas.ActionInput, 10)
		for i := range rows {
			rows[i] = personas.ActionInput{TickID: tick, ToolName: "todo.create", Result: personas.ResultOK, LatencyMs: ptr(latency + i)}
			if i < errors {
				rows[i].Result = personas.ResultError
				rows[i].ErrorMessage = ptr(fmt.Sprintf("timeout after %d ms", 100+i))
			}
		}
		rows = append(rows, personas.ActionInput{TickID: tick, ToolName: "journal.write", Result: personas.ResultOK})
		for range 2 { // a retry never double-counts
			_, err := b.store.InsertActions(ctx, "a", rows, personas.WriteOptions{})
			require.NoError(t, err)
		}
	}
	b.clock.Set(monday.AddDate(0, 0, -8))
	write("old", 1, 1000)
	b.clock.Set(monday)
	write("new", 5, 100)

	w, _ := personas.ParseWindow("window", "", "7d", "24h", "7d", "28d")
	res, err := b.store.Tools(ctx, w)
	require.NoError(t, err)
	require.Len(t, res.Tools, 2)
	tc := res.Tools[1]
	require.Equal(t, "todo.create", tc.Name)
	require.Equal(t, int64(10), tc.Calls)
	require.InDelta(t, 0.5, tc.ErrorRate, 1e-9)
	require.InDelta(t, 0.1, *tc.PreviousErrorRate, 1e-9)
	require.InDelta(t, 0.4, *tc.ErrorRateChange, 1e-9)
	require.InDelta(t, 109, *tc.P95LatencyMs, 109*0.42, "within a bucket's width")
	require.Len(t, tc.TopErrors, 1, "numbers fold into one group")
	require.Equal(t, int64(5), tc.TopErrors[0].Count)
	require.Nil(t, res.Tools[0].P95LatencyMs)
	require.Len(t, res.Modules, 2)
	require.Equal(t, "todo", res.Modules[1].Name)
	require.Equal(t, int64(10), res.Modules[1].Calls)

	o, err := b.store.Overview(ctx, w)
	require.NoError(t, err)
	require.Len(t, o.ErrorRateRises, 1)
	require.Equal(t, "todo.create", o.ErrorRateRises[0].Name)

	// The notes feed: 7 ratings over 3 days, pages of 3.
	for i := range 7 {
		b.clock.Set(monday.Add(time.Duration(i) * 5 * time.Hour))
		pid := []string{"a", "b"}[i%2]
		_, err := b.store.InsertFeedback(ctx, pid, []personas.FeedbackInput{
			{TickID: fmt.Sprintf("f%d", i), Module: []string{"todo", "notes"}[i%2], Rating: 1 + i%5, Notes: ptr(fmt.Sprintf("Notiz %d", i))},
		}, personas.WriteOptions{})
		require.NoError(t, err)
	}
	var seen []string
	cursor := ""
	for {
		items, next, err := b.store.FeedbackFeed(ctx, personas.FeedQuery{Limit: 3, Cursor: cursor})
		require.NoError(t, err)
		for _, it := range items {
			seen = append(seen, *it.Notes)
			require.NotEmpty(t, it.PersonaName)
			require.Equal(t, "solo-dev", it.PersonaArchetype)
		}
		if next == "" {
			break
		}
		cursor = next
	}
	require.Equal(t, []string{"Notiz 6", "Notiz 5", "Notiz 4", "Notiz 3", "Notiz 2", "Notiz 1", "Notiz 0"}, seen)

	items, _, err := b.store.FeedbackFeed(ctx, personas.FeedQuery{Module: "todo", MaxRating: 3})
	require.NoError(t, err)
	require.Len(t, items, 3) // i = 0, 2, 6 rate 1, 3, 2; i = 4 rates 5
	items, _, err = b.store.FeedbackFeed(ctx, personas.FeedQuery{Persona: "b", MinRating: 2})
	require.NoError(t, err)
	require.Len(t, items, 2) // i = 1, 3 rate 2, 4; i = 5 rates 1
	from, to := monday.Add(10*time.Hour), monday.Add(20*time.Hour)
	items, _, err = b.store.FeedbackFeed(ctx, personas.FeedQuery{From: &from, To: &to})
	require.NoError(t, err)
	require.Len(t, items, 2) // i = 2, 3
	items, _, err = b.store.FeedbackFeed(ctx, personas.FeedQuery{Archetype: "ceo-busy"})
	require.NoError(t, err)
	require.Empty(t, items)
	_, _, err = b.store.FeedbackFeed(ctx, personas.FeedQuery{Cursor: "nope", MinRating: 4, MaxRating: 2, Limit: 1000})
	require.ElementsMatch(t, []string{"cursor", "minRating", "limit"}, invalidFields(t, err))
}

func TestTagsValidated(t *testing.T) {
	t.Parallel()
	b := setup(t)
	in := persona("t", personas.CadenceDaily)
	in.Tags = []string{"Chaos", "ok-tag", "x_y", "a-very-long-tag-that-goes-past-32-chars"}
	_, err := b.store.UpsertPersona(context.Background(), in)
	require.Equal(t, []string{"tags[0]", "tags[2]", "tags[3]"}, invalidFields(t, err))
	in.Tags = []string{"chaos", "beta", "chaos"}
	_, err = b.store.UpsertPersona(context.Background(), in)
	require.NoError(t, err)
	p, err := b.store.GetPersona(context.Background(), "t")
	require.NoError(t, err)
	require.Equal(t, []string{"beta", "chaos"}, p.Tags)
	in.Tags = make([]string, 11)
	for i := range in.Tags {
		in.Tags[i] = fmt.Sprintf("t%d", i)
	}
	_, err = b.store.UpsertPersona(context.Background(), in)
	require.ErrorContains(t, err, "at most 10 tags")
}

// TestFleetRollupPathsAgree: without a persona filter the views read the
// fleet rollups (less the excluded personas' own rows); with one they read
// the per-persona rollups. A filter that every persona passes (all are
// daily; a tag nobody has) must give the same answer either way, before and
// after a persona is deleted (its rows leave the fleet rollups too).
func TestFleetRollupPathsAgree(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	insightData(t, b)
	// drop4: a run longer than the 2K weeks the flagged list reads first.
	for w := 10; w >= 1; w-- {
		b.clock.Set(monday.AddDate(0, 0, -7*w+2))
		r := []int{4, 5, 4, 5, 4, 5}
		if w <= 4 {
			r = []int{3, 4, 3, 4, 3, 4}
		}
		rate(t, b.store, []string{"a", "b"}, "drop4", fmt.Sprintf("w%d", w), r...)
	}
	b.clock.Set(monday.Add(-time.Hour))
	rate(t, b.store, []string{"a", "c"}, "drop3", "now", 3, 4, 1, 2)
	b.clock.Set(monday)
	modules := []string{"steady", "drop3", "drop2", "thin", "chaosOnly", "drop4"}

	// The flagged list agrees with each module's own weekly verdict.
	flaggedAgree := func() {
		t.Helper()
		flagged, err := b.store.FlaggedModules(ctx)
		require.NoError(t, err)
		byModule := map[string]personas.FlaggedModule{}
		for _, f := range flagged {
			byModule[f.Module] = f
		}
		for _, m := range modules {
			tr, err := b.store.ModuleTrend(ctx, personas.TrendQuery{Module: m})
			require.NoError(t, err)
			f, ok := byModule[m]
			require.Equal(t, tr.Verdict.Flagged, ok, m)
			if ok {
				require.Equal(t, *tr.Verdict.Since, f.Since, m)
				require.Equal(t, tr.Verdict.Buckets, f.Weeks, m)
				require.InDelta(t, *tr.Verdict.Drop, f.Drop, 1e-9, m)
			}
		}
		require.Equal(t, 4, byModule["drop4"].Weeks)
	}
	flaggedAgree()

	check := func(stage string) {
		t.Helper()
		for _, m := range modules {
			for _, bucket := range []string{personas.BucketWeek, personas.BucketDay} {
				for _, exclude := range [][]string{nil, {"chaos"}} {
					fleet, err := b.store.ModuleTrend(ctx, personas.TrendQuery{Module: m, Bucket: bucket, Tags: personas.TagFilter{Exclude: exclude}})
					require.NoError(t, err)
					per, err := b.store.ModuleTrend(ctx, personas.TrendQuery{Module: m, Bucket: bucket, Cadence: personas.CadenceDaily,
						Tags: personas.TagFilter{Exclude: exclude}})
					require.NoError(t, err)
					require.Equal(t, per, fleet, "%s: %s by %s excluding %v", stage, m, bucket, exclude)
				}
			}
		}
		for _, name := range []string{"7d", "28d"} {
			w, err := personas.ParseWindow("window", name, "7d", "7d", "28d")
			require.NoError(t, err)
			fleet, err := b.store.ModulesSummary(ctx, personas.ModulesQuery{Window: w})
			require.NoError(t, err)
			per, err := b.store.ModulesSummary(ctx, personas.ModulesQuery{Window: w, Tags: personas.TagFilter{Exclude: []string{"nobody"}}})
			require.NoError(t, err)
			require.Equal(t, per, fleet, "%s: modules %s", stage, name)
		}
	}
	check("ingest")
	flagged, err := b.store.FlaggedModules(ctx)
	require.NoError(t, err)
	require.Len(t, flagged, 2, "drop3 and drop4; chaosOnly's drop is the chaos persona's: not flagged")

	require.NoError(t, b.store.DeletePersona(ctx, "c"))
	check("after deleting the chaos persona")
	flaggedAgree()
	tr, err := b.store.ModuleTrend(ctx, personas.TrendQuery{Module: "chaosOnly", VerdictExclude: []string{}})
	require.NoError(t, err)
	require.False(t, tr.Verdict.Flagged, "the deleted persona's ratings are gone from the fleet rollup")
	require.Equal(t, int64(6), tr.Buckets[len(tr.Buckets)-2].Count)
}

// TestModulesPersonasAtWindowEdges: the personas who rated a module in the
// window and its last rating (module_raters) equal a count over the raw
// ratings, at the window's first instant, just before it, with a tag left
// out, after a persona's rating moves into the window and after a persona
// is deleted.
func TestModulesPersonasAtWindowEdges(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	for _, id := range []string{"x", "y", "z"} {
		createPersona(t, b.store, id, personas.CadenceDaily)
	}
	chaos := persona("w", personas.CadenceDaily)
	chaos.Tags = []string{"chaos"}
	_, err := b.store.UpsertPersona(ctx, chaos)
	require.NoError(t, err)
	w, err := personas.ParseWindow("window", "7d", "7d", "7d", "28d")
	require.NoError(t, err)
	from := time.Date(2026, 11, 17, 0, 0, 0, 0, time.UTC) // monday's 7-day window starts here
	at := func(ts time.Time, id string, r int) {
		b.clock.Set(ts)
		tick := fmt.Sprintf("t%d", ts.UnixMicro())
		rate(t, b.store, []string{id}, "m", tick, r)
		rate(t, b.store, []string{id}, "__parse", tick, 3) // never a rater
	}
	at(from.AddDate(0, 0, -3), "y", 2)
	at(from.Add(-time.Microsecond), "x", 4) // the last instant before the window
	at(from, "y", 5)                        // its first instant
	at(monday.Add(-time.Hour), "z", 3)
	at(monday.Add(-30*time.Minute), "w", 2)
	b.clock.Set(monday)

	check := func(what string, exclude []string, wantPersonas int, wantLast time.Time) {
		t.Helper()
		res, err := b.store.ModulesSummary(ctx, personas.ModulesQuery{Window: w, Tags: personas.TagFilter{Exclude: exclude}})
		require.NoError(t, err)
		require.Len(t, res.Modules, 1, what)
		m := res.Modules[0]
		require.Equal(t, wantPersonas, m.Personas, what)
		require.Equal(t, wantLast, m.LastRatedAt.UTC(), what)
		// The same figure over the raw rows.
		raw := countWhere(t, b.store, `SELECT count(DISTINCT f.persona_id) FROM personas.persona_feedback AS f
  JOIN personas.personas AS p ON p.user_id = f.persona_id
 WHERE f.module = 'm' AND f.created_at >= ?0 AND NOT (p.tags && ?1::text[])`, from, pgdialect.Array(append([]string{}, exclude...)))
		require.Equal(t, raw, m.Personas, what+": as counted over the raw ratings")
	}
	check("everyone", nil, 3, monday.Add(-30*time.Minute))
	check("without chaos", []string{"chaos"}, 2, monday.Add(-time.Hour))

	at(monday.Add(-10*time.Minute), "x", 1) // x's latest rating moves into the window
	b.clock.Set(monday)
	check("x rated again", nil, 4, monday.Add(-10*time.Minute))
	require.NoError(t, b.store.DeletePersona(ctx, "x"))
	check("x deleted", nil, 3, monday.Add(-30*time.Minute))
	require.NoError(t, b.store.DeletePersona(ctx, "w"))
	check("w deleted", nil, 2, monday.Add(-time.Hour))
}

// TestIntervalsWithinScale: with few ratings the t interval of a mean
// reaches past the 1–5 scale; the modules table and the trend clamp it.
func TestIntervalsWithinScale(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	createPersona(t, b.store, "a", personas.CadenceDaily)
	b.clock.Set(monday.Add(-time.Hour))
	rate(t, b.store, []string{"a"}, "high", "h", 5, 5, 4)
	rate(t, b.store, []string{"a"}, "low", "l", 1, 2, 1)
	b.clock.Set(monday)
	w, err := personas.ParseWindow("window", "7d", "7d", "7d", "28d")
	require.NoError(t, err)
	res, err := b.store.ModulesSummary(ctx, personas.ModulesQuery{Window: w})
	require.NoError(t, err)
	require.Len(t, res.Modules, 2)
	for _, m := range res.Modules {
		require.NotNil(t, m.CI, m.Module)
		require.GreaterOrEqual(t, m.CI.Low, 1.0, m.Module)
		require.LessOrEqual(t, m.CI.High, 5.0, m.Module)
		require.Less(t, m.CI.Low, m.Mean, m.Module)
		require.Greater(t, m.CI.High, m.Mean, m.Module)
	}
	byName := map[string]personas.ModuleSummary{res.Modules[0].Module: res.Modules[0], res.Modules[1].Module: res.Modules[1]}
	require.Equal(t, 5.0, byName["high"].CI.High)
	require.Equal(t, 1.0, byName["low"].CI.Low)
	tr, err := b.store.ModuleTrend(ctx, personas.TrendQuery{Module: "high", Bucket: personas.BucketDay})
	require.NoError(t, err)
	found := false
	for _, bk := range tr.Buckets {
		if bk.CI != nil {
			found = true
			require.LessOrEqual(t, bk.CI.High, 5.0)
			require.GreaterOrEqual(t, bk.CI.Low, 1.0)
		}
	}
	require.True(t, found, "the day with the three ratings has an interval")
}
