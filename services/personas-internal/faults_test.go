package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"

	"github.com/mana/personas/pkg/edge"
	"github.com/mana/personas/pkg/internalclient"
	"github.com/mana/personas/pkg/personas"
	"github.com/mana/personas/pkg/personas/personastest"
)

// syncBuffer is a log sink safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// faultEnv is personas-internal over real HTTP on a database of its own,
// with a pool whose connections are counted and carry an application_name
// of their own (so a test can terminate exactly the service's backends).
type faultEnv struct {
	dsn      string
	appName  string
	store    *personas.Store
	ts       *httptest.Server
	srv      *edge.Server
	logs     *syncBuffer
	connects atomic.Int64
	admin    *sql.DB // a connection of the test's own, never terminated
}

func newFaultEnv(t *testing.T, dsn string, maxConns int, cfg Config) *faultEnv {
	t.Helper()
	var suffix [4]byte
	_, _ = rand.Read(suffix[:])
	env := &faultEnv{dsn: dsn, appName: "personas_faults_" + hex.EncodeToString(suffix[:]), logs: &syncBuffer{}}
	pc, err := pgx.ParseConfig(dsn)
	require.NoError(t, err)
	// As personas.OpenDB configures it, plus a name and a connect counter.
	pc.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	pc.ConnectTimeout = 5 * time.Second
	pc.RuntimeParams["application_name"] = env.appName
	sqldb := stdlib.OpenDB(*pc, stdlib.OptionAfterConnect(func(context.Context, *pgx.Conn) error {
		env.connects.Add(1)
		return nil
	}))
	sqldb.SetMaxOpenConns(maxConns)
	sqldb.SetMaxIdleConns(maxConns)
	env.serve(t, bun.NewDB(sqldb, pgdialect.New()), cfg)
	return env
}

// serve starts personas-internal over db (closed when t ends), with an
// admin pool of the test's own on env.dsn.
func (env *faultEnv) serve(t *testing.T, db *bun.DB, cfg Config) {
	t.Helper()
	t.Cleanup(func() { _ = db.Close() })
	env.store = personas.New(db)
	var err error
	env.admin, err = sql.Open("pgx", env.dsn)
	require.NoError(t, err)
	t.Cleanup(func() { _ = env.admin.Close() })

	cfg.ServiceKey = testKey
	logger, err := edge.NewLogger(env.logs, "info", serviceName)
	require.NoError(t, err)
	env.srv = newServer(cfg, env.store, logger)
	env.ts = httptest.NewServer(env.srv.Echo)
	t.Cleanup(env.ts.Close)
}

func (env *faultEnv) persona(t *testing.T, id string) {
	t.Helper()
	_, err := env.store.UpsertPersona(context.Background(), personas.PersonaInput{
		UserID: id, Email: "persona." + id + "@mana.test", Name: id, Archetype: "solo-dev",
		SystemPrompt: "Du bist Kai.", ModuleMix: map[string]float64{"todo": 1}, TickCadence: personas.CadenceHourly,
	})
	require.NoError(t, err)
}

