package personas_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mana/personas/pkg/personas"
	"github.com/mana/personas/pkg/personas/personastest"
)

// The store's share of a request, without HTTP: go test -run '^$' -bench . -benchmem ./pkg/personas
func BenchmarkInsertActions(b *testing.B) {
	s := personastest.New(b)
	ctx := context.Background()
	for i := range 16 {
		if _, err := s.UpsertPersona(ctx, persona(fmt.Sprintf("p%02d", i), personas.CadenceDaily)); err != nil {
			b.Fatal(err)
		}
	}
	var n atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			if _, err := s.InsertActions(ctx, fmt.Sprintf("p%02d", i%16), actions(fmt.Sprintf("t%d", i), 20), personas.WriteOptions{}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkIngestRollups: ingest throughput with the daily rollups kept in
// the insert's statement (issue 11: at least 90% of ingest without them)
// against the same statement without them, on one database, 64 personas,
// 8 writers per CPU. A batch is 20 tool calls over 5 tools, 2 of them
// errors, with latencies. Throughput with ÷ without is the ratio of the
// ns/op figures, without ÷ with.
func BenchmarkIngestRollups(b *testing.B) {
	s := personastest.New(b)
	ctx := context.Background()
	const npersonas = 64
	for i := range npersonas {
		if _, err := s.UpsertPersona(ctx, persona(fmt.Sprintf("r%02d", i), personas.CadenceDaily)); err != nil {
			b.Fatal(err)
		}
	}
	tools := []string{"todo.create", "todo.list", "journal.write", "notes.search", "calendar.list"}
	batch := func(tick string) []personas.ActionInput {
		out := make([]personas.ActionInput, 20)
		for i := range out {
			out[i] = personas.ActionInput{TickID: tick, Seq: ptr(i), ToolName: tools[i%len(tools)], Result: personas.ResultOK, LatencyMs: ptr(20 + 37*i)}
			if i%10 == 3 {
				out[i].Result, out[i].ErrorMessage = personas.ResultError, ptr(fmt.Sprintf("timeout after %d ms", 1000+i))
			}
		}
		return out
	}
	var n atomic.Int64
	run := func(q string) error {
		i := n.Add(1)
		st, err := s.Bind("insertActions", personas.BindInput{PersonaID: fmt.Sprintf("r%02d", i%npersonas), Actions: batch(fmt.Sprintf("t%d", i))})
		if err != nil {
			return err
		}
		var found, written int
		var stale bool
		args := append([]any{pgx.QueryExecModeCacheStatement}, st.Args...)
		if err := s.DB().DB.QueryRowContext(ctx, q, args...).Scan(&found, &written, &stale); err != nil {
			return err
		}
		if written != 20 {
			return fmt.Errorf("written %d of 20", written)
		}
		return nil
	}
	// Warm up: open the pool's connections and prepare both statements on
	// each, so neither side pays for backends starting.
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			for _, rollups := range []bool{true, false} {
				for range 4 {
					if err := run(personas.IngestStatement(rollups)); err != nil {
						b.Error(err)
					}
				}
			}
		})
	}
	wg.Wait()
	for _, rollups := range []bool{true, false} {
		name := "with-rollups"
		if !rollups {
			name = "without-rollups"
		}
		q := personas.IngestStatement(rollups)
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetParallelism(8)
			cpu0 := backendCPU(b, s)
			b.ResetTimer()
			defer func() {
				b.StopTimer()
				// PostgreSQL's CPU per batch: unlike ns/op, it hardly moves
				// with what else runs on a shared machine.
				b.ReportMetric(float64((backendCPU(b, s)-cpu0).Microseconds())/float64(b.N), "pg-cpu-us/op")
			}()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := run(q); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}

// backendCPU is the CPU time (user + system) of the PostgreSQL backends
// serving the store's database, from /proc: the server runs on this
// machine in tests and benchmarks.
func backendCPU(b *testing.B, s *personas.Store) time.Duration {
	b.Helper()
	var pids []int
	err := s.DB().NewRaw(`SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND backend_type = 'client backend'`).
		Scan(context.Background(), &pids)
	if err != nil {
		b.Fatal(err)
	}
	var total time.Duration
	for _, pid := range pids {
		raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			b.Fatalf("PostgreSQL backend %d: %v (the benchmark reads its CPU from /proc)", pid, err)
		}
		// Fields after the command name (which may hold spaces) start at ")".
		f := strings.Fields(string(raw[bytes.LastIndexByte(raw, ')')+2:]))
		utime, err1 := strconv.ParseInt(f[11], 10, 64)
		stime, err2 := strconv.ParseInt(f[12], 10, 64)
		if err1 != nil || err2 != nil {
			b.Fatal(err1, err2)
		}
		total += time.Duration(utime+stime) * 10 * time.Millisecond // clock ticks of 10 ms
	}
	return total
}

func BenchmarkDue(b *testing.B) {
	s := personastest.New(b, personas.WithClock(func() time.Time { return monday }))
	ctx := context.Background()
	for i := range 200 {
		if _, err := s.UpsertPersona(ctx, persona(fmt.Sprintf("d%03d", i), personas.CadenceDaily)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if res, err := s.Due(ctx, ptr(100)); err != nil || len(res.Personas) != 100 {
			b.Fatal(err, len(res.Personas))
		}
	}
}
