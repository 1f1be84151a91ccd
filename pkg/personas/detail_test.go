package personas_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/mana/personas/pkg/dbtest"
	"github.com/mana/personas/pkg/personas"
)

// rawModuleAggregate is the per-module aggregate computed straight from the
// raw ratings, markers left out: what the detail must equal while the raw
// rows are all there.
type rawModule struct {
	Module string    `bun:"module"`
	Avg    float64   `bun:"avg"`
	N      int       `bun:"n"`
	Last   time.Time `bun:"last"`
}

func rawModuleAggregate(t *testing.T, s *personas.Store, id string) []rawModule {
	t.Helper()
	var out []rawModule
	require.NoError(t, s.DB().NewRaw(`SELECT module, avg(rating)::float8 AS avg, count(*) AS n, max(created_at) AS last
  FROM personas.persona_feedback WHERE persona_id = ?0 AND left(module, 2) <> '__' GROUP BY module ORDER BY module`, id).
		Scan(context.Background(), &out))
	return out
}

func TestPersonaDetail(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	createPersona(t, b.store, "p1", personas.CadenceDaily)
	createPersona(t, b.store, "other", personas.CadenceDaily)
	// Ten days of ticks, 3 actions each (two batches, the second with one
	// row), ratings whose means are not round, and a parse marker.
	for d := range 10 {
		tick := fmt.Sprintf("t%02d", d)
		_, err := b.store.InsertActions(ctx, "p1", actions(tick, 2), personas.WriteOptions{})
		require.NoError(t, err)
		b.clock.Advance(time.Minute)
		_, err = b.store.InsertActions(ctx, "p1", []personas.ActionInput{{TickID: tick + "b", ToolName: "notes.search", Result: personas.ResultError}}, personas.WriteOptions{})
		require.NoError(t, err)
		fb := []personas.FeedbackInput{
			{TickID: tick, Module: "todo", Rating: 1 + d%5}, {TickID: tick, Module: "__parse", Rating: 3},
		}
		if d < 3 { // 5, 4, 4: a mean of 13/3
			fb = append(fb, personas.FeedbackInput{TickID: tick, Module: "journal", Rating: 4 + (d+1)%3/2})
		}
		_, err = b.store.InsertFeedback(ctx, "p1", fb, personas.WriteOptions{})
		require.NoError(t, err)
		_, err = b.store.InsertFeedback(ctx, "other", []personas.FeedbackInput{{TickID: tick, Module: "todo", Rating: 5}}, personas.WriteOptions{})
		require.NoError(t, err)
		b.clock.Advance(day - time.Minute + 7*time.Minute)
	}

	d, err := b.store.PersonaDetail(ctx, "p1")
	require.NoError(t, err)

	t.Run("EqualsTheSinglePurposeReads", func(t *testing.T) {
		p, err := b.store.GetPersona(ctx, "p1")
		require.NoError(t, err)
		require.Equal(t, *p, d.Persona)
		n, err := b.store.Actions7d(ctx, "p1")
		require.NoError(t, err)
		require.Equal(t, n, d.Actions7d)
		require.Positive(t, n)
		require.Less(t, n, int64(30), "the window holds 7 of the 10 days")
		recent, err := b.store.RecentActions(ctx, "p1", personas.DetailRecentActions)
		require.NoError(t, err)
		require.Len(t, d.RecentActions, personas.DetailRecentActions)
		want, _ := json.Marshal(recent)
		got, _ := json.Marshal(d.RecentActions)
		require.JSONEq(t, string(want), string(got))
		require.Equal(t, "notes.search", d.RecentActions[0].ToolName, "newest first")
		require.Equal(t, "tool1", d.RecentActions[1].ToolName, "within a batch, the later row first")
		fb, err := b.store.FeedbackByModule(ctx, "p1")
		require.NoError(t, err)
		require.Equal(t, fb, d.FeedbackByModule)
	})

	t.Run("AggregateIsTheRawTrueMean", func(t *testing.T) {
		raw := rawModuleAggregate(t, b.store, "p1")
		require.Len(t, d.FeedbackByModule, len(raw), "markers are no module")
		for i, m := range d.FeedbackByModule {
			require.Equal(t, raw[i].Module, m.Module)
			require.Equal(t, raw[i].Avg, m.AvgRating, "%s: bit for bit", m.Module) //nolint:testifylint // exact on purpose
			require.Equal(t, raw[i].N, m.Count)
			require.Equal(t, raw[i].Last.UTC(), m.LastRatedAt)
			sum := 0
			for _, c := range m.Distribution {
				sum += c
			}
			require.Equal(t, m.Count, sum)
		}
		require.Equal(t, map[string]int{"1": 2, "2": 2, "3": 2, "4": 2, "5": 2}, d.FeedbackByModule[1].Distribution)
		require.Equal(t, map[string]int{"1": 0, "2": 0, "3": 0, "4": 2, "5": 1}, d.FeedbackByModule[0].Distribution)
		require.InDelta(t, 13.0/3, d.FeedbackByModule[0].AvgRating, 1e-12)
	})

	t.Run("Sources", func(t *testing.T) {
		require.Equal(t, personas.DetailSources(), d.Sources)
		require.Contains(t, d.Sources.Rollups, "feedbackByModule")
		require.Contains(t, d.Sources.Raw, "recentActions")
	})

	t.Run("UnknownAndEmpty", func(t *testing.T) {
		_, err := b.store.PersonaDetail(ctx, "nobody")
		require.ErrorIs(t, err, personas.ErrNotFound)
		createPersona(t, b.store, "fresh", personas.CadenceHourly)
		e, err := b.store.PersonaDetail(ctx, "fresh")
		require.NoError(t, err)
		require.NotNil(t, e.RecentActions)
		require.Empty(t, e.RecentActions)
		require.NotNil(t, e.FeedbackByModule)
		require.Empty(t, e.FeedbackByModule)
		require.Zero(t, e.Actions7d)
	})

	t.Run("BoundStatementIsTheStoresOwn", func(t *testing.T) {
		// What the load tester runs: Bind's SQL and arguments over plain pgx.
		bound, err := b.store.Bind("personaDetail", personas.BindInput{PersonaID: "p1"})
		require.NoError(t, err)
		q, ok := personas.Statement("personaDetail")
		require.True(t, ok)
		require.Equal(t, q, bound.SQL)
		conn, err := pgx.Connect(ctx, dsnOf(t, b.store))
		require.NoError(t, err)
		defer func() { _ = conn.Close(ctx) }()
		var id string
		var n int64
		var recent, fb json.RawMessage
		err = conn.QueryRow(ctx, `SELECT user_id, actions_7d, recent_actions, feedback_by_module FROM (`+bound.SQL+`) AS d`, bound.Args...).
			Scan(&id, &n, &recent, &fb)
		require.NoError(t, err)
		require.Equal(t, d.Actions7d, n)
		var acts []map[string]any
		require.NoError(t, json.Unmarshal(recent, &acts))
		require.Len(t, acts, personas.DetailRecentActions)
	})
}