// post sends one request with its own client timeout (0: none). It returns
// the status (0 when the client gave up or the connection failed).
func (env *faultEnv) post(ctx context.Context, hc *http.Client, path, body string) (status int, retryAfter string) {
	req, err := http.NewRequestWithContext(ctx, "POST", env.ts.URL+path, strings.NewReader(body))
	if err != nil {
		return 0, ""
	}
	req.Header.Set("X-Service-Key", testKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return 0, ""
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, resp.Header.Get("Retry-After")
}

func (env *faultEnv) metrics(t *testing.T) string {
	t.Helper()
	resp, err := http.Get(env.ts.URL + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(raw)
}

// counter sums the counter name over the series whose labels include want
// (read from the registry, so it works after the server closed).
func (env *faultEnv) counter(t *testing.T, name string, want map[string]string) float64 {
	t.Helper()
	families, err := env.srv.Registry.Gather()
	require.NoError(t, err)
	sum := 0.0
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	series:
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			for k, v := range want {
				if v == "5xx" && strings.HasPrefix(labels[k], "5") {
					continue
				}
				if labels[k] != v {
					continue series
				}
			}
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}

var fiveXX = regexp.MustCompile(`http_requests_total\{[^}]*status="5\d\d"\}`)

// logLine is the part of an access-log line the tests read.
type logLine struct {
	Level     string `json:"level"`
	Msg       string `json:"msg"`
	Status    int    `json:"status"`
	Answered  int    `json:"answered"`
	RequestID string `json:"request_id"`
	Error     string `json:"error"`
}

func parseLogs(t *testing.T, s string) []logLine {
	t.Helper()
	var out []logLine
	sc := bufio.NewScanner(strings.NewReader(s))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var l logLine
		require.NoError(t, json.Unmarshal(sc.Bytes(), &l), sc.Text())
		out = append(out, l)
	}
	return out
}

func batch(tick string, n int) string {
	rows := make([]string, n)
	for i := range rows {
		rows[i] = fmt.Sprintf(`{"tickId":%q,"toolName":"tool%d","result":"ok","latencyMs":%d}`, tick, i, i)
	}
	return `{"actions":[` + strings.Join(rows, ",") + `]}`
}

// writeLoad posts batches of rowsPer rows with unique tick ids from workers
// goroutines until stop is closed. Each tick's status is recorded: 200,
// 503 (its Retry-After must be set) or anything else (a failure).
type writeLoad struct {
	mu       sync.Mutex
	acked    []string
	refused  []string // 503 with Retry-After
	bad      []string // anything else, for the failure message
	personas []string
	rowsPer  int
}

func (w *writeLoad) run(env *faultEnv, workers int, stop <-chan struct{}) {
	var wg sync.WaitGroup
	hc := &http.Client{Timeout: 30 * time.Second}
	for g := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				p := w.personas[(g+n)%len(w.personas)]
				tick := fmt.Sprintf("%s-w%d-n%d", p, g, n)
				status, ra := env.post(context.Background(), hc, "/api/v1/personas/internal/"+p+"/actions", batch(tick, w.rowsPer))
				w.mu.Lock()
				switch {
				case status == http.StatusOK:
					w.acked = append(w.acked, tick)
				case status == http.StatusServiceUnavailable && ra != "":
					w.refused = append(w.refused, tick)
				default:
					w.bad = append(w.bad, fmt.Sprintf("%s: status %d (Retry-After %q)", tick, status, ra))
				}
				w.mu.Unlock()
			}
		}()
	}
	wg.Wait()
}

// storedRows counts the rows stored for each tick id.
func storedRows(t *testing.T, db *sql.DB) map[string]int {
	t.Helper()
	rows, err := db.QueryContext(context.Background(), `SELECT tick_id, count(*) FROM personas.persona_actions GROUP BY tick_id`)
	require.NoError(t, err)
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var tick string
		var n int
		require.NoError(t, rows.Scan(&tick, &n))
		out[tick] = n
	}
	require.NoError(t, rows.Err())
	return out
}

// checkWrites asserts what C10 asks of every fault: no 500 (or any status
// but 200 and 503-with-Retry-After), every acknowledged write stored whole,
// every refused one stored whole or not at all; then a client that retries
// 503s converges: every refused batch goes through.
func checkWrites(t *testing.T, env *faultEnv, w *writeLoad) {
	t.Helper()
	require.Empty(t, w.bad, "every failure is a 503 with Retry-After")
	require.NotEmpty(t, w.acked)
	stored := storedRows(t, env.admin)
	for _, tick := range w.acked {
		require.Equal(t, w.rowsPer, stored[tick], "acknowledged write %s is stored", tick)
	}
	for _, tick := range w.refused {
		require.Contains(t, []int{0, w.rowsPer}, stored[tick], "a refused batch is all or nothing: %s", tick)
	}
	retrying, err := internalclient.New(env.ts.URL, testKey, internalclient.WithRetries(20, 20*time.Millisecond))
	require.NoError(t, err)
	for _, tick := range w.refused {
		p := tick[:strings.Index(tick, "-w")]
		actions := make([]internalclient.Action, w.rowsPer)
		for i := range actions {
			lat := i
			actions[i] = internalclient.Action{TickID: tick, ToolName: fmt.Sprintf("tool%d", i), Result: "ok", LatencyMs: &lat}
		}
		_, err := retrying.PostActions(context.Background(), p, actions)
		require.NoError(t, err, "a retried write converges")
	}
	stored = storedRows(t, env.admin)
	for _, tick := range append(append([]string{}, w.acked...), w.refused...) {
		require.Equal(t, w.rowsPer, stored[tick], "%s stored exactly once", tick)
	}
	require.False(t, fiveXX.MatchString(strings.ReplaceAll(env.metrics(t), `status="503"`, "")), "no 5xx other than 503 counted")
}

