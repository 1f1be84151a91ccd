package edge_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/stretchr/testify/require"

	"github.com/mana/personas/pkg/edge"
	"github.com/mana/personas/pkg/errs"
)

var errConflict = errs.E(errs.Conflict, "already taken")

func newServer(t *testing.T) *httptest.Server {
	t.Helper()
	srv := edge.New(edge.Options{
		Name:      "test",
		Logger:    slog.New(slog.NewJSONHandler(io.Discard, nil)),
		BodyLimit: 16,
	})
	srv.Echo.GET("/panic", func(echo.Context) error { panic("boom: secret detail") })
	srv.Echo.GET("/mapped", func(echo.Context) error { return fmt.Errorf("wrapped: %w", errConflict) })
	srv.Echo.GET("/down", func(echo.Context) error { return errs.E(errs.Unavailable, "database unavailable; retry") })
	srv.Echo.GET("/item/:id", func(c echo.Context) error { return c.String(http.StatusOK, c.Param("id")) })
	srv.Echo.GET("/unknown", func(echo.Context) error { return errors.New("db password=hunter2 leaked") })
	srv.Echo.POST("/echo", func(c echo.Context) error {
		b, err := io.ReadAll(c.Request().Body)
		if err != nil {
			return err
		}
		return c.String(http.StatusOK, string(b))
	})
	srv.Echo.GET("/keyed", func(c echo.Context) error { return c.String(http.StatusOK, "in") },
		edge.ServiceKey("current-key", "previous-key", ""))
	ts := httptest.NewServer(srv.Echo)
	t.Cleanup(ts.Close)
	return ts
}

func do(t *testing.T, method, url, body string, header ...string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), method, url, strings.NewReader(body))
	require.NoError(t, err)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, resp.Header, string(raw)
}

