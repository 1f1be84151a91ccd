package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mana/personas/pkg/adminclient"
	"github.com/mana/personas/pkg/dbtest"
	"github.com/mana/personas/pkg/manaauth"
	"github.com/mana/personas/pkg/personas"
	"github.com/mana/personas/pkg/personas/personastest"
)

// exportChildEnv makes the test binary serve personas-admin instead of
// running tests (see TestMain): the large export test measures the memory
// of that process alone, not of the test process with its parallel tests.
const exportChildEnv = "PERSONAS_ADMIN_TEST_SERVE"

// exportRowsEnv sets how many action rows TestExportLarge seeds (default
// defaultExportRows). The figure is a million
// (PERSONAS_EXPORT_ROWS=1000000: about 45 s on 2 loaded cores, over two
// minutes inside a parallel `make test`); the default keeps the suite
// short and still fails a service that holds the export in memory (its
// NDJSON alone is about 48 MB, twice the bound).
const exportRowsEnv = "PERSONAS_EXPORT_ROWS"

const defaultExportRows = 200_000

func TestMain(m *testing.M) {
	if os.Getenv(exportChildEnv) == "1" {
		os.Exit(serveChild())
	}
	os.Exit(m.Run())
}

// serveChild wires personas-admin as main does, from the environment, on
// 127.0.0.1 and an ephemeral port that it prints as "listening ADDR".
func serveChild() int {
	cfg, err := loadConfig(os.Getenv)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	logger := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	db, err := personas.OpenDB(cfg.DatabaseURL, personas.PoolConfig{MaxConns: 4})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx := context.Background()
	auth, verifier, err := newAuth(ctx, cfg, logger)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Printf("listening %s\n", ln.Addr())
	srv := &http.Server{Handler: newServer(personas.New(db), auth, verifier, logger).Echo, ReadHeaderTimeout: 10 * time.Second}
	if err := srv.Serve(ln); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// childServer is personas-admin in its own process.
type childServer struct {
	cmd *exec.Cmd
	url string
}

func startChild(t *testing.T, dsn, authURL string) *childServer {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$") //nolint:gosec // the test binary itself
	cmd.Env = append(os.Environ(), exportChildEnv+"=1", "DATABASE_URL="+dsn, "MANA_AUTH_URL="+authURL,
		"MANA_SERVICE_KEY="+testServiceKey, "PERSONAS_AUTO_MIGRATE=false", "NODE_ENV=development")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("personas-admin stderr:\n%s", stderr.String())
		}
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	require.NoError(t, err, "personas-admin did not start: %s", stderr.String())
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "listening ")
	require.True(t, ok, line)
	return &childServer{cmd: cmd, url: "http://" + addr}
}