// TestTerminateBackendsUnderWriteLoad (C10): the service's PostgreSQL
// backends are terminated (SQLSTATE 57P01, what a fast shutdown does to
// every session) again and again while batches are being written.
func TestTerminateBackendsUnderWriteLoad(t *testing.T) {
	t.Parallel()
	env := newFaultEnv(t, personastest.NewDSN(t), 8, Config{})
	w := &writeLoad{rowsPer: 5, personas: []string{"p1", "p2", "p3", "p4"}}
	for _, p := range w.personas {
		env.persona(t, p)
	}
	stop := make(chan struct{})
	var terminated atomic.Int64
	var killers sync.WaitGroup
	killers.Add(1)
	go func() {
		defer killers.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Duration(10+mrand.IntN(30)) * time.Millisecond):
			}
			var n int64
			err := env.admin.QueryRowContext(context.Background(), `
SELECT count(*) FILTER (WHERE pg_terminate_backend(pid))
  FROM pg_stat_activity
 WHERE application_name = $1 AND datname = current_database()`, env.appName).Scan(&n)
			if err == nil {
				terminated.Add(n)
			}
		}
	}()
	go func() { time.Sleep(2 * time.Second); close(stop) }()
	w.run(env, 8, stop)
	killers.Wait()
	t.Logf("backends terminated: %d; batches acknowledged: %d, refused 503: %d; connections opened: %d",
		terminated.Load(), len(w.acked), len(w.refused), env.connects.Load())
	require.Positive(t, terminated.Load())
	checkWrites(t, env, w)
	for _, l := range parseLogs(t, env.logs.String()) {
		require.NotEqual(t, http.StatusInternalServerError, l.Status, "%+v", l)
	}
}

