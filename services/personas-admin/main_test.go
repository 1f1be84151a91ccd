package main

import (
	"bytes"
	"context"
	"fmt"
	"github.com/mana/personas/pkg/edge"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mana/personas/pkg/dbtest"
	"github.com/mana/personas/pkg/openapitest"
	"github.com/mana/personas/pkg/personas"
	"github.com/mana/personas/pkg/personas/personastest"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestConfig(t *testing.T) {
	t.Parallel()

	t.Run("DevelopmentDefaults", func(t *testing.T) {
		t.Parallel()
		c, err := loadConfig(env(nil))
		require.NoError(t, err)
		require.Equal(t, 3062, c.Port)
		require.Equal(t, edge.DevDatabaseURL, c.DatabaseURL)
		require.Equal(t, "http://localhost:3001", c.AuthURL)
		require.Equal(t, "http://localhost:3001", c.Issuer, "the issuer is mana-auth's base URL")
		require.Equal(t, "mana", c.Audience)
		require.Equal(t, devServiceKey, c.ServiceKey)
		require.True(t, c.AutoMigrate)
		require.Equal(t, 16, c.DBMaxConns)
		require.Equal(t, 5*time.Second, c.AuthCallTimeout)
	})

	t.Run("ExplicitValues", func(t *testing.T) {
		t.Parallel()
		c, err := loadConfig(env(map[string]string{
			"PORT": "4000", "MANA_AUTH_URL": "https://auth.example/", "MANA_AUTH_ISSUER": "https://issuer.example",
			"MANA_AUTH_AUDIENCE": "mana-admin", "PERSONAS_AUTO_MIGRATE": "false", "PERSONAS_DB_MAX_CONNS": "4",
		}))
		require.NoError(t, err)
		require.Equal(t, 4000, c.Port)
		require.Equal(t, "https://auth.example", c.AuthURL)
		require.Equal(t, "https://issuer.example", c.Issuer)
		require.Equal(t, "mana-admin", c.Audience)
		require.False(t, c.AutoMigrate)
		require.Equal(t, 4, c.DBMaxConns)
	})

	prod := func(extra map[string]string) map[string]string {
		m := map[string]string{
			"NODE_ENV": "production", "DATABASE_URL": "postgres://u:secret@db/personas",
			"MANA_AUTH_URL": "http://mana-auth:3001", "MANA_SERVICE_KEY": strings.Repeat("k", 32),
		}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	t.Run("ProductionOK", func(t *testing.T) {
		t.Parallel()
		c, err := loadConfig(env(prod(nil)))
		require.NoError(t, err)
		require.False(t, c.AutoMigrate)
		require.Equal(t, "http://mana-auth:3001", c.Issuer)
	})
	for name, tc := range map[string]struct {
		extra map[string]string
		want  string
	}{
		"ProductionNeedsServiceKey":       {map[string]string{"MANA_SERVICE_KEY": ""}, "MANA_SERVICE_KEY"},
		"ProductionRefusesDevServiceKey":  {map[string]string{"MANA_SERVICE_KEY": devServiceKey}, "MANA_SERVICE_KEY"},
		"ProductionRefusesShortKey":       {map[string]string{"MANA_SERVICE_KEY": "short-key-123"}, "MANA_SERVICE_KEY"},
		"ProductionNeedsManaAuthURL":      {map[string]string{"MANA_AUTH_URL": ""}, "MANA_AUTH_URL is required"},
		"ProductionNeedsDatabaseURL":      {map[string]string{"DATABASE_URL": ""}, "DATABASE_URL"},
		"RefusesManaAuthURLWithoutScheme": {map[string]string{"MANA_AUTH_URL": "mana-auth:3001"}, "MANA_AUTH_URL"},
		"RefusesBadPort":                  {map[string]string{"PORT": "70000"}, "PORT"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := loadConfig(env(prod(tc.extra)))
			require.ErrorContains(t, err, tc.want)
		})
	}

	t.Run("LoggedConfigMasksSecrets", func(t *testing.T) {
		t.Parallel()
		c, err := loadConfig(env(prod(nil)))
		require.NoError(t, err)
		out := c.LogValue().String()
		require.NotContains(t, out, "kkkk")
		require.NotContains(t, out, "secret")
		require.Contains(t, out, "http://mana-auth:3001")
	})
}

// syncBuffer is a bytes.Buffer safe for a logger and a reader at once.
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

func TestRun(t *testing.T) {
	t.Parallel()

	t.Run("Help", func(t *testing.T) {
		t.Parallel()
		var out, errOut bytes.Buffer
		require.Equal(t, 0, run(context.Background(), []string{"help"}, env(nil), &out, &errOut))
		require.Contains(t, out.String(), "usage: personas-admin")
	})

	t.Run("UnknownCommand", func(t *testing.T) {
		t.Parallel()
		var out, errOut bytes.Buffer
		require.Equal(t, 2, run(context.Background(), []string{"frobnicate"}, env(nil), &out, &errOut))
		require.Contains(t, errOut.String(), "unknown command")
	})

	t.Run("InvalidConfigExitsWithoutLeakingSecrets", func(t *testing.T) {
		t.Parallel()
		var out, errOut bytes.Buffer
		code := run(context.Background(), nil, env(map[string]string{"NODE_ENV": "production", "MANA_SERVICE_KEY": "too-short-secret"}), &out, &errOut)
		require.Equal(t, 1, code)
		require.Contains(t, out.String(), "MANA_SERVICE_KEY")
		require.NotContains(t, out.String(), "too-short-secret")
	})

	t.Run("Migrate", func(t *testing.T) {
		t.Parallel()
		var out, errOut bytes.Buffer
		code := run(context.Background(), []string{"migrate"}, env(map[string]string{"DATABASE_URL": dbtest.Empty(t, "adminmigrate")}), &out, &errOut)
		require.Equal(t, 0, code, out.String())
		require.Contains(t, out.String(), "migrations applied")
	})

	t.Run("Backfill", func(t *testing.T) {
		t.Parallel()
		dsn := personastest.NewDSN(t)
		var out, errOut bytes.Buffer
		code := run(context.Background(), []string{"backfill", "50"}, env(map[string]string{"DATABASE_URL": dsn}), &out, &errOut)
		require.Equal(t, 0, code, out.String())
		require.Contains(t, out.String(), "backfill done")

		out.Reset()
		require.Equal(t, 2, run(context.Background(), []string{"backfill", "0"}, env(nil), &out, &errOut))
		require.Contains(t, errOut.String(), "batchSize")
	})

	t.Run("ServesWhileManaAuthIsUnreachable", func(t *testing.T) {
		t.Parallel()
		// A port nobody listens on: mana-auth refuses connections.
		dead, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		deadURL := "http://" + dead.Addr().String()
		require.NoError(t, dead.Close())
		free, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		port := free.Addr().(*net.TCPAddr).Port
		require.NoError(t, free.Close())

		ctx, cancel := context.WithCancel(context.Background())
		var out syncBuffer
		done := make(chan int, 1)
		go func() {
			done <- run(ctx, []string{"serve"}, env(map[string]string{
				"PORT": fmt.Sprint(port), "DATABASE_URL": personastest.NewDSN(t), "MANA_AUTH_URL": deadURL,
				"MANA_SERVICE_KEY": "service-key-that-must-stay-secret",
			}), &out, &out)
		}()
		hc := openapitest.Client(t, openAPIDoc)
		base := fmt.Sprintf("http://127.0.0.1:%d", port)
		get := func(path string) int {
			req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, base+path, nil)
			res, err := hc.Do(req)
			if err != nil {
				return 0
			}
			res.Body.Close()
			return res.StatusCode
		}
		require.Eventually(t, func() bool { return get("/healthz") == http.StatusOK }, 20*time.Second, 20*time.Millisecond)
		require.Equal(t, http.StatusServiceUnavailable, get("/readyz"))
		cancel()
		select {
		case code := <-done:
			require.Equal(t, 0, code, out.String())
		case <-time.After(30 * time.Second):
			t.Fatal("run did not return after cancel")
		}
		logs := out.String()
		require.Contains(t, logs, `"msg":"starting"`)
		require.Contains(t, logs, `"mana_auth_url":"`+deadURL+`"`)
		require.NotContains(t, logs, "service-key-that-must-stay-secret")
	})
}

