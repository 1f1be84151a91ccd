package internalclient_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mana/personas/pkg/internalclient"
	"github.com/mana/personas/pkg/reqid"
	"github.com/mana/personas/pkg/retry"
	"github.com/stretchr/testify/require"
)

// These tests cover which calls the client repeats; the calls themselves are
// exercised against the real personas-internal in its own tests.

func newServer(t *testing.T, handler http.HandlerFunc) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		handler(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

var fast = internalclient.WithRetryPolicy(retry.Policy{MaxAttempts: 3, BaseDelay: time.Millisecond, MaxDelay: time.Millisecond, PerAttempt: time.Second})

func TestRetries(t *testing.T) {
	t.Parallel()
	unavailable := func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, `{"error":"unavailable"}`)
	}
	ctx := context.Background()
	calls := map[string]struct {
		run   func(c *internalclient.Client) error
		tries int64
	}{
		"ListDue": {func(c *internalclient.Client) error { _, err := c.ListDue(ctx, 0); return err }, 3},
		"PostActions": {func(c *internalclient.Client) error {
			_, err := c.PostActions(ctx, "p1", []internalclient.Action{{TickID: "t", ToolName: "x", Result: "ok"}})
			return err
		}, 3},
		"PostFeedback": {func(c *internalclient.Client) error {
			_, err := c.PostFeedback(ctx, "p1", []internalclient.Feedback{{TickID: "t", Module: "todo", Rating: 4}})
			return err
		}, 3},
		// A claim answered 503 may still have leased personas: not repeated.
		"Claim": {func(c *internalclient.Client) error {
			_, err := c.Claim(ctx, internalclient.ClaimRequest{RunnerID: "r"})
			return err
		}, 1},
	}
	for name, tc := range calls {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			srv, hits := newServer(t, unavailable)
			c, err := internalclient.New(srv.URL, "key", fast)
			require.NoError(t, err)
			var apiErr *internalclient.APIError
			require.ErrorAs(t, tc.run(c), &apiErr)
			require.Equal(t, http.StatusServiceUnavailable, apiErr.Status)
			require.Equal(t, tc.tries, hits.Load())
		})
	}

	t.Run("500IsNotRetried", func(t *testing.T) {
		t.Parallel()
		srv, hits := newServer(t, func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusInternalServerError) })
		c, err := internalclient.New(srv.URL, "key", fast)
		require.NoError(t, err)
		_, err = c.ListDue(ctx, 0)
		require.Error(t, err)
		require.EqualValues(t, 1, hits.Load())
	})
}

func TestSendsKeyAndRequestID(t *testing.T) {
	t.Parallel()
	srv, _ := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		require.Equal(t, "key", r.Header.Get("X-Service-Key"))
		require.Equal(t, "req-9", r.Header.Get("X-Request-Id"))
		_, _ = io.WriteString(w, `{"personas":[],"serverTime":"2026-12-01T10:00:00Z"}`)
	})
	c, err := internalclient.New(srv.URL, "key")
	require.NoError(t, err)
	due, err := c.ListDue(reqid.With(context.Background(), "req-9"), 5)
	require.NoError(t, err)
	require.Empty(t, due.Personas)
}
