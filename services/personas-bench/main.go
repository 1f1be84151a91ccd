// Command personas-bench measures personas-internal against raw PostgreSQL running
// the same SQL, and writes the figures to a Markdown file (make bench).
//
// It builds a database of its own (personas_bench, dropped first) on the
// server in DATABASE_URL, seeds -personas personas (of which -due are due)
// and -actions actions, starts the service binary against it, then for each
// scenario and concurrency runs the service over HTTP and the store's own
// statement over pgx, for the same time. Load generator, service and
// PostgreSQL share this machine's CPUs: compare the ratios, not the
// absolute figures, across machines.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/mana/personas/pkg/personas"
)

const (
	benchDB  = "personas_bench"
	benchKey = "bench-service-key-0123456789abcdef"
)

type options struct {
	out        string
	bin        string
	personas   int
	due        int
	actions    int
	duration   time.Duration
	conc       []int
	skipSeed   bool
	dueLimit   int
	claimLimit int
	only       string
	rounds     int
}

func main() {
	var o options
	var conc string
	flag.StringVar(&o.out, "out", "BENCHMARKS.md", "Markdown file to write")
	flag.StringVar(&o.bin, "bin", "bin/personas-internal", "service binary")
	flag.IntVar(&o.personas, "personas", 10_000, "personas to seed")
	flag.IntVar(&o.due, "due", 1_000, "of which due")
	flag.IntVar(&o.actions, "actions", 1_000_000, "actions to seed")
	flag.DurationVar(&o.duration, "duration", 5*time.Second, "time per run (one side, one round)")
	flag.StringVar(&conc, "concurrency", "1,32", "comma-separated connection counts")
	flag.BoolVar(&o.skipSeed, "skip-seed", false, "reuse an existing personas_bench database")
	flag.IntVar(&o.dueLimit, "due-limit", 1000, "limit of the large GET /due scenario")
	flag.IntVar(&o.claimLimit, "claim-limit", 5, "limit passed to claims")
	flag.StringVar(&o.only, "only", "", "run only scenarios whose name contains this")
	flag.IntVar(&o.rounds, "rounds", 3, "rounds per scenario, alternating which side goes first")
	flag.Parse()
	for _, c := range strings.Split(conc, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(c))
		if err != nil || n < 1 {
			fatalf("bad -concurrency %q", conc)
		}
		o.conc = append(o.conc, n)
	}
	if err := run(context.Background(), o); err != nil {
		fatalf("%v", err)
	}
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "personas-bench: "+format+"\n", args...)
	os.Exit(1)
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, time.Now().Format("15:04:05 ")+format+"\n", args...)
}