func TestOperations(t *testing.T) {
	t.Parallel()

	t.Run("HealthReadyMetricsDocument", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		status, _ := b.call(t, http.MethodGet, "/healthz", "")
		require.Equal(t, http.StatusOK, status)
		status, body := b.call(t, http.MethodGet, "/readyz", "")
		require.Equal(t, http.StatusOK, status, body)
		b.call(t, http.MethodGet, apiPath, "")
		status, body = b.call(t, http.MethodGet, "/metrics", "")
		require.Equal(t, http.StatusOK, status)
		require.Contains(t, body, `http_requests_total{method="GET",route="/api/v1/personas/admin",status="200"} 1`)
		require.Contains(t, body, `go_sql_max_open_connections{db_name="personas"}`)
		status, body = b.call(t, http.MethodGet, "/openapi.yaml", "")
		require.Equal(t, http.StatusOK, status)
		require.Equal(t, string(openAPIDoc), body)
	})

	t.Run("UnknownRouteIsJSON404", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		status, body := b.call(t, http.MethodGet, "/nope", "")
		require.Equal(t, http.StatusNotFound, status)
		require.JSONEq(t, `{"error":"Not Found","message":"no such endpoint"}`, body)
	})

	t.Run("SchemaMissingIsNotReadyNot500", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		db, err := personas.OpenDB(dbtest.Empty(t, "adminnomigrate"), personas.PoolConfig{MaxConns: 4})
		require.NoError(t, err)
		t.Cleanup(func() { _ = db.Close() })
		b.url = serveAdmin(t, personas.New(db), Config{
			AuthURL: b.authURL, Issuer: b.authURL, Audience: "mana", ServiceKey: testServiceKey,
			AuthCallTimeout: 2 * time.Second, JWKSRefetchInterval: 10 * time.Millisecond,
		})
		status, body := b.call(t, http.MethodGet, "/readyz", "")
		require.Equal(t, http.StatusServiceUnavailable, status)
		require.Contains(t, body, "personas-admin migrate")
		status, body = b.call(t, http.MethodGet, apiPath, "")
		require.Equal(t, http.StatusServiceUnavailable, status)
		require.Contains(t, body, "personas-admin migrate")

		_, err = personas.Migrate(context.Background(), db)
		require.NoError(t, err)
		require.Eventually(t, func() bool {
			status, _ := b.call(t, http.MethodGet, apiPath, "")
			return status == http.StatusOK
		}, 10*time.Second, 100*time.Millisecond)
	})
}
