package personas_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mana/personas/pkg/errs"
	"github.com/mana/personas/pkg/personas"
	"github.com/mana/personas/pkg/personas/personastest"
)

func setupWith(t *testing.T, opts ...personas.Option) bundle {
	t.Helper()
	clock := personastest.NewClock(monday)
	return bundle{store: personastest.New(t, append([]personas.Option{personas.WithClock(clock.Now)}, opts...)...), clock: clock}
}

// invalidFields returns the fields an input error names (nil when err is
// not a validation error).
func invalidFields(t *testing.T, err error) []string {
	t.Helper()
	var ve *errs.Error
	require.ErrorAs(t, err, &ve)
	out := make([]string, len(ve.Details))
	for i, d := range ve.Details {
		out[i] = d.Field
	}
	return out
}

func claimOne(t *testing.T, s *personas.Store, runner string, lease time.Duration) personas.DuePersona {
	t.Helper()
	res, err := s.Claim(context.Background(), personas.ClaimRequest{RunnerID: runner, Limit: ptr(1), LeaseSeconds: ptr(int((lease).Seconds()))})
	require.NoError(t, err)
	require.Len(t, res.Personas, 1)
	return res.Personas[0]
}

func finish(status personas.TickStatus) personas.TickFinish {
	return personas.TickFinish{Status: status}
}

func TestLeases(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("RenewWithTokenExtends", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		createPersona(t, b.store, "p1", personas.CadenceDaily)
		c := claimOne(t, b.store, "r1", 2*time.Minute)
		b.clock.Advance(time.Minute)
		until, err := b.store.RenewLease(ctx, "p1", c.LeaseToken, 0)
		require.NoError(t, err)
		require.Equal(t, monday.Add(3*time.Minute), until, "default: the claim's length")
		until, err = b.store.RenewLease(ctx, "p1", c.LeaseToken, time.Hour)
		require.NoError(t, err)
		require.Equal(t, monday.Add(61*time.Minute), until)
		p, err := b.store.GetPersona(ctx, "p1")
		require.NoError(t, err)
		require.Equal(t, until, p.Lease.ExpiresAt.UTC())
	})

	t.Run("RenewStaleOrExpiredIsLost", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		createPersona(t, b.store, "p1", personas.CadenceDaily)
		c := claimOne(t, b.store, "r1", time.Minute)
		_, err := b.store.RenewLease(ctx, "p1", "not-the-token", 0)
		require.ErrorIs(t, err, personas.ErrLeaseLost)
		require.Equal(t, errs.Conflict, errs.CodeOf(err))
		b.clock.Advance(time.Minute)
		_, err = b.store.RenewLease(ctx, "p1", c.LeaseToken, 0)
		require.ErrorIs(t, err, personas.ErrLeaseLost, "a lapsed lease is never revived")
		_, err = b.store.RenewLease(ctx, "nobody", c.LeaseToken, 0)
		require.ErrorIs(t, err, personas.ErrNotFound)
		require.Equal(t, []string{"leaseToken", "leaseSeconds"}, invalidFields(t, func() error {
			_, err := b.store.RenewLease(ctx, "p1", "", time.Second)
			return err
		}()))
	})

	t.Run("ReleaseOutcomes", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		for _, id := range []string{"abandon", "done", "fail"} {
			createPersona(t, b.store, id, personas.CadenceHourly)
		}
		res, err := b.store.Claim(ctx, personas.ClaimRequest{RunnerID: "r1"})
		require.NoError(t, err)
		require.Len(t, res.Personas, 3)
		tokens := map[string]string{}
		for _, p := range res.Personas {
			tokens[p.UserID] = p.LeaseToken
		}
		require.ErrorIs(t, b.store.ReleaseLease(ctx, "done", tokens["fail"], ""), personas.ErrLeaseLost)
		require.NoError(t, b.store.ReleaseLease(ctx, "abandon", tokens["abandon"], ""))
		require.NoError(t, b.store.ReleaseLease(ctx, "done", tokens["done"], personas.ReleaseDone))
		require.NoError(t, b.store.ReleaseLease(ctx, "fail", tokens["fail"], personas.ReleaseFailed))
		require.ErrorIs(t, b.store.ReleaseLease(ctx, "done", tokens["done"], ""), personas.ErrLeaseLost, "already released")
		require.Equal(t, []string{"outcome"}, invalidFields(t, b.store.ReleaseLease(ctx, "done", "x", "maybe")))

		require.Equal(t, []string{"abandon"}, dueIDs(t, b.store), "done is done for the hour, fail backs off")
		p, err := b.store.GetPersona(ctx, "fail")
		require.NoError(t, err)
		require.Equal(t, 1, p.ConsecutiveFailures)
		require.Equal(t, monday.Add(time.Minute), p.NextAttemptAt.UTC())
	})

	t.Run("AdminReleaseCountsNoFailure", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		createPersona(t, b.store, "p1", personas.CadenceDaily)
		c := claimOne(t, b.store, "r1", time.Hour)
		require.NoError(t, b.store.AdminReleaseLease(ctx, "p1"))
		require.NoError(t, b.store.AdminReleaseLease(ctx, "p1"), "idempotent")
		require.ErrorIs(t, b.store.AdminReleaseLease(ctx, "nobody"), personas.ErrNotFound)
		_, err := b.store.RenewLease(ctx, "p1", c.LeaseToken, 0)
		require.ErrorIs(t, err, personas.ErrLeaseLost)
		p, err := b.store.GetPersona(ctx, "p1")
		require.NoError(t, err)
		require.Zero(t, p.ConsecutiveFailures)
		require.Nil(t, p.Lease)
		require.Equal(t, []string{"p1"}, dueIDs(t, b.store))
	})

	t.Run("StaleWriterNeverDisturbsNewHolder", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		createPersona(t, b.store, "p1", personas.CadenceHourly)
		old := claimOne(t, b.store, "r1", time.Minute)
		_, err := b.store.StartTick(ctx, "p1", personas.TickStart{TickID: "t-old", RunnerID: "r1", LeaseToken: old.LeaseToken})
		require.NoError(t, err)
		b.clock.Advance(2 * time.Minute) // r1 hangs, its lease lapses: a crash, then the backoff
		require.Empty(t, dueIDs(t, b.store))
		b.clock.Advance(time.Minute)
		cur := claimOne(t, b.store, "r2", time.Hour)
		require.Equal(t, 2, cur.Attempt)
		_, err = b.store.StartTick(ctx, "p1", personas.TickStart{TickID: "t-new", RunnerID: "r2", LeaseToken: cur.LeaseToken})
		require.NoError(t, err)

		w, err := b.store.InsertActions(ctx, "p1", actions("t-old", 3), personas.WriteOptions{LeaseToken: old.LeaseToken})
		require.NoError(t, err)
		require.Equal(t, personas.WriteResult{Written: 3, StaleLease: true}, w, "stored, but stale")
		w, err = b.store.InsertFeedback(ctx, "p1", []personas.FeedbackInput{{TickID: "t-old", Module: "todo", Rating: 2}},
			personas.WriteOptions{LeaseToken: old.LeaseToken})
		require.NoError(t, err)
		require.True(t, w.StaleLease)
		fin, err := b.store.FinishTick(ctx, "p1", "t-old", finish(personas.TickFailed), old.LeaseToken)
		require.NoError(t, err)
		require.True(t, fin.AlreadyFinished, "the crash closed it")
		require.Equal(t, personas.TickCrashed, fin.Tick.Status)
		require.Equal(t, 2, fin.Tick.StaleWrites, "the two stale batches")

		p, err := b.store.GetPersona(ctx, "p1")
		require.NoError(t, err)
		require.Equal(t, "r2", p.Lease.RunnerID)
		require.Equal(t, "t-new", *p.Lease.TickID)
		require.Equal(t, 1, p.ConsecutiveFailures)
		_, err = b.store.RenewLease(ctx, "p1", cur.LeaseToken, 0)
		require.NoError(t, err, "the new holder keeps its lease")

		fin, err = b.store.FinishTick(ctx, "p1", "t-new", finish(personas.TickOK), cur.LeaseToken)
		require.NoError(t, err)
		require.True(t, fin.LeaseEnded)
		p, err = b.store.GetPersona(ctx, "p1")
		require.NoError(t, err)
		require.Nil(t, p.Lease)
		require.Zero(t, p.ConsecutiveFailures)
		require.Equal(t, &personas.LastTick{Status: personas.TickOK, FinishedAt: p.LastTick.FinishedAt}, p.LastTick)
	})
}

