package personas_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mana/personas/pkg/personas"
	"github.com/mana/personas/pkg/personas/personastest"
)

// The measurement of ingest while prune deletes (not a timed assertion):
//
//	go test -count=1 -run TestPruneUnderIngest -v ./pkg/personas -prune.rows 200000
//
// It stores prune.rows old actions (with their feedback's share and hourly
// buckets), then runs prune.writers writers of 20-action batches for
// prune.for without prune and again while prune deletes everything old, and
// logs both sides' throughput and latency and prune's rate.
var (
	pruneRows    = flag.Int("prune.rows", 0, "TestPruneUnderIngest: old actions to prune (0: skip the measurement)")
	pruneWriters = flag.Int("prune.writers", 4, "TestPruneUnderIngest: concurrent ingest writers")
	pruneFor     = flag.Duration("prune.for", 10*time.Second, "TestPruneUnderIngest: length of the baseline phase")
	pruneBatch   = flag.Int("prune.batch", personas.DefaultPruneBatch, "TestPruneUnderIngest: prune batch size")
	pruneDuty    = flag.Float64("prune.duty", personas.DefaultPruneDuty, "TestPruneUnderIngest: prune's duty (share of wall time in its deletes; 1: back to back)")
	pruneMD      = flag.String("prune.md", "", "TestPruneUnderIngest: also write the figures as BENCHMARKS.md's section to this file (make bench-prune)")
)

type ingestFigures struct {
	batches  int64
	elapsed  time.Duration
	p50, p99 time.Duration
	max      time.Duration
}

func (f ingestFigures) String() string {
	return fmt.Sprintf("%d batches in %s = %.0f batches/s (%.0f actions/s), p50 %s, p99 %s, max %s",
		f.batches, f.elapsed.Round(time.Millisecond), float64(f.batches)/f.elapsed.Seconds(),
		20*float64(f.batches)/f.elapsed.Seconds(), f.p50.Round(10*time.Microsecond), f.p99.Round(10*time.Microsecond),
		f.max.Round(10*time.Microsecond))
}

// ingest runs writers until stop is closed.
func ingest(t *testing.T, s *personas.Store, ids []string, writers int, phase string, stop <-chan struct{}) ingestFigures {
	t.Helper()
	var wg sync.WaitGroup
	lat := make([][]time.Duration, writers)
	var n atomic.Int64
	start := time.Now()
	for w := range writers {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				id := ids[(w*7919+i)%len(ids)]
				t0 := time.Now()
				_, err := s.InsertActions(context.Background(), id, actions(fmt.Sprintf("%s-w%d-%d", phase, w, i), 20), personas.WriteOptions{})
				if err != nil {
					t.Error(err)
					return
				}
				lat[w] = append(lat[w], time.Since(t0))
				n.Add(1)
			}
		})
	}
	wg.Wait()
	all := slices.Concat(lat...)
	slices.Sort(all)
	f := ingestFigures{batches: n.Load(), elapsed: time.Since(start)}
	if len(all) > 0 {
		f.p50, f.p99, f.max = all[len(all)/2], all[len(all)*99/100], all[len(all)-1]
	}
	return f
}

