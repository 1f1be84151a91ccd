package personas_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mana/personas/pkg/personas"
)

// TestLeaseSimulation drives hourly personas with 8 concurrent runners over
// many phases (at :00 and :40 of each hour) with random outcomes and random
// crashes, and checks the store against a model after every phase: each
// due persona is claimed by exactly one runner; no persona is held twice;
// a crash is counted exactly once, at the next look after its lease
// lapsed; backoff and quarantine follow the configuration; a stale
// writer's rows are stored without disturbing the new holder.
//
// The gaps between phases (20 and 40 min) exceed the longest backoff
// (16 min) and the lease (5 min), so the model knows exactly who is due.
func TestLeaseSimulation(t *testing.T) {
	t.Parallel()
	const (
		runners         = 8
		n               = 240
		hours           = 8
		quarantineAfter = 3
		lease           = 5 * time.Minute
		backoffMin      = time.Minute
		backoffMax      = 16 * time.Minute
	)
	ctx := context.Background()
	b := setupWith(t, personas.WithBackoff(backoffMin, backoffMax), personas.WithQuarantineAfter(quarantineAfter))
	_, err := b.store.DB().ExecContext(ctx, `
INSERT INTO personas.personas (user_id, email, archetype, system_prompt, module_mix, tick_cadence)
SELECT 'u' || lpad(i::text, 4, '0'), 'persona.u' || i || '@mana.test', 'x', 'prompt', '{"todo":1}', 'hourly'
  FROM generate_series(1, ?) AS i`, n)
	require.NoError(t, err)

	type state struct {
		failures     int
		quarantined  bool
		doneHour     int
		crashed      bool      // crashed in the previous phase: counted at the next look
		oldToken     string    // the crashed holder's token, for a stale write later
		failedAt     time.Time // when the latest failure was counted
		checkBackoff bool
	}
	model := map[string]*state{}
	for i := 1; i <= n; i++ {
		model[fmt.Sprintf("u%04d", i)] = &state{doneHour: -1}
	}
	outcomes := []personas.TickStatus{personas.TickOK, personas.TickOK, personas.TickEmpty, personas.TickFailed, personas.TickTimeout, "crash"}
	totalCrashes, totalFinished := 0, map[personas.TickStatus]int{}
	start := b.clock.Now()

	for phase := range 2 * hours {
		hour := phase / 2
		now := start.Add(time.Duration(hour)*time.Hour + time.Duration(phase%2)*40*time.Minute)
		b.clock.Set(now)

		// The crashes of the previous phase are counted now.
		for _, st := range model {
			if st.crashed {
				st.crashed = false
				st.failures++
				st.quarantined = st.failures >= quarantineAfter
				st.failedAt, st.checkBackoff = now, true
			}
		}
		var want []string
		for id, st := range model {
			if !st.quarantined && st.doneHour != hour && (!st.checkBackoff || !st.failedAt.Equal(now)) {
				want = append(want, id)
			}
		}
		sort.Strings(want)
		due, err := b.store.Due(ctx, ptr(personas.MaxDueLimit))
		require.NoError(t, err)
		got := make([]string, len(due.Personas))
		for i, p := range due.Personas {
			got[i] = p.UserID
		}
		sort.Strings(got)
		require.Equal(t, want, got, "phase %d: due set", phase)

		list, _, err := b.store.ListPersonas(ctx, personas.ListFilter{})
		require.NoError(t, err)
		for _, p := range list {
			st := model[p.UserID]
			require.Equal(t, st.failures, p.ConsecutiveFailures, "phase %d %s", phase, p.UserID)
			require.Equal(t, st.quarantined, p.Quarantined, "phase %d %s", phase, p.UserID)
			if st.checkBackoff && !st.quarantined {
				d := min(backoffMax, backoffMin<<(st.failures-1))
				wait := p.NextAttemptAt.Sub(st.failedAt)
				require.GreaterOrEqual(t, wait, max(backoffMin, d*8/10), "phase %d %s: backoff", phase, p.UserID)
				require.LessOrEqual(t, wait, d, "phase %d %s: backoff", phase, p.UserID)
				st.checkBackoff = false
			}
			require.Nil(t, p.Lease, "phase %d %s: every lease ended or was swept", phase, p.UserID)
		}

		// The runners claim until nothing is due, and drive what they got.
		var mu sync.Mutex
		var problems []string
		fail := func(format string, args ...any) {
			mu.Lock()
			defer mu.Unlock()
			problems = append(problems, fmt.Sprintf(format, args...))
		}
		holder := map[string]string{}
		result := map[string]personas.TickStatus{}
		tokens := map[string]string{}
		var wg sync.WaitGroup
		for r := range runners {
			rng := rand.New(rand.NewPCG(uint64(phase), uint64(r)))
			runner := fmt.Sprintf("runner-%d", r)
			wg.Go(func() {
				for {
					res, err := b.store.Claim(ctx, personas.ClaimRequest{RunnerID: runner, Limit: ptr(5), LeaseSeconds: ptr(int((lease).Seconds()))})
					if err != nil {
						fail("claim: %v", err)
						return
					}
					if len(res.Personas) == 0 {
						return
					}
					for _, p := range res.Personas {
						mu.Lock()
						prev, twice := holder[p.UserID]
						holder[p.UserID] = runner
						old := model[p.UserID].oldToken
						if p.Attempt != model[p.UserID].failures+1 {
							problems = append(problems, fmt.Sprintf("%s: attempt %d, want %d", p.UserID, p.Attempt, model[p.UserID].failures+1))
						}
						mu.Unlock()
						if twice {
							fail("%s held by %s and %s in phase %d", p.UserID, prev, runner, phase)
							continue
						}
						outcome := outcomes[rng.IntN(len(outcomes))]
						drive(ctx, b.store, p, runner, fmt.Sprintf("%s-ph%d", p.UserID, phase), old, outcome, fail)
						mu.Lock()
						result[p.UserID] = outcome
						tokens[p.UserID] = p.LeaseToken
						mu.Unlock()
					}
				}
			})
		}
		wg.Wait()
		require.Empty(t, problems, "phase %d", phase)
		claimed := make([]string, 0, len(result))
		for id := range result {
			claimed = append(claimed, id)
		}
		sort.Strings(claimed)
		require.Equal(t, want, claimed, "phase %d: every due persona claimed exactly once", phase)

		for id, outcome := range result {
			st := model[id]
			st.oldToken = ""
			switch outcome {
			case personas.TickOK, personas.TickEmpty:
				st.failures, st.doneHour = 0, hour
			case personas.TickFailed, personas.TickTimeout:
				st.failures++
				st.quarantined = st.failures >= quarantineAfter
				st.failedAt, st.checkBackoff = now, true
			case "crash":
				st.crashed, st.oldToken = true, tokens[id]
				totalCrashes++
				continue
			}
			totalFinished[outcome]++
		}
	}

	b.clock.Advance(time.Hour) // the last phase's leases lapse
	_, err = b.store.Due(ctx, ptr(1))
	require.NoError(t, err)
	var counts []struct {
		Status personas.TickStatus `bun:"status"`
		N      int                 `bun:"n"`
	}
	require.NoError(t, b.store.DB().NewRaw(`SELECT status, count(*) AS n FROM personas.persona_ticks GROUP BY status`).Scan(ctx, &counts))
	byStatus := map[personas.TickStatus]int{}
	for _, c := range counts {
		byStatus[c.Status] = c.N
	}
	require.Equal(t, totalCrashes, byStatus[personas.TickCrashed], "every crash counted exactly once")
	for _, st := range []personas.TickStatus{personas.TickOK, personas.TickEmpty, personas.TickFailed, personas.TickTimeout} {
		require.Equal(t, totalFinished[st], byStatus[st], st)
	}
	require.Zero(t, byStatus[personas.TickRunning])
	require.Greater(t, totalCrashes, 50)
	var quarantined int
	for _, st := range model {
		if st.quarantined || (st.crashed && st.failures+1 >= quarantineAfter) {
			quarantined++
		}
	}
	c, err := b.store.FleetCounts(ctx, time.Hour)
	require.NoError(t, err)
	require.Equal(t, quarantined, c.Quarantined)
	require.Zero(t, c.Leased)
}

