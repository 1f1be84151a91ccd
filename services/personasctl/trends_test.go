package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// fakeInsight answers the three insight calls trends makes.
func fakeInsight(t *testing.T) string {
	t.Helper()
	mux := http.NewServeMux()
	write := func(w http.ResponseWriter, v any) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(v)
	}
	mux.HandleFunc("GET /api/v1/personas/admin/modules", func(w http.ResponseWriter, r *http.Request) {
		write(w, map[string]any{"window": r.URL.Query().Get("window"), "from": "2026-11-17", "to": "2026-11-23", "modules": []any{
			map[string]any{"module": "todo", "mean": 3.5, "count": 7, "personas": 3, "lastRatedAt": "2026-11-23T11:00:00.000Z",
				"change": map[string]any{"delta": -1.0, "previousMean": 4.5, "significant": true}},
			map[string]any{"module": "notes", "mean": 4.2, "count": 5, "personas": 2, "lastRatedAt": "2026-11-23T11:00:00.000Z", "change": nil},
		}})
	})
	mux.HandleFunc("GET /api/v1/personas/admin/overview", func(w http.ResponseWriter, r *http.Request) {
		write(w, map[string]any{"flaggedModules": []any{map[string]any{"module": "todo", "since": "2026-11-02", "weeks": 3, "drop": 1.0}}})
	})
	mux.HandleFunc("GET /api/v1/personas/admin/modules/{module}/trend", func(w http.ResponseWriter, r *http.Request) {
		require.Equal(t, "week", r.URL.Query().Get("bucket"))
		write(w, map[string]any{"module": r.PathValue("module"), "bucket": "week", "buckets": []any{
			map[string]any{"start": "2026-10-26", "mean": 4.5, "count": 6, "partial": false},
			map[string]any{"start": "2026-11-02", "mean": 3.5, "count": 6, "partial": false},
			map[string]any{"start": "2026-11-23", "mean": nil, "count": 0, "partial": true},
		}, "verdict": map[string]any{"flagged": true, "since": "2026-11-02", "buckets": 3, "baselineMean": 4.5, "runMean": 3.5, "drop": 1.0}})
	})
	ts := httptest.NewServer(mux)
	t.Cleanup(ts.Close)
	return ts.URL
}

func TestTrends(t *testing.T) {
	t.Parallel()
	url := fakeInsight(t)
	env := map[string]string{"MANA_ADMIN_JWT": "token", "MANA_API_URL": url}

	r := runCLI(t, env, "", "trends", "--window", "28d")
	require.Equal(t, exitOK, r.code, r.stderr)
	require.Contains(t, r.stdout, "window 28d")
	require.Regexp(t, `!\s+todo\s+3\.50\s+7\s+-1\.00\*\s+3\s+1\.00 lower since 2026-11-02 \(3 weeks\)`, r.stdout)
	require.Regexp(t, `\s+notes\s+4\.20\s+5\s+—`, r.stdout)

	r = runCLI(t, env, "", "trends", "todo")
	require.Equal(t, exitOK, r.code, r.stderr)
	require.Contains(t, r.stdout, "2026-11-02  "+strings.Repeat("█", 25)+strings.Repeat(" ", 15)+" 3.50 n=6 !")
	require.Contains(t, r.stdout, "(partial)")
	require.Contains(t, r.stdout, "! flagged: 1.00 below its baseline (4.50 → 3.50) for 3 weeks since 2026-11-02")

	r = runCLI(t, env, "", "trends", "--output", "json")
	require.Equal(t, exitOK, r.code, r.stderr)
	var out struct {
		Flagged []struct{ Module string }
	}
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &out))
	require.Equal(t, "todo", out.Flagged[0].Module)

	r = runCLI(t, env, "", "trends", "--window", "3d")
	require.Equal(t, exitUsage, r.code)
	r = runCLI(t, env, "", "trends", "a", "b")
	require.Equal(t, exitUsage, r.code)
}
