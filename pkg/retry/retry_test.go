package retry_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mana/personas/pkg/retry"
	"github.com/stretchr/testify/require"
)

// fast is a policy with waits short enough for tests.
var fast = retry.Policy{MaxAttempts: 4, BaseDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond, PerAttempt: time.Second}

// server answers each request with the status next returns, counting hits.
type server struct {
	*httptest.Server
	hits atomic.Int64
}

func newServer(t *testing.T, handler func(n int64, w http.ResponseWriter, r *http.Request)) *server {
	t.Helper()
	s := &server{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		handler(s.hits.Add(1), w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

func status(code int) func(int64, http.ResponseWriter, *http.Request) {
	return func(_ int64, w http.ResponseWriter, _ *http.Request) { w.WriteHeader(code) }
}

// send returns an Attempt sending method to url with body.
func send(method, url, body string) retry.Attempt {
	return func(ctx context.Context) (*http.Response, error) {
		var rd io.Reader
		if body != "" {
			rd = strings.NewReader(body)
		}
		req, err := http.NewRequestWithContext(ctx, method, url, rd)
		if err != nil {
			return nil, err
		}
		return http.DefaultClient.Do(req)
	}
}

// do runs p.Do and returns the status and body of the answer (0, "" when
// there is none), closing it.
func do(t *testing.T, p retry.Policy, idempotent bool, a retry.Attempt) (int, string, error) {
	t.Helper()
	res, err := p.Do(context.Background(), idempotent, a)
	if res == nil {
		return 0, "", err
	}
	defer func() { _ = res.Body.Close() }()
	body, rerr := io.ReadAll(res.Body)
	if err == nil {
		err = rerr
	}
	return res.StatusCode, string(body), err
}

func TestAttemptsPerStatus(t *testing.T) {
	t.Parallel()
	cases := []struct {
		status int
		hits   int64
	}{
		{200, 1}, {204, 1}, {400, 1}, {401, 1}, {403, 1}, {404, 1}, {409, 1}, {422, 1},
		{500, 1}, {501, 1},
		{429, 4}, {502, 4}, {503, 4}, {504, 4},
	}
	for _, tc := range cases {
		t.Run(strconv.Itoa(tc.status), func(t *testing.T) {
			t.Parallel()
			s := newServer(t, status(tc.status))
			got, _, err := do(t, fast, true, send(http.MethodGet, s.URL, ""))
			require.NoError(t, err)
			require.Equal(t, tc.status, got, "the last answer is returned as it is")
			require.Equal(t, tc.hits, s.hits.Load())
		})
	}
}

func TestSucceedsAfterTransientFailures(t *testing.T) {
	t.Parallel()
	s := newServer(t, func(n int64, w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if string(body) != "payload" {
			w.WriteHeader(http.StatusTeapot) // the body was not re-sent
			return
		}
		if n < 3 {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, "not yet")
			return
		}
		_, _ = io.WriteString(w, "done")
	})
	got, body, err := do(t, fast, true, send(http.MethodPut, s.URL, "payload"))
	require.NoError(t, err)
	require.Equal(t, 200, got)
	require.Equal(t, "done", body)
	require.EqualValues(t, 3, s.hits.Load())
}

func TestNonIdempotentIsNotRetried(t *testing.T) {
	t.Parallel()
	for _, code := range []int{429, 502, 503, 504} {
		s := newServer(t, status(code))
		got, _, err := do(t, fast, false, send(http.MethodPost, s.URL, "x"))
		require.NoError(t, err)
		require.Equal(t, code, got)
		require.EqualValues(t, 1, s.hits.Load(), "status %d", code)
	}

	t.Run("ResetIsNotRetried", func(t *testing.T) {
		t.Parallel()
		s := newServer(t, func(_ int64, w http.ResponseWriter, _ *http.Request) {
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				_ = conn.Close() // the request arrived; its answer is lost
			}
		})
		_, _, err := do(t, fast, false, send(http.MethodPost, s.URL, "x"))
		require.Error(t, err)
		require.EqualValues(t, 1, s.hits.Load())
	})

	t.Run("RefusedIsRetried", func(t *testing.T) {
		t.Parallel()
		// A refused connection never carried the request: safe to repeat.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		url := "http://" + ln.Addr().String()
		require.NoError(t, ln.Close())
		var tries atomic.Int64
		a := send(http.MethodPost, url, "x")
		_, _, err = do(t, fast, false, func(ctx context.Context) (*http.Response, error) {
			tries.Add(1)
			return a(ctx)
		})
		require.Error(t, err)
		require.True(t, retry.NotSent(err), "%v", err)
		require.EqualValues(t, fast.MaxAttempts, tries.Load())
	})
}

func TestNetworkErrorsAreRetried(t *testing.T) {
	t.Parallel()
	t.Run("ConnectionClosedBeforeAnswer", func(t *testing.T) {
		t.Parallel()
		s := newServer(t, func(n int64, w http.ResponseWriter, _ *http.Request) {
			if n == 1 {
				conn, _, err := w.(http.Hijacker).Hijack()
				if err == nil {
					_ = conn.Close()
				}
				return
			}
			w.WriteHeader(http.StatusOK)
		})
		got, _, err := do(t, fast, true, send(http.MethodGet, s.URL, ""))
		require.NoError(t, err)
		require.Equal(t, 200, got)
		require.EqualValues(t, 2, s.hits.Load())
	})

	t.Run("PerAttemptTimeout", func(t *testing.T) {
		t.Parallel()
		s := newServer(t, func(n int64, w http.ResponseWriter, r *http.Request) {
			if n == 1 {
				<-r.Context().Done() // hang until the client gives up
				return
			}
			w.WriteHeader(http.StatusOK)
		})
		p := fast
		p.PerAttempt = 250 * time.Millisecond // ample for the second attempt, even under -race
		got, _, err := do(t, p, true, send(http.MethodGet, s.URL, ""))
		require.NoError(t, err)
		require.Equal(t, 200, got)
		require.EqualValues(t, 2, s.hits.Load())
	})

	t.Run("PerAttemptDeadlineCoversTheBody", func(t *testing.T) {
		t.Parallel()
		s := newServer(t, func(_ int64, w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusOK)
			w.(http.Flusher).Flush()
			<-r.Context().Done()
		})
		p := fast
		p.PerAttempt = 50 * time.Millisecond
		_, _, err := do(t, p, true, send(http.MethodGet, s.URL, ""))
		require.ErrorIs(t, err, context.DeadlineExceeded, "reading the body past the attempt's deadline fails")
	})
}