// drive plays one tick as a runner would: start, a stale write from the
// previous (crashed) holder if there was one, actions, a renew, then the
// outcome (a crash is simply never finishing).
func drive(ctx context.Context, s *personas.Store, p personas.DuePersona, runner, tick, oldToken string,
	outcome personas.TickStatus, fail func(string, ...any)) {
	opts := personas.WriteOptions{LeaseToken: p.LeaseToken}
	st, err := s.StartTick(ctx, p.UserID, personas.TickStart{TickID: tick, RunnerID: runner, LeaseToken: p.LeaseToken})
	if err != nil || st.StaleLease || !st.Created {
		fail("%s start: %v %+v", p.UserID, err, st)
		return
	}
	if oldToken != "" {
		w, err := s.InsertActions(ctx, p.UserID, actions(tick+"-stale", 2), personas.WriteOptions{LeaseToken: oldToken})
		if err != nil || !w.StaleLease || w.Written != 2 {
			fail("%s stale write: %v %+v", p.UserID, err, w)
		}
	}
	w, err := s.InsertActions(ctx, p.UserID, actions(tick, 3), opts)
	if err != nil || w.StaleLease || w.Written != 3 {
		fail("%s write: %v %+v", p.UserID, err, w)
	}
	if _, err := s.RenewLease(ctx, p.UserID, p.LeaseToken, 0); err != nil {
		fail("%s renew: %v", p.UserID, err)
	}
	if outcome == "crash" {
		return
	}
	in := personas.TickFinish{Status: outcome}
	if !outcome.Success() {
		kind := personas.ErrorLLM
		in.ErrorKind = &kind
	}
	fin, err := s.FinishTick(ctx, p.UserID, tick, in, p.LeaseToken)
	if err != nil || !fin.LeaseEnded || fin.StaleLease || fin.Tick.Actions != 3 || !strings.HasPrefix(fin.Tick.TickID, p.UserID) {
		fail("%s finish: %v %+v", p.UserID, err, fin)
	}
}