func run(ctx context.Context, o options) error {
	server := os.Getenv("DATABASE_URL")
	if server == "" {
		return errors.New("DATABASE_URL is not set (make bench sets it through deploy/scripts/db.sh)")
	}
	dsn, err := withDatabase(server, benchDB)
	if err != nil {
		return err
	}
	if !o.skipSeed {
		if err := seed(ctx, server, dsn, o); err != nil {
			return fmt.Errorf("seed: %w", err)
		}
	}
	pcfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return err
	}
	// The same pool size as the service's (PERSONAS_DB_MAX_CONNS below).
	pcfg.MaxConns = 32
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return err
	}
	defer pool.Close()

	svc, err := startService(ctx, o.bin, dsn)
	if err != nil {
		return err
	}
	defer svc.stop()

	var ids []string
	rows, err := pool.Query(ctx, `SELECT user_id FROM personas.personas WHERE last_active_at IS NOT NULL ORDER BY user_id`)
	if err != nil {
		return err
	}
	ids, err = pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}

	b := &bench{o: o, pool: pool, base: svc.url, activeIDs: ids,
		hc: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256, MaxConnsPerHost: 256}, Timeout: 30 * time.Second}}
	var results []result
	for _, sc := range b.scenarios() {
		if o.only != "" && !strings.Contains(sc.name, o.only) {
			continue
		}
		if sc.reset == nil {
			sc.reset = b.resetLeases
		}
		concs := o.conc
		if sc.concs != nil {
			concs = sc.concs
		}
		for _, c := range concs {
			var sv, rw samples
			// Alternate the sides round by round (S R, R S, ...), so that drift
			// on the shared machine (checkpoints, autovacuum) hits both alike.
			for round := range o.rounds {
				sides := []bool{true, false}
				if round%2 == 1 {
					sides = []bool{false, true}
				}
				for _, isService := range sides {
					if err := sc.reset(ctx); err != nil {
						return err
					}
					if !isService {
						logf("%s c=%d raw (round %d)", sc.name, c, round+1)
						if err := rw.run(ctx, b, c, sc.budget, sc.raw); err != nil {
							return fmt.Errorf("%s raw: %w", sc.name, err)
						}
						continue
					}
					logf("%s c=%d service (round %d)", sc.name, c, round+1)
					cpu0, err := svc.cpuTime()
					if err != nil {
						return err
					}
					if err := sv.run(ctx, b, c, sc.budget, sc.service); err != nil {
						return fmt.Errorf("%s service: %w", sc.name, err)
					}
					cpu1, err := svc.cpuTime()
					if err != nil {
						return err
					}
					sv.cpu += cpu1 - cpu0
				}
			}
			results = append(results, result{scenario: sc.name, conc: c, svc: sv.stats(), raw: rw.stats()})
		}
	}
	peak, err := svc.peakRSS()
	if err != nil {
		return err
	}
	plan, err := explainDue(ctx, pool)
	if err != nil {
		return err
	}
	return writeReport(ctx, o, pool, results, peak, plan)
}

