package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/uptrace/bun"

	"github.com/mana/personas/pkg/personas"
)

// The admin side (issues 11 and 13): a real bin/personas-admin in
// production mode (GOMAXPROCS=1, as in its pod) that verifies a real admin
// JWT issued by bin/mana-auth-dev, the stand-in it trusts as issuer and
// JWKS (as make dev wires them).

// Once the store answers these in one statement of its own (issue 13 item
// 5: helper H1's "personaDetail"; item 8: helper H3's "listPersonas"), set
// the name here: the raw side then runs Bind(name) instead of the captured
// sequence, and the statements table prints it.
const (
	detailStatement = "personaDetail"
	listStatement   = "listPersonas"
)

// detailSample is how many personas the detail scenario picks from (each
// one's statements are captured once).
const detailSample = 50

// recentActions is the admin detail's number of recent actions
// (services/personas-admin recentActionsLimit).
const recentActions = 20

type adminSide struct {
	auth, admin *service
	token       string
	// capture runs store methods on a store of the bench's own and records
	// the statements they send (bun's formatted SQL, arguments inlined, as
	// the service sends them over the simple protocol).
	capture *captureStore
}

// startAdmin starts the stand-in, gets an admin token from it, and starts
// the admin service trusting it.
func startAdmin(ctx context.Context, o options, dsn string) (*adminSide, error) {
	authPort, adminPort := 0, 0
	if o.ports > 0 {
		adminPort, authPort = o.ports+1, o.ports+2
	}
	authPort, err := freePort(ctx, authPort)
	if err != nil {
		return nil, err
	}
	authURL := fmt.Sprintf("http://127.0.0.1:%d", authPort)
	// The stand-in keeps its accounts in schema mana_auth_dev of the bench
	// database; it refuses NODE_ENV=production. Its tokens live long
	// enough for the whole run.
	authEnv := []string{"DATABASE_URL=" + dsn, "MANA_SERVICE_KEY=" + benchKey, "MANA_AUTH_DEV_BASE_URL=" + authURL,
		"MANA_AUTH_DEV_JWT_TTL=6h", "NODE_ENV=development", "LOG_LEVEL=warn"}
	auth, err := startProcess(ctx, o.authBin, nil, authPort, "/healthz", authEnv...)
	if err != nil {
		return nil, err
	}
	a := &adminSide{auth: auth}
	cmd := exec.CommandContext(ctx, o.authBin, "admin-token") //nolint:gosec // the operator's -auth-bin flag names the program
	cmd.Env = append(os.Environ(), authEnv...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		a.stop()
		return nil, fmt.Errorf("mana-auth-dev admin-token: %w: %s", err, stderr.String())
	}
	a.token = strings.TrimSpace(string(out))
	a.admin, err = startProcess(ctx, o.adminBin, nil, adminPort, "/readyz", "DATABASE_URL="+dsn,
		"MANA_SERVICE_KEY="+benchKey, "MANA_AUTH_URL="+authURL, "PERSONAS_AUTO_MIGRATE=false", "LOG_LEVEL="+logLevel(),
		"NODE_ENV=production", "PERSONAS_DB_MAX_CONNS=32", "GOMAXPROCS=1")
	if err != nil {
		a.stop()
		return nil, err
	}
	a.capture, err = newCaptureStore(dsn)
	if err != nil {
		a.stop()
		return nil, err
	}
	return a, nil
}

func (a *adminSide) stop() {
	if a.capture != nil {
		_ = a.capture.db.Close()
	}
	if a.admin != nil {
		a.admin.stop()
	}
	a.auth.stop()
}

// adminGet sends one admin GET with the JWT and reads the whole answer; it
// returns the body's size and its lines.
func (b *bench) adminGet(ctx context.Context, path string) (size, lines int64, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.admin.admin.url+"/api/v1/personas/admin"+path, nil)
	if err != nil {
		return 0, 0, err
	}
	req.Header.Set("Authorization", "Bearer "+b.admin.token)
	resp, err := b.hc.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return 0, 0, fmt.Errorf("GET %s: status %d: %s", path, resp.StatusCode, msg)
	}
	r := bufio.NewReaderSize(resp.Body, 64<<10)
	for {
		chunk, err := r.ReadSlice('\n')
		size += int64(len(chunk))
		if err == nil {
			lines++
			continue
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if errors.Is(err, io.EOF) {
			return size, lines, nil
		}
		return size, lines, err
	}
}

