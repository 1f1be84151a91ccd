package personas_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mana/personas/pkg/errs"
	"github.com/mana/personas/pkg/personas"
	"github.com/mana/personas/pkg/personas/personastest"
)

// monday is a Monday, 12:00 UTC.
var monday = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

type bundle struct {
	store *personas.Store
	clock *personastest.Clock
}

func setup(t *testing.T) bundle {
	t.Helper()
	clock := personastest.NewClock(monday)
	return bundle{store: personastest.New(t, personas.WithClock(clock.Now)), clock: clock}
}

func persona(id string, cadence personas.Cadence) personas.PersonaInput {
	return personas.PersonaInput{
		UserID: id, Email: "persona." + id + "@mana.test", Name: strings.ToUpper(id[:1]) + id[1:],
		Archetype: "solo-dev", SystemPrompt: "Du bist ein Test.", ModuleMix: map[string]float64{"todo": 1},
		TickCadence: cadence,
	}
}

// createPersonaAt creates a persona with its own tick hour.
func createPersonaAt(t *testing.T, s *personas.Store, id string, cadence personas.Cadence, tickHour int) {
	t.Helper()
	in := persona(id, cadence)
	in.TickHour = &tickHour
	created, err := s.UpsertPersona(context.Background(), in)
	require.NoError(t, err)
	require.True(t, created)
}

func createPersona(t *testing.T, s *personas.Store, id string, cadence personas.Cadence) {
	t.Helper()
	created, err := s.UpsertPersona(context.Background(), persona(id, cadence))
	require.NoError(t, err)
	require.True(t, created)
}

func actions(tick string, n int) []personas.ActionInput {
	out := make([]personas.ActionInput, n)
	for i := range out {
		out[i] = personas.ActionInput{TickID: tick, ToolName: fmt.Sprintf("tool%d", i), Result: personas.ResultOK}
	}
	return out
}

func dueIDs(t *testing.T, s *personas.Store) []string {
	t.Helper()
	res, err := s.Due(context.Background(), nil)
	require.NoError(t, err)
	ids := make([]string, len(res.Personas))
	for i, d := range res.Personas {
		ids[i] = d.UserID
	}
	return ids
}

func TestMigrate(t *testing.T) {
	t.Parallel()

	t.Run("IdempotentAndCurrent", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		ctx := context.Background()
		applied, err := personas.Migrate(ctx, b.store.DB())
		require.NoError(t, err)
		require.Empty(t, applied, "template is already migrated")
		require.NoError(t, b.store.CheckSchema(ctx))
	})

	t.Run("ConcurrentReplicasApplyOnce", func(t *testing.T) {
		t.Parallel()
		db, err := personas.OpenDB(emptyDSN(t), personas.PoolConfig{MaxConns: 10})
		require.NoError(t, err)
		defer db.Close()
		s := personas.New(db)
		require.ErrorIs(t, s.CheckSchema(context.Background()), personas.ErrSchemaNotReady)

		var wg sync.WaitGroup
		results := make([][]int, 5)
		failures := make([]error, 5)
		for i := range 5 {
			wg.Go(func() { results[i], failures[i] = personas.Migrate(context.Background(), db) })
		}
		wg.Wait()
		total := 0
		for i := range 5 {
			require.NoError(t, failures[i])
			total += len(results[i])
		}
		ms, err := personas.Migrations()
		require.NoError(t, err)
		require.Equal(t, len(ms), total, "each migration applied exactly once")
		require.NoError(t, s.CheckSchema(context.Background()))
	})

	t.Run("MissingVersionBelowTheHighestIsPending", func(t *testing.T) {
		t.Parallel()
		// Numbers are reserved by parallel branches (0004 for the rollups
		// while 0005 exists): a database that lacks a version below its
		// highest is not current, and the version is pending.
		b := setup(t)
		ctx := context.Background()
		_, err := b.store.DB().ExecContext(ctx, `DELETE FROM personas.schema_migrations WHERE version = 2`)
		require.NoError(t, err)
		pending, err := personas.PendingVersions(ctx, b.store.DB())
		require.NoError(t, err)
		require.Equal(t, []int{2}, pending)
		err = b.store.CheckSchema(ctx)
		require.ErrorIs(t, err, personas.ErrSchemaNotReady)
		require.Contains(t, err.Error(), "pending: [2]")
	})

	t.Run("NoPlaceholdersInSQL", func(t *testing.T) {
		t.Parallel()
		ms, err := personas.Migrations()
		require.NoError(t, err)
		for _, m := range ms {
			require.NotContains(t, m.SQL, "?", "%s: bun would read ? as a placeholder", m.Name)
		}
		for _, name := range []string{"due", "claim", "sweep", "insertActions", "insertFeedback"} {
			q, ok := personas.Statement(name)
			require.True(t, ok)
			require.NotContains(t, q, "?", name)
		}
	})
}