func TestTicks(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("StartAndFinishAreIdempotent", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		createPersona(t, b.store, "p1", personas.CadenceDaily)
		c := claimOne(t, b.store, "r1", time.Hour)
		model := "claude"
		start := personas.TickStart{TickID: "t1", RunnerID: "r1", LeaseToken: c.LeaseToken, Model: &model}
		res, err := b.store.StartTick(ctx, "p1", start)
		require.NoError(t, err)
		require.True(t, res.Created)
		require.Equal(t, personas.TickRunning, res.Tick.Status)
		require.Equal(t, monday, res.Tick.StartedAt.UTC())
		res, err = b.store.StartTick(ctx, "p1", start)
		require.NoError(t, err)
		require.False(t, res.Created)

		_, err = b.store.InsertActions(ctx, "p1", []personas.ActionInput{
			{TickID: "t1", ToolName: "todo.create", Result: personas.ResultOK},
			{TickID: "t1", ToolName: "todo.list", Result: personas.ResultError},
		}, personas.WriteOptions{LeaseToken: c.LeaseToken})
		require.NoError(t, err)
		_, err = b.store.InsertFeedback(ctx, "p1", []personas.FeedbackInput{{TickID: "t1", Module: "todo", Rating: 4}},
			personas.WriteOptions{LeaseToken: c.LeaseToken})
		require.NoError(t, err)
		require.Empty(t, dueIDs(t, b.store))
		p, err := b.store.GetPersona(ctx, "p1")
		require.NoError(t, err)
		require.Nil(t, p.LastDoneAt, "a tokened write leaves the verdict to the finish")

		b.clock.Advance(90 * time.Second)
		summary := "Heute habe ich aufgeräumt."
		in := personas.TickFinish{Status: personas.TickOK, Summary: &summary}
		fin, err := b.store.FinishTick(ctx, "p1", "t1", in, c.LeaseToken)
		require.NoError(t, err)
		require.False(t, fin.AlreadyFinished)
		require.True(t, fin.LeaseEnded)
		tick := fin.Tick
		require.Equal(t, personas.TickOK, tick.Status)
		require.Equal(t, 2, tick.Actions)
		require.Equal(t, 1, tick.Errors)
		require.Equal(t, 1, tick.Ratings)
		require.Equal(t, int64(90_000), *tick.DurationMs)
		require.Equal(t, summary, *tick.Summary)
		require.Equal(t, "r1", *tick.RunnerID)

		b.clock.Advance(time.Minute)
		again, err := b.store.FinishTick(ctx, "p1", "t1", finish(personas.TickFailed), "")
		require.NoError(t, err)
		require.True(t, again.AlreadyFinished)
		require.Equal(t, tick, again.Tick, "a repeated finish changes nothing")
		p, err = b.store.GetPersona(ctx, "p1")
		require.NoError(t, err)
		require.Zero(t, p.ConsecutiveFailures)
		require.Equal(t, monday.Add(90*time.Second), p.LastDoneAt.UTC())

		got, err := b.store.GetTick(ctx, "p1", "t1")
		require.NoError(t, err)
		require.Equal(t, tick, got)
		acts, err := b.store.TickActions(ctx, "p1", "t1")
		require.NoError(t, err)
		require.Len(t, acts, 2)
		require.Equal(t, "todo.create", acts[0].ToolName)
		fb, err := b.store.TickFeedback(ctx, "p1", "t1")
		require.NoError(t, err)
		require.Len(t, fb, 1)
	})

	t.Run("FinishWithoutStartCreatesRecord", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		createPersona(t, b.store, "p1", personas.CadenceHourly)
		kind := personas.ErrorAuth
		fin, err := b.store.FinishTick(ctx, "p1", "t1", personas.TickFinish{Status: personas.TickFailed, ErrorKind: &kind}, "")
		require.NoError(t, err)
		require.True(t, fin.Created)
		require.Equal(t, personas.TickFailed, fin.Tick.Status)
		require.Nil(t, fin.Tick.StartedAt)
		p, err := b.store.GetPersona(ctx, "p1")
		require.NoError(t, err)
		require.Equal(t, 1, p.ConsecutiveFailures, "a token-less finish still steers the schedule")

		_, err = b.store.FinishTick(ctx, "nobody", "t1", finish(personas.TickOK), "")
		require.ErrorIs(t, err, personas.ErrNotFound)
	})

	t.Run("EmptyFinishMarksDone", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		createPersona(t, b.store, "p1", personas.CadenceHourly)
		_, err := b.store.FinishTick(ctx, "p1", "t1", finish(personas.TickEmpty), "")
		require.NoError(t, err)
		require.Empty(t, dueIDs(t, b.store), "an empty day is not driven again every minute")
		b.clock.Advance(time.Hour)
		require.Equal(t, []string{"p1"}, dueIDs(t, b.store))
	})

	t.Run("TokenlessFinishEndsBoundLease", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		createPersona(t, b.store, "p1", personas.CadenceDaily)
		createPersona(t, b.store, "p2", personas.CadenceDaily)
		c1 := claimOne(t, b.store, "r1", time.Hour)
		c2 := claimOne(t, b.store, "r1", time.Hour)
		_, err := b.store.StartTick(ctx, c1.UserID, personas.TickStart{TickID: "bound", RunnerID: "r1", LeaseToken: c1.LeaseToken})
		require.NoError(t, err)
		_, err = b.store.StartTick(ctx, c2.UserID, personas.TickStart{TickID: "unbound", RunnerID: "r1"})
		require.NoError(t, err)
		fin, err := b.store.FinishTick(ctx, c1.UserID, "bound", finish(personas.TickOK), "")
		require.NoError(t, err)
		require.True(t, fin.LeaseEnded)
		fin, err = b.store.FinishTick(ctx, c2.UserID, "unbound", finish(personas.TickOK), "")
		require.NoError(t, err)
		require.False(t, fin.LeaseEnded, "nothing ties this tick to the lease")
		p, err := b.store.GetPersona(ctx, c2.UserID)
		require.NoError(t, err)
		require.NotNil(t, p.Lease)
	})

	t.Run("ListNewestFirstPagedByStatus", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		createPersona(t, b.store, "p1", personas.CadenceHourly)
		statuses := []personas.TickStatus{personas.TickOK, personas.TickFailed, personas.TickEmpty, personas.TickFailed, personas.TickTimeout}
		for i, st := range statuses {
			_, err := b.store.FinishTick(ctx, "p1", fmt.Sprintf("t%d", i), finish(st), "")
			require.NoError(t, err)
			b.clock.Advance(time.Minute)
		}
		var got []string
		cursor := ""
		for {
			items, next, err := b.store.ListTicks(ctx, "p1", personas.TickFilter{Limit: 2, Cursor: cursor})
			require.NoError(t, err)
			for _, it := range items {
				got = append(got, it.TickID)
			}
			if next == "" {
				break
			}
			cursor = next
		}
		require.Equal(t, []string{"t4", "t3", "t2", "t1", "t0"}, got)
		failed, _, err := b.store.ListTicks(ctx, "p1", personas.TickFilter{Status: personas.TickFailed})
		require.NoError(t, err)
		require.Len(t, failed, 2)
		require.Equal(t, "t3", failed[0].TickID)
		_, _, err = b.store.ListTicks(ctx, "nobody", personas.TickFilter{})
		require.ErrorIs(t, err, personas.ErrNotFound)
		_, _, err = b.store.ListTicks(ctx, "p1", personas.TickFilter{Status: "bad", Cursor: "!!", Limit: 1000})
		require.Equal(t, []string{"limit", "status", "cursor"}, invalidFields(t, err))
	})

	t.Run("LegacyTickWithoutRecord", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		createPersona(t, b.store, "p1", personas.CadenceDaily)
		_, err := b.store.InsertActions(ctx, "p1", actions("legacy", 3), personas.WriteOptions{})
		require.NoError(t, err)
		b.clock.Advance(time.Minute)
		_, err = b.store.InsertFeedback(ctx, "p1", []personas.FeedbackInput{{TickID: "legacy", Module: "todo", Rating: 3}}, personas.WriteOptions{})
		require.NoError(t, err)
		tick, err := b.store.GetTick(ctx, "p1", "legacy")
		require.NoError(t, err)
		require.False(t, tick.Recorded)
		require.Equal(t, 3, tick.Actions)
		require.Equal(t, 1, tick.Ratings)
		require.Equal(t, int64(60_000), *tick.DurationMs)
		_, err = b.store.GetTick(ctx, "p1", "never")
		require.ErrorIs(t, err, personas.ErrNotFound)
	})

	t.Run("Validation", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		long := string(make([]byte, personas.MaxSummaryLen+1))
		future := monday.Add(time.Hour)
		_, err := b.store.StartTick(ctx, "p1", personas.TickStart{StartedAt: &future})
		require.Equal(t, []string{"tickId", "runnerId", "startedAt"}, invalidFields(t, err))
		kind, rs, neg := personas.ErrorKind("oops"), personas.RatingStatus("meh"), int64(-1)
		_, err = b.store.FinishTick(ctx, "p1", "t", personas.TickFinish{
			Status: personas.TickCrashed, ErrorKind: &kind, Summary: &long, RatingStatus: &rs, TokensIn: &neg, FinishedAt: &future,
		}, "")
		require.Equal(t, []string{"status", "errorKind", "summary", "ratingStatus", "tokensIn", "finishedAt"}, invalidFields(t, err))
	})
}