// captureStore is a store over a pool of the bench's own whose bun hook
// records every statement sent.
type captureStore struct {
	db    *bun.DB
	store *personas.Store
	mu    sync.Mutex
	on    bool
	got   []string
}

func newCaptureStore(dsn string) (*captureStore, error) {
	db, err := personas.OpenDB(dsn, personas.PoolConfig{MaxConns: 2})
	if err != nil {
		return nil, err
	}
	c := &captureStore{db: db}
	c.store = personas.New(db.WithQueryHook(c))
	return c, nil
}

// BeforeQuery is part of bun.QueryHook.
func (c *captureStore) BeforeQuery(ctx context.Context, _ *bun.QueryEvent) context.Context {
	return ctx
}

// AfterQuery records the statement (bun.QueryHook).
func (c *captureStore) AfterQuery(_ context.Context, e *bun.QueryEvent) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.on {
		c.got = append(c.got, e.Query)
	}
}

// captured is one statement as the store sent it, named after the store
// method that sent it.
type captured struct {
	name string
	sql  string
}

// run calls the store methods named in calls in order, as the service's
// handler does, and returns the statements they sent. A method that sent
// none (a prepared statement bypasses bun's hook) is an error: its
// scenario must use Bind instead.
func (c *captureStore) run(ctx context.Context, calls ...call) ([]captured, error) {
	var out []captured
	for _, cl := range calls {
		c.mu.Lock()
		c.on, c.got = true, nil
		c.mu.Unlock()
		err := cl.fn(ctx, c.store)
		c.mu.Lock()
		c.on = false
		got := c.got
		c.mu.Unlock()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", cl.name, err)
		}
		if len(got) == 0 {
			return nil, fmt.Errorf("%s sent no statement through bun (a prepared statement? use Bind)", cl.name)
		}
		for i, q := range got {
			name := cl.name
			if len(got) > 1 {
				name += "#" + strconv.Itoa(i+1)
			}
			out = append(out, captured{name: name, sql: q})
		}
	}
	return out, nil
}

type call struct {
	name string
	fn   func(context.Context, *personas.Store) error
}