func TestDueRules(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	// The persona's tick hour is 10; monday is 12:00. idle is how long
	// before now the persona last did a (legacy) write; 0 = never.
	friday := monday.AddDate(0, 0, 4)
	cases := []struct {
		name    string
		cadence personas.Cadence
		now     time.Time
		idle    time.Duration
		due     bool
	}{
		{"HourlyNeverActive", personas.CadenceHourly, monday, 0, true},
		{"HourlyEarlierThisHour", personas.CadenceHourly, monday.Add(59 * time.Minute), 59 * time.Minute, false},
		{"HourlyPreviousHour", personas.CadenceHourly, monday, time.Microsecond, true},
		{"DailyNeverActive", personas.CadenceDaily, monday, 0, true},
		{"DailyEarlierToday", personas.CadenceDaily, monday, 11 * time.Hour, false},
		{"DailyYesterdayAfterTickHour", personas.CadenceDaily, monday, 13 * time.Hour, true},
		{"DailyYesterdayBeforeTickHour", personas.CadenceDaily, monday.Add(-3*time.Hour - time.Microsecond), 12 * time.Hour, false},
		{"DailyYesterdayAtTickHour", personas.CadenceDaily, monday.Add(-2 * time.Hour), 11 * time.Hour, true},
		{"DailyLessThan24hAgoButYesterday", personas.CadenceDaily, monday, 20 * time.Hour, true},
		{"WeekdaysMondayFromFriday", personas.CadenceWeekdays, monday, 72 * time.Hour, true},
		{"WeekdaysMondayNever", personas.CadenceWeekdays, monday, 0, true},
		{"WeekdaysSaturdayNever", personas.CadenceWeekdays, monday.AddDate(0, 0, 5), 0, false},
		{"WeekdaysSunday48h", personas.CadenceWeekdays, monday.AddDate(0, 0, 6), 48 * time.Hour, false},
		{"WeekdaysFriday23h59", personas.CadenceWeekdays, friday.Add(11*time.Hour + 59*time.Minute), 30 * time.Hour, true},
		{"WeekdaysSaturdayMidnight", personas.CadenceWeekdays, friday.Add(12 * time.Hour), 30 * time.Hour, false},
		{"DailySaturday", personas.CadenceDaily, monday.AddDate(0, 0, 5), 0, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			createPersonaAt(t, b.store, "p1", tc.cadence, 10)
			if tc.idle > 0 {
				b.clock.Set(tc.now.Add(-tc.idle))
				_, err := b.store.InsertActions(ctx, "p1", actions("tick", 1), personas.WriteOptions{})
				require.NoError(t, err)
			}
			b.clock.Set(tc.now)
			ids := dueIDs(t, b.store)
			if tc.due {
				require.Equal(t, []string{"p1"}, ids)
			} else {
				require.Empty(t, ids)
			}
		})
	}

	t.Run("OrderNeverActiveThenOldest", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		for _, id := range []string{"a", "b", "c", "d"} {
			createPersona(t, b.store, id, personas.CadenceHourly)
		}
		b.clock.Set(monday.Add(-3 * time.Hour))
		_, err := b.store.InsertFeedback(ctx, "c", []personas.FeedbackInput{{TickID: "t", Module: "todo", Rating: 3}}, personas.WriteOptions{})
		require.NoError(t, err)
		b.clock.Set(monday.Add(-5 * time.Hour))
		_, err = b.store.InsertActions(ctx, "a", actions("t", 1), personas.WriteOptions{})
		require.NoError(t, err)
		b.clock.Set(monday)
		require.Equal(t, []string{"b", "d", "a", "c"}, dueIDs(t, b.store))

		res, err := b.store.Due(ctx, nil)
		require.NoError(t, err)
		require.Nil(t, res.Personas[0].LastActiveAt)
		require.Equal(t, 1, res.Personas[0].Attempt)
		require.Equal(t, monday, res.ServerTime)
		require.False(t, res.Paused)
	})

	t.Run("Limit", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		for i := range 5 {
			createPersona(t, b.store, fmt.Sprintf("p%d", i), personas.CadenceDaily)
		}
		res, err := b.store.Due(ctx, ptr(2))
		require.NoError(t, err)
		require.Len(t, res.Personas, 2)
		_, err = b.store.Due(ctx, ptr(personas.MaxDueLimit+1))
		var ve *errs.Error
		require.ErrorAs(t, err, &ve)
	})
}

