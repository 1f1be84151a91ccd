package edge_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/stretchr/testify/require"

	"github.com/mana/personas/pkg/edge"
)

// syncBuffer is a log destination safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// lines returns the JSON log lines written so far.
func (s *syncBuffer) lines(t *testing.T) []map[string]any {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(s.b.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(l), &m), l)
		out = append(out, m)
	}
	return out
}

func serve(t *testing.T, h http.Handler, o edge.ServeOptions) (addr string, logs *syncBuffer, stop context.CancelFunc, served chan error) {
	t.Helper()
	ln, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", "127.0.0.1:0")
	require.NoError(t, err)
	logs = &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	served = make(chan error, 1)
	go func() { served <- edge.Serve(ctx, ln, h, o, slog.New(slog.NewJSONHandler(logs, nil))) }()
	t.Cleanup(cancel)
	return ln.Addr().String(), logs, cancel, served
}

// TestServeCutsRequestsPastTheBudget: a request still running when the
// shutdown budget ends is cut, and that is a clean stop (nil, so exit
// status 0) with a warning that counts the connections cut, not an error.
func TestServeCutsRequestsPastTheBudget(t *testing.T) {
	t.Parallel()
	started, release := make(chan struct{}, 2), make(chan struct{})
	defer close(release)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		<-release // outlives the budget
	})
	addr, logs, stop, served := serve(t, h, edge.ServeOptions{ShutdownTimeout: 300 * time.Millisecond})
	for range 2 {
		go func() {
			req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, "http://"+addr+"/", nil)
			// A fresh connection each: two connections to cut.
			resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Do(req)
			if err == nil {
				_ = resp.Body.Close()
			}
		}()
	}
	<-started
	<-started
	begun := time.Now()
	stop()
	select {
	case err := <-served:
		require.NoError(t, err, "a spent shutdown budget is not a failure")
	case <-time.After(5 * time.Second):
		require.FailNow(t, "Serve did not return after its shutdown budget")
	}
	require.Less(t, time.Since(begun), 3*time.Second)

	var warned bool
	for _, l := range logs.lines(t) {
		require.NotEqual(t, "ERROR", l["level"], "no ERROR line: %v", l)
		if l["level"] == "WARN" && strings.Contains(fmt.Sprint(l["msg"]), "shutdown budget") {
			warned = true
			require.EqualValues(t, 2, l["connections_cut"], "%v", l)
			require.Equal(t, "300ms", l["timeout"])
		}
	}
	require.True(t, warned, "a WARN line names the connections cut: %v", logs.lines(t))
}

// TestSlowBodyIs408: a body that has not arrived when the server's
// ReadTimeout passes is answered 408 Request Timeout (errs.Timeout), not a
// 400 about bad input nor a 500.
func TestSlowBodyIs408(t *testing.T) {
	t.Parallel()
	srv := edge.New(edge.Options{Name: "test", Logger: slog.New(slog.NewJSONHandler(io.Discard, nil)), BodyLimit: 1 << 20})
	srv.Echo.POST("/echo", func(c echo.Context) error {
		b, err := io.ReadAll(c.Request().Body)
		if err != nil {
			return err
		}
		return c.String(http.StatusOK, string(b))
	})
	addr, _, _, _ := serve(t, srv.Echo, edge.ServeOptions{ReadTimeout: 300 * time.Millisecond, WriteTimeout: 5 * time.Second})

	conn, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer conn.Close()
	require.NoError(t, conn.SetDeadline(time.Now().Add(10*time.Second)))
	// Headers promise 100 bytes; 10 arrive, then the client stalls.
	_, err = io.WriteString(conn, "POST /echo HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"actions\"")
	require.NoError(t, err)
	begun := time.Now()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusRequestTimeout, resp.StatusCode, string(body))
	require.JSONEq(t, `{"error":"Request Timeout","message":"the request body did not arrive in time"}`, string(body))
	require.Less(t, time.Since(begun), 3*time.Second, "answered at the read deadline, not later")
}

// TestTimeoutsNest pins the relations timeouts.go promises (deploy/k8s
// checks the manifests' side).
func TestTimeoutsNest(t *testing.T) {
	t.Parallel()
	require.Less(t, edge.ReadTimeout, edge.RequestTimeout, "a slow body is a 408 before the request deadline")
	require.Less(t, edge.RequestTimeout, edge.WriteTimeout, "an answer after the deadline can still be written")
	require.Less(t, edge.RequestTimeout, edge.ShutdownTimeout, "a request started before SIGTERM ends within the budget")
	require.GreaterOrEqual(t, edge.ShutdownTimeout, edge.ReadHeaderTimeout+edge.WriteTimeout)
	require.Less(t, edge.PreStopSleep+edge.ShutdownTimeout, edge.GracePeriod, "Kubernetes' SIGKILL comes after the budget")
}