// rawCaptured sends captured statements one after the other over the
// simple protocol (as the service's pool does), reading every row.
func (b *bench) rawCaptured(ctx context.Context, sts []captured) error {
	for _, st := range sts {
		rows, err := b.pool.Query(ctx, st.sql, pgx.QueryExecModeSimpleProtocol)
		if err != nil {
			return fmt.Errorf("%s: %w", st.name, err)
		}
		for rows.Next() {
			if _, err := rows.Values(); err != nil {
				rows.Close()
				return fmt.Errorf("%s: %w", st.name, err)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("%s: %w", st.name, err)
		}
	}
	return nil
}

func window(v string) personas.Window {
	w, err := personas.ParseWindow("window", v, v, v)
	if err != nil {
		panic(err)
	}
	return w
}

// Names of the admin scenarios, for the targets table.
const (
	scDetail   = "admin detail GET /admin/:id"
	scList     = "admin list GET /admin?limit=100"
	scUnpaged  = "admin list unpaged GET /admin"
	scModules7 = "insight GET /admin/modules?window=7d"
	scModules8 = "insight GET /admin/modules?window=28d"
	scTrend    = "insight GET /admin/modules/calendar/trend?bucket=week"
	scOverview = "insight GET /admin/overview?window=7d"
	scTools    = "insight GET /admin/tools?window=7d"
)

// trendModule is the module whose trend is read (it regresses in the seed).
const trendModule = "calendar"

// adminScenarios are the admin detail and list (issue 13) and the insight
// views (issue 11), each beside raw PostgreSQL running the statements the
// store sends for the same call.
func (b *bench) adminScenarios(ctx context.Context) ([]scenario, error) {
	cs := b.admin.capture
	var out []scenario
	if !b.o.big {
		// Detail: a fixed sample of personas, each one's statements captured.
		ids := make([]string, detailSample)
		rnd := rand.New(rand.NewPCG(13, 11)) //nolint:gosec // a reproducible sample, not a secret
		for i := range ids {
			ids[i] = b.activeIDs[rnd.IntN(len(b.activeIDs))]
		}
		var detail [][]captured
		if detailStatement == "" {
			detail = make([][]captured, len(ids))
			for i, id := range ids {
				sts, err := cs.run(ctx,
					call{"GetPersona", func(ctx context.Context, s *personas.Store) error { _, err := s.GetPersona(ctx, id); return err }},
					call{"Actions7d", func(ctx context.Context, s *personas.Store) error { _, err := s.Actions7d(ctx, id); return err }},
					call{"RecentActions", func(ctx context.Context, s *personas.Store) error {
						_, err := s.RecentActions(ctx, id, recentActions)
						return err
					}},
					call{"FeedbackByModule", func(ctx context.Context, s *personas.Store) error {
						_, err := s.FeedbackByModule(ctx, id)
						return err
					}})
				if err != nil {
					return nil, fmt.Errorf("capture detail: %w", err)
				}
				detail[i] = sts
			}
		}
		out = append(out, scenario{
			name: scDetail, proc: b.admin.admin, rss: true,
			service: func(ctx context.Context) error {
				_, _, err := b.adminGet(ctx, "/"+ids[rand.IntN(len(ids))])
				return err
			},
			raw: func(ctx context.Context) error {
				i := rand.IntN(len(ids))
				if detailStatement != "" {
					return rawQuery(ctx, b.pool, b.bind(detailStatement, personas.BindInput{PersonaID: ids[i]}))
				}
				return b.rawCaptured(ctx, detail[i])
			},
			statements: b.statementsOf(detailStatement, personas.BindInput{PersonaID: ids[0]}, firstOr(detail)),
		})
		list, err := b.listScenario(ctx, scList, "?limit=100", personas.ListFilter{Limit: 100}, nil)
		if err != nil {
			return nil, err
		}
		// Issue 13 item 8: 32 concurrent callers (the largest -concurrency).
		unpaged, err := b.listScenario(ctx, scUnpaged, "", personas.ListFilter{}, []int{slices.Max(b.o.conc)})
		if err != nil {
			return nil, err
		}
		// 32 whole lists at once can outlast the service's request
		// deadline (503): counted, not fatal.
		unpaged.tolerate = true
		// One wave of calls per run: each is a whole list, and the
		// rounds are what balances the sides.
		unpaged.budget, unpaged.rounds = slices.Max(b.o.conc), 2
		out = append(out, list, unpaged)
	}
	insight := []struct {
		name, path, method string
		fn                 func(context.Context, *personas.Store) error
	}{
		{scModules7, "/modules?window=7d", "ModulesSummary", func(ctx context.Context, s *personas.Store) error {
			_, err := s.ModulesSummary(ctx, personas.ModulesQuery{Window: window("7d")})
			return err
		}},
		{scModules8, "/modules?window=28d", "ModulesSummary", func(ctx context.Context, s *personas.Store) error {
			_, err := s.ModulesSummary(ctx, personas.ModulesQuery{Window: window("28d")})
			return err
		}},
		{scTrend, "/modules/" + trendModule + "/trend?bucket=week", "ModuleTrend", func(ctx context.Context, s *personas.Store) error {
			_, err := s.ModuleTrend(ctx, personas.TrendQuery{Module: trendModule, Bucket: "week"})
			return err
		}},
		{scOverview, "/overview?window=7d", "Overview", func(ctx context.Context, s *personas.Store) error {
			_, err := s.Overview(ctx, window("7d"))
			return err
		}},
		{scTools, "/tools?window=7d", "Tools", func(ctx context.Context, s *personas.Store) error {
			_, err := s.Tools(ctx, window("7d"))
			return err
		}},
	}
	for _, in := range insight {
		sts, err := cs.run(ctx, call{in.method, in.fn})
		if err != nil {
			return nil, fmt.Errorf("capture %s: %w", in.name, err)
		}
		path := in.path
		out = append(out, scenario{
			name: in.name, proc: b.admin.admin, rss: true, concs: []int{1}, rounds: 2,
			service: func(ctx context.Context) error {
				_, _, err := b.adminGet(ctx, path)
				return err
			},
			raw:        func(ctx context.Context) error { return b.rawCaptured(ctx, sts) },
			statements: sts,
		})
	}
	return out, nil
}

func firstOr(x [][]captured) []captured {
	if len(x) == 0 {
		return nil
	}
	return x[0]
}

// listScenario is the admin list with the given query, beside the
// statements ListPersonas sends for f.
func (b *bench) listScenario(ctx context.Context, name, query string, f personas.ListFilter, concs []int) (scenario, error) {
	var sts []captured
	if listStatement == "" {
		var err error
		sts, err = b.admin.capture.run(ctx, call{"ListPersonas", func(ctx context.Context, s *personas.Store) error {
			_, _, err := s.ListPersonas(ctx, f)
			return err
		}})
		if err != nil {
			return scenario{}, fmt.Errorf("capture list: %w", err)
		}
	}
	return scenario{
		name: name, proc: b.admin.admin, rss: true, concs: concs,
		service: func(ctx context.Context) error {
			_, _, err := b.adminGet(ctx, query)
			return err
		},
		raw: func(ctx context.Context) error {
			if listStatement != "" {
				return rawQuery(ctx, b.pool, b.bind(listStatement, personas.BindInput{Limit: f.Limit}))
			}
			return b.rawCaptured(ctx, sts)
		},
		statements: b.statementsOf(listStatement, personas.BindInput{Limit: f.Limit}, sts),
	}, nil
}

// statementsOf describes a scenario's statements for the report: the
// Bind statement when there is one, or the captured SQL.
func (b *bench) statementsOf(bindName string, in personas.BindInput, sts []captured) []captured {
	if bindName != "" {
		return []captured{{name: bindName + " (Bind)", sql: b.bind(bindName, in).SQL}}
	}
	return sts
}

// exportResult is one side of the export measurement.
type exportResult struct {
	runs    int
	rows    int64
	bytes   int64
	elapsed time.Duration
	peak    int64         // the admin service's VmHWM, highest over the runs
	pgCPU   time.Duration // PostgreSQL backends' CPU over the runs
	cpu     time.Duration // the admin service's CPU over the runs
}

func (e exportResult) rowsPerSec() float64 { return float64(e.rows) / e.elapsed.Seconds() }

// measureExport streams every action through GET /admin/export/actions
// (NDJSON), -rounds times, each from a fresh high-water mark.
func (b *bench) measureExport(ctx context.Context, pg *pgMeter) (exportResult, error) {
	var r exportResult
	for round := range b.o.rounds {
		logf("export actions (round %d)", round+1)
		if err := b.admin.admin.resetPeak(); err != nil {
			return r, err
		}
		pg0, err := pg.snapshot(ctx)
		if err != nil {
			return r, err
		}
		cpu0, err := b.admin.admin.cpuTime()
		if err != nil {
			return r, err
		}
		t0 := time.Now()
		size, lines, err := b.adminGet(ctx, "/export/actions?format=ndjson")
		if err != nil {
			return r, err
		}
		r.elapsed += time.Since(t0)
		cpu1, err := b.admin.admin.cpuTime()
		if err != nil {
			return r, err
		}
		pg1, err := pg.snapshot(ctx)
		if err != nil {
			return r, err
		}
		peak, err := b.admin.admin.peakRSS()
		if err != nil {
			return r, err
		}
		r.runs++
		r.rows += lines
		r.bytes += size
		r.peak = max(r.peak, peak)
		r.pgCPU += pg1.since(pg0)
		r.cpu += cpu1 - cpu0
	}
	return r, nil
}
