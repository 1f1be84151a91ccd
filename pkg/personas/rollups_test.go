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

// rollupState is every rollup row, keyed for comparison.
type rollupState struct {
	Ratings    map[string][6]int // day|module|persona → n, r1..r5
	Unparsable map[string]int    // day|persona → n
	Actions    map[string]string // day|tool|persona → "calls errors latency_n latency_sum hist"
	ErrGroups  map[string]int    // day|tool|persona|class → n
	// The fleet rollups (shards summed; rows whose counts fell to 0 left out).
	FleetRatings map[string][6]int // day|module → n, r1..r5
	FleetActions map[string]string // day|tool → as Actions
	// Raters: each persona's latest rating of a module (module_raters).
	Raters map[string]time.Time // persona|module → last rating
}

func newRollupState() rollupState {
	return rollupState{Ratings: map[string][6]int{}, Unparsable: map[string]int{}, Actions: map[string]string{}, ErrGroups: map[string]int{},
		FleetRatings: map[string][6]int{}, FleetActions: map[string]string{}, Raters: map[string]time.Time{}}
}

// readRollups reads the rollup tables.
func readRollups(t *testing.T, s *personas.Store) rollupState {
	t.Helper()
	ctx := context.Background()
	st := newRollupState()
	var ratings []struct {
		Day                        time.Time `bun:"day"`
		Module, PersonaID          string
		N, R1, R2, R3, R4, R5, Sum int
		SumSq                      int `bun:"sum_sq"`
	}
	require.NoError(t, s.DB().NewRaw(`SELECT day, module, persona_id, n, r1, r2, r3, r4, r5, sum, sum_sq FROM personas.rating_daily`).Scan(ctx, &ratings))
	for _, r := range ratings {
		require.Equal(t, r.R1+2*r.R2+3*r.R3+4*r.R4+5*r.R5, r.Sum)
		st.Ratings[r.Day.Format(time.DateOnly)+"|"+r.Module+"|"+r.PersonaID] = [6]int{r.N, r.R1, r.R2, r.R3, r.R4, r.R5}
	}
	var unp []struct {
		Day       time.Time `bun:"day"`
		PersonaID string
		N         int
	}
	require.NoError(t, s.DB().NewRaw(`SELECT day, persona_id, n FROM personas.rating_unparsable_daily`).Scan(ctx, &unp))
	for _, r := range unp {
		st.Unparsable[r.Day.Format(time.DateOnly)+"|"+r.PersonaID] = r.N
	}
	var acts []struct {
		Day                 time.Time `bun:"day"`
		ToolName, PersonaID string
		Calls, Errors       int
		LatencyN            int   `bun:"latency_n"`
		LatencySum          int64 `bun:"latency_sum"`
		LatencyHist         []int `bun:"latency_hist,array"`
	}
	require.NoError(t, s.DB().NewRaw(`SELECT day, tool_name, persona_id, calls, errors, latency_n, latency_sum, latency_hist FROM personas.action_daily`).Scan(ctx, &acts))
	for _, r := range acts {
		st.Actions[r.Day.Format(time.DateOnly)+"|"+r.ToolName+"|"+r.PersonaID] = fmt.Sprint(r.Calls, r.Errors, r.LatencyN, r.LatencySum, r.LatencyHist)
	}
	var groups []struct {
		Day                         time.Time `bun:"day"`
		ToolName, PersonaID, Sample string
		N                           int
	}
	require.NoError(t, s.DB().NewRaw(`SELECT day, tool_name, persona_id, sample, n FROM personas.action_error_daily`).Scan(ctx, &groups))
	for _, r := range groups {
		st.ErrGroups[r.Day.Format(time.DateOnly)+"|"+r.ToolName+"|"+r.PersonaID+"|"+errorClass(r.Sample)] += r.N
	}
	var fleetRatings []struct {
		Day                        time.Time `bun:"day"`
		Module                     string
		N, R1, R2, R3, R4, R5, Sum int
	}
	require.NoError(t, s.DB().NewRaw(`SELECT day, module, sum(n) AS n, sum(r1) AS r1, sum(r2) AS r2, sum(r3) AS r3,
       sum(r4) AS r4, sum(r5) AS r5, sum(sum) AS sum
  FROM personas.rating_fleet_daily GROUP BY 1, 2 HAVING sum(n) > 0`).Scan(ctx, &fleetRatings))
	for _, r := range fleetRatings {
		require.Equal(t, r.R1+2*r.R2+3*r.R3+4*r.R4+5*r.R5, r.Sum)
		st.FleetRatings[r.Day.Format(time.DateOnly)+"|"+r.Module] = [6]int{r.N, r.R1, r.R2, r.R3, r.R4, r.R5}
	}
	var fleetActs []struct {
		Day           time.Time `bun:"day"`
		ToolName      string
		Calls, Errors int
		LatencyN      int   `bun:"latency_n"`
		LatencySum    int64 `bun:"latency_sum"`
		LatencyHist   []int `bun:"latency_hist,array"`
	}
	require.NoError(t, s.DB().NewRaw(`SELECT day, tool_name, sum(calls) AS calls, sum(errors) AS errors, sum(latency_n) AS latency_n,
       sum(latency_sum) AS latency_sum, personas.hist_sum(latency_hist) AS latency_hist
  FROM personas.action_fleet_daily GROUP BY 1, 2 HAVING sum(calls) > 0`).Scan(ctx, &fleetActs))
	for _, r := range fleetActs {
		st.FleetActions[r.Day.Format(time.DateOnly)+"|"+r.ToolName] = fmt.Sprint(r.Calls, r.Errors, r.LatencyN, r.LatencySum, r.LatencyHist)
	}
	var raters []struct {
		PersonaID, Module string
		LastAt            time.Time
	}
	require.NoError(t, s.DB().NewRaw(`SELECT persona_id, module, last_at FROM personas.module_raters`).Scan(ctx, &raters))
	for _, r := range raters {
		st.Raters[r.PersonaID+"|"+r.Module] = r.LastAt.UTC()
	}
	return st
}