func TestClaim(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("LeaseHidesFromDueUntilExpiry", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		createPersona(t, b.store, "p1", personas.CadenceDaily)
		res, err := b.store.Claim(ctx, personas.ClaimRequest{RunnerID: "r1", Limit: ptr(5), LeaseSeconds: ptr(int((time.Minute).Seconds()))})
		require.NoError(t, err)
		got := res.Personas
		require.Len(t, got, 1)
		require.True(t, monday.Add(time.Minute).Equal(*got[0].LeaseExpiresAt))
		require.Len(t, got[0].LeaseToken, 22, "128 random bits, base64url")
		require.Equal(t, 1, got[0].Attempt)
		require.Empty(t, dueIDs(t, b.store))
		again, err := b.store.Claim(ctx, personas.ClaimRequest{RunnerID: "r2"})
		require.NoError(t, err)
		require.Empty(t, again.Personas)

		b.clock.Advance(time.Minute)
		require.Empty(t, dueIDs(t, b.store), "the lapsed lease is a crash: backing off")
		p, err := b.store.GetPersona(ctx, "p1")
		require.NoError(t, err)
		require.Equal(t, 1, p.ConsecutiveFailures)
		require.Nil(t, p.Lease)
		b.clock.Advance(personas.DefaultBackoffMin)
		require.Equal(t, []string{"p1"}, dueIDs(t, b.store), "due again after the backoff")
	})

	t.Run("WritesNeverEndLeases", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		createPersona(t, b.store, "p1", personas.CadenceHourly)
		res, err := b.store.Claim(ctx, personas.ClaimRequest{RunnerID: "r1", LeaseSeconds: ptr(int((5 * time.Hour).Seconds()))})
		require.NoError(t, err)
		token := res.Personas[0].LeaseToken
		w, err := b.store.InsertActions(ctx, "p1", actions("t1", 2), personas.WriteOptions{})
		require.NoError(t, err)
		require.False(t, w.StaleLease, "no token is not stale")
		w, err = b.store.InsertActions(ctx, "p1", actions("t2", 2), personas.WriteOptions{LeaseToken: token})
		require.NoError(t, err)
		require.False(t, w.StaleLease)
		p, err := b.store.GetPersona(ctx, "p1")
		require.NoError(t, err)
		require.NotNil(t, p.Lease)
		require.Equal(t, "r1", p.Lease.RunnerID)
		require.NotNil(t, p.LastActiveAt)
		b.clock.Advance(time.Hour)
		require.Empty(t, dueIDs(t, b.store), "still leased")
	})

	t.Run("ConcurrentClaimersNeverShare", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		const n = 1000
		ins := make([]string, 0, n)
		for i := range n {
			ins = append(ins, fmt.Sprintf("('u%04d', 'persona.u%04d@mana.test', 'x', 'prompt', '{\"todo\":1}', 'daily')", i, i))
		}
		_, err := b.store.DB().ExecContext(ctx, `INSERT INTO personas.personas (user_id, email, archetype, system_prompt, module_mix, tick_cadence) VALUES `+strings.Join(ins, ","))
		require.NoError(t, err)

		var mu sync.Mutex
		seen := map[string]string{}
		var wg sync.WaitGroup
		failures := make(chan error, 8)
		for r := range 8 {
			wg.Go(func() {
				runner := fmt.Sprintf("runner-%d", r)
				for {
					res, err := b.store.Claim(ctx, personas.ClaimRequest{RunnerID: runner, Limit: ptr(7)})
					if err != nil {
						failures <- err
						return
					}
					got := res.Personas
					if len(got) == 0 {
						return
					}
					mu.Lock()
					for _, p := range got {
						if prev, dup := seen[p.UserID]; dup {
							failures <- fmt.Errorf("%s claimed by %s and %s", p.UserID, prev, runner)
						}
						seen[p.UserID] = runner
					}
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		close(failures)
		for err := range failures {
			require.NoError(t, err)
		}
		require.Len(t, seen, n, "every persona claimed exactly once")
	})

	t.Run("Validation", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		_, err := b.store.Claim(ctx, personas.ClaimRequest{RunnerID: "", Limit: ptr(1000), LeaseSeconds: ptr(int((time.Second).Seconds()))})
		var ve *errs.Error
		require.ErrorAs(t, err, &ve)
		require.Len(t, ve.Details, 3)
	})
}

func TestInsertActions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("RetryIsIdempotent", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		createPersona(t, b.store, "p1", personas.CadenceDaily)
		res, err := b.store.InsertActions(ctx, "p1", actions("t1", 20), personas.WriteOptions{})
		require.NoError(t, err)
		require.Equal(t, personas.WriteResult{Written: 20}, res)
		res, err = b.store.InsertActions(ctx, "p1", actions("t1", 20), personas.WriteOptions{})
		require.NoError(t, err)
		require.Equal(t, personas.WriteResult{Written: 0, Duplicates: 20}, res)
		n, err := b.store.Actions7d(ctx, "p1")
		require.NoError(t, err)
		require.Equal(t, int64(20), n, "activity counts only rows inserted")
	})

	t.Run("UnknownPersonaWritesNothing", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		_, err := b.store.InsertActions(ctx, "nobody", actions("t1", 3), personas.WriteOptions{})
		require.ErrorIs(t, err, personas.ErrNotFound)
		var count int
		require.NoError(t, b.store.DB().NewRaw(`SELECT count(*) FROM personas.persona_actions`).Scan(ctx, &count))
		require.Zero(t, count)
	})

	t.Run("SplitBatchesWithSeqKeepEveryRow", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		createPersona(t, b.store, "p1", personas.CadenceDaily)
		first, second := actions("t1", 3), actions("t1", 3)
		for i := range first {
			s1, s2 := i, i+3
			first[i].Seq, second[i].Seq = &s1, &s2
		}
		_, err := b.store.InsertActions(ctx, "p1", first, personas.WriteOptions{})
		require.NoError(t, err)
		res, err := b.store.InsertActions(ctx, "p1", second, personas.WriteOptions{})
		require.NoError(t, err)
		require.Equal(t, 3, res.Written)
		recent, err := b.store.RecentActions(ctx, "p1", 20)
		require.NoError(t, err)
		require.Len(t, recent, 6)
		require.Equal(t, "t1-5-tool2", recent[0].ID, "newest first")
	})

	t.Run("ConcurrentIdenticalPostsWriteOnce", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		createPersona(t, b.store, "p1", personas.CadenceDaily)
		var wg sync.WaitGroup
		written := make([]int, 50)
		failures := make([]error, 50)
		for i := range 50 {
			wg.Go(func() {
				res, err := b.store.InsertActions(ctx, "p1", actions("t1", 10), personas.WriteOptions{})
				written[i], failures[i] = res.Written, err
			})
		}
		wg.Wait()
		total := 0
		for i := range 50 {
			require.NoError(t, failures[i])
			total += written[i]
		}
		require.Equal(t, 10, total)
		n, err := b.store.Actions7d(ctx, "p1")
		require.NoError(t, err)
		require.Equal(t, int64(10), n)
	})

	t.Run("Validation", func(t *testing.T) {
		t.Parallel()
		long := strings.Repeat("x", personas.MaxErrorMessageLen+1)
		neg := -1
		cases := map[string]struct {
			rows  []personas.ActionInput
			field string
		}{
			"Empty":           {nil, "actions"},
			"TooMany":         {actions("t", personas.MaxActionsPerBatch+1), "actions"},
			"MissingTick":     {[]personas.ActionInput{{ToolName: "x", Result: "ok"}}, "actions[0].tickId"},
			"BadResult":       {[]personas.ActionInput{{TickID: "t", ToolName: "x", Result: "maybe"}}, "actions[0].result"},
			"LongError":       {[]personas.ActionInput{{TickID: "t", ToolName: "x", Result: "error", ErrorMessage: &long}}, "actions[0].errorMessage"},
			"NegativeLatency": {[]personas.ActionInput{{TickID: "t", ToolName: "x", Result: "ok", LatencyMs: &neg}}, "actions[0].latencyMs"},
			"NegativeSeq":     {[]personas.ActionInput{{TickID: "t", ToolName: "x", Result: "ok", Seq: &neg}}, "actions[0].seq"},
		}
		for name, tc := range cases {
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				err := personas.ValidateActions(tc.rows)
				var ve *errs.Error
				require.ErrorAs(t, err, &ve)
				require.Equal(t, tc.field, ve.Details[0].Field)
			})
		}
	})
}