func TestBackoffAndQuarantine(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setupWith(t, personas.WithBackoff(time.Minute, 5*time.Minute), personas.WithQuarantineAfter(4))
	createPersona(t, b.store, "p1", personas.CadenceHourly)

	// Failures 1..3 back off 1, 2, 4 minutes (minus up to 20% jitter, never
	// below the minimum); the 4th quarantines.
	for i, want := range []time.Duration{time.Minute, 2 * time.Minute, 4 * time.Minute} {
		c := claimOne(t, b.store, "r1", time.Hour)
		require.Equal(t, i+1, c.Attempt)
		_, err := b.store.FinishTick(ctx, "p1", fmt.Sprintf("t%d", i), finish(personas.TickTimeout), c.LeaseToken)
		require.NoError(t, err)
		p, err := b.store.GetPersona(ctx, "p1")
		require.NoError(t, err)
		wait := p.NextAttemptAt.Sub(b.clock.Now())
		require.GreaterOrEqual(t, wait, max(time.Minute, want*8/10), "failure %d", i+1)
		require.LessOrEqual(t, wait, want, "failure %d", i+1)
		require.False(t, p.Quarantined)
		b.clock.Set(p.NextAttemptAt.Add(-time.Microsecond))
		require.Empty(t, dueIDs(t, b.store), "backing off")
		b.clock.Set(*p.NextAttemptAt)
	}
	c := claimOne(t, b.store, "r1", time.Minute)
	require.Equal(t, 4, c.Attempt)
	b.clock.Advance(time.Minute) // crash: the 4th failure
	require.Empty(t, dueIDs(t, b.store))
	p, err := b.store.GetPersona(ctx, "p1")
	require.NoError(t, err)
	require.True(t, p.Quarantined)
	require.Equal(t, 4, p.ConsecutiveFailures)
	require.Equal(t, personas.TickCrashed, p.LastTick.Status)
	b.clock.Advance(24 * time.Hour)
	require.Empty(t, dueIDs(t, b.store), "quarantined: never due")

	require.NoError(t, b.store.Unquarantine(ctx, "p1"))
	require.ErrorIs(t, b.store.Unquarantine(ctx, "nobody"), personas.ErrNotFound)
	res, err := b.store.Due(ctx, nil)
	require.NoError(t, err)
	require.Len(t, res.Personas, 1)
	require.Equal(t, 1, res.Personas[0].Attempt, "failures forgotten")
}