// seed builds the bench database from scratch with server-side SQL.
func seed(ctx context.Context, server, dsn string, o options) error {
	admin, err := pgx.Connect(ctx, server)
	if err != nil {
		return err
	}
	defer admin.Close(ctx)
	logf("creating %s", benchDB)
	if _, err := admin.Exec(ctx, `DROP DATABASE IF EXISTS `+benchDB+` WITH (FORCE)`); err != nil {
		return err
	}
	if _, err := admin.Exec(ctx, `CREATE DATABASE `+benchDB); err != nil {
		return err
	}
	db, err := personas.OpenDB(dsn, personas.PoolConfig{MaxConns: 2})
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := personas.Migrate(ctx, db); err != nil {
		return err
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	logf("seeding %d personas (%d due) and %d actions", o.personas, o.due, o.actions)
	steps := []struct {
		sql  string
		args []any
	}{
		// Due personas have never been active; the rest were active within
		// the last 23 hours (daily cadence: not due).
		{`INSERT INTO personas.personas (user_id, email, name, archetype, system_prompt, module_mix, tick_cadence, last_active_at, created_at)
SELECT 'bench-' || lpad(i::text, 6, '0'), 'persona.bench' || i || '@mana.test', 'Bench ' || i,
       (ARRAY['adhd-student','ceo-busy','creative-parent','solo-dev','researcher','freelancer','overwhelmed-newbie'])[1 + i % 7],
       'Du bist eine Testperson Nummer ' || i || '. ' || repeat('Du nutzt Mana jeden Tag für Aufgaben, Notizen und dein Journal. ', 5),
       '{"todo":0.4,"notes":0.3,"journal":0.3}', 'daily',
       CASE WHEN i <= $2 THEN NULL ELSE now() - ((i % 1380) + 1) * interval '1 minute' END,
       now() - i * interval '1 second'
  FROM generate_series(1, $1) AS i`, []any{o.personas, o.due}},
		{`INSERT INTO personas.persona_actions (id, persona_id, tick_id, seq, tool_name, input_hash, result, error_message, latency_ms, created_at)
SELECT 'seed-' || (g / 20) || '-' || (g % 20) || '-tool' || (g % 13),
       'bench-' || lpad((1 + g % $2)::text, 6, '0'), 'seed-' || (g / 20), g % 20, 'tool' || (g % 13),
       md5(g::text), CASE WHEN g % 17 = 0 THEN 'error' ELSE 'ok' END,
       CASE WHEN g % 17 = 0 THEN 'tool failed' END, g % 900,
       now() - (g % 20160) * interval '1 minute'
  FROM generate_series(0, $1 - 1) AS g`, []any{o.actions, o.personas}},
		{`INSERT INTO personas.persona_activity_hourly (persona_id, hour, actions)
SELECT persona_id, date_trunc('hour', created_at), count(*) FROM personas.persona_actions GROUP BY 1, 2`, nil},
		{`VACUUM ANALYZE personas.personas`, nil},
		{`VACUUM ANALYZE personas.persona_actions`, nil},
		{`VACUUM ANALYZE personas.persona_activity_hourly`, nil},
	}
	for _, st := range steps {
		if _, err := conn.Exec(ctx, st.sql, st.args...); err != nil {
			return fmt.Errorf("%.60s: %w", st.sql, err)
		}
	}
	return nil
}

type service struct {
	cmd *exec.Cmd
	url string
	log *os.File
}

func startService(ctx context.Context, bin, dsn string) (*service, error) {
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	_ = ln.Close()
	logFile, err := os.CreateTemp("", "personas-internal-bench-*.log")
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, bin)
	cmd.Env = append(os.Environ(), "PORT="+strconv.Itoa(port), "DATABASE_URL="+dsn,
		"MANA_SERVICE_KEY="+benchKey, "PERSONAS_AUTO_MIGRATE=false", "LOG_LEVEL="+logLevel(), "NODE_ENV=production",
		"PERSONAS_DB_MAX_CONNS=32",
		// As in its Kubernetes pod: the CPU limit there is 500m, from which
		// Go (1.25+) derives GOMAXPROCS=1.
		"GOMAXPROCS=1")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s (run make build): %w", bin, err)
	}
	s := &service{cmd: cmd, url: fmt.Sprintf("http://127.0.0.1:%d", port), log: logFile}
	for range 100 {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.url+"/readyz", nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s, nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.stop()
	return nil, fmt.Errorf("service did not become ready; log: %s", logFile.Name())
}

func (s *service) stop() {
	_ = s.cmd.Process.Signal(os.Interrupt)
	_ = s.cmd.Wait()
	_ = s.log.Close()
	_ = os.Remove(s.log.Name())
}

// cpuTime reads the service's CPU time so far (user + system) from
// /proc/PID/stat, in clock ticks of 10 ms.
func (s *service) cpuTime() (time.Duration, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", s.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command name (which may hold spaces) start at ")".
	rest := string(raw[strings.LastIndexByte(string(raw), ')')+2:])
	f := strings.Fields(rest)
	if len(f) < 13 {
		return 0, errors.New("short /proc stat")
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond, nil
}

// peakRSS reads the service's high-water resident set size (VmHWM).
func (s *service) peakRSS() (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb * 1024, err
		}
	}
	return 0, errors.New("VmHWM not found")
}

type bench struct {
	o         options
	pool      *pgxpool.Pool
	hc        *http.Client
	base      string
	activeIDs []string // personas that are not due: actions/feedback go there, so the due set stays put
	seq       atomic.Int64
}

// op performs one request (or statement) and reports failure.
type op func(ctx context.Context) error

type scenario struct {
	name    string
	concs   []int // overrides -concurrency
	budget  int   // max operations per run (0: only the duration bounds it)
	service op
	raw     op
	reset   func(ctx context.Context) error
}

// pgSQL returns the store's statement exactly as the store sends it.
func pgSQL(name string) string {
	sql, ok := personas.Statement(name)
	if !ok {
		panic("unknown statement " + name)
	}
	return sql
}