func TestFeedback(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("AggregatesAreTrueMeans", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		createPersona(t, b.store, "p1", personas.CadenceDaily)
		for i, r := range []int{5, 4, 4, 1} {
			_, err := b.store.InsertFeedback(ctx, "p1", []personas.FeedbackInput{
				{TickID: fmt.Sprintf("t%d", i), Module: "todo", Rating: r},
				{TickID: fmt.Sprintf("t%d", i), Module: "journal", Rating: 2},
			}, personas.WriteOptions{})
			require.NoError(t, err)
			b.clock.Advance(time.Minute)
		}
		agg, err := b.store.FeedbackByModule(ctx, "p1")
		require.NoError(t, err)
		require.Len(t, agg, 2)
		require.Equal(t, "journal", agg[0].Module)
		require.InDelta(t, 2.0, agg[0].AvgRating, 1e-9)
		require.Equal(t, "todo", agg[1].Module)
		require.InDelta(t, 3.5, agg[1].AvgRating, 1e-9)
		require.Equal(t, 4, agg[1].Count)
		require.Equal(t, map[string]int{"1": 1, "2": 0, "3": 0, "4": 2, "5": 1}, agg[1].Distribution)
		require.Equal(t, monday.Add(3*time.Minute), agg[1].LastRatedAt.UTC())
	})

	t.Run("FeedbackMarksActive", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		createPersona(t, b.store, "p1", personas.CadenceDaily)
		res, err := b.store.InsertFeedback(ctx, "p1", []personas.FeedbackInput{{TickID: "t", Module: "todo", Rating: 3}}, personas.WriteOptions{})
		require.NoError(t, err)
		require.Equal(t, 1, res.Written)
		require.Empty(t, dueIDs(t, b.store))
		res, err = b.store.InsertFeedback(ctx, "p1", []personas.FeedbackInput{{TickID: "t", Module: "todo", Rating: 3}}, personas.WriteOptions{})
		require.NoError(t, err)
		require.Equal(t, personas.WriteResult{Duplicates: 1}, res)
	})
}