func TestBackoffCapDefaultsToPeriod(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setupWith(t, personas.WithQuarantineAfter(100))
	createPersona(t, b.store, "h", personas.CadenceHourly)
	createPersona(t, b.store, "d", personas.CadenceDaily)
	for i := range 12 { // 2^11 minutes is far past both caps
		for _, id := range []string{"h", "d"} {
			_, err := b.store.FinishTick(ctx, id, fmt.Sprintf("t%d", i), finish(personas.TickFailed), "")
			require.NoError(t, err)
		}
	}
	for id, period := range map[string]time.Duration{"h": time.Hour, "d": 24 * time.Hour} {
		p, err := b.store.GetPersona(ctx, id)
		require.NoError(t, err)
		wait := p.NextAttemptAt.Sub(monday)
		require.LessOrEqual(t, wait, period, id)
		require.GreaterOrEqual(t, wait, period*8/10, id)
	}
}

func TestCalendarSchedule(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("MidnightUTC", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		createPersonaAt(t, b.store, "p1", personas.CadenceDaily, 0)
		late := time.Date(2026, 11, 23, 23, 59, 0, 0, time.UTC)
		b.clock.Set(late)
		_, err := b.store.FinishTick(ctx, "p1", "t1", finish(personas.TickOK), "")
		require.NoError(t, err)
		b.clock.Set(late.Add(59*time.Second + 999999*time.Microsecond))
		require.Empty(t, dueIDs(t, b.store), "23:59:59.999999 is still Monday")
		b.clock.Set(late.Add(time.Minute))
		require.Equal(t, []string{"p1"}, dueIDs(t, b.store), "00:00 is a new day")
	})

	t.Run("TickHourSpreadsTheDay", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		createPersonaAt(t, b.store, "p1", personas.CadenceDaily, 7)
		day := time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC)
		b.clock.Set(day.Add(-time.Hour))
		_, err := b.store.FinishTick(ctx, "p1", "t0", finish(personas.TickOK), "")
		require.NoError(t, err)
		b.clock.Set(day.Add(7*time.Hour - time.Microsecond))
		require.Empty(t, dueIDs(t, b.store))
		b.clock.Set(day.Add(7 * time.Hour))
		require.Equal(t, []string{"p1"}, dueIDs(t, b.store))
		// A tick of 20 minutes does not push tomorrow's start later.
		b.clock.Set(day.Add(7*time.Hour + 20*time.Minute))
		_, err = b.store.FinishTick(ctx, "p1", "t1", finish(personas.TickOK), "")
		require.NoError(t, err)
		b.clock.Set(day.Add(31 * time.Hour))
		require.Equal(t, []string{"p1"}, dueIDs(t, b.store), "07:00 the next day, not 07:20")
	})

	t.Run("FridayToSaturday", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		createPersonaAt(t, b.store, "p1", personas.CadenceWeekdays, 0)
		friday := time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)
		b.clock.Set(friday.Add(-time.Hour)) // Thursday 23:00
		_, err := b.store.FinishTick(ctx, "p1", "t0", finish(personas.TickOK), "")
		require.NoError(t, err)
		b.clock.Set(friday.Add(24*time.Hour - time.Minute))
		require.Equal(t, []string{"p1"}, dueIDs(t, b.store), "Friday 23:59")
		b.clock.Set(friday.Add(24 * time.Hour))
		require.Empty(t, dueIDs(t, b.store), "Saturday 00:00")
		b.clock.Set(friday.Add(72 * time.Hour))
		require.Equal(t, []string{"p1"}, dueIDs(t, b.store), "Monday 00:00")
	})

	t.Run("DefaultTickHourMatchesSQL", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		hours := map[int]bool{}
		for i := range 40 {
			id := fmt.Sprintf("user-%d", i)
			createPersona(t, b.store, id, personas.CadenceDaily)
			p, err := b.store.GetPersona(ctx, id)
			require.NoError(t, err)
			require.Equal(t, personas.DefaultTickHour(id), p.TickHour, id)
			hours[p.TickHour] = true
		}
		require.Greater(t, len(hours), 10, "spread over the day")

		in := persona("user-0", personas.CadenceDaily)
		h := 23
		in.TickHour = &h
		_, err := b.store.UpsertPersona(ctx, in)
		require.NoError(t, err)
		p, err := b.store.GetPersona(ctx, "user-0")
		require.NoError(t, err)
		require.Equal(t, 23, p.TickHour)
		h = 24
		require.Equal(t, []string{"tickHour"}, invalidFields(t, in.Validate()))
	})
}

