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

// benchKey is the service key the bench's service runs with.
const (
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
	db         string // the bench's own database, dropped and rebuilt
	// loadStart and loadEnd are /proc/loadavg's 1- and 5-minute figures
	// around the load phase: how busy the shared machine was.
	loadStart, loadEnd string
}

func main() {
	var o options
	var conc string
	flag.StringVar(&o.out, "out", "BENCHMARKS.md", "Markdown file to write")
	flag.StringVar(&o.bin, "bin", "bin/personas-internal", "service binary")
	flag.IntVar(&o.personas, "personas", 10_000, "personas to seed")
	flag.IntVar(&o.due, "due", 1_000, "of which due")
	// 200,000 actions (20 per persona, two weeks of history) keep a whole
	// make bench, Go benchmarks included, near 10 minutes on a shared
	// 2-CPU machine; seeding 1,000,000 alone took 4 minutes there. Issue
	// 13's comparison data is -actions 1000000.
	flag.IntVar(&o.actions, "actions", 200_000, "actions to seed")
	flag.DurationVar(&o.duration, "duration", 4*time.Second, "time per run (one side, one round)")
	flag.StringVar(&conc, "concurrency", "1,32", "comma-separated connection counts")
	flag.BoolVar(&o.skipSeed, "skip-seed", false, "reuse an existing personas_bench database")
	flag.IntVar(&o.dueLimit, "due-limit", 1000, "limit of the large GET /due scenario")
	flag.IntVar(&o.claimLimit, "claim-limit", 5, "limit passed to claims")
	flag.StringVar(&o.only, "only", "", "run only scenarios whose name contains this")
	flag.StringVar(&o.db, "db", "personas_bench", "database to build and load (dropped first; letters, digits and _ only)")
	flag.IntVar(&o.rounds, "rounds", 3, "rounds per scenario, alternating which side goes first")
	flag.Parse()
	for _, c := range strings.Split(conc, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(c))
		if err != nil || n < 1 {
			fatalf("bad -concurrency %q", conc)
		}
		o.conc = append(o.conc, n)
	}
	if !validDBName(o.db) {
		fatalf("bad -db %q: letters, digits and _ only, starting with a letter", o.db)
	}
	if err := run(context.Background(), o); err != nil {
		fatalf("%v", err)
	}
}