func TestListPersonas(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("Actions7dAcrossBoundary", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		createPersona(t, b.store, "p1", personas.CadenceDaily)
		now := monday.Add(30 * time.Minute) // the window starts at :30 of an hour
		weekAgo := now.Add(-7 * 24 * time.Hour)
		for _, at := range []struct {
			offset time.Duration
			n      int
		}{
			{-2 * time.Hour, 1},      // well outside
			{-20 * time.Minute, 2},   // same hour as the window's start, but before it
			{-time.Microsecond, 4},   // just outside
			{0, 8},                   // exactly 7 days ago: inside
			{10 * time.Minute, 16},   // inside, in the boundary hour
			{40 * time.Minute, 32},   // inside, the next hour's bucket
			{6 * 24 * time.Hour, 64}, // yesterday
		} {
			b.clock.Set(weekAgo.Add(at.offset))
			_, err := b.store.InsertActions(ctx, "p1", actions(fmt.Sprintf("t%d", at.n), at.n), personas.WriteOptions{})
			require.NoError(t, err)
		}
		b.clock.Set(now)
		want := int64(8 + 16 + 32 + 64)
		items, next, err := b.store.ListPersonas(ctx, personas.ListFilter{})
		require.NoError(t, err)
		require.Empty(t, next)
		require.Len(t, items, 1)
		require.Equal(t, want, items[0].Actions7d)
		n, err := b.store.Actions7d(ctx, "p1")
		require.NoError(t, err)
		require.Equal(t, want, n)
	})

	t.Run("SameTickIDForTwoPersonasKeepsBoth", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		createPersona(t, b.store, "p1", personas.CadenceDaily)
		createPersona(t, b.store, "p2", personas.CadenceDaily)
		for _, id := range []string{"p1", "p2"} {
			res, err := b.store.InsertActions(ctx, id, actions("shared-tick", 3), personas.WriteOptions{})
			require.NoError(t, err)
			require.Equal(t, personas.WriteResult{Written: 3}, res, id)
			fb, err := b.store.InsertFeedback(ctx, id, []personas.FeedbackInput{{TickID: "shared-tick", Module: "todo", Rating: 4}}, personas.WriteOptions{})
			require.NoError(t, err)
			require.Equal(t, personas.WriteResult{Written: 1}, fb, id)
			n, err := b.store.Actions7d(ctx, id)
			require.NoError(t, err)
			require.Equal(t, int64(3), n, id)
		}
	})

	t.Run("UnchangedUpsertKeepsUpdatedAt", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		createPersona(t, b.store, "p1", personas.CadenceDaily)
		before, err := b.store.GetPersona(ctx, "p1")
		require.NoError(t, err)
		b.clock.Advance(time.Hour)
		created, err := b.store.UpsertPersona(ctx, persona("p1", personas.CadenceDaily))
		require.NoError(t, err)
		require.False(t, created)
		after, err := b.store.GetPersona(ctx, "p1")
		require.NoError(t, err)
		require.True(t, before.UpdatedAt.Equal(after.UpdatedAt), "nothing changed, so updated_at stays")
	})

	t.Run("ModuleNameWithNULIsInvalid", func(t *testing.T) {
		t.Parallel()
		in := persona("p1", personas.CadenceDaily)
		in.ModuleMix = map[string]float64{"todo\x00": 1}
		var ve *errs.Error
		require.ErrorAs(t, in.Validate(), &ve)
	})

	t.Run("PagesAndFilters", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		for i := range 5 {
			createPersona(t, b.store, fmt.Sprintf("p%d", i), personas.CadenceDaily)
			b.clock.Advance(time.Second)
		}
		createPersona(t, b.store, "hourlyone", personas.CadenceHourly)
		var got []string
		cursor := ""
		for {
			items, next, err := b.store.ListPersonas(ctx, personas.ListFilter{Limit: 2, Cursor: cursor, Cadence: personas.CadenceDaily})
			require.NoError(t, err)
			for _, it := range items {
				got = append(got, it.UserID)
			}
			if next == "" {
				break
			}
			cursor = next
		}
		require.Equal(t, []string{"p4", "p3", "p2", "p1", "p0"}, got)
		items, _, err := b.store.ListPersonas(ctx, personas.ListFilter{Q: "HOURLY"})
		require.NoError(t, err)
		require.Len(t, items, 1)
	})

	t.Run("UpsertKeepsActivity", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		createPersona(t, b.store, "p1", personas.CadenceDaily)
		_, err := b.store.InsertActions(ctx, "p1", actions("t", 1), personas.WriteOptions{})
		require.NoError(t, err)
		in := persona("p1", personas.CadenceHourly)
		created, err := b.store.UpsertPersona(ctx, in)
		require.NoError(t, err)
		require.False(t, created)
		p, err := b.store.GetPersona(ctx, "p1")
		require.NoError(t, err)
		require.NotNil(t, p.LastActiveAt)
		require.Equal(t, personas.CadenceHourly, p.TickCadence)

		other := persona("p2", personas.CadenceDaily)
		other.Email = in.Email
		_, err = b.store.UpsertPersona(ctx, other)
		require.ErrorIs(t, err, personas.ErrConflict)
	})

	t.Run("DeleteCascades", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		createPersona(t, b.store, "p1", personas.CadenceDaily)
		_, err := b.store.InsertActions(ctx, "p1", actions("t", 2), personas.WriteOptions{})
		require.NoError(t, err)
		require.NoError(t, b.store.DeletePersona(ctx, "p1"))
		require.ErrorIs(t, b.store.DeletePersona(ctx, "p1"), personas.ErrNotFound)
		var count int
		require.NoError(t, b.store.DB().NewRaw(`SELECT count(*) FROM personas.persona_actions`).Scan(ctx, &count))
		require.Zero(t, count)
	})
}