// fleetOf sums per-persona rating rollups by day and module.
func fleetOf(st rollupState) map[string][6]int {
	out := map[string][6]int{}
	for k, v := range st.Ratings {
		i := strings.LastIndex(k, "|")
		f := out[k[:i]]
		for j := range f {
			f[j] += v[j]
		}
		out[k[:i]] = f
	}
	return out
}

// errorClass is the group a generated error message belongs to.
func errorClass(msg string) string {
	for _, c := range []string{"timeout after", "not found:", "Bad Request"} {
		if strings.HasPrefix(msg, c) {
			return c
		}
	}
	return "none"
}

// expectedRollups aggregates the raw rows in Go.
func expectedRollups(t *testing.T, s *personas.Store) rollupState {
	t.Helper()
	ctx := context.Background()
	st := newRollupState()
	var fb []struct {
		PersonaID, Module string
		Rating            int
		CreatedAt         time.Time
	}
	require.NoError(t, s.DB().NewRaw(`SELECT persona_id, module, rating, created_at FROM personas.persona_feedback`).Scan(ctx, &fb))
	for _, f := range fb {
		day := f.CreatedAt.UTC().Format(time.DateOnly)
		if personas.IsParseMarker(f.Module) {
			st.Unparsable[day+"|"+f.PersonaID]++
			continue
		}
		k := day + "|" + f.Module + "|" + f.PersonaID
		v := st.Ratings[k]
		v[0]++
		v[f.Rating]++
		st.Ratings[k] = v
		fk := day + "|" + f.Module
		fv := st.FleetRatings[fk]
		fv[0]++
		fv[f.Rating]++
		st.FleetRatings[fk] = fv
		if rk := f.PersonaID + "|" + f.Module; f.CreatedAt.UTC().After(st.Raters[rk]) {
			st.Raters[rk] = f.CreatedAt.UTC()
		}
	}
	type agg struct {
		calls, errors, latN int
		latSum              int64
		hist                []int
	}
	aggs, fleet := map[string]*agg{}, map[string]*agg{}
	var acts []struct {
		PersonaID, ToolName, Result string
		ErrorMessage                *string
		LatencyMs                   *int
		CreatedAt                   time.Time
	}
	require.NoError(t, s.DB().NewRaw(`SELECT persona_id, tool_name, result, error_message, latency_ms, created_at FROM personas.persona_actions`).Scan(ctx, &acts))
	for _, a := range acts {
		fk := a.CreatedAt.UTC().Format(time.DateOnly) + "|" + a.ToolName
		k := fk + "|" + a.PersonaID
		for _, m := range []struct {
			aggs map[string]*agg
			k    string
		}{{aggs, k}, {fleet, fk}} {
			g := m.aggs[m.k]
			if g == nil {
				g = &agg{hist: make([]int, len(personas.LatencyThresholds)+1)}
				m.aggs[m.k] = g
			}
			g.calls++
			if a.Result == "error" {
				g.errors++
			}
			if a.LatencyMs != nil {
				g.latN++
				g.latSum += int64(*a.LatencyMs)
				b := sort.Search(len(personas.LatencyThresholds), func(i int) bool { return personas.LatencyThresholds[i] > *a.LatencyMs })
				g.hist[b]++
			}
		}
		if a.Result == "error" {
			msg := ""
			if a.ErrorMessage != nil {
				msg = *a.ErrorMessage
			}
			st.ErrGroups[k+"|"+errorClass(msg)]++
		}
	}
	for k, g := range aggs {
		st.Actions[k] = fmt.Sprint(g.calls, g.errors, g.latN, g.latSum, g.hist)
	}
	for k, g := range fleet {
		st.FleetActions[k] = fmt.Sprint(g.calls, g.errors, g.latN, g.latSum, g.hist)
	}
	return st
}