func TestOperatorControl(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("PauseStopsClaimsAtOnce", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		createPersona(t, b.store, "p1", personas.CadenceDaily)
		createPersona(t, b.store, "p2", personas.CadenceDaily)
		st, err := b.store.SetFleetPaused(ctx, true, "admin@mana.test")
		require.NoError(t, err)
		require.True(t, st.Paused)
		require.Equal(t, "admin@mana.test", *st.UpdatedBy)
		res, err := b.store.Claim(ctx, personas.ClaimRequest{RunnerID: "r1"})
		require.NoError(t, err)
		require.True(t, res.Paused)
		require.Empty(t, res.Personas)
		due, err := b.store.Due(ctx, nil)
		require.NoError(t, err)
		require.True(t, due.Paused)
		require.Empty(t, due.Personas)
		got, err := b.store.FleetState(ctx)
		require.NoError(t, err)
		require.Equal(t, st, got)

		_, err = b.store.SetFleetPaused(ctx, false, "")
		require.NoError(t, err)
		res, err = b.store.Claim(ctx, personas.ClaimRequest{RunnerID: "r1"})
		require.NoError(t, err)
		require.False(t, res.Paused)
		require.Len(t, res.Personas, 2)
	})

	t.Run("DisabledNeverDue", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		createPersona(t, b.store, "p1", personas.CadenceHourly)
		require.NoError(t, b.store.SetEnabled(ctx, "p1", false))
		require.ErrorIs(t, b.store.SetEnabled(ctx, "nobody", false), personas.ErrNotFound)
		require.Empty(t, dueIDs(t, b.store))
		_, err := b.store.UpsertPersona(ctx, persona("p1", personas.CadenceDaily))
		require.NoError(t, err)
		p, err := b.store.GetPersona(ctx, "p1")
		require.NoError(t, err)
		require.False(t, p.Enabled, "an upsert keeps the operator's switch")
		require.NoError(t, b.store.SetEnabled(ctx, "p1", true))
		require.Equal(t, []string{"p1"}, dueIDs(t, b.store))
	})

	t.Run("FleetCounts", func(t *testing.T) {
		t.Parallel()
		b := setupWith(t, personas.WithQuarantineAfter(1))
		createPersonaAt(t, b.store, "done", personas.CadenceDaily, 0)
		createPersonaAt(t, b.store, "late", personas.CadenceDaily, 0)
		createPersonaAt(t, b.store, "leased", personas.CadenceDaily, 0)
		createPersonaAt(t, b.store, "sick", personas.CadenceDaily, 0)
		createPersonaAt(t, b.store, "off", personas.CadenceDaily, 0)
		_, err := b.store.FinishTick(ctx, "late", "t0", finish(personas.TickOK), "")
		require.NoError(t, err)
		b.clock.Advance(24 * time.Hour) // Tuesday noon: late missed today
		_, err = b.store.FinishTick(ctx, "done", "t1", finish(personas.TickOK), "")
		require.NoError(t, err)
		_, err = b.store.FinishTick(ctx, "sick", "t1", finish(personas.TickFailed), "")
		require.NoError(t, err)
		require.NoError(t, b.store.SetEnabled(ctx, "off", false))
		res, err := b.store.Claim(ctx, personas.ClaimRequest{RunnerID: "r1", Limit: ptr(1)})
		require.NoError(t, err)
		require.Equal(t, "leased", res.Personas[0].UserID, "never done comes first")

		c, err := b.store.FleetCounts(ctx, 2*time.Hour)
		require.NoError(t, err)
		require.Equal(t, 5, c.Personas)
		require.Equal(t, 4, c.Enabled)
		require.Equal(t, 1, c.Leased)
		require.Equal(t, 1, c.Quarantined)
		require.Equal(t, 2, c.Overdue, "late (done yesterday) and leased (never done, created a day ago)")
		require.Equal(t, map[string]int{"": 2, "ok": 2, "failed": 1}, c.LastTickStatus)
		require.False(t, c.Paused)

		// The list and the detail flag the same personas as overdue (the
		// overview's grace, personas.OverviewGrace, is within those 12 hours).
		items, _, err := b.store.ListPersonas(ctx, personas.ListFilter{})
		require.NoError(t, err)
		flagged := map[string]bool{}
		for _, it := range items {
			flagged[it.UserID] = it.Overdue
		}
		require.Equal(t, map[string]bool{"done": false, "late": true, "leased": true, "sick": false, "off": false}, flagged)
		only, _, err := b.store.ListPersonas(ctx, personas.ListFilter{Status: "overdue"})
		require.NoError(t, err)
		var ids []string
		for _, it := range only {
			require.True(t, it.Overdue, it.UserID)
			ids = append(ids, it.UserID)
		}
		require.ElementsMatch(t, []string{"late", "leased"}, ids, "the filter and the flag are one rule")
		for id, want := range flagged {
			d, err := b.store.PersonaDetail(ctx, id)
			require.NoError(t, err)
			require.Equal(t, want, d.Overdue, id)
		}
	})
}

