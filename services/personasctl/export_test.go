package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// exportStandIn serves GET /export/{kind} with body, recording the query;
// brokenAfter > 0 aborts the response after that many bytes. The real
// server's side is tested with the same client in services/personas-admin.
type exportStandIn struct {
	url   string
	mu    sync.Mutex
	query url.Values
	kind  string
}

func newExportStandIn(t *testing.T, body string, brokenAfter int) *exportStandIn {
	t.Helper()
	s := &exportStandIn{}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/personas/admin/export/{kind}", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.query, s.kind = r.URL.Query(), r.PathValue("kind")
		s.mu.Unlock()
		if r.URL.Query().Get("from") == "yesterday" {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, `{"error":"ValidationError","details":[{"field":"from","message":"must be an RFC 3339 time or a day (YYYY-MM-DD)"}]}`)
			return
		}
		w.Header().Set("Content-Type", "application/x-ndjson")
		w.WriteHeader(http.StatusOK)
		if brokenAfter > 0 {
			_, _ = io.WriteString(w, body[:brokenAfter])
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler)
		}
		_, _ = io.WriteString(w, body)
	})
	ts := httptest.NewServer(mux)
	t.Cleanup(ts.Close)
	s.url = ts.URL
	return s
}

const ndjsonRows = `{"personaId":"p1","id":"a","rating":4}
{"personaId":"p1","id":"b","rating":2}
{"personaId":"p2","id":"c","rating":5}
`

func TestExportUsage(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		args []string
		want string
	}{
		"NeedsAKind":  {[]string{"export"}, "expected exactly one of actions, feedback, ticks"},
		"UnknownKind": {[]string{"export", "users"}, `unknown kind "users"`},
		"BadFormat":   {[]string{"export", "--format", "xml", "ticks"}, "--format must be ndjson or csv"},
		"EmptyOutput": {[]string{"export", "-o", "", "ticks"}, "-o needs a file name"},
		"TwoKinds":    {[]string{"export", "ticks", "actions"}, "expected exactly one of"},
		"UnknownFlag": {[]string{"export", "--since", "x", "ticks"}, "flag provided but not defined: -since"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			r := runCLI(t, map[string]string{"MANA_ADMIN_JWT": "tok", "MANA_API_URL": closedURL(t)}, "", tc.args...)
			require.Equal(t, exitUsage, r.code, r.stderr)
			require.Contains(t, r.stderr, tc.want)
		})
	}
}

