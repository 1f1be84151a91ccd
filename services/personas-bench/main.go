// Command personas-bench measures personas-internal and personas-admin
// against raw PostgreSQL running the same SQL, and writes the figures to a
// Markdown file (make bench, make bench-big).
//
// It builds a database of its own (-db, dropped first) on the server in
// DATABASE_URL and seeds it (seed.go); then, one service at a time, for each
// scenario and concurrency it runs the service over HTTP and the store's own
// statements over pgx, for the same time, alternating which side goes first
// (admin.go holds the admin side: the JWT from mana-auth-dev, the
// statements captured from the store). report.go writes the report and
// keeps the sections of -out it does not produce. Load generator, services
// and PostgreSQL share this machine's CPUs: compare the ratios, not the
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
	ratings    int
	days       int
	big        bool // issue 11's flatness run: only the insight scenarios, its own section
	ports      int  // first of the three ports (internal, admin, auth); 0: free ones
	adminBin   string
	authBin    string
	duration   time.Duration
	conc       []int
	skipSeed   bool
	backfill   bool
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
	// Issue 13's data set; -big is issue 11's tenfold one.
	flag.IntVar(&o.actions, "actions", 1_000_000, "actions to seed (-big: 10,000,000)")
	flag.IntVar(&o.ratings, "ratings", 100_000, "ratings to seed (-big: 1,000,000)")
	flag.IntVar(&o.days, "days", 180, "days the actions and ratings are spread over")
	flag.BoolVar(&o.big, "big", false, "issue 11's flatness run: 10,000,000 actions and 1,000,000 ratings (unless -actions/-ratings say otherwise), only the insight scenarios; replaces its own section of -out and keeps the rest")
	flag.IntVar(&o.ports, "ports", 0, "first of three consecutive 127.0.0.1 ports for personas-internal, personas-admin and mana-auth-dev (0: any free ports)")
	flag.StringVar(&o.adminBin, "admin-bin", "bin/personas-admin", "admin service binary")
	flag.StringVar(&o.authBin, "auth-bin", "bin/mana-auth-dev", "mana-auth stand-in binary (issuer and JWKS of the admin JWT)")
	flag.DurationVar(&o.duration, "duration", 4*time.Second, "time per run (one side, one round)")
	flag.StringVar(&conc, "concurrency", "1,32", "comma-separated connection counts")
	flag.BoolVar(&o.skipSeed, "skip-seed", false, "reuse the existing -db database")
	flag.BoolVar(&o.backfill, "backfill", false, "with -skip-seed: first finish the rollups (the backfill resumes where a stopped seed left it) and vacuum")
	flag.IntVar(&o.dueLimit, "due-limit", 1000, "limit of the large GET /due scenario")
	flag.IntVar(&o.claimLimit, "claim-limit", 5, "limit passed to claims")
	flag.StringVar(&o.only, "only", "", "run only scenarios whose name contains this")
	flag.StringVar(&o.db, "db", "personas_bench", "database to build and load (dropped first; letters, digits and _ only)")
	flag.IntVar(&o.rounds, "rounds", 3, "rounds per scenario, alternating which side goes first")
	section := flag.String("section", "", "only put the Markdown section in this file (its first \"## \" heading names it) in place of the section of -out with that title, keeping the rest (make bench-prune); nothing is measured")
	flag.Parse()
	if *section != "" {
		if err := putSection(o.out, *section); err != nil {
			fatalf("%v", err)
		}
		return
	}
	if o.big {
		set := map[string]bool{}
		flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
		if !set["actions"] {
			o.actions = 10_000_000
		}
		if !set["ratings"] {
			o.ratings = 1_000_000
		}
	}
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
	} else if o.backfill {
		if err := backfill(ctx, dsn); err != nil {
			return fmt.Errorf("backfill: %w", err)
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

	b := &bench{o: o, pool: pool, activeIDs: ids, binder: personas.New(nil),
		hc: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256, MaxConnsPerHost: 256}, Timeout: 60 * time.Second}}
	rep := report{o: o}
	started := time.Now()
	o.loadStart = loadAvg()
	// Two phases, one service at a time: each keeps a pool of up to 32
	// connections, and the server's max_connections (100 by default) is
	// shared with the raw side's pool and with other work. The admin and
	// insight views go first, so they read the seeded data set itself and
	// not the rows the write scenarios add (all of them dated today, inside
	// every window).
	if err := b.adminPhase(ctx, dsn, pg, &rep); err != nil {
		return err
	}
	if !o.big {
		if err := b.internalPhase(ctx, dsn, pg, &rep); err != nil {
			return err
		}
	}
	o.loadEnd = loadAvg()
	rep.o, rep.loadTime = o, time.Since(started)
	if err := rep.counts(ctx, pool); err != nil {
		return err
	}
	return rep.write(ctx, pool)
}