func TestErrorsAreContractJSON(t *testing.T) {
	t.Parallel()
	ts := newServer(t)
	cases := []struct {
		name, method, path, body string
		status                   int
		want                     string
	}{
		{"UnknownRoute", "GET", "/nope", "", 404, `{"error":"Not Found","message":"no such endpoint"}`},
		{"WrongMethod", "DELETE", "/mapped", "", 405, `{"error":"Method Not Allowed"}`},
		{"Coded", "GET", "/mapped", "", 409, `{"error":"Conflict","message":"already taken"}`},
		{"Unavailable", "GET", "/down", "", 503, `{"error":"Service Unavailable","message":"database unavailable; retry"}`},
		{"NULInPath", "GET", "/item/a%00b", "", 400, `{"error":"ValidationError","message":"id: must be valid UTF-8 without NUL characters","details":[{"field":"id","message":"must be valid UTF-8 without NUL characters"}]}`},
		{"BadUTF8InQuery", "GET", "/item/a?q=%ff", "", 400, `{"error":"ValidationError","message":"q: must be valid UTF-8 without NUL characters","details":[{"field":"q","message":"must be valid UTF-8 without NUL characters"}]}`},
		{"UnknownIs500WithoutDetail", "GET", "/unknown", "", 500, `{"error":"Internal Server Error"}`},
		{"PanicIs500WithoutDetail", "GET", "/panic", "", 500, `{"error":"Internal Server Error"}`},
		{"BodyOverLimit", "POST", "/echo", strings.Repeat("x", 17), 413, `{"error":"Payload Too Large","message":"request body exceeds 16 bytes"}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			status, _, body := do(t, tc.method, ts.URL+tc.path, tc.body)
			require.Equal(t, tc.status, status)
			require.JSONEq(t, tc.want, body)
		})
	}

	t.Run("TrailingSlashReachesTheRoute", func(t *testing.T) {
		t.Parallel()
		status, _, body := do(t, "GET", ts.URL+"/item/x/", "")
		require.Equal(t, http.StatusOK, status)
		require.Equal(t, "x", body)
	})

	t.Run("Every503SaysWhenToRetry", func(t *testing.T) {
		t.Parallel()
		_, h, _ := do(t, "GET", ts.URL+"/down", "")
		require.Equal(t, "1", h.Get("Retry-After"))
	})

	t.Run("BodyWithinLimit", func(t *testing.T) {
		t.Parallel()
		status, _, body := do(t, "POST", ts.URL+"/echo", "sixteen bytes ok")
		require.Equal(t, http.StatusOK, status)
		require.Equal(t, "sixteen bytes ok", body)
	})
}

func TestRequestID(t *testing.T) {
	t.Parallel()
	ts := newServer(t)
	_, h, _ := do(t, "GET", ts.URL+"/healthz", "", "X-Request-Id", "req-42")
	require.Equal(t, "req-42", h.Get("X-Request-Id"))
	_, h, _ = do(t, "GET", ts.URL+"/healthz", "", "X-Request-Id", "abc/def+ghi=@x")
	require.Equal(t, "abc/def+ghi=@x", h.Get("X-Request-Id"), "the gateway's character set")
	_, h, _ = do(t, "GET", ts.URL+"/healthz", "", "X-Request-Id", "bad id with spaces;and{braces}")
	require.Len(t, h.Get("X-Request-Id"), 24, "a malformed id is replaced by a fresh one")
	_, h, _ = do(t, "GET", ts.URL+"/healthz", "")
	require.Len(t, h.Get("X-Request-Id"), 24)
}

func TestServiceKey(t *testing.T) {
	t.Parallel()
	ts := newServer(t)
	for _, tc := range []struct {
		name, key string
		status    int
	}{
		{"Current", "current-key", 200},
		{"Previous", "previous-key", 200},
		{"Missing", "", 401},
		{"Wrong", "current-kex", 401},
		{"Prefix", "current", 401},
		{"Longer", "current-key-and-more", 401},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			status, _, _ := do(t, "GET", ts.URL+"/keyed", "", "X-Service-Key", tc.key)
			require.Equal(t, tc.status, status)
		})
	}
}

func TestServiceKeyRefusesTwoHeaders(t *testing.T) {
	t.Parallel()
	ts := newServer(t)
	req, err := http.NewRequestWithContext(context.Background(), "GET", ts.URL+"/keyed", nil)
	require.NoError(t, err)
	req.Header.Add("X-Service-Key", "current-key")
	req.Header.Add("X-Service-Key", "wrong")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	_ = resp.Body.Close()
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode, "the first header being good is not enough")
}

func TestGateOpensOnceReady(t *testing.T) {
	t.Parallel()
	ready := make(chan struct{})
	e := echo.New()
	e.HTTPErrorHandler = func(err error, c echo.Context) { _ = c.String(http.StatusServiceUnavailable, err.Error()) }
	e.GET("/", func(c echo.Context) error { return c.String(http.StatusOK, "open") }, edge.Gate(func(context.Context) error {
		select {
		case <-ready:
			return nil
		default:
			return errors.New("not yet")
		}
	}))
	ts := httptest.NewServer(e)
	defer ts.Close()
	status, _, body := do(t, "GET", ts.URL+"/", "")
	require.Equal(t, http.StatusServiceUnavailable, status)
	require.Equal(t, "not yet", body)
	close(ready)
	require.Eventually(t, func() bool {
		status, _, _ := do(t, "GET", ts.URL+"/", "")
		return status == http.StatusOK
	}, 5*time.Second, 50*time.Millisecond)
}

// TestServeFinishesInFlightRequests: cancelling Serve's context (what
// SIGTERM does in main) stops new connections but lets a request that is
// already running complete.
func TestServeFinishesInFlightRequests(t *testing.T) {
	t.Parallel()
	started, release := make(chan struct{}), make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-release
		_, _ = io.WriteString(w, "finished")
	})
	ln, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() {
		served <- edge.Serve(ctx, ln, h, edge.ServeOptions{ShutdownTimeout: 10 * time.Second}, slog.New(slog.NewJSONHandler(io.Discard, nil)))
	}()
	type result struct {
		status int
		body   string
		err    error
	}
	got := make(chan result, 1)
	go func() {
		req, _ := http.NewRequestWithContext(context.Background(), "GET", "http://"+ln.Addr().String()+"/", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			got <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		got <- result{status: resp.StatusCode, body: string(b), err: err}
	}()
	<-started
	cancel() // shutdown begins while the request is in flight
	require.Eventually(t, func() bool {
		conn, err := (&net.Dialer{}).DialContext(context.Background(), "tcp", ln.Addr().String())
		if err != nil {
			return true // the listener is closed: shutdown is under way
		}
		_ = conn.Close()
		return false
	}, 5*time.Second, 10*time.Millisecond)
	close(release)
	r := <-got
	require.NoError(t, r.err)
	require.Equal(t, http.StatusOK, r.status)
	require.Equal(t, "finished", r.body)
	require.NoError(t, <-served)
}