func (b *bench) scenarios() []scenario {
	insertActions, insertFeedback, dueSQL, claimSQL := pgSQL("insertActions"), pgSQL("insertFeedback"), pgSQL("due"), pgSQL("claim")
	// Claims take personas out of the due set: bound a run so it never runs dry.
	claimBudget := b.o.due / b.o.claimLimit * 9 / 10
	return []scenario{
		{
			name: "POST actions (20 rows)",
			service: func(ctx context.Context) error {
				id, tick := b.target()
				return b.post(ctx, "/"+id+"/actions", actionsBody(tick))
			},
			raw: func(ctx context.Context) error {
				id, tick := b.target()
				now := time.Now().UTC()
				var found, written int
				return b.pool.QueryRow(ctx, insertActions, id, now, actionsRows(tick), now.Truncate(time.Hour)).Scan(&found, &written)
			},
		},
		{
			name: "POST feedback (4 rows)",
			service: func(ctx context.Context) error {
				id, tick := b.target()
				return b.post(ctx, "/"+id+"/feedback", feedbackBody(tick))
			},
			raw: func(ctx context.Context) error {
				id, tick := b.target()
				var found, written int
				return b.pool.QueryRow(ctx, insertFeedback, id, time.Now().UTC(), feedbackRows(tick)).Scan(&found, &written)
			},
		},
		b.dueScenario(dueSQL, 0, nil),
		b.dueScenario(dueSQL, b.o.dueLimit, []int{1}),
		{
			name:   fmt.Sprintf("POST /due/claim (limit %d)", b.o.claimLimit),
			budget: claimBudget,
			reset:  b.resetLeases,
			service: func(ctx context.Context) error {
				return b.post(ctx, "/due/claim", fmt.Sprintf(`{"runnerId":"bench","limit":%d,"leaseSeconds":600}`, b.o.claimLimit))
			},
			raw: func(ctx context.Context) error {
				now := time.Now().UTC()
				wd := now.Weekday()
				rows, err := b.pool.Query(ctx, claimSQL, now, now.Add(-time.Hour), now.Add(-24*time.Hour),
					wd != time.Saturday && wd != time.Sunday, b.o.claimLimit, "bench", now.Add(10*time.Minute))
				if err != nil {
					return err
				}
				rows.Close()
				return rows.Err()
			},
		},
	}
}

// resetLeases returns every claimed persona to the due set.
func (b *bench) resetLeases(ctx context.Context) error {
	_, err := b.pool.Exec(ctx, `UPDATE personas.personas SET lease_owner = NULL, lease_expires_at = NULL WHERE lease_owner IS NOT NULL`)
	return err
}

// dueScenario lists due personas; limit 0 is the server's default (100).
func (b *bench) dueScenario(dueSQL string, limit int, concs []int) scenario {
	path, rawLimit, label := "/due", personas.DefaultDueLimit, "default limit 100"
	if limit > 0 {
		path, rawLimit, label = "/due?limit="+strconv.Itoa(limit), limit, "limit "+strconv.Itoa(limit)
	}
	return scenario{
		name:  fmt.Sprintf("GET /due (%s, %d due)", label, b.o.due),
		concs: concs,
		service: func(ctx context.Context) error {
			return b.get(ctx, path)
		},
		raw: func(ctx context.Context) error {
			now := time.Now().UTC()
			wd := now.Weekday()
			rows, err := b.pool.Query(ctx, dueSQL, now, now.Add(-time.Hour), now.Add(-24*time.Hour), wd != time.Saturday && wd != time.Sunday, rawLimit)
			if err != nil {
				return err
			}
			for rows.Next() {
				var id, email, arch, prompt, cadence string
				var mix json.RawMessage
				var last *time.Time
				if err := rows.Scan(&id, &email, &arch, &prompt, &mix, &cadence, &last); err != nil {
					return err
				}
			}
			return rows.Err()
		},
	}
}