func TestExportCommand(t *testing.T) {
	t.Parallel()
	t.Run("WritesTheFileQuietlyWhenNotATerminal", func(t *testing.T) {
		t.Parallel()
		s := newExportStandIn(t, ndjsonRows, 0)
		dir := t.TempDir()
		out := filepath.Join(dir, "feedback.ndjson")
		r := runCLI(t, map[string]string{"MANA_ADMIN_JWT": "tok", "MANA_API_URL": s.url}, "",
			"export", "--from", "2026-11-01", "--to", "2026-11-23T12:00:00Z", "--persona", "p1", "--module", "todo", "-o", out, "feedback")
		require.Equal(t, exitOK, r.code, r.stderr)
		require.Empty(t, r.stderr, "quiet when stderr is not a terminal")
		require.Empty(t, r.stdout)
		got, err := os.ReadFile(out)
		require.NoError(t, err)
		require.Equal(t, ndjsonRows, string(got))
		require.Equal(t, "feedback", s.kind)
		require.Equal(t, url.Values{"from": {"2026-11-01"}, "to": {"2026-11-23T12:00:00Z"}, "persona": {"p1"}, "module": {"todo"},
			"format": {"ndjson"}}, s.query)
		entries, err := os.ReadDir(dir)
		require.NoError(t, err)
		require.Len(t, entries, 1, "no temporary file left behind")
	})

	t.Run("CSVFromTheFileName", func(t *testing.T) {
		t.Parallel()
		s := newExportStandIn(t, "a,b\n1,2\n", 0)
		out := filepath.Join(t.TempDir(), "ticks.CSV")
		r := runCLI(t, map[string]string{"MANA_ADMIN_JWT": "tok", "MANA_API_URL": s.url}, "", "export", "-o", out, "ticks")
		require.Equal(t, exitOK, r.code, r.stderr)
		require.Equal(t, "csv", s.query.Get("format"))
	})

	t.Run("StdoutByDefault", func(t *testing.T) {
		t.Parallel()
		s := newExportStandIn(t, ndjsonRows, 0)
		r := runCLI(t, map[string]string{"MANA_ADMIN_JWT": "tok", "MANA_API_URL": s.url}, "", "export", "actions")
		require.Equal(t, exitOK, r.code, r.stderr)
		require.Equal(t, ndjsonRows, r.stdout)
	})

	t.Run("ABrokenStreamLeavesNoFile", func(t *testing.T) {
		t.Parallel()
		s := newExportStandIn(t, ndjsonRows, 50)
		dir := t.TempDir()
		out := filepath.Join(dir, "actions.ndjson")
		r := runCLI(t, map[string]string{"MANA_ADMIN_JWT": "tok", "MANA_API_URL": s.url}, "", "export", "-o", out, "actions")
		require.Equal(t, exitFailure, r.code)
		require.Contains(t, r.stderr, "the export broke off after 1 rows")
		entries, err := os.ReadDir(dir)
		require.NoError(t, err)
		require.Empty(t, entries, "neither the file nor its temporary")
	})

	t.Run("TheServersRefusalIsShown", func(t *testing.T) {
		t.Parallel()
		s := newExportStandIn(t, ndjsonRows, 0)
		out := filepath.Join(t.TempDir(), "x.ndjson")
		r := runCLI(t, map[string]string{"MANA_ADMIN_JWT": "tok", "MANA_API_URL": s.url}, "", "export", "--from", "yesterday", "-o", out, "actions")
		require.Equal(t, exitFailure, r.code)
		require.Contains(t, r.stderr, "from: must be an RFC 3339 time or a day")
		require.NoFileExists(t, out)
	})

	t.Run("ProgressOnATerminal", func(t *testing.T) {
		t.Parallel()
		s := newExportStandIn(t, ndjsonRows, 0)
		pr, pw, err := os.Pipe()
		require.NoError(t, err)
		var stdout bytes.Buffer
		a := &app{
			cfg:    loadConfig(func(k string) string { return map[string]string{"MANA_ADMIN_JWT": "tok", "MANA_API_URL": s.url}[k] }),
			stdout: &stdout, stderr: pw, stdin: strings.NewReader(""),
			isTerminal: func(r io.Reader) bool { return r == pw },
		}
		code := a.dispatch(context.Background(), []string{"export", "-o", filepath.Join(t.TempDir(), "f.ndjson"), "feedback"})
		require.NoError(t, pw.Close())
		stderr, err := io.ReadAll(pr)
		require.NoError(t, err)
		require.Equal(t, exitOK, code, string(stderr))
		require.Regexp(t, `\r\[=+\] 3 rows  117 B  [0-9,]+ rows/s  .*/s  0:00\x1b\[K\n$`, string(stderr))
	})
}

func TestRenderProgress(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		rows, bytes int64
		took        time.Duration
		frame       int
		done        bool
		want        string
	}{
		"Start":   {0, 0, 0, 0, false, "[====                ] 0 rows  0 B  0 rows/s  0 B/s  0:00"},
		"Moving":  {12345, 3_100_000, 2 * time.Second, 3, false, "[   ====             ] 12,345 rows  3.1 MB  6,172 rows/s  1.6 MB/s  0:02"},
		"Bounces": {1, 10, time.Second, 18, false, "[              ====  ] 1 rows  10 B  1 rows/s  10 B/s  0:01"},
		"AtEnd":   {1, 10, time.Second, 16, false, "[                ====] 1 rows  10 B  1 rows/s  10 B/s  0:01"},
		"Done": {1_000_000, 243_800_000, 95 * time.Second, 7, true,
			"[====================] 1,000,000 rows  243.8 MB  10,526 rows/s  2.6 MB/s  1:35"},
		"Big": {1_234_567_890, 2_500_000_000, time.Hour, 1, false, "[ ====               ] 1,234,567,890 rows  2.50 GB  342,935 rows/s  694.4 kB/s  60:00"},
	} {
		require.Equal(t, tc.want, renderProgress(tc.rows, tc.bytes, tc.took, tc.frame, tc.done), name)
	}
}

func TestRowCounter(t *testing.T) {
	t.Parallel()
	csvText := "a,b\n1,\"zwei\nZeilen, \"\"quoted\"\"\"\n3,x\n"
	for _, chunk := range []int{1, 3, len(csvText)} {
		c := newRowCounter(true)
		for i := 0; i < len(csvText); i += chunk {
			c.Write([]byte(csvText[i:min(i+chunk, len(csvText))]))
		}
		require.EqualValues(t, 2, c.rows(), "chunks of %d", chunk)
		require.EqualValues(t, len(csvText), c.bytes)
	}
	c := newRowCounter(false)
	c.Write([]byte(`{"notes":"a \"quote\" and\nno"}` + "\n" + `{"x":1}` + "\n"))
	require.EqualValues(t, 2, c.rows(), "NDJSON: lines (newlines inside strings are escaped)")
}