// rssKiB reads a field (VmRSS, VmHWM) of /proc/PID/status in KiB.
func rssKiB(t *testing.T, pid int, field string) int64 {
	t.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	require.NoError(t, err)
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			require.NoError(t, err)
			return n
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

// seedActions writes n action rows for 50 personas with server-side SQL
// (fast, and not through the ingest path this test is not about): NULLs,
// errors whose messages need quoting in CSV and escaping in JSON, and many
// rows sharing a created_at, so the order's tie-breakers matter. The
// table's key, foreign key and indexes are dropped first: maintaining them
// row by row takes most of the time, and the export reads none of them.
func seedActions(t *testing.T, dsn string, n int) {
	t.Helper()
	db, err := sql.Open("pgx", dsn)
	require.NoError(t, err)
	defer db.Close()
	ctx := context.Background()
	_, err = db.ExecContext(ctx, `
INSERT INTO personas.personas (user_id, email, name, archetype, system_prompt)
SELECT 'p' || i, 'persona.p' || i || '@mana.test', 'P' || i, 'solo-dev', 'Du bist p' || i || '.'
  FROM generate_series(1, 50) AS i`)
	require.NoError(t, err)
	_, err = db.ExecContext(ctx, `
ALTER TABLE personas.persona_actions DROP CONSTRAINT persona_actions_persona_id_fkey, DROP CONSTRAINT persona_actions_pkey;
DROP INDEX personas.persona_actions_recent_idx, personas.persona_actions_tick_idx`)
	require.NoError(t, err)
	_, err = db.ExecContext(ctx, `
INSERT INTO personas.persona_actions
       (id, persona_id, tick_id, seq, tool_name, input_hash, result, error_message, latency_ms, created_at)
SELECT 't' || (i / 40) || '-' || i || '-todo.create', 'p' || (i % 50 + 1), 't' || (i / 40),
       CASE WHEN i % 3 = 0 THEN NULL ELSE i % 40 END,
       (ARRAY['todo.create', 'journal.write', 'notes.search', 'calendar.list'])[i % 4 + 1],
       CASE WHEN i % 5 = 0 THEN NULL ELSE md5(i::text) END,
       CASE WHEN i % 7 = 0 THEN 'error' ELSE 'ok' END,
       CASE WHEN i % 7 = 0 THEN 'HTTP 500 from "/api/todo/' || i || '", Grüße' || E'\n' || 'zweite Zeile' END,
       CASE WHEN i % 11 = 0 THEN NULL ELSE i % 900 END,
       timestamptz '2026-06-01 00:00:00+00' + ((i / 3) * interval '1 second')
  FROM generate_series(1, $1::int) AS i`, n)
	require.NoError(t, err)
	_, err = db.ExecContext(ctx, `ANALYZE personas.persona_actions`)
	require.NoError(t, err)
}

// exportEnv is a migrated personas database with n seeded actions and a
// mana-auth stand-in with an admin's token.
type exportEnv struct{ dsn, authURL, token string }

func newExportEnv(t *testing.T, n int) exportEnv {
	t.Helper()
	env := exportEnv{dsn: personastest.NewDSN(t)}
	seedActions(t, env.dsn, n)
	_, authTS := newAuthServer(t, dbtest.Empty(t, "authdev"), "")
	authTS.Start()
	env.authURL = "http://" + authTS.Listener.Addr().String()
	mana, err := manaauth.New(env.authURL, manaauth.WithServiceKey(testServiceKey))
	require.NoError(t, err)
	login, err := mana.Login(context.Background(), testAdminEmail, testAdminPassword)
	require.NoError(t, err)
	env.token = login.AccessToken
	return env
}

// exportRun is one export read to its end.
type exportRun struct {
	sha   string
	rows  int64
	bytes int64
	took  time.Duration
}

func runExport(t *testing.T, url, token string) exportRun {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, url, nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	h := sha256.New()
	lines := &lineCounter{}
	n, err := io.Copy(io.MultiWriter(h, lines), resp.Body)
	require.NoError(t, err)
	return exportRun{sha: hex.EncodeToString(h.Sum(nil)), rows: lines.n, bytes: n, took: time.Since(start)}
}

type lineCounter struct{ n int64 }

func (c *lineCounter) Write(p []byte) (int, error) {
	c.n += int64(bytes.Count(p, []byte{'\n'}))
	return len(p), nil
}

// TestExportLarge exports many actions (a million with
// PERSONAS_EXPORT_ROWS=1000000) twice from personas-admin in its own
// process: the two runs are byte-identical, and the service's memory stays
// flat (its resident set grows by a bounded amount over the warm-up export,
// whatever the row count).
func TestExportLarge(t *testing.T) {
	t.Parallel()
	n := defaultExportRows
	if v := os.Getenv(exportRowsEnv); v != "" {
		var err error
		n, err = strconv.Atoi(v)
		require.NoError(t, err, exportRowsEnv)
	}
	env := newExportEnv(t, n)
	child := startChild(t, env.dsn, env.authURL)
	pid := child.cmd.Process.Pid
	base := child.url + apiPath + "/export/actions"
	login := env.token

	// Warm-up: one persona's rows (2% of them), so pools, buffers and the
	// runtime reach their working size; the baseline is measured after it.
	warm := runExport(t, base+"?persona=p1", login)
	require.EqualValues(t, n/50, warm.rows)
	baseline := rssKiB(t, pid, "VmRSS")

	var peak atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
				if err != nil {
					continue
				}
				for _, line := range strings.Split(string(raw), "\n") {
					if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
						kib, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
						if kib > peak.Load() {
							peak.Store(kib)
						}
					}
				}
			}
		}
	}()
	logRun := func(format string, r exportRun) {
		t.Logf("export %s: %d rows, %.1f MB in %s: %.0f rows/s", format, n, float64(r.bytes)/1e6,
			r.took.Round(time.Millisecond), float64(n)/r.took.Seconds())
	}
	first := runExport(t, base, login)
	second := runExport(t, base, login)
	require.EqualValues(t, n, first.rows)
	require.Equal(t, first.sha, second.sha, "same snapshot, same bytes")
	require.Equal(t, first.bytes, second.bytes)
	logRun("ndjson", first)
	logRun("ndjson", second)
	csvRun := runExport(t, base+"?format=csv", login)
	// A header line, and one more line per message with a newline in it.
	require.EqualValues(t, 1+n+n/7, csvRun.rows)
	logRun("csv", csvRun)
	close(stop)
	wg.Wait()
	hwm := rssKiB(t, pid, "VmHWM")
	growth := max(peak.Load(), hwm) - baseline
	t.Logf("service RSS: %.1f MiB after warm-up, peak %.1f MiB (VmHWM %.1f MiB), growth %.1f MiB",
		float64(baseline)/1024, float64(peak.Load())/1024, float64(hwm)/1024, float64(growth)/1024)
	// Flat: a million rows may not cost more than a bounded working set.
	require.Less(t, growth, int64(24<<10), "the service's resident set grew by %d KiB during the export", growth)
}