// TestAbandonedRequests (E17): at 32 connections, clients that give up
// after a few milliseconds. A request whose client left is logged once, at
// INFO, as 499, and counted under code="canceled"; never ERROR, 500 or 503.
// Abandoning a request does not cost a pooled connection: the pool opens
// no more connections than it holds.
func TestAbandonedRequests(t *testing.T) {
	t.Parallel()
	const poolSize = 8
	env := newFaultEnv(t, personastest.NewDSN(t), poolSize, Config{})
	ids := []string{"p1", "p2", "p3", "p4"}
	for _, p := range ids {
		env.persona(t, p)
	}
	var sent, gaveUp atomic.Int64
	var wg sync.WaitGroup
	deadline := time.Now().Add(2 * time.Second)
	// Contention makes statements slow (a batch waits for its persona's row
	// lock with its connection held), so clients give up mid-statement, as
	// they do when the database is busy.
	wg.Add(1)
	go func() {
		defer wg.Done()
		for time.Now().Before(deadline) {
			tx, err := env.admin.BeginTx(context.Background(), nil)
			if err != nil {
				t.Error(err)
				return
			}
			_, err = tx.ExecContext(context.Background(), `SELECT 1 FROM personas.personas FOR UPDATE`)
			time.Sleep(time.Duration(10+mrand.IntN(30)) * time.Millisecond)
			_ = tx.Commit()
			if err != nil {
				t.Error(err)
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	for g := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tr := &http.Transport{}
			defer tr.CloseIdleConnections()
			hc := &http.Client{Transport: tr}
			for n := 0; time.Now().Before(deadline); n++ {
				ctx, cancel := context.WithTimeout(context.Background(), time.Duration(1+mrand.IntN(100))*time.Millisecond)
				p := ids[(g+n)%len(ids)]
				var status int
				if n%3 == 2 {
					status, _ = env.post(ctx, hc, "/api/v1/personas/internal/due/claim", `{"runnerId":"r","limit":1,"leaseSeconds":60}`)
				} else {
					status, _ = env.post(ctx, hc, "/api/v1/personas/internal/"+p+"/actions", batch(fmt.Sprintf("%s-g%d-n%d", p, g, n), 20))
				}
				cancel()
				sent.Add(1)
				if status == 0 {
					gaveUp.Add(1)
				} else if status != http.StatusOK {
					t.Errorf("status %d for an answered request", status)
				}
			}
		}()
	}
	wg.Wait()
	env.ts.Close() // waits for the handlers still running
	lines := parseLogs(t, env.logs.String())
	seen := map[string]bool{}
	closed := 0
	for _, l := range lines {
		require.NotEqual(t, "ERROR", l.Level, "%+v", l)
		if l.Msg != "request" {
			continue
		}
		require.Less(t, l.Status, 500, "%+v", l)
		require.False(t, seen[l.RequestID], "request %s logged once", l.RequestID)
		seen[l.RequestID] = true
		if l.Status == 499 {
			closed++
			require.Equal(t, "INFO", l.Level)
		}
	}
	t.Logf("requests: %d sent, %d abandoned by the client; logged 499: %d; connections opened: %d (pool %d)",
		sent.Load(), gaveUp.Load(), closed, env.connects.Load(), poolSize)
	require.Positive(t, gaveUp.Load(), "the load abandoned requests")
	require.Positive(t, closed)
	require.LessOrEqual(t, env.connects.Load(), int64(poolSize), "no pooled connection was thrown away for a client that left")
	require.Equal(t, float64(closed), env.counter(t, "http_request_errors_total", map[string]string{"code": "canceled"}), "499s are counted apart")
	require.Equal(t, float64(closed), env.counter(t, "http_requests_total", map[string]string{"status": "499"}))
	require.Zero(t, env.counter(t, "http_requests_total", map[string]string{"status": "5xx"}))
}

// TestOverloadIsNotUnavailability (E18): a request that runs out of its
// deadline — here its batch waits behind a lock, then the next waits for
// the one pooled connection — is a 503 that says "overloaded, retry",
// counted under code="overloaded", apart from "database unavailable".
func TestOverloadIsNotUnavailability(t *testing.T) {
	t.Parallel()
	env := newFaultEnv(t, personastest.NewDSN(t), 1, Config{RequestTimeout: 300 * time.Millisecond})
	env.persona(t, "p1")
	ctx := context.Background()
	tx, err := env.admin.BeginTx(ctx, nil)
	require.NoError(t, err)
	_, err = tx.ExecContext(ctx, `SELECT 1 FROM personas.personas WHERE user_id = 'p1' FOR UPDATE`)
	require.NoError(t, err)

	call := func(path, body string) (int, string, string) {
		req, _ := http.NewRequestWithContext(ctx, "POST", env.ts.URL+path, strings.NewReader(body))
		req.Header.Set("X-Service-Key", testKey)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("Retry-After"), string(raw)
	}
	var wg sync.WaitGroup
	results := make([][3]string, 3)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			status, ra, body := call("/api/v1/personas/internal/p1/actions", batch(fmt.Sprint("t", i), 2))
			results[i] = [3]string{strconv.Itoa(status), ra, body}
		}()
	}
	wg.Wait()
	require.NoError(t, tx.Rollback())
	for _, r := range results {
		require.Equal(t, "503", r[0], r[2])
		require.NotEmpty(t, r[1], "Retry-After")
		require.Contains(t, r[2], "overloaded", r[2])
		require.NotContains(t, r[2], "unavailable")
	}
	require.Equal(t, 3.0, env.counter(t, "http_request_errors_total", map[string]string{"code": "overloaded"}))
	require.Zero(t, env.counter(t, "http_request_errors_total", map[string]string{"code": "unavailable"}))

}