func TestBatchDuplicatesAccepted(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	createPersona(t, b.store, "p1", personas.CadenceDaily)
	seq := 4
	first, second := "first", "second"
	rows := []personas.ActionInput{
		{TickID: "t", ToolName: "todo.create", Result: personas.ResultOK, Seq: &seq, ErrorMessage: &first},
		{TickID: "t", ToolName: "todo.create", Result: personas.ResultError, Seq: &seq, ErrorMessage: &second},
		{TickID: "t", ToolName: "todo.list", Result: personas.ResultOK},
	}
	require.NoError(t, personas.ValidateActions(rows))
	res, err := b.store.InsertActions(ctx, "p1", rows, personas.WriteOptions{})
	require.NoError(t, err)
	require.Equal(t, personas.WriteResult{Written: 2, Duplicates: 1}, res)
	acts, err := b.store.TickActions(ctx, "p1", "t")
	require.NoError(t, err)
	require.Len(t, acts, 2)
	require.Equal(t, "first", *acts[0].ErrorMessage, "the first occurrence is kept")

	fb := []personas.FeedbackInput{
		{TickID: "t", Module: "todo", Rating: 4}, {TickID: "t", Module: "todo", Rating: 1}, {TickID: "t", Module: "__parse", Rating: 3},
	}
	res, err = b.store.InsertFeedback(ctx, "p1", fb, personas.WriteOptions{})
	require.NoError(t, err)
	require.Equal(t, personas.WriteResult{Written: 2, Duplicates: 1}, res)
	res, err = b.store.InsertFeedback(ctx, "p1", fb, personas.WriteOptions{})
	require.NoError(t, err)
	require.Equal(t, personas.WriteResult{Written: 0, Duplicates: 3}, res)
	agg, err := b.store.FeedbackByModule(ctx, "p1")
	require.NoError(t, err)
	require.Len(t, agg, 1, "the parse marker is stored but is no module")
	require.Equal(t, "todo", agg[0].Module)
	require.InDelta(t, 4.0, agg[0].AvgRating, 1e-9)
}