// A failure after the first row (here the database ends the export's
// session) aborts the response: the client sees a broken stream, never a
// short file that looks complete.
func TestExportFailureMidStreamAborts(t *testing.T) {
	t.Parallel()
	env := newExportEnv(t, 100_000)
	db, err := personas.OpenDB(env.dsn, personas.PoolConfig{MaxConns: 4})
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	url := serveAdmin(t, personas.New(db), Config{
		AuthURL: env.authURL, Issuer: env.authURL, Audience: "mana", ServiceKey: testServiceKey,
		AuthCallTimeout: 2 * time.Second, JWKSRefetchInterval: 10 * time.Millisecond,
	})
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, url+apiPath+"/export/actions", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+env.token)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	r := bufio.NewReader(resp.Body)
	first, err := r.ReadString('\n')
	require.NoError(t, err)
	require.Contains(t, first, `"personaId":`)

	// The export's backend, blocked on a full socket, is terminated.
	admin, err := sql.Open("pgx", env.dsn)
	require.NoError(t, err)
	defer admin.Close()
	var killed int
	require.NoError(t, admin.QueryRowContext(context.Background(), `
SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
 WHERE datname = current_database() AND backend_type = 'client backend' AND pid <> pg_backend_pid() AND query LIKE 'SELECT (persona_id)::text%') AS k`).Scan(&killed))
	require.Equal(t, 1, killed)
	n, err := io.Copy(io.Discard, r)
	require.ErrorIs(t, err, io.ErrUnexpectedEOF, "after %d more bytes", n)
	require.Less(t, n, int64(100_000*200), "the stream ended early")
}

// The typed client personasctl export uses, against this server.
func TestAdminClientExport(t *testing.T) {
	t.Parallel()
	b := setup(t)
	seedInsight(t, b)
	ctx := context.Background()
	c, err := adminclient.New(b.url, b.admin, adminclient.WithHTTPClient(b.http), adminclient.WithRetries(0))
	require.NoError(t, err)
	read := func(kind string, f adminclient.ExportFilter) string {
		t.Helper()
		body, err := c.Export(ctx, kind, f)
		require.NoError(t, err)
		defer body.Close()
		raw, err := io.ReadAll(body)
		require.NoError(t, err)
		return string(raw)
	}
	got := read("feedback", adminclient.ExportFilter{Persona: "c", From: "2026-10-01", To: "2026-11-23T00:00:00Z"})
	_, want := b.call(t, http.MethodGet, apiPath+"/export/feedback?persona=c&from=2026-10-01&to=2026-11-23T00:00:00Z", "")
	require.Equal(t, want, got)
	require.Equal(t, 6, strings.Count(got, "\n"))
	csvText := read("feedback", adminclient.ExportFilter{Module: "__parse", Format: "csv"})
	require.True(t, strings.HasPrefix(csvText, "personaId,id,tickId,module,rating,notes,createdAt\n"), csvText)

	_, err = c.Export(ctx, "ticks", adminclient.ExportFilter{Module: "todo", From: "yesterday"})
	var apiErr *adminclient.APIError
	require.ErrorAs(t, err, &apiErr)
	require.Equal(t, http.StatusBadRequest, apiErr.Status)
	require.Contains(t, strings.Join(apiErr.DetailMessages(), "; "), "module: ticks have no module")
	require.Contains(t, strings.Join(apiErr.DetailMessages(), "; "), "from: must be an RFC 3339 time")
}
