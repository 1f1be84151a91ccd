package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestOperatorUsage(t *testing.T) {
	t.Parallel()
	for _, cmd := range []string{"fleet", "pause", "resume", "enable", "disable", "release", "unquarantine", "ticks"} {
		t.Run("HelpOf"+cmd, func(t *testing.T) {
			t.Parallel()
			r := runCLI(t, nil, "", cmd, "--help")
			require.Equal(t, exitOK, r.code, r.stderr)
			require.Contains(t, r.stdout, "usage: personasctl "+cmd)
		})
	}
	for name, tc := range map[string]struct {
		args []string
		want string
	}{
		"PauseTakesNoArguments": {[]string{"pause", "now"}, "unexpected arguments: now"},
		"EnableNeedsAPersona":   {[]string{"enable"}, "expected exactly one USERID or EMAIL"},
		"ReleaseOneOnly":        {[]string{"release", "a", "b"}, "expected exactly one USERID or EMAIL"},
		"TicksNeedsAPersona":    {[]string{"ticks"}, "expected USERID or EMAIL"},
		"TicksLimitRange":       {[]string{"ticks", "--limit", "0", "p1"}, "--limit must be from 1 to 200"},
		"TicksBadOutput":        {[]string{"ticks", "--output", "yaml", "p1"}, "--output must be text or json"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			r := runCLI(t, map[string]string{"MANA_ADMIN_JWT": "tok"}, "", tc.args...)
			require.Equal(t, exitUsage, r.code, r.stderr)
			require.Contains(t, r.stderr, tc.want)
		})
	}
	t.Run("MissingTokenIsAClearFailure", func(t *testing.T) {
		t.Parallel()
		r := runCLI(t, map[string]string{"MANA_API_URL": closedURL(t)}, "", "pause")
		require.Equal(t, exitFailure, r.code)
		require.Contains(t, r.stderr, "no admin token")
	})
	t.Run("UnreachableAPIFails", func(t *testing.T) {
		t.Parallel()
		r := runCLI(t, map[string]string{"MANA_ADMIN_JWT": "secret-tok", "MANA_API_URL": closedURL(t)}, "", "disable", "p1")
		require.Equal(t, exitFailure, r.code)
		require.Contains(t, r.stderr, "PATCH /api/v1/personas/admin/p1")
		require.NotContains(t, r.stderr, "secret-tok")
	})
}

// TestOperatorCommands runs the commands against a recording stand-in of
// the admin API: the requests they send and what they print. The real
// server's side of these calls is tested in services/personas-admin.
func TestOperatorCommands(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var seen []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		seen = append(seen, strings.TrimSpace(r.Method+" "+r.URL.RequestURI()+" "+string(body)))
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		const base = "/api/v1/personas/admin"
		persona := `{"userId":"u1","email":"persona.anna@mana.test","archetype":"a","tickCadence":"daily","lastActiveAt":null,"actions7d":0}`
		switch r.URL.Path {
		case base:
			_, _ = io.WriteString(w, `{"personas":[`+persona+`],"nextCursor":null}`)
		case base + "/runner":
			paused := r.Method == http.MethodPut && strings.Contains(string(body), "true")
			_ = json.NewEncoder(w).Encode(map[string]any{"paused": paused, "updatedAt": "2026-11-23T12:00:00.000Z", "updatedBy": "admin@mana.test"})
		case base + "/u1":
			_, _ = io.WriteString(w, persona)
		case base + "/u1/lease/release":
			_, _ = io.WriteString(w, `{"ok":true,"released":true}`)
		case base + "/u1/unquarantine":
			_, _ = io.WriteString(w, persona)
		case base + "/u1/ticks":
			_, _ = io.WriteString(w, `{"ticks":[{"tickId":"t9","recorded":true,"status":"failed","startedAt":"2026-11-23T12:00:00.000Z",
				"durationMs":90000,"actions":3,"errors":1,"ratings":0,"errorKind":"llm","staleWrites":0,"createdAt":"2026-11-23T12:00:00.000Z"}],"nextCursor":"next-1"}`)
		case base + "/u1/ticks/t9":
			_, _ = io.WriteString(w, `{"tick":{"tickId":"t9","recorded":true,"status":"failed","summary":"Müde.","createdAt":"2026-11-23T12:00:00.000Z"},"actions":[],"feedback":[]}`)
		default:
			w.WriteHeader(http.StatusNotFound)
			_, _ = io.WriteString(w, `{"error":"Persona not found"}`)
		}
	}))
	t.Cleanup(srv.Close)
	env := map[string]string{"MANA_ADMIN_JWT": "tok", "MANA_API_URL": srv.URL}

	for _, tc := range []struct {
		args []string
		out  string
		sent string
	}{
		{[]string{"pause"}, "fleet paused", `PUT /api/v1/personas/admin/runner {"paused":true}`},
		{[]string{"resume"}, "fleet running; last switched 2026-11-23T12:00:00Z by admin@mana.test", `PUT /api/v1/personas/admin/runner {"paused":false}`},
		{[]string{"fleet"}, "fleet running", "GET /api/v1/personas/admin/runner"},
		{[]string{"disable", "u1"}, "u1: disabled", `PATCH /api/v1/personas/admin/u1 {"enabled":false}`},
		{[]string{"enable", "persona.anna@mana.test"}, "persona.anna@mana.test: enabled", `PATCH /api/v1/personas/admin/u1 {"enabled":true}`},
		{[]string{"release", "u1"}, "u1: lease released", "POST /api/v1/personas/admin/u1/lease/release"},
		{[]string{"unquarantine", "u1"}, "u1: quarantine lifted", "POST /api/v1/personas/admin/u1/unquarantine"},
		{[]string{"ticks", "--status", "failed", "u1"}, "more: --cursor next-1", "GET /api/v1/personas/admin/u1/ticks?limit=20&status=failed"},
		{[]string{"ticks", "u1", "t9"}, `"summary": "Müde."`, "GET /api/v1/personas/admin/u1/ticks/t9"},
	} {
		r := runCLI(t, env, "", tc.args...)
		require.Equal(t, exitOK, r.code, "%v: %s", tc.args, r.stderr)
		require.Contains(t, r.stdout, tc.out, tc.args)
		mu.Lock()
		last := seen[len(seen)-1]
		mu.Unlock()
		require.Equal(t, tc.sent, last, tc.args)
	}
	r := runCLI(t, env, "", "ticks", "u1")
	require.Contains(t, r.stdout, "t9    failed  2026-11-23T12:00:00Z  1m30s     3        1       0        llm")

	r = runCLI(t, env, "", "release", "nobody")
	require.Equal(t, exitFailure, r.code)
	require.Contains(t, r.stderr, "404")
}