// TestLegacyWriteDoneOncePerHour: a legacy write marks the period done
// only when the stored mark is from an earlier clock hour, so the writes
// of one hour keep the first mark (and leave personas_due_idx alone: the
// persona row's update stays HOT). last_active_at follows every write, and
// due answers as if each write had moved the mark.
func TestLegacyWriteDoneOncePerHour(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	createPersona(t, b.store, "p1", personas.CadenceHourly)
	marks := func() (done, active time.Time) {
		t.Helper()
		p, err := b.store.GetPersona(ctx, "p1")
		require.NoError(t, err)
		require.NotNil(t, p.LastDoneAt)
		require.NotNil(t, p.LastActiveAt)
		return p.LastDoneAt.UTC(), p.LastActiveAt.UTC()
	}
	b.clock.Advance(5 * time.Minute) // 12:05
	_, err := b.store.InsertActions(ctx, "p1", actions("a", 2), personas.WriteOptions{})
	require.NoError(t, err)
	done, active := marks()
	require.Equal(t, monday.Add(5*time.Minute), done)
	require.Equal(t, monday.Add(5*time.Minute), active)

	b.clock.Advance(50 * time.Minute) // 12:55
	_, err = b.store.InsertFeedback(ctx, "p1", []personas.FeedbackInput{{TickID: "b", Module: "todo", Rating: 4}}, personas.WriteOptions{})
	require.NoError(t, err)
	_, err = b.store.InsertActions(ctx, "p1", actions("b", 1), personas.WriteOptions{})
	require.NoError(t, err)
	done, active = marks()
	require.Equal(t, monday.Add(5*time.Minute), done, "the hour's first mark stays")
	require.Equal(t, monday.Add(55*time.Minute), active, "last_active_at follows every write")
	require.Empty(t, dueIDs(t, b.store))

	b.clock.Advance(5 * time.Minute) // 13:00
	require.Equal(t, []string{"p1"}, dueIDs(t, b.store), "due in the next hour, as with the later mark")
	_, err = b.store.InsertFeedback(ctx, "p1", []personas.FeedbackInput{{TickID: "c", Module: "todo", Rating: 4}}, personas.WriteOptions{})
	require.NoError(t, err)
	done, _ = marks()
	require.Equal(t, monday.Add(time.Hour), done, "a new hour moves the mark")
	require.Empty(t, dueIDs(t, b.store))
}

func TestLegacyRunnerFlow(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	createPersonaAt(t, b.store, "p1", personas.CadenceDaily, 8)
	createPersona(t, b.store, "p2", personas.CadenceHourly)
	for day := range 3 {
		due := dueIDs(t, b.store)
		require.Equal(t, []string{"p1", "p2"}, due, "day %d", day)
		for _, id := range due {
			tick := fmt.Sprintf("%s-day%d", id, day)
			_, err := b.store.InsertActions(ctx, id, actions(tick, 2), personas.WriteOptions{})
			require.NoError(t, err)
			_, err = b.store.InsertFeedback(ctx, id, []personas.FeedbackInput{{TickID: tick, Module: "todo", Rating: 4}}, personas.WriteOptions{})
			require.NoError(t, err)
		}
		require.Empty(t, dueIDs(t, b.store), "a write marks the legacy tick done")
		b.clock.Advance(30 * time.Minute)
		require.Empty(t, dueIDs(t, b.store))
		b.clock.Advance(30 * time.Minute)
		require.Equal(t, []string{"p2"}, dueIDs(t, b.store), "hourly: the next clock hour")
		_, err := b.store.InsertActions(ctx, "p2", actions(fmt.Sprintf("p2-extra%d", day), 1), personas.WriteOptions{})
		require.NoError(t, err)
		b.clock.Advance(23 * time.Hour)
		// p1 (tick hour 8) was done at 12:00 yesterday; at 12:00 today it
		// is due again, whatever the time of its last write.
	}
	ticks, _, err := b.store.ListTicks(ctx, "p1", personas.TickFilter{})
	require.NoError(t, err)
	require.Empty(t, ticks, "no tick records for a legacy runner")
}