func (b *bench) target() (id, tick string) {
	n := b.seq.Add(1)
	return b.activeIDs[rand.IntN(len(b.activeIDs))], fmt.Sprintf("bench-%d-%d", time.Now().UnixNano(), n)
}

var tools = []string{"todo.create", "todo.list", "journal.write", "notes.search", "calendar.list"}

func actionsBody(tick string) string {
	var buf bytes.Buffer
	buf.WriteString(`{"actions":[`)
	for i := range 20 {
		if i > 0 {
			buf.WriteByte(',')
		}
		fmt.Fprintf(&buf, `{"tickId":%q,"seq":%d,"toolName":%q,"inputHash":"%032x","result":"ok","latencyMs":%d}`, tick, i, tools[i%len(tools)], i, 20+i)
	}
	buf.WriteString(`]}`)
	return buf.String()
}

// actionsRows is what the store sends as ?2 for the same batch.
func actionsRows(tick string) string {
	type row struct {
		ID        string `json:"id"`
		TickID    string `json:"tick_id"`
		Seq       int    `json:"seq"`
		ToolName  string `json:"tool_name"`
		InputHash string `json:"input_hash"`
		Result    string `json:"result"`
		LatencyMs int    `json:"latency_ms"`
	}
	rows := make([]row, 20)
	for i := range rows {
		rows[i] = row{ID: personas.ActionID(tick, i, tools[i%len(tools)]), TickID: tick, Seq: i, ToolName: tools[i%len(tools)],
			InputHash: fmt.Sprintf("%032x", i), Result: "ok", LatencyMs: 20 + i}
	}
	raw, _ := json.Marshal(rows)
	return string(raw)
}

var modules = []string{"todo", "journal", "notes", "mood"}

func feedbackBody(tick string) string {
	parts := make([]string, len(modules))
	for i, m := range modules {
		parts[i] = fmt.Sprintf(`{"tickId":%q,"module":%q,"rating":%d,"notes":"Hat gut funktioniert."}`, tick, m, 1+i)
	}
	return `{"feedback":[` + strings.Join(parts, ",") + `]}`
}

func feedbackRows(tick string) string {
	parts := make([]string, len(modules))
	for i, m := range modules {
		parts[i] = fmt.Sprintf(`{"id":%q,"tick_id":%q,"module":%q,"rating":%d,"notes":"Hat gut funktioniert."}`, personas.FeedbackID(tick, m), tick, m, 1+i)
	}
	return "[" + strings.Join(parts, ",") + "]"
}

func (b *bench) post(ctx context.Context, path, body string) error {
	return b.do(ctx, http.MethodPost, path, strings.NewReader(body))
}

func (b *bench) get(ctx context.Context, path string) error {
	return b.do(ctx, http.MethodGet, path, nil)
}