// TestDuePlanUsesIndex shows /due and claims are answered by walking
// personas_due_idx, not by scanning and sorting every persona.
func TestDuePlanUsesIndex(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	_, err := b.store.DB().ExecContext(ctx, `
INSERT INTO personas.personas (user_id, email, archetype, system_prompt, module_mix, tick_cadence, last_active_at, last_done_at)
SELECT 'u' || i, 'persona.u' || i || '@mana.test', 'x', repeat('p', 300), '{"todo":1}', 'daily', t, t
  FROM generate_series(1, 20000) AS i,
       LATERAL (SELECT CASE WHEN i <= 1000 THEN NULL ELSE now() - (i % 600) * interval '1 minute' END AS t) AS x;
ANALYZE personas.personas`)
	require.NoError(t, err)
	for _, name := range []string{"due", "claim"} {
		sql, ok := personas.Statement(name)
		require.True(t, ok)
		args := []any{monday, monday.Truncate(time.Hour), monday.Truncate(24 * time.Hour), monday.Hour(), true, 100}
		if name == "claim" {
			args = append(args, "r", monday, []string{"a", "b"}, 60)
		}
		var plan []string
		func() {
			rows, err := b.store.DB().DB.QueryContext(ctx, "EXPLAIN "+sql, args...)
			require.NoError(t, err)
			defer func() { _ = rows.Close() }()
			for rows.Next() {
				var line string
				require.NoError(t, rows.Scan(&line))
				plan = append(plan, line)
			}
			require.NoError(t, rows.Err())
		}()
		require.Contains(t, strings.Join(plan, "\n"), "personas_due_idx", "%s plan:\n%s", name, strings.Join(plan, "\n"))
	}
}