// TestDetailAcrossRawWindow: with a controllable clock, a persona rates
// modules every day for longer than the raw window; after prune deleted
// the raw rows past the window, the detail (its per-module aggregate over
// the whole history, its 7-day count, its newest actions) is what it was
// before.
func TestDetailAcrossRawWindow(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	const days = 100
	end := b.clock.Now()
	b.clock.Set(end.Add(-days * day))
	createPersona(t, b.store, "long", personas.CadenceDaily)
	short := persona("short", personas.CadenceDaily)
	short.MaxHistoryDays = ptr(3)
	_, err := b.store.UpsertPersona(ctx, short)
	require.NoError(t, err)
	for d := range days {
		tick := fmt.Sprintf("t%03d", d)
		for _, id := range []string{"long", "short"} {
			_, err := b.store.InsertActions(ctx, id, actions(tick, 3), personas.WriteOptions{})
			require.NoError(t, err)
			_, err = b.store.InsertFeedback(ctx, id, []personas.FeedbackInput{
				{TickID: tick, Module: "todo", Rating: 1 + (d*7)%5}, {TickID: tick, Module: "mood", Rating: 1 + (d%7)%5},
				{TickID: tick, Module: "__parse", Rating: 3},
			}, personas.WriteOptions{})
			require.NoError(t, err)
		}
		b.clock.Advance(day)
	}
	b.clock.Set(end)

	before := map[string]*personas.PersonaDetail{}
	for _, id := range []string{"long", "short"} {
		d, err := b.store.PersonaDetail(ctx, id)
		require.NoError(t, err)
		before[id] = d
		raw := rawModuleAggregate(t, b.store, id)
		require.Len(t, d.FeedbackByModule, 2)
		for i := range raw {
			require.Equal(t, raw[i].N, d.FeedbackByModule[i].Count, "before pruning: the raw rows")
			require.Equal(t, raw[i].Avg, d.FeedbackByModule[i].AvgRating) //nolint:testifylint // exact on purpose
		}
	}

	raw, rollup := personas.RetentionCutoffs(end, 90, personas.DefaultRollupRetentionDays)
	res, err := b.store.Prune(ctx, personas.PruneOptions{RawBefore: raw, RollupBefore: rollup})
	require.NoError(t, err)
	require.Positive(t, res.Rows("personas.persona_feedback"), "raw ratings past the window are gone")
	require.Positive(t, res.Rows("personas.persona_actions"))
	require.Zero(t, res.Rows("personas.rating_daily"))
	require.Less(t, countWhere(t, b.store, `SELECT count(*) FROM personas.persona_feedback WHERE persona_id = 'short'`), 10)

	for _, id := range []string{"long", "short"} {
		after, err := b.store.PersonaDetail(ctx, id)
		require.NoError(t, err)
		require.Equal(t, before[id].FeedbackByModule, after.FeedbackByModule, "%s: the aggregate crosses the raw window's edge", id)
		require.Equal(t, before[id].Actions7d, after.Actions7d, id)
		require.Equal(t, before[id].RecentActions, after.RecentActions, id)
		require.Less(t, rawModuleAggregate(t, b.store, id)[0].N, after.FeedbackByModule[0].Count, "%s: the raw rows alone count fewer", id)
	}
}

// dsnOf is the test database's connection string, from the store's own
// connection.
func dsnOf(t *testing.T, s *personas.Store) string {
	t.Helper()
	var db string
	require.NoError(t, s.DB().NewRaw(`SELECT current_database()`).Scan(context.Background(), &db))
	dsn, err := dbtest.WithDatabase(dbtest.ServerURL(), db)
	require.NoError(t, err)
	return dsn
}