func TestRetryAfterIsHonoured(t *testing.T) {
	t.Parallel()
	// Retry-After: 1 (second) capped at MaxDelay: the client waits the cap,
	// not its own (zero) backoff.
	s := newServer(t, func(n int64, w http.ResponseWriter, _ *http.Request) {
		if n == 1 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	p := retry.Policy{MaxAttempts: 2, MaxDelay: 80 * time.Millisecond}
	start := time.Now()
	got, _, err := do(t, p, true, send(http.MethodGet, s.URL, ""))
	require.NoError(t, err)
	require.Equal(t, 200, got)
	elapsed := time.Since(start)
	require.GreaterOrEqual(t, elapsed, 80*time.Millisecond)
	require.Less(t, elapsed, time.Second, "Retry-After is capped at MaxDelay")
}

func TestRetryAfterParsing(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	cases := []struct {
		header string
		want   time.Duration
		ok     bool
	}{
		{"", 0, false},
		{"3", 3 * time.Second, true},
		{" 0 ", 0, true},
		{"-1", 0, false},
		{"soon", 0, false},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second, true},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0, true},
	}
	for _, tc := range cases {
		d, ok := retry.RetryAfter(tc.header, now)
		require.Equal(t, tc.ok, ok, tc.header)
		require.Equal(t, tc.want, d, tc.header)
	}
}

func TestTotalDeadline(t *testing.T) {
	t.Parallel()
	s := newServer(t, status(http.StatusServiceUnavailable))
	p := retry.Policy{MaxAttempts: 1_000_000, BaseDelay: 5 * time.Millisecond, MaxDelay: 20 * time.Millisecond}
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	start := time.Now()
	res, err := p.Do(ctx, true, send(http.MethodGet, s.URL, ""))
	if res != nil {
		_ = res.Body.Close()
	}
	require.Less(t, time.Since(start), 500*time.Millisecond, "the caller's deadline ends the call")
	if err != nil {
		require.ErrorIs(t, err, context.DeadlineExceeded)
	} else {
		require.Equal(t, http.StatusServiceUnavailable, res.StatusCode, "stopped early: the next wait outlasted the deadline")
	}
	require.Greater(t, s.hits.Load(), int64(1))

	t.Run("CancelDuringWaitWrapsLastFailure", func(t *testing.T) {
		t.Parallel()
		s := newServer(t, status(http.StatusBadGateway))
		ctx, cancel := context.WithCancel(context.Background())
		p := retry.Policy{MaxAttempts: 5, BaseDelay: time.Hour, MaxDelay: time.Hour}
		go func() {
			for s.hits.Load() == 0 {
				time.Sleep(time.Millisecond)
			}
			time.Sleep(10 * time.Millisecond)
			cancel()
		}()
		// The first wait is uniform in [0, 1h]: the cancel lands in it.
		res, err := p.Do(ctx, true, send(http.MethodGet, s.URL, ""))
		if res != nil {
			_ = res.Body.Close()
		}
		require.ErrorIs(t, err, context.Canceled)
		require.ErrorContains(t, err, "status 502")
	})
}

func TestBackoffIsFullJitterWithACap(t *testing.T) {
	t.Parallel()
	p := retry.Policy{BaseDelay: 10 * time.Millisecond, MaxDelay: 80 * time.Millisecond}
	ceilings := []time.Duration{10, 20, 40, 80, 80, 80}
	for i, c := range ceilings {
		n := i + 1
		ceiling := c * time.Millisecond
		var lowest, highest time.Duration = ceiling, 0
		for range 2000 {
			d := p.Backoff(n)
			require.GreaterOrEqual(t, d, time.Duration(0))
			require.LessOrEqual(t, d, ceiling, "attempt %d", n)
			lowest, highest = min(lowest, d), max(highest, d)
		}
		// Full jitter spreads over the whole range, not just its top half.
		require.Less(t, lowest, ceiling/4, "attempt %d", n)
		require.Greater(t, highest, ceiling*3/4, "attempt %d", n)
	}
	require.LessOrEqual(t, p.Backoff(200), 80*time.Millisecond, "no overflow for many attempts")
	require.Zero(t, retry.Policy{}.Backoff(3))
}

func TestTransient(t *testing.T) {
	t.Parallel()
	require.False(t, retry.Transient(nil))
	require.False(t, retry.Transient(context.Canceled))
	require.False(t, retry.Transient(errors.New("encode request: bad")))
	require.True(t, retry.Transient(io.ErrUnexpectedEOF))
	require.True(t, retry.Transient(context.DeadlineExceeded))
	require.True(t, retry.Transient(&net.OpError{Op: "read", Err: errors.New("connection reset by peer")}))
}