// internalPhase runs the runner endpoints against personas-internal.
func (b *bench) internalPhase(ctx context.Context, dsn string, pg *pgMeter, rep *report) error {
	svc, err := startService(ctx, b.o.bin, dsn, b.o.ports)
	if err != nil {
		return err
	}
	defer svc.stop()
	b.base = svc.url
	for _, sc := range b.scenarios() {
		if !selected(b.o.only, sc.name) {
			continue
		}
		r, err := b.runScenario(ctx, sc, svc, pg)
		if err != nil {
			return err
		}
		rep.results = append(rep.results, r...)
	}
	if rep.peak, err = svc.peakRSS(); err != nil {
		return err
	}
	rep.plan, err = explainDue(ctx, b.pool)
	return err
}

// adminPhase runs the admin and insight endpoints and the export against
// personas-admin.
func (b *bench) adminPhase(ctx context.Context, dsn string, pg *pgMeter, rep *report) error {
	adm, err := startAdmin(ctx, b.o, dsn)
	if err != nil {
		return err
	}
	defer adm.stop()
	b.admin = adm
	scs, err := b.adminScenarios(ctx)
	if err != nil {
		return err
	}
	for _, sc := range scs {
		if !selected(b.o.only, sc.name) {
			continue
		}
		r, err := b.runScenario(ctx, sc, adm.admin, pg)
		if err != nil {
			return err
		}
		rep.results = append(rep.results, r...)
	}
	if !b.o.big && selected(b.o.only, "export actions") {
		exp, err := b.measureExport(ctx, pg)
		if err != nil {
			return err
		}
		rep.export = &exp
	}
	return nil
}

// runScenario runs one scenario at each of its concurrencies, -rounds
// rounds, alternating which side goes first.
func (b *bench) runScenario(ctx context.Context, sc scenario, internal *service, pg *pgMeter) ([]result, error) {
	if sc.reset == nil {
		sc.reset = b.resetDue
	}
	proc := internal
	if sc.proc != nil {
		proc = sc.proc
	}
	concs := b.o.conc
	if sc.concs != nil {
		concs = sc.concs
	}
	var out []result
	for _, c := range concs {
		var sv, rw samples
		// Alternate the sides round by round (S R, R S, ...), so that drift
		// on the shared machine (checkpoints, autovacuum) hits both alike.
		rounds := b.o.rounds
		if sc.rounds > 0 {
			rounds = min(rounds, sc.rounds)
		}
		for round := range rounds {
			sides := []bool{true, false}
			if round%2 == 1 {
				sides = []bool{false, true}
			}
			for _, isService := range sides {
				if err := sc.reset(ctx); err != nil {
					return nil, err
				}
				side, fn, smp := "raw", sc.raw, &rw
				if isService {
					side, fn, smp = "service", sc.service, &sv
				}
				logf("%s c=%d %s (round %d)", sc.name, c, side, round+1)
				if sc.rss && isService {
					if err := proc.resetPeak(); err != nil {
						return nil, err
					}
				}
				cpu0, err := proc.cpuTime()
				if err != nil {
					return nil, err
				}
				pg0, err := pg.snapshot(ctx)
				if err != nil {
					return nil, err
				}
				if err := smp.run(ctx, b, c, sc.budget, fn, sc.tolerate); err != nil {
					return nil, fmt.Errorf("%s %s: %w", sc.name, side, err)
				}
				pg1, err := pg.snapshot(ctx)
				if err != nil {
					return nil, err
				}
				cpu1, err := proc.cpuTime()
				if err != nil {
					return nil, err
				}
				smp.pgCPU += pg1.since(pg0)
				if isService {
					smp.cpu += cpu1 - cpu0
					if sc.rss {
						peak, err := proc.peakRSS()
						if err != nil {
							return nil, err
						}
						smp.peak = max(smp.peak, peak)
					}
				}
			}
		}
		out = append(out, result{scenario: sc.name, conc: c, svc: sv.stats(), raw: rw.stats(),
			admin: sc.proc != nil, peak: sv.peak, statements: sc.statements})
	}
	return out, nil
}