// TestDueAfterDroppedConnections: when the server drops the pool's
// connections (a restart, a failover, pg_terminate_backend), each call that
// meets a dead connection fails as unavailable (a 503, never a 500) and
// discards it; once they are gone Due and Claim answer again. Due and Claim
// read through pgx directly (queryDue), not database/sql.
func TestDueAfterDroppedConnections(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	createPersona(t, b.store, "a", personas.CadenceDaily)
	held, err := b.store.DB().DB.Conn(ctx) // survives, and keeps the others in use
	require.NoError(t, err)
	defer func() { _ = held.Close() }()
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			_, err := b.store.Due(ctx, nil)
			assert.NoError(t, err)
		})
	}
	wg.Wait()
	var dropped int
	require.NoError(t, held.QueryRowContext(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
 WHERE datname = current_database() AND pid <> pg_backend_pid()`).Scan(&dropped))
	require.Positive(t, dropped)
	failed := 0
	for {
		res, err := b.store.Due(ctx, nil)
		if err == nil {
			require.Len(t, res.Personas, 1)
			break
		}
		require.Equal(t, errs.Unavailable, errs.CodeOf(err), "%v", err)
		failed++
		require.LessOrEqual(t, failed, dropped, "each failure discards one dead connection")
	}
	res, err := b.store.Claim(ctx, personas.ClaimRequest{RunnerID: "r"})
	require.NoError(t, err)
	require.Len(t, res.Personas, 1)
}