// randomActions is a batch of one tick with random outcomes, latencies and
// error messages of three groups (numbers and ids vary within a group).
func randomActions(rng *rand.Rand, tick string, n int) []personas.ActionInput {
	tools := []string{"todo.create", "todo.list", "journal.write", "notes.search"}
	out := make([]personas.ActionInput, n)
	for i := range out {
		a := personas.ActionInput{TickID: tick, Seq: ptr(i), ToolName: tools[rng.IntN(len(tools))], Result: personas.ResultOK}
		if rng.IntN(3) > 0 {
			a.LatencyMs = ptr(rng.IntN(30000))
		}
		if rng.IntN(4) == 0 {
			a.Result = personas.ResultError
			switch rng.IntN(4) {
			case 0:
				a.ErrorMessage = ptr(fmt.Sprintf("timeout after %d ms", rng.IntN(10000)))
			case 1:
				a.ErrorMessage = ptr(fmt.Sprintf("not found: %08x-%04x-4000-8000-%012x", rng.Uint32(), rng.IntN(65536), rng.Uint64()&0xffffffffffff))
			case 2:
				a.ErrorMessage = ptr("Bad Request")
			}
		}
		out[i] = a
	}
	return out
}

func randomFeedback(rng *rand.Rand, tick string) []personas.FeedbackInput {
	modules := []string{"todo", "journal", "notes", "mood", "__parse"}
	out := make([]personas.FeedbackInput, 1+rng.IntN(6)) // may rate a module twice
	for i := range out {
		out[i] = personas.FeedbackInput{TickID: tick, Module: modules[rng.IntN(len(modules))], Rating: 1 + rng.IntN(5)}
	}
	return out
}