func TestTickUnparsableRatings(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	createPersona(t, b.store, "p1", personas.CadenceDaily)
	c := claimOne(t, b.store, "r1", time.Hour)
	_, err := b.store.StartTick(ctx, "p1", personas.TickStart{TickID: "t1", RunnerID: "r1", LeaseToken: c.LeaseToken})
	require.NoError(t, err)
	_, err = b.store.InsertFeedback(ctx, "p1", []personas.FeedbackInput{
		{TickID: "t1", Module: "todo", Rating: 4}, {TickID: "t1", Module: "__parse", Rating: 3}, {TickID: "t1", Module: "__other", Rating: 3},
		{TickID: "t2", Module: "__parse", Rating: 3},
	}, personas.WriteOptions{LeaseToken: c.LeaseToken})
	require.NoError(t, err)

	fin, err := b.store.FinishTick(ctx, "p1", "t1", finish(personas.TickOK), c.LeaseToken)
	require.NoError(t, err)
	require.Equal(t, 3, fin.Tick.Ratings)
	require.Equal(t, 2, fin.Tick.UnparsableRatings, "on the finish's answer")
	page, _, err := b.store.ListTicks(ctx, "p1", personas.TickFilter{})
	require.NoError(t, err)
	require.Len(t, page, 1)
	require.Equal(t, 2, page[0].UnparsableRatings, "in the list")
	legacy, err := b.store.GetTick(ctx, "p1", "t2")
	require.NoError(t, err)
	require.False(t, legacy.Recorded)
	require.Equal(t, 1, legacy.UnparsableRatings, "on a tick without a record")
}

// The persona's lastTick is its last tick as recorded: finishedAt is the
// tick's own (the runner's finishedAt when it sent one), as for a crash,
// while the schedule (last done, last active) follows the store's clock.
func TestLastTickFinishedAtIsTheTicks(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	createPersona(t, b.store, "p1", personas.CadenceDaily)
	c := claimOne(t, b.store, "r1", time.Hour)
	_, err := b.store.StartTick(ctx, "p1", personas.TickStart{TickID: "t1", RunnerID: "r1", LeaseToken: c.LeaseToken})
	require.NoError(t, err)
	b.clock.Advance(10 * time.Minute)
	ranUntil := b.clock.Now().Add(-4 * time.Minute).Truncate(time.Millisecond) // reported late
	in := finish(personas.TickOK)
	in.FinishedAt = &ranUntil
	fin, err := b.store.FinishTick(ctx, "p1", "t1", in, c.LeaseToken)
	require.NoError(t, err)
	require.Equal(t, ranUntil, fin.Tick.FinishedAt.UTC())
	p, err := b.store.GetPersona(ctx, "p1")
	require.NoError(t, err)
	require.NotNil(t, p.LastTick)
	require.Equal(t, ranUntil, p.LastTick.FinishedAt.UTC(), "lastTick.finishedAt is the tick's finishedAt")
	require.Equal(t, b.clock.Now(), p.LastDoneAt.UTC(), "the schedule follows the store's clock")

	// Without finishedAt both are the store's clock.
	b.clock.Advance(24 * time.Hour)
	c = claimOne(t, b.store, "r1", time.Hour)
	fin, err = b.store.FinishTick(ctx, "p1", "t2", finish(personas.TickFailed), c.LeaseToken)
	require.NoError(t, err)
	p, err = b.store.GetPersona(ctx, "p1")
	require.NoError(t, err)
	require.Equal(t, b.clock.Now(), fin.Tick.FinishedAt.UTC())
	require.Equal(t, b.clock.Now(), p.LastTick.FinishedAt.UTC())
}

// With WithDayLength (make dev), a daily persona comes due again on every
// compressed day; on the real calendar it is done for the day.
func TestDayLength(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const day = 24 * time.Minute // "hours" of one minute
	isDue := func(t *testing.T, s *personas.Store) bool {
		t.Helper()
		res, err := s.Due(ctx, nil)
		require.NoError(t, err)
		return len(res.Personas) == 1
	}
	// tickOnce waits (on the test clock) until p1 is due, then runs one ok tick.
	tickOnce := func(t *testing.T, b bundle, tick string) {
		t.Helper()
		for range 24 * 60 {
			if isDue(t, b.store) {
				break
			}
			b.clock.Advance(time.Minute)
		}
		c := claimOne(t, b.store, "r1", time.Minute)
		_, err := b.store.StartTick(ctx, "p1", personas.TickStart{TickID: tick, RunnerID: "r1", LeaseToken: c.LeaseToken})
		require.NoError(t, err)
		_, err = b.store.FinishTick(ctx, "p1", tick, finish(personas.TickOK), c.LeaseToken)
		require.NoError(t, err)
		require.False(t, isDue(t, b.store), "done for the day")
	}

	t.Run("Compressed", func(t *testing.T) {
		t.Parallel()
		b := setupWith(t, personas.WithDayLength(day))
		createPersona(t, b.store, "p1", personas.CadenceDaily)
		start := b.clock.Now()
		for i := range 3 {
			tickOnce(t, b, fmt.Sprintf("t%d", i))
		}
		require.Less(t, b.clock.Now().Sub(start), 3*day+time.Minute, "one tick per compressed day")
	})
	t.Run("RealCalendar", func(t *testing.T) {
		t.Parallel()
		b := setupWith(t)
		createPersona(t, b.store, "p1", personas.CadenceDaily)
		tickOnce(t, b, "t0")
		b.clock.Advance(2 * day)
		require.False(t, isDue(t, b.store), "a daily persona ticks once a real day")
	})
}