// validDBName reports whether name can be spliced into DROP/CREATE
// DATABASE as it is.
func validDBName(name string) bool {
	if name == "" || len(name) > 63 || name[0] < 'a' || name[0] > 'z' {
		return false
	}
	return strings.Trim(name, "abcdefghijklmnopqrstuvwxyz0123456789_") == ""
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
	dsn, err := withDatabase(server, o.db)
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

	pg, err := newPGMeter(ctx, dsn)
	if err != nil {
		return err
	}
	defer pg.close()

	b := &bench{o: o, pool: pool, base: svc.url, activeIDs: ids, binder: personas.New(nil),
		hc: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256, MaxConnsPerHost: 256}, Timeout: 30 * time.Second}}
	var results []result
	o.loadStart = loadAvg()
	for _, sc := range b.scenarios() {
		if !selected(o.only, sc.name) {
			continue
		}
		if sc.reset == nil {
			sc.reset = b.resetDue
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
					side, fn, smp := "raw", sc.raw, &rw
					if isService {
						side, fn, smp = "service", sc.service, &sv
					}
					logf("%s c=%d %s (round %d)", sc.name, c, side, round+1)
					cpu0, err := svc.cpuTime()
					if err != nil {
						return err
					}
					pg0, err := pg.snapshot(ctx)
					if err != nil {
						return err
					}
					if err := smp.run(ctx, b, c, sc.budget, fn); err != nil {
						return fmt.Errorf("%s %s: %w", sc.name, side, err)
					}
					pg1, err := pg.snapshot(ctx)
					if err != nil {
						return err
					}
					cpu1, err := svc.cpuTime()
					if err != nil {
						return err
					}
					smp.pgCPU += pg1.since(pg0)
					if isService {
						smp.cpu += cpu1 - cpu0
					}
				}
			}
			results = append(results, result{scenario: sc.name, conc: c, svc: sv.stats(), raw: rw.stats()})
		}
	}
	o.loadEnd = loadAvg()
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
	logf("creating %s", o.db)
	if _, err := admin.Exec(ctx, `DROP DATABASE IF EXISTS `+o.db+` WITH (FORCE)`); err != nil {
		return err
	}
	if _, err := admin.Exec(ctx, `CREATE DATABASE `+o.db); err != nil {
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
		// Due personas have never been active nor done; the rest were
		// active within the last 23 hours and are done for today (daily
		// cadence, calendar day: not due until 00:00 UTC).
		{`INSERT INTO personas.personas (user_id, email, name, archetype, system_prompt, module_mix, tick_cadence, last_active_at, last_done_at, created_at)
SELECT 'bench-' || lpad(i::text, 6, '0'), 'persona.bench' || i || '@mana.test', 'Bench ' || i,
       (ARRAY['adhd-student','ceo-busy','creative-parent','solo-dev','researcher','freelancer','overwhelmed-newbie'])[1 + i % 7],
       'Du bist eine Testperson Nummer ' || i || '. ' || repeat('Du nutzt Mana jeden Tag für Aufgaben, Notizen und dein Journal. ', 5),
       '{"todo":0.4,"notes":0.3,"journal":0.3}', 'daily',
       CASE WHEN i <= $2 THEN NULL ELSE now() - ((i % 1380) + 1) * interval '1 minute' END,
       CASE WHEN i <= $2 THEN NULL ELSE now() END,
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

// cpuTime reads the service's CPU time so far (user + system).
func (s *service) cpuTime() (time.Duration, error) { return procCPU(s.cmd.Process.Pid) }

// procCPU reads a process's CPU time so far (user + system) from
// /proc/PID/stat, in clock ticks of 10 ms.
func procCPU(pid int) (time.Duration, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)) //nolint:gosec // pid is an integer: the path is /proc/N/stat
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
	// binder gives the raw side the store's statements with their
	// arguments. It never touches a database (personas.New(nil)); its
	// failure policy is the default, as the service's is here (the bench
	// sets no PERSONAS_BACKOFF_* or PERSONAS_QUARANTINE_AFTER).
	binder *personas.Store
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

// bind returns one of the store's statements with the arguments the store
// itself would send for in (personas.Store.Bind: the store's methods run
// exactly what it returns, so this side cannot drift from the service's).
func (b *bench) bind(name string, in personas.BindInput) personas.Bound {
	st, err := b.binder.Bind(name, in)
	if err != nil {
		panic(err)
	}
	return st
}

// rawQuery runs a bound statement and reads (and drops) every row, as a
// client that decodes the answer would.
func rawQuery(ctx context.Context, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}, st personas.Bound) error {
	rows, err := q.Query(ctx, st.SQL, st.Args...)
	if err != nil {
		return fmt.Errorf("%s: %w", st.Name, err)
	}
	defer rows.Close()
	for rows.Next() {
		if _, err := rows.Values(); err != nil {
			return fmt.Errorf("%s: %w", st.Name, err)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("%s: %w", st.Name, err)
	}
	return nil
}

const tickCycleName = "tick cycle (claim 1, start, 2×10 actions, 4 feedback, finish)"

func (b *bench) scenarios() []scenario {
	// Claims take personas out of the due set: bound a run so it never runs dry.
	claimBudget := b.o.due / b.o.claimLimit * 9 / 10
	return []scenario{
		{
			name: "POST actions (20 rows)",
			service: func(ctx context.Context) error {
				id, tick := b.target()
				return b.post(ctx, "/"+id+"/actions", "", actionsBody(actionInputs(tick, 0, 20)))
			},
			raw: func(ctx context.Context) error {
				id, tick := b.target()
				return rawQuery(ctx, b.pool, b.bind("insertActions", personas.BindInput{PersonaID: id, Actions: actionInputs(tick, 0, 20)}))
			},
		},
		{
			name: "POST feedback (4 rows)",
			service: func(ctx context.Context) error {
				id, tick := b.target()
				return b.post(ctx, "/"+id+"/feedback", "", feedbackBody(feedbackInputs(tick)))
			},
			raw: func(ctx context.Context) error {
				id, tick := b.target()
				return rawQuery(ctx, b.pool, b.bind("insertFeedback", personas.BindInput{PersonaID: id, Feedback: feedbackInputs(tick)}))
			},
		},
		b.dueScenario(0, nil),
		b.dueScenario(b.o.dueLimit, []int{1}),
		{
			name:   fmt.Sprintf("POST /due/claim (limit %d)", b.o.claimLimit),
			budget: claimBudget,
			service: func(ctx context.Context) error {
				return b.post(ctx, "/due/claim", "", fmt.Sprintf(`{"runnerId":"bench","limit":%d,"leaseSeconds":600}`, b.o.claimLimit))
			},
			raw: func(ctx context.Context) error {
				now := time.Now().UTC()
				if err := rawQuery(ctx, b.pool, b.bind("sweep", personas.BindInput{Now: now})); err != nil {
					return err
				}
				return rawQuery(ctx, b.pool, b.bind("claim", personas.BindInput{Now: now, Limit: b.o.claimLimit, RunnerID: "bench", Lease: 10 * time.Minute}))
			},
		},
		{
			// Issue 10: one runner's whole tick, each step as the runner sends it.
			name:    tickCycleName,
			budget:  b.o.due * 9 / 10,
			service: b.serviceTickCycle,
			raw:     b.rawTickCycle,
		},
	}
}

// resetDue ends every lease and makes the seeded due personas due again
// (claims and tick cycles take them out of the due set).
func (b *bench) resetDue(ctx context.Context) error {
	_, err := b.pool.Exec(ctx, `
UPDATE personas.personas
   SET lease_owner = NULL, lease_expires_at = NULL, lease_token_hash = NULL, lease_seconds = NULL, lease_tick_id = NULL,
       last_done_at = CASE WHEN user_id <= $1 THEN NULL ELSE last_done_at END,
       consecutive_failures = 0, next_attempt_at = NULL
 WHERE lease_token_hash IS NOT NULL OR lease_owner IS NOT NULL OR consecutive_failures > 0 OR next_attempt_at IS NOT NULL
    OR (user_id <= $1 AND last_done_at IS NOT NULL)`, fmt.Sprintf("bench-%06d", b.o.due))
	return err
}

// dueScenario lists due personas; limit 0 is the server's default (100).
func (b *bench) dueScenario(limit int, concs []int) scenario {
	path, rawLimit, label := "/due", personas.DefaultDueLimit, "default limit 100"
	if limit > 0 {
		path, rawLimit, label = "/due?limit="+strconv.Itoa(limit), limit, "limit "+strconv.Itoa(limit)
	}
	return scenario{
		name:  fmt.Sprintf("GET /due (%s, %d due)", label, b.o.due),
		concs: concs,
		service: func(ctx context.Context) error {
			return b.do(ctx, http.MethodGet, path, "", nil, nil)
		},
		raw: func(ctx context.Context) error {
			now := time.Now().UTC()
			if err := rawQuery(ctx, b.pool, b.bind("sweep", personas.BindInput{Now: now})); err != nil {
				return err
			}
			return rawQuery(ctx, b.pool, b.bind("due", personas.BindInput{Now: now, Limit: rawLimit}))
		},
	}
}

// The tick cycle's fixed parts, the same on both sides.
var (
	cycleModel    = "bench-model"
	cycleVersion  = "bench"
	cycleSummary  = "Heute habe ich drei Aufgaben angelegt und mein Journal geschrieben."
	cycleRating   = personas.RatingOK
	cycleTokensIn = int64(12_345)
	cycleTokenOut = int64(2_345)
)

// serviceTickCycle is one tick over HTTP: claim 1, start the tick, two
// batches of 10 actions, 4 ratings, finish ok — all under the lease token.
func (b *bench) serviceTickCycle(ctx context.Context) error {
	var claim struct {
		Personas []struct {
			UserID     string `json:"userId"`
			LeaseToken string `json:"leaseToken"`
		} `json:"personas"`
	}
	if err := b.do(ctx, http.MethodPost, "/due/claim", "", strings.NewReader(`{"runnerId":"bench","limit":1,"leaseSeconds":600}`), &claim); err != nil {
		return err
	}
	if len(claim.Personas) != 1 {
		return errors.New("tick cycle: the claim returned no persona (due set ran dry)")
	}
	id, token := claim.Personas[0].UserID, claim.Personas[0].LeaseToken
	tick := b.tickID()
	steps := []struct{ path, body string }{
		{"/" + id + "/ticks", fmt.Sprintf(`{"tickId":%q,"runnerId":"bench","model":%q,"platformVersion":%q}`, tick, cycleModel, cycleVersion)},
		{"/" + id + "/actions", actionsBody(actionInputs(tick, 0, 10))},
		{"/" + id + "/actions", actionsBody(actionInputs(tick, 10, 10))},
		{"/" + id + "/feedback", feedbackBody(feedbackInputs(tick))},
		{"/" + id + "/ticks/" + tick + "/finish", fmt.Sprintf(`{"status":"ok","summary":%q,"ratingStatus":%q,"tokensIn":%d,"tokensOut":%d}`,
			cycleSummary, cycleRating, cycleTokensIn, cycleTokenOut)},
	}
	for _, st := range steps {
		if err := b.post(ctx, st.path, token, st.body); err != nil {
			return err
		}
	}
	return nil
}

// rawTickCycle issues the statements the store issues for the same cycle,
// with pgx straight against PostgreSQL: sweep and claim; the start's
// transaction; the two action batches and the ratings; the finish's
// transaction. The raw side holds the lease it just claimed, so it takes
// the store's branches for a current token (bind the tick, end the lease).
func (b *bench) rawTickCycle(ctx context.Context) error {
	now := time.Now().UTC().Truncate(time.Microsecond)
	if err := rawQuery(ctx, b.pool, b.bind("sweep", personas.BindInput{Now: now})); err != nil {
		return err
	}
	claim := b.bind("claim", personas.BindInput{Now: now, Limit: 1, RunnerID: "bench", Lease: 10 * time.Minute})
	var id, token string
	rows, err := b.pool.Query(ctx, claim.SQL, claim.Args...)
	if err != nil {
		return err
	}
	for rows.Next() {
		vals, err := rows.Values()
		if err != nil {
			rows.Close()
			return err
		}
		id, token = vals[0].(string), vals[8].(string)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	if id == "" {
		return errors.New("tick cycle: the claim returned no persona (due set ran dry)")
	}
	tick := b.tickID()
	in := personas.BindInput{PersonaID: id, TickID: tick, LeaseToken: token, Holds: true, RunnerID: "bench",
		Start: personas.TickStart{TickID: tick, RunnerID: "bench", LeaseToken: token, Model: &cycleModel, PlatformVersion: &cycleVersion}}
	if err := b.rawTx(ctx, in, "lockLease", "startTick", "bindTick", "getTick"); err != nil {
		return err
	}
	for _, w := range []personas.BindInput{
		{PersonaID: id, LeaseToken: token, Actions: actionInputs(tick, 0, 10)},
		{PersonaID: id, LeaseToken: token, Actions: actionInputs(tick, 10, 10)},
	} {
		if err := rawQuery(ctx, b.pool, b.bind("insertActions", w)); err != nil {
			return err
		}
	}
	if err := rawQuery(ctx, b.pool, b.bind("insertFeedback", personas.BindInput{PersonaID: id, LeaseToken: token, Feedback: feedbackInputs(tick)})); err != nil {
		return err
	}
	in.Finish = personas.TickFinish{Status: personas.TickOK, Summary: &cycleSummary, RatingStatus: &cycleRating,
		TokensIn: &cycleTokensIn, TokensOut: &cycleTokenOut}
	return b.rawTx(ctx, in, "lockLease", "tickStatus", "finishTick", "finishPersona", "getTick")
}

// rawTx runs the named statements in one transaction, as the store does.
func (b *bench) rawTx(ctx context.Context, in personas.BindInput, names ...string) error {
	in.Now = time.Now().UTC().Truncate(time.Microsecond)
	return pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
		for _, name := range names {
			if err := rawQuery(ctx, tx, b.bind(name, in)); err != nil {
				return err
			}
		}
		return nil
	})
}

func (b *bench) target() (id, tick string) {
	return b.activeIDs[rand.IntN(len(b.activeIDs))], b.tickID()
}

func (b *bench) tickID() string {
	return fmt.Sprintf("bench-%d-%d", time.Now().UnixNano(), b.seq.Add(1))
}

var tools = []string{"todo.create", "todo.list", "journal.write", "notes.search", "calendar.list"}

// actionInputs is a batch of n tool calls with seq from first on.
func actionInputs(tick string, first, n int) []personas.ActionInput {
	out := make([]personas.ActionInput, n)
	for i := range out {
		seq, latency, hash := first+i, 20+i, fmt.Sprintf("%032x", first+i)
		out[i] = personas.ActionInput{TickID: tick, Seq: &seq, ToolName: tools[seq%len(tools)], InputHash: &hash,
			Result: personas.ResultOK, LatencyMs: &latency}
	}
	return out
}

// actionsBody is the same batch as the runner posts it.
func actionsBody(rows []personas.ActionInput) string {
	var buf bytes.Buffer
	buf.WriteString(`{"actions":[`)
	for i, r := range rows {
		if i > 0 {
			buf.WriteByte(',')
		}
		fmt.Fprintf(&buf, `{"tickId":%q,"seq":%d,"toolName":%q,"inputHash":%q,"result":%q,"latencyMs":%d}`,
			r.TickID, *r.Seq, r.ToolName, *r.InputHash, r.Result, *r.LatencyMs)
	}
	buf.WriteString(`]}`)
	return buf.String()
}

var modules = []string{"todo", "journal", "notes", "mood"}

const feedbackNotes = "Hat gut funktioniert."

func feedbackInputs(tick string) []personas.FeedbackInput {
	out := make([]personas.FeedbackInput, len(modules))
	notes := feedbackNotes
	for i, m := range modules {
		out[i] = personas.FeedbackInput{TickID: tick, Module: m, Rating: 1 + i, Notes: &notes}
	}
	return out
}

func feedbackBody(rows []personas.FeedbackInput) string {
	parts := make([]string, len(rows))
	for i, r := range rows {
		parts[i] = fmt.Sprintf(`{"tickId":%q,"module":%q,"rating":%d,"notes":%q}`, r.TickID, r.Module, r.Rating, *r.Notes)
	}
	return `{"feedback":[` + strings.Join(parts, ",") + `]}`
}

func (b *bench) post(ctx context.Context, path, token, body string) error {
	return b.do(ctx, http.MethodPost, path, token, strings.NewReader(body), nil)
}

// do sends one request (with the lease token, if any) and, when into is
// not nil, decodes the JSON answer into it.
func (b *bench) do(ctx context.Context, method, path, token string, body io.Reader, into any) error {
	req, err := http.NewRequestWithContext(ctx, method, b.base+"/api/v1/personas/internal"+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("X-Service-Key", benchKey)
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("X-Lease-Token", token)
	}
	resp, err := b.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusCreated {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("%s %s: status %d: %s", method, path, resp.StatusCode, msg)
	}
	if into != nil {
		return json.NewDecoder(resp.Body).Decode(into)
	}
	_, err = io.Copy(io.Discard, resp.Body)
	return err
}

type stats struct {
	cpuPerOp time.Duration // service process CPU (user+system) per request
	pgPerOp  time.Duration // PostgreSQL backends' CPU per request
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
	pgCPU   time.Duration // PostgreSQL backends' CPU over the runs
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
		st.pgPerOp = s.pgCPU / time.Duration(s.ops)
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
	st, err := personas.New(nil).Bind("due", personas.BindInput{Now: now})
	if err != nil {
		return "", err
	}
	rows, err := pool.Query(ctx, "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) "+st.SQL, st.Args...)
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
	command := strings.Join(append([]string{"go run ./services/personas-bench"}, os.Args[1:]...), " ")
	var b strings.Builder
	fmt.Fprintf(&b, "# Benchmarks\n\n")
	fmt.Fprintf(&b, "Produced by `make bench` (that is: `%s`\n", command)
	fmt.Fprintf(&b, "with `DATABASE_URL` from `deploy/scripts/db.sh`, then `deploy/scripts/gobench.sh BENCHMARKS.md`) on %s.\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(&b, "- Machine: %d CPUs (%s), %s; PostgreSQL %s, default settings.\n", runtime.NumCPU(), cpu, runtime.Version(), pgVersion)
	fmt.Fprintf(&b, "- **The load generator, the service and PostgreSQL share the same %d CPUs.** Absolute figures are\n", runtime.NumCPU())
	fmt.Fprintf(&b, "  bounded by that; the ratio column (service ÷ raw, measured in the same run) is the figure to compare.\n")
	fmt.Fprintf(&b, "- **Caveat: other work (other sessions' test suites, on other databases of the same PostgreSQL server)\n")
	fmt.Fprintf(&b, "  was running on this machine during the run.** It takes CPU from both sides alike at random moments;\n")
	fmt.Fprintf(&b, "  alternating the sides round by round spreads it over both, but absolute figures are lower and noisier\n")
	fmt.Fprintf(&b, "  than on an idle machine, and a ratio can move by several points between runs. Load average\n")
	fmt.Fprintf(&b, "  (/proc/loadavg, 1 and 5 min) when the load phase began: %s; when it ended: %s.\n", o.loadStart, o.loadEnd)
	fmt.Fprintf(&b, "- Data: %d personas (%d due), %d actions seeded. Each scenario and concurrency runs %d rounds of %s per side,\n", o.personas, o.due, o.actions, o.rounds, o.duration)
	fmt.Fprintf(&b, "  alternating which side goes first (S R, R S, ...); figures pool all rounds.\n")
	fmt.Fprintf(&b, "- *service*: HTTP to `bin/personas-internal` (NODE_ENV=production, JSON access logs at info to a file, pool of 32,\n")
	fmt.Fprintf(&b, "  GOMAXPROCS=1 as in its pod, whose 500m CPU limit makes Go choose 1). *service CPU* is the service process's\n")
	fmt.Fprintf(&b, "  user+system time per operation (from /proc), the share of the machine the service itself takes.\n")
	fmt.Fprintf(&b, "  *raw*: the store's own statements with the store's own arguments (`personas.Store.Bind`, which the store's\n")
	fmt.Fprintf(&b, "  methods run too), sent with pgx straight to PostgreSQL at the same concurrency; the statements of each\n")
	fmt.Fprintf(&b, "  operation are listed below.\n")
	fmt.Fprintf(&b, "- *PG CPU* is the user+system time per operation of the PostgreSQL backends serving the bench database\n")
	fmt.Fprintf(&b, "  (their pids from `pg_stat_activity`, their CPU from /proc; background processes such as the WAL writer,\n")
	fmt.Fprintf(&b, "  checkpointer and autovacuum are not counted).\n")
	fmt.Fprintf(&b, "- One operation of the *tick cycle* is one runner's whole tick: claim 1 → start the tick → 2 batches of 10\n")
	fmt.Fprintf(&b, "  actions → 4 ratings → finish ok, all under the claim's lease token (6 HTTP requests; 14 statements, 9 of\n")
	fmt.Fprintf(&b, "  them in 2 transactions): its ops/s are cycles/s and its CPU columns are per cycle.\n")
	fmt.Fprintf(&b, "- Claims are bounded to %d requests and tick cycles to %d per run so the due set never runs dry; leases\n",
		o.due/o.claimLimit*9/10, o.due*9/10)
	fmt.Fprintf(&b, "  are ended and the due personas made due again before every run.\n\n")
	b.WriteString("| scenario | conns | service ops/s | p50 ms | p99 ms | service CPU µs/op | service PG CPU µs/op | raw ops/s | p50 ms | p99 ms | raw PG CPU µs/op | service/raw throughput |\n")
	b.WriteString("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, r := range results {
		fmt.Fprintf(&b, "| %s | %d | %.0f | %s | %s | %d | %d | %.0f | %s | %s | %d | %.0f%% |\n", r.scenario, r.conc,
			r.svc.rps(), ms(r.svc.p50), ms(r.svc.p99), r.svc.cpuPerOp.Microseconds(), r.svc.pgPerOp.Microseconds(),
			r.raw.rps(), ms(r.raw.p50), ms(r.raw.p99), r.raw.pgPerOp.Microseconds(), 100*r.svc.rps()/r.raw.rps())
	}
	fmt.Fprintf(&b, "\nService peak RSS (VmHWM) over the whole run: **%.1f MB**.\n", float64(peak)/1e6)
	b.WriteString("\n## Targets (issues 2 and 10)\n\n| target | measured | met |\n| --- | --- | --- |\n")
	for _, r := range results {
		ratio := 100 * r.svc.rps() / r.raw.rps()
		switch {
		case strings.HasPrefix(r.scenario, "POST actions") && r.conc == slices.Max(o.conc):
			fmt.Fprintf(&b, "| POST actions ≥ 70%% of raw throughput (%d conns) | %.0f%% | %s |\n", r.conc, ratio, yes(ratio >= 70))
		case strings.HasPrefix(r.scenario, "GET /due (limit 1000") && r.conc == 1:
			fmt.Fprintf(&b, "| GET /due, 1,000 due, p99 ≤ 20 ms at 1 conn | %s ms | %s |\n", ms(r.svc.p99), yes(r.svc.p99 <= 20*time.Millisecond))
		case r.scenario == tickCycleName:
			fmt.Fprintf(&b, "| tick cycle ≥ 70%% of raw throughput (%d conns) | %.0f%% | %s |\n", r.conc, ratio, yes(ratio >= 70))
		}
	}
	fmt.Fprintf(&b, "| service RSS ≤ 60 MB under load | %.1f MB | %s |\n", float64(peak)/1e6, yes(peak <= 60e6))
	b.WriteString("\nRatios still move by a few points between runs on this shared machine (PostgreSQL's fsync,\n")
	b.WriteString("checkpoints and autovacuum, the scheduler, the other work named above): that is why the sides alternate\n")
	b.WriteString("round by round. Rerun `make bench` before drawing conclusions from a small difference; to rerun one\n")
	b.WriteString("scenario, `-only` takes comma-separated parts of scenario names, e.g.\n")
	b.WriteString("`go run ./services/personas-bench -out /tmp/bench.md -only 'tick cycle'`.\n")
	b.WriteString("\n## Statements per operation\n\nBoth sides issue the same statements with the same arguments (`personas.Store.Bind`;\n")
	b.WriteString("names as in `personas.BindNames`), all as cached prepared statements, each a round trip of its own.\n\n")
	b.WriteString("| scenario | statements |\n| --- | --- |\n")
	b.WriteString("| POST actions | insertActions |\n| POST feedback | insertFeedback |\n| GET /due | sweep, due |\n| POST /due/claim | sweep, claim |\n")
	b.WriteString("| tick cycle | sweep, claim; BEGIN, lockLease, startTick, bindTick, getTick, COMMIT; insertActions ×2; insertFeedback;" +
		" BEGIN, lockLease, tickStatus, finishTick, finishPersona, getTick, COMMIT |\n")
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

// loadAvg is the machine's 1- and 5-minute load average.
func loadAvg() string {
	raw, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(raw)); err == nil && len(f) >= 2 {
		return f[0] + " / " + f[1]
	}
	return "unknown"
}

// selected reports whether a scenario runs under -only: a comma-separated
// list of case-insensitive substrings of scenario names (empty: all).
func selected(only, name string) bool {
	if only == "" {
		return true
	}
	for _, part := range strings.Split(only, ",") {
		if part = strings.TrimSpace(part); part != "" && strings.Contains(strings.ToLower(name), strings.ToLower(part)) {
			return true
		}
	}
	return false
}

// pgMeter reads the CPU time (user + system, from /proc/PID/stat) of the
// PostgreSQL backends serving the bench database: the service's pool and
// the raw side's, found through pg_stat_activity on a connection of its
// own, which it leaves out. PostgreSQL runs on this machine (db.sh), so its
// backends' pids are visible here. Only one side runs at a time, so the
// other side's idle backends add nothing.
type pgMeter struct {
	conn *pgx.Conn
}

func newPGMeter(ctx context.Context, dsn string) (*pgMeter, error) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return nil, err
	}
	return &pgMeter{conn: conn}, nil
}

func (m *pgMeter) close() { _ = m.conn.Close(context.Background()) }

// pgCPU maps backend pid to CPU time so far.
type pgCPU map[int]time.Duration

func (m *pgMeter) snapshot(ctx context.Context) (pgCPU, error) {
	rows, err := m.conn.Query(ctx, `SELECT pid FROM pg_stat_activity
 WHERE datname = current_database() AND backend_type = 'client backend' AND pid <> pg_backend_pid()`)
	if err != nil {
		return nil, err
	}
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		return nil, err
	}
	out := make(pgCPU, len(pids))
	for _, pid := range pids {
		d, err := procCPU(int(pid))
		if err != nil {
			continue // the backend exited meanwhile
		}
		out[int(pid)] = d
	}
	return out, nil
}

// since is the CPU the backends spent after before was taken; a backend
// born in between counts whole. (One that exited in between is lost: the
// pools keep their connections, so that is rare.)
func (c pgCPU) since(before pgCPU) time.Duration {
	var d time.Duration
	for pid, t := range c {
		d += t - before[pid]
	}
	return d
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