func (b *bench) do(ctx context.Context, method, path string, body io.Reader) error {
	req, err := http.NewRequestWithContext(ctx, method, b.base+"/api/v1/personas/internal"+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("X-Service-Key", benchKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := b.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: status %d", method, path, resp.StatusCode)
	}
	return nil
}

type stats struct {
	cpuPerOp time.Duration // service process CPU (user+system) per request
	n        int
	elapsed  time.Duration
	p50, p99 time.Duration
}

func (s stats) rps() float64 { return float64(s.n) / s.elapsed.Seconds() }

// samples pools the runs of one side of one scenario.
type samples struct {
	lat     []time.Duration
	elapsed time.Duration
	ops     int           // including warm-up, for CPU per request
	cpu     time.Duration // service process CPU over the runs
}

func (s *samples) run(ctx context.Context, b *bench, c, budget int, fn op) error {
	lat, elapsed, warm, err := b.load(ctx, c, budget, fn)
	if err != nil {
		return err
	}
	s.lat = append(s.lat, lat...)
	s.elapsed += elapsed
	s.ops += len(lat) + warm
	return nil
}

func (s *samples) stats() stats {
	all := slices.Clone(s.lat)
	slices.Sort(all)
	pct := func(p float64) time.Duration { return all[min(len(all)-1, int(float64(len(all))*p))] }
	st := stats{n: len(all), elapsed: s.elapsed, p50: pct(0.50), p99: pct(0.99)}
	if s.ops > 0 {
		st.cpuPerOp = s.cpu / time.Duration(s.ops)
	}
	return st
}

// load runs fn from c workers until the duration (or the budget) is spent,
// after a few warm-up calls; it returns the measured latencies.
func (b *bench) load(ctx context.Context, c, budget int, fn op) ([]time.Duration, time.Duration, int, error) {
	warm := min(c, 4)
	for range warm {
		if err := fn(ctx); err != nil {
			return nil, 0, 0, err
		}
	}
	if budget > 0 {
		budget -= warm
	}
	deadline := time.Now().Add(b.o.duration)
	var issued atomic.Int64
	lat := make([][]time.Duration, c)
	errs := make([]error, c)
	var wg sync.WaitGroup
	start := time.Now()
	for w := range c {
		wg.Go(func() {
			for time.Now().Before(deadline) {
				if budget > 0 && issued.Add(1) > int64(budget) {
					return
				}
				t0 := time.Now()
				if err := fn(ctx); err != nil {
					errs[w] = err
					return
				}
				lat[w] = append(lat[w], time.Since(t0))
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err := errors.Join(errs...); err != nil {
		return nil, 0, 0, err
	}
	all := slices.Concat(lat...)
	if len(all) == 0 {
		return nil, 0, 0, errors.New("no operation completed")
	}
	return all, elapsed, warm, nil
}

type result struct {
	scenario string
	conc     int
	svc, raw stats
}

func explainDue(ctx context.Context, pool *pgxpool.Pool) (string, error) {
	now := time.Now().UTC()
	rows, err := pool.Query(ctx, "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) "+pgSQL("due"),
		now, now.Add(-time.Hour), now.Add(-24*time.Hour), true, 100)
	if err != nil {
		return "", err
	}
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	return strings.Join(lines, "\n"), err
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f", float64(d.Microseconds())/1000) }

func writeReport(ctx context.Context, o options, pool *pgxpool.Pool, results []result, peak int64, plan string) error {
	var pgVersion string
	if err := pool.QueryRow(ctx, `SHOW server_version`).Scan(&pgVersion); err != nil {
		return err
	}
	cpu := "unknown CPU"
	if raw, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(raw), "\n") {
			if v, ok := strings.CutPrefix(line, "model name"); ok {
				cpu = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# Benchmarks\n\n")
	fmt.Fprintf(&b, "Produced by `make bench` (that is: `go run ./services/personas-bench -out BENCHMARKS.md`\n")
	fmt.Fprintf(&b, "with `DATABASE_URL` from `deploy/scripts/db.sh`) on %s.\n\n", time.Now().UTC().Format("2006-01-02"))
	fmt.Fprintf(&b, "- Machine: %d CPUs (%s), %s; PostgreSQL %s, default settings.\n", runtime.NumCPU(), cpu, runtime.Version(), pgVersion)
	fmt.Fprintf(&b, "- **The load generator, the service and PostgreSQL share the same %d CPUs.** Absolute figures are\n", runtime.NumCPU())
	fmt.Fprintf(&b, "  bounded by that; the ratio column (service ÷ raw, measured in the same run) is the figure to compare.\n")
	fmt.Fprintf(&b, "- Data: %d personas (%d due), %d actions seeded. Each scenario and concurrency runs %d rounds of %s per side,\n", o.personas, o.due, o.actions, o.rounds, o.duration)
	fmt.Fprintf(&b, "  alternating which side goes first; figures pool all rounds.\n")
	fmt.Fprintf(&b, "- *service*: HTTP to `bin/personas-internal` (NODE_ENV=production, JSON access logs at info to a file, pool of 32,\n")
	fmt.Fprintf(&b, "  GOMAXPROCS=1 as in its pod, whose 500m CPU limit makes Go choose 1). *service CPU* is the service process's\n")
	fmt.Fprintf(&b, "  user+system time per request (from /proc), the share of the machine the service itself takes.\n")
	fmt.Fprintf(&b, "  *raw*: the store's own statement (`personas.Statement`) run with pgx straight against PostgreSQL at the same concurrency.\n")
	fmt.Fprintf(&b, "- Claims are bounded to %d requests per run so the due set never runs dry; leases are reset before every run.\n\n", o.due/o.claimLimit*9/10)
	b.WriteString("| scenario | conns | service req/s | p50 ms | p99 ms | service CPU µs/req | raw req/s | p50 ms | p99 ms | service/raw throughput |\n")
	b.WriteString("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, r := range results {
		fmt.Fprintf(&b, "| %s | %d | %.0f | %s | %s | %d | %.0f | %s | %s | %.0f%% |\n", r.scenario, r.conc,
			r.svc.rps(), ms(r.svc.p50), ms(r.svc.p99), r.svc.cpuPerOp.Microseconds(), r.raw.rps(), ms(r.raw.p50), ms(r.raw.p99), 100*r.svc.rps()/r.raw.rps())
	}
	fmt.Fprintf(&b, "\nService peak RSS (VmHWM) over the whole run: **%.1f MB**.\n", float64(peak)/1e6)
	b.WriteString("\n## Targets\n\n| target | measured | met |\n| --- | --- | --- |\n")
	for _, r := range results {
		switch {
		case strings.HasPrefix(r.scenario, "POST actions") && r.conc == slices.Max(o.conc):
			ratio := 100 * r.svc.rps() / r.raw.rps()
			fmt.Fprintf(&b, "| POST actions ≥ 70%% of raw throughput (%d conns) | %.0f%% | %s |\n", r.conc, ratio, yes(ratio >= 70))
		case strings.HasPrefix(r.scenario, "GET /due (limit 1000") && r.conc == 1:
			fmt.Fprintf(&b, "| GET /due, 1,000 due, p99 ≤ 20 ms at 1 conn | %s ms | %s |\n", ms(r.svc.p99), yes(r.svc.p99 <= 20*time.Millisecond))
		}
	}
	fmt.Fprintf(&b, "| service RSS ≤ 60 MB under load | %.1f MB | %s |\n", float64(peak)/1e6, yes(peak <= 60e6))
	b.WriteString("\nRatios still move by a few points between runs on this shared machine (PostgreSQL's fsync,\n")
	b.WriteString("checkpoints and autovacuum, the scheduler): that is why the sides alternate round by round.\n")
	b.WriteString("Rerun `make bench` before drawing conclusions from a small difference.\n")
	fmt.Fprintf(&b, "\n## Plan of the due query (%d personas, EXPLAIN ANALYZE)\n\n```\n%s\n```\n", o.personas, plan)
	fmt.Fprintf(&b, "\nThe walk over `personas_due_idx` stops at the limit; the cadence and lease are per-row filters.\n")
	//nolint:gosec // a report committed to the repo, meant to be read
	if err := os.WriteFile(o.out, []byte(b.String()), 0o644); err != nil {
		return err
	}
	logf("wrote %s", o.out)
	fmt.Print(b.String())
	return nil
}

func withDatabase(server, name string) (string, error) {
	u, err := url.Parse(server)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return "", errors.New("DATABASE_URL must be a postgres:// URL")
	}
	u.Path = "/" + name
	return u.String(), nil
}

func logLevel() string {
	if v := os.Getenv("BENCH_LOG_LEVEL"); v != "" {
		return v
	}
	return "info"
}

func yes(ok bool) string {
	if ok {
		return "yes"
	}
	return "**no**"
}