// TestRollupsEqualRawAggregates: after concurrent ingestion with retries,
// duplicates and batches spanning several days, every rollup equals an
// aggregate of the raw rows computed independently; a backfill from the
// raw rows rebuilds exactly the same rollups, also when resumed.
func TestRollupsEqualRawAggregates(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	const npersonas = 6
	for i := range npersonas {
		createPersona(t, b.store, fmt.Sprintf("p%d", i), personas.CadenceDaily)
	}
	var mu sync.Mutex
	written := map[string]int{} // persona → actions written as reported
	for day := range 3 {
		var wg sync.WaitGroup
		for w := range 8 {
			rng := rand.New(rand.NewPCG(uint64(day), uint64(w)))
			wg.Go(func() {
				for k := range 12 {
					pid := fmt.Sprintf("p%d", rng.IntN(npersonas))
					tick := fmt.Sprintf("d%d-w%d-k%d", day, w, k%8) // k%8: some ticks repeat
					acts := randomActions(rng, tick, 1+rng.IntN(30))
					fb := randomFeedback(rng, tick)
					// Some writes carry a (stale) lease token: they take the
					// write statements' other variant, and count all the same.
					var opts personas.WriteOptions
					if rng.IntN(3) == 0 {
						opts.LeaseToken = "stale-token-" + tick
					}
					for range 1 + rng.IntN(3) { // retries
						res, err := b.store.InsertActions(ctx, pid, acts, opts)
						if err != nil {
							t.Errorf("actions: %v", err)
							return
						}
						if res.Written+res.Duplicates != len(acts) {
							t.Errorf("written %d + duplicates %d != %d", res.Written, res.Duplicates, len(acts))
						}
						mu.Lock()
						written[pid] += res.Written
						mu.Unlock()
						if _, err := b.store.InsertFeedback(ctx, pid, fb, opts); err != nil {
							t.Errorf("feedback: %v", err)
							return
						}
					}
				}
			})
		}
		// Move the clock across midnight while writes run.
		time.Sleep(5 * time.Millisecond)
		b.clock.Advance(14 * time.Hour)
		wg.Wait()
	}
	for pid, n := range written {
		var stored int
		require.NoError(t, b.store.DB().NewRaw(`SELECT count(*) FROM personas.persona_actions WHERE persona_id = ?`, pid).Scan(ctx, &stored))
		require.Equal(t, stored, n, "written counts exactly the rows inserted")
	}
	want := expectedRollups(t, b.store)
	require.NotEmpty(t, want.Ratings)
	require.NotEmpty(t, want.Unparsable)
	require.NotEmpty(t, want.ErrGroups)
	require.NotEmpty(t, want.Raters)
	require.Equal(t, want, readRollups(t, b.store), "rollups kept at ingest")

	// Backfill over existing rollups: same result (recompute and replace).
	res, err := b.store.BackfillRollups(ctx, 4, nil)
	require.NoError(t, err)
	require.Equal(t, personas.BackfillResult{Personas: npersonas, Batches: 2}, res)
	require.Equal(t, want, readRollups(t, b.store), "backfill is idempotent")

	// From empty rollups, interrupted after the first batch, then resumed.
	// (TRUNCATE fires no delete trigger: the fleet rollups go explicitly.)
	_, err = b.store.DB().NewRaw(`TRUNCATE personas.rating_daily, personas.rating_unparsable_daily,
        personas.action_daily, personas.action_error_daily, personas.rating_fleet_daily, personas.action_fleet_daily,
        personas.module_raters`).Exec(ctx)
	require.NoError(t, err)
	stop, cancel := context.WithCancel(ctx)
	_, err = b.store.BackfillRollups(stop, 2, func(done int) { cancel() })
	require.Error(t, err, "cancelled before the second batch")
	res, err = b.store.BackfillRollups(ctx, 2, nil)
	require.NoError(t, err)
	require.True(t, res.Resumed)
	require.Equal(t, npersonas-2, res.Personas)
	require.Equal(t, want, readRollups(t, b.store), "backfill rebuilds the rollups")

	// Deleting a persona (cascade) and pruning old days (deletes) take
	// their rows out of the fleet rollups too.
	require.NoError(t, b.store.DeletePersona(ctx, "p0"))
	require.Equal(t, expectedRollups(t, b.store), readRollups(t, b.store), "after a persona is deleted")
	_, err = b.store.DB().NewRaw(`DELETE FROM personas.rating_daily WHERE day = (SELECT min(day) FROM personas.rating_daily)`).Exec(ctx)
	require.NoError(t, err)
	_, err = b.store.DB().NewRaw(`DELETE FROM personas.action_daily WHERE day = (SELECT min(day) FROM personas.action_daily)`).Exec(ctx)
	require.NoError(t, err)
	got := readRollups(t, b.store)
	require.NotEmpty(t, got.FleetActions)
	require.Equal(t, fleetOf(got), got.FleetRatings, "fleet ratings follow deleted per-persona rows")
	var perPersona []struct {
		Day      time.Time `bun:"day"`
		ToolName string
		V        string `bun:"v"`
	}
	require.NoError(t, b.store.DB().NewRaw(`SELECT day, tool_name, concat_ws(' ', sum(calls), sum(errors), sum(latency_n), sum(latency_sum),
       '[' || array_to_string(personas.hist_sum(latency_hist), ' ') || ']') AS v
  FROM personas.action_daily GROUP BY 1, 2`).Scan(ctx, &perPersona))
	wantActs := map[string]string{}
	for _, r := range perPersona {
		wantActs[r.Day.Format(time.DateOnly)+"|"+r.ToolName] = r.V
	}
	require.Equal(t, wantActs, got.FleetActions, "fleet tool figures follow deleted per-persona rows")

	_, err = b.store.BackfillRollups(ctx, 0, nil)
	require.ErrorContains(t, err, "batchSize")
}

// TestErrorGroupsBounded: at most MaxErrorGroups distinct messages per
// day, tool and persona; the rest count in one "other" group.
func TestErrorGroupsBounded(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	createPersona(t, b.store, "p", personas.CadenceDaily)
	for batch := range 3 {
		rows := make([]personas.ActionInput, 15)
		for i := range rows {
			// Letters, not digits, so every message is its own group.
			msg := fmt.Sprintf("failure %c%c", 'a'+batch, 'a'+i)
			rows[i] = personas.ActionInput{TickID: fmt.Sprintf("t%d", batch), ToolName: "todo.create", Result: personas.ResultError, ErrorMessage: &msg}
		}
		_, err := b.store.InsertActions(ctx, "p", rows, personas.WriteOptions{})
		require.NoError(t, err)
	}
	var groups []struct {
		MsgHash string
		N       int
	}
	require.NoError(t, b.store.DB().NewRaw(`SELECT msg_hash, n FROM personas.action_error_daily`).Scan(ctx, &groups))
	total, named := 0, 0
	for _, g := range groups {
		total += g.N
		if g.MsgHash != "" {
			named++
		}
	}
	require.Equal(t, 45, total)
	require.Equal(t, personas.MaxErrorGroups, named)
	require.Len(t, groups, personas.MaxErrorGroups+1)
}