func TestPruneUnderIngest(t *testing.T) {
	if *pruneRows == 0 {
		t.Skip("a measurement: run with -prune.rows 200000")
	}
	ctx := context.Background()
	s := personastest.New(t)
	const nPersonas = 200
	ids := make([]string, nPersonas)
	for i := range ids {
		ids[i] = fmt.Sprintf("p%03d", i)
		_, err := s.UpsertPersona(ctx, persona(ids[i], personas.CadenceDaily))
		require.NoError(t, err)
	}
	// Old rows: actions spread over days 100–130 ago, a rating per 10
	// actions, an hourly bucket per persona and hour.
	t0 := time.Now()
	_, err := s.DB().NewRaw(`
WITH r AS (
    SELECT g, 'p' || lpad((g % 200)::text, 3, '0') AS pid,
           now() - interval '100 days' - (g % 720) * interval '1 hour' AS at
      FROM generate_series(0, ?0::integer - 1) AS g
), a AS (
    INSERT INTO personas.persona_actions (id, persona_id, tick_id, seq, tool_name, result, latency_ms, created_at)
    SELECT 'old-' || g || '-todo.create', pid, 'old-' || (g / 20), g, 'todo.create', 'ok', 120, at FROM r
), f AS (
    INSERT INTO personas.persona_feedback (id, persona_id, tick_id, module, rating, created_at)
    SELECT 'old-' || g || '-todo', pid, 'old-' || (g / 20), 'todo', 1 + g % 5, at FROM r WHERE g % 10 = 0
)
INSERT INTO personas.persona_activity_hourly (persona_id, hour, actions)
SELECT pid, date_trunc('hour', at), count(*) FROM r GROUP BY 1, 2`, *pruneRows).Exec(ctx)
	require.NoError(t, err)
	for _, table := range []string{"persona_actions", "persona_feedback"} {
		_, err = s.DB().ExecContext(ctx, `VACUUM ANALYZE personas.`+table)
		require.NoError(t, err)
	}
	seedTook := time.Since(t0)
	t.Logf("seeded %d old actions (+%d ratings) over %d personas in %s", *pruneRows, *pruneRows/10, nPersonas, seedTook.Round(time.Millisecond))

	// Baseline: ingest alone.
	stop := make(chan struct{})
	time.AfterFunc(*pruneFor, func() { close(stop) })
	base := ingest(t, s, ids, *pruneWriters, "base", stop)
	t.Logf("ingest alone (%d writers):       %s", *pruneWriters, base)

	// Ingest while prune deletes every old row; raw window 90 days,
	// rollups 730 (the old buckets stay).
	raw, rollup := personas.RetentionCutoffs(time.Now(), 90, 730)
	stop = make(chan struct{})
	var res personas.PruneResult
	var pruneErr error
	var pruneTook time.Duration
	go func() {
		defer close(stop)
		p0 := time.Now()
		res, pruneErr = s.Prune(ctx, personas.PruneOptions{RawBefore: raw, RollupBefore: rollup, BatchSize: *pruneBatch, Duty: *pruneDuty})
		pruneTook = time.Since(p0)
	}()
	during := ingest(t, s, ids, *pruneWriters, "during", stop)
	require.NoError(t, pruneErr)
	require.Equal(t, int64(*pruneRows), res.Rows("personas.persona_actions"))
	t.Logf("ingest while pruning:            %s", during)
	t.Logf("prune: %d rows (%d actions, %d ratings) in %s = %.0f rows/s, batch %d, duty %g (paused %s: %.0f rows/s while deleting)",
		res.Total, res.Rows("personas.persona_actions"), res.Rows("personas.persona_feedback"),
		pruneTook.Round(time.Millisecond), float64(res.Total)/pruneTook.Seconds(), *pruneBatch, *pruneDuty,
		res.Paused.Round(time.Millisecond), float64(res.Total)/(pruneTook-res.Paused).Seconds())
	// Alone again: on a shared machine the two "alone" phases show the noise.
	stop = make(chan struct{})
	time.AfterFunc(*pruneFor, func() { close(stop) })
	after := ingest(t, s, ids, *pruneWriters, "after", stop)
	t.Logf("ingest alone again:              %s", after)
	rate := func(f ingestFigures) float64 { return float64(f.batches) / f.elapsed.Seconds() }
	alone := (rate(base) + rate(after)) / 2
	t.Logf("ingest rate while pruning: %.0f%% of alone (mean of both alone phases); p99 %s vs %s and %s alone",
		100*rate(during)/alone, during.p99.Round(time.Millisecond), base.p99.Round(time.Millisecond), after.p99.Round(time.Millisecond))
	if *pruneMD == "" {
		return
	}
	var b strings.Builder
	fmt.Fprintf(&b, "## Prune under ingest (issue 13 A)\n\n")
	fmt.Fprintf(&b, "Produced by `make bench-prune` on %s (%d CPUs, %s, shared with other work), that is:\n\n```\n%s\n```\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), runtime.NumCPU(), runtime.Version(),
		fmt.Sprintf("go test -count=1 -timeout 60m -run TestPruneUnderIngest -v ./pkg/personas -prune.rows %d -prune.writers %d -prune.for %s -prune.batch %d -prune.duty %g",
			*pruneRows, *pruneWriters, *pruneFor, *pruneBatch, *pruneDuty))
	fmt.Fprintf(&b, "%d old actions (and %d ratings, %d personas) seeded in SQL in %s; %d writers of 20-action batches\n"+
		"(`Store.InsertActions`) run alone for %s, then while `Store.Prune` deletes every old row (batch %d, duty %g:\n"+
		"after a batch that took d it waits d×(1/duty − 1)), then alone again.\n"+
		"Not a timed assertion: the test checks only that prune deleted every old action. The seed and three phases take\n"+
		"a minute or more, so `make bench` does not call it.\n\n",
		*pruneRows, *pruneRows/10, nPersonas, seedTook.Round(time.Second), *pruneWriters, *pruneFor, *pruneBatch, *pruneDuty)
	fmt.Fprintf(&b, "| ingest phase | batches | duration | batches/s | actions/s | p50 | p99 | max |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, r := range []struct {
		name string
		f    ingestFigures
	}{{"alone (before)", base}, {"while pruning", during}, {"alone (after)", after}} {
		fmt.Fprintf(&b, "| %s | %d | %s | %.0f | %.0f | %s | %s | %s |\n", r.name, r.f.batches, r.f.elapsed.Round(time.Second),
			rate(r.f), 20*rate(r.f), r.f.p50.Round(10*time.Microsecond), r.f.p99.Round(10*time.Microsecond), r.f.max.Round(10*time.Microsecond))
	}
	fmt.Fprintf(&b, "\nIngest while pruning: **%.0f%% of the alone rate** (mean of both alone phases).\n", 100*rate(during)/alone)
	fmt.Fprintf(&b, "Prune: %d rows deleted (%d actions, %d ratings) in %s = **%.0f rows/s**; %s of it in its deletes\n"+
		"(%.0f rows/s while deleting), %s paused.\n",
		res.Total, res.Rows("personas.persona_actions"), res.Rows("personas.persona_feedback"),
		pruneTook.Round(time.Second), float64(res.Total)/pruneTook.Seconds(), (pruneTook - res.Paused).Round(time.Second),
		float64(res.Total)/(pruneTook-res.Paused).Seconds(), res.Paused.Round(time.Second))
	require.NoError(t, os.WriteFile(*pruneMD, []byte(b.String()), 0o600))
}