type service struct {
	cmd *exec.Cmd
	url string
	log *os.File
}

// startService starts personas-internal against the bench database.
func startService(ctx context.Context, bin, dsn string, port int) (*service, error) {
	return startProcess(ctx, bin, nil, port, "/readyz", "DATABASE_URL="+dsn,
		"MANA_SERVICE_KEY="+benchKey, "PERSONAS_AUTO_MIGRATE=false", "LOG_LEVEL="+logLevel(), "NODE_ENV=production",
		"PERSONAS_DB_MAX_CONNS=32",
		// As in its Kubernetes pod: the CPU limit there is 500m, from which
		// Go (1.25+) derives GOMAXPROCS=1.
		"GOMAXPROCS=1")
}

// freePort is port when it is set, or a free loopback port.
func freePort(ctx context.Context, port int) (int, error) {
	if port > 0 {
		return port, nil
	}
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// startProcess starts bin with args on 127.0.0.1:port (0: a free port),
// the environment plus env (which wins), its output to a temporary log, and
// waits until readyPath answers 200.
func startProcess(ctx context.Context, bin string, args []string, port int, readyPath string, env ...string) (*service, error) {
	port, err := freePort(ctx, port)
	if err != nil {
		return nil, err
	}
	logFile, err := os.CreateTemp("", "personas-bench-*.log")
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, bin, args...) //nolint:gosec // the operator's -bin flags name the programs
	cmd.Env = append(os.Environ(), append([]string{"LISTEN_HOST=127.0.0.1", "PORT=" + strconv.Itoa(port)}, env...)...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s (run make build): %w", bin, err)
	}
	s := &service{cmd: cmd, url: fmt.Sprintf("http://127.0.0.1:%d", port), log: logFile}
	for range 150 {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.url+readyPath, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s, nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	tail, _ := os.ReadFile(logFile.Name())
	s.stop()
	return nil, fmt.Errorf("%s did not become ready at %s; its log:\n%s", bin, s.url+readyPath, tail[max(0, len(tail)-2000):])
}

func (s *service) stop() {
	_ = s.cmd.Process.Signal(os.Interrupt)
	_ = s.cmd.Wait()
	_ = s.log.Close()
	if os.Getenv("BENCH_KEEP_LOGS") != "" {
		logf("kept the log of %s: %s", s.cmd.Path, s.log.Name())
		return
	}
	_ = os.Remove(s.log.Name()) //nolint:gosec // the temporary file this program created
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

// resetPeak resets the process's VmHWM to its current RSS (clear_refs 5).
func (s *service) resetPeak() error {
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", s.cmd.Process.Pid), []byte("5"), 0)
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
	admin  *adminSide
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
	// proc is the service process whose CPU (and, with rss, peak RSS)
	// is measured; nil: personas-internal.
	proc       *service
	rss        bool
	statements []captured
	// tolerate: a failed call (e.g. a 503 past the request deadline) is
	// counted and the run goes on.
	tolerate bool
	// rounds, when set, caps -rounds (an even number keeps the sides
	// balanced: S R, R S).
	rounds int
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
	// The claim's columns by name: their positions change as the claim
	// gains fields.
	idCol, tokenCol := -1, -1
	for i, f := range rows.FieldDescriptions() {
		switch f.Name {
		case "user_id":
			idCol = i
		case "lease_token":
			tokenCol = i
		}
	}
	if idCol < 0 || tokenCol < 0 {
		rows.Close()
		return errors.New("tick cycle: the claim returns no user_id or lease_token column")
	}
	for rows.Next() {
		vals, err := rows.Values()
		if err != nil {
			rows.Close()
			return err
		}
		var ok1, ok2 bool
		id, ok1 = vals[idCol].(string)
		token, ok2 = vals[tokenCol].(string)
		if !ok1 || !ok2 {
			rows.Close()
			return fmt.Errorf("tick cycle: the claim's user_id or lease_token is not text (%T, %T)", vals[idCol], vals[tokenCol])
		}
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
	failed   int // calls that failed, not timed (scenarios that tolerate failures)
}

func (s stats) rps() float64 { return float64(s.n) / s.elapsed.Seconds() }

// samples pools the runs of one side of one scenario.
type samples struct {
	lat     []time.Duration
	elapsed time.Duration
	ops     int           // including warm-up, for CPU per request
	cpu     time.Duration // service process CPU over the runs
	pgCPU   time.Duration // PostgreSQL backends' CPU over the runs
	peak    int64         // the service's VmHWM, highest over the runs (when measured)
	failed  int           // calls that failed (scenarios that tolerate failures)
}

func (s *samples) run(ctx context.Context, b *bench, c, budget int, fn op, tolerate bool) error {
	var failed *atomic.Int64
	if tolerate {
		failed = new(atomic.Int64)
	}
	lat, elapsed, warm, err := b.load(ctx, c, budget, fn, failed)
	if err != nil {
		return err
	}
	s.lat = append(s.lat, lat...)
	s.elapsed += elapsed
	s.ops += len(lat) + warm
	if failed != nil {
		s.failed += int(failed.Load())
		s.ops += int(failed.Load())
	}
	return nil
}

func (s *samples) stats() stats {
	all := slices.Clone(s.lat)
	slices.Sort(all)
	pct := func(p float64) time.Duration {
		if len(all) == 0 {
			return 0
		}
		return all[min(len(all)-1, int(float64(len(all))*p))]
	}
	st := stats{n: len(all), elapsed: s.elapsed, p50: pct(0.50), p99: pct(0.99), failed: s.failed}
	if s.ops > 0 {
		st.cpuPerOp = s.cpu / time.Duration(s.ops)
		st.pgPerOp = s.pgCPU / time.Duration(s.ops)
	}
	return st
}

// load runs fn from c workers until the duration (or the budget) is spent,
// after a few warm-up calls; it returns the measured latencies.
//
// With failed not nil, a failed call is counted there (and not timed)
// instead of ending the run.
func (b *bench) load(ctx context.Context, c, budget int, fn op, failed *atomic.Int64) ([]time.Duration, time.Duration, int, error) {
	fn = safe(fn)
	warm := min(c, 4)
	for range warm {
		if err := fn(ctx); err != nil {
			if failed == nil {
				return nil, 0, 0, err
			}
			failed.Add(1)
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
					if failed != nil {
						failed.Add(1)
						continue
					}
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
	if len(all) == 0 && failed == nil {
		return nil, 0, 0, errors.New("no operation completed")
	}
	return all, elapsed, warm, nil
}

// safe turns a panic of fn into its error, so that a broken scenario ends
// the run with a message instead of hanging it (a panicking worker leaves a
// pooled connection held, and closing the pool would wait for it).
func safe(fn op) op {
	return func(ctx context.Context) (err error) {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("panic: %v", r)
			}
		}()
		return fn(ctx)
	}
}

type result struct {
	scenario string
	conc     int
	svc, raw stats
	admin    bool  // a personas-admin scenario
	peak     int64 // the service's VmHWM during the scenario (admin scenarios)
	// statements are those of the raw side (admin scenarios: captured
	// from the store, or a Bind name).
	statements []captured
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
