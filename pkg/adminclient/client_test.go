package adminclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mana/personas/pkg/reqid"
	"github.com/mana/personas/pkg/retry"
	"github.com/stretchr/testify/require"
)

// These tests cover the client's own mechanics (request building, error
// mapping, retry decisions, decoding both list shapes) without a stand-in of
// the admin API; the client is exercised against the real personas-admin by
// the personasctl end-to-end journey.

func TestNew(t *testing.T) {
	t.Parallel()
	bad := []struct{ name, url, token, wantErr string }{
		{"EmptyURL", "", "tok", "scheme must be http or https"},
		{"NoScheme", "localhost:3060", "tok", "scheme must be http or https"},
		{"FTPScheme", "ftp://host", "tok", "scheme must be http or https"},
		{"NoHost", "http://", "tok", "no host"},
		{"Credentials", "http://user:pw@host", "tok", "must not carry credentials"},
		{"Query", "http://host/?a=1", "tok", "query or fragment"},
		{"EmptyToken", "http://host", "", "token is required"},
		{"TokenWithNewline", "http://host", "abc\nX-Evil: 1", "whitespace or control"},
	}
	for _, tc := range bad {
		t.Run("Rejects"+tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := New(tc.url, tc.token)
			require.ErrorContains(t, err, tc.wantErr)
			require.NotContains(t, err.Error(), "pw@", "credentials never echoed")
		})
	}
	t.Run("KeepsPathPrefixWithoutTrailingSlash", func(t *testing.T) {
		t.Parallel()
		c, err := New(" https://gw.example/prefix/ ", "tok")
		require.NoError(t, err)
		require.Equal(t, "https://gw.example/prefix", c.BaseURL())
		require.Equal(t, DefaultRetryPolicy, c.policy)
	})
	t.Run("OptionsApply", func(t *testing.T) {
		t.Parallel()
		hc := &http.Client{}
		c, err := New("http://h", "tok", WithHTTPClient(hc), WithRetries(-3), WithUserAgent("x/1"))
		require.NoError(t, err)
		require.Same(t, hc, c.httpClient)
		require.Equal(t, 1, c.policy.MaxAttempts)
		require.Equal(t, DefaultRetryPolicy.PerAttempt, c.policy.PerAttempt)
		require.Equal(t, "x/1", c.userAgent)
		p := retry.Policy{MaxAttempts: 7}
		c, err = New("http://h", "tok", WithRetryPolicy(p))
		require.NoError(t, err)
		require.Equal(t, p, c.policy)
	})
}

func TestNewRequest(t *testing.T) {
	t.Parallel()
	c, err := New("http://gw:3060/base", "tok-123")
	require.NoError(t, err)

	t.Run("UpsertCarriesBearerAndJSON", func(t *testing.T) {
		t.Parallel()
		req, err := c.newRequest(context.Background(), call{method: http.MethodPost}, []byte(`{"a":1}`))
		require.NoError(t, err)
		require.Equal(t, "http://gw:3060/base/api/v1/personas/admin", req.URL.String())
		require.Equal(t, "Bearer tok-123", req.Header.Get("Authorization"))
		require.Equal(t, "application/json", req.Header.Get("Content-Type"))
		require.Equal(t, "application/json", req.Header.Get("Accept"))
		body, err := io.ReadAll(req.Body)
		require.NoError(t, err)
		require.JSONEq(t, `{"a":1}`, string(body))
	})
	t.Run("ListEncodesOptions", func(t *testing.T) {
		t.Parallel()
		opts := ListOptions{Limit: 50, Cursor: "c/1=", Archetype: "solo-dev", Cadence: "daily", Query: "anna b"}
		req, err := c.newRequest(context.Background(), call{method: http.MethodGet, query: opts.values()}, nil)
		require.NoError(t, err)
		require.Equal(t, url.Values{"limit": {"50"}, "cursor": {"c/1="}, "archetype": {"solo-dev"}, "cadence": {"daily"}, "q": {"anna b"}}, req.URL.Query())
		require.Empty(t, req.Header.Get("Content-Type"))
	})
	t.Run("ZeroListOptionsSendNoQuery", func(t *testing.T) {
		t.Parallel()
		require.Empty(t, ListOptions{}.values())
	})
	t.Run("IDIsPathEscaped", func(t *testing.T) {
		t.Parallel()
		req, err := c.newRequest(context.Background(), call{method: http.MethodDelete, path: "/" + url.PathEscape("a/b?c")}, nil)
		require.NoError(t, err)
		require.Equal(t, "/base/api/v1/personas/admin/a%2Fb%3Fc", req.URL.EscapedPath())
	})
}

func TestNewAPIError(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name        string
		status      int
		body        string
		wantCode    string
		wantMessage string
		wantIs      error
		wantText    string
	}{
		{"NotFound", 404, `{"error":"Persona not found"}`, "Persona not found", "", ErrNotFound,
			"adminclient: GET /api/v1/personas/admin/x: 404 Not Found: Persona not found"},
		{"Unauthorized", 401, `{"error":"Unauthorized","message":"token expired"}`, "Unauthorized", "token expired", ErrUnauthorized,
			"adminclient: GET /api/v1/personas/admin/x: 401 Unauthorized: token expired"},
		{"Forbidden", 403, `{"error":"Forbidden","message":"Admin access required"}`, "Forbidden", "Admin access required", ErrForbidden,
			"adminclient: GET /api/v1/personas/admin/x: 403 Forbidden: Admin access required"},
		{"ValidationDetails", 400, `{"error":"ValidationError","details":["email: invalid",{"path":["moduleMix","todo"],"message":"must be >= 0"},{"field":"password","message":"too short"},{"code":7}]}`,
			"ValidationError", "", nil,
			"adminclient: GET /api/v1/personas/admin/x: 400 Bad Request: ValidationError [email: invalid; moduleMix.todo: must be >= 0; password: too short; {\"code\":7}]"},
		{"HTMLFromProxy", 502, "<html>\n<body>  Bad   gateway </body></html>", "", "<html> <body> Bad gateway </body></html>", nil,
			"adminclient: GET /api/v1/personas/admin/x: 502 Bad Gateway: <html> <body> Bad gateway </body></html>"},
		{"EmptyBody", 503, "", "", "", nil, "adminclient: GET /api/v1/personas/admin/x: 503 Service Unavailable"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newAPIError(http.MethodGet, BasePath+"/x", tc.status, []byte(tc.body))
			require.Equal(t, tc.status, e.Status)
			require.Equal(t, tc.wantCode, e.Code)
			require.Equal(t, tc.wantMessage, e.Message)
			require.Equal(t, tc.wantText, e.Error())
			err := fmt.Errorf("wrapped: %w", e)
			for _, sentinel := range []error{ErrNotFound, ErrUnauthorized, ErrForbidden} {
				want := tc.wantIs != nil && errors.Is(tc.wantIs, sentinel)
				require.Equal(t, want, errors.Is(err, sentinel), "errors.Is(%v)", sentinel)
			}
			var asAPI *APIError
			require.ErrorAs(t, err, &asAPI)
		})
	}
	t.Run("LongBodyIsCut", func(t *testing.T) {
		t.Parallel()
		e := newAPIError(http.MethodGet, BasePath, 500, bytes.Repeat([]byte("x"), 5000))
		require.Len(t, []rune(e.Message), 201)
	})
}

func TestRetriesByStatus(t *testing.T) {
	t.Parallel()
	cases := []struct {
		status int
		hits   int64
	}{
		{500, 1}, {501, 1}, {400, 1}, {401, 1}, {403, 1}, {404, 1},
		{429, 3}, {502, 3}, {503, 3}, {504, 3},
	}
	for _, tc := range cases {
		t.Run(http.StatusText(tc.status), func(t *testing.T) {
			t.Parallel()
			var hits atomic.Int64
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				hits.Add(1)
				w.WriteHeader(tc.status)
			}))
			t.Cleanup(srv.Close)
			c, err := New(srv.URL, "tok", WithRetryPolicy(retry.Policy{MaxAttempts: 3, MaxDelay: time.Millisecond}))
			require.NoError(t, err)
			_, err = c.UpsertPersona(context.Background(), UpsertRequest{Email: "persona.x@mana.test"})
			var apiErr *APIError
			require.ErrorAs(t, err, &apiErr)
			require.Equal(t, tc.status, apiErr.Status)
			require.Equal(t, tc.hits, hits.Load())
		})
	}
}

func TestSendsRequestID(t *testing.T) {
	t.Parallel()
	var got atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.Store(r.Header.Get("X-Request-Id"))
		_, _ = io.WriteString(w, `[]`)
	}))
	t.Cleanup(srv.Close)
	c, err := New(srv.URL, "tok")
	require.NoError(t, err)
	_, err = c.ListPersonas(reqid.With(context.Background(), "req-7"), ListOptions{})
	require.NoError(t, err)
	require.Equal(t, "req-7", got.Load())
}

func TestDecodePage(t *testing.T) {
	t.Parallel()
	t.Run("BareArray", func(t *testing.T) {
		t.Parallel()
		p, err := decodePage([]byte(` [{"userId":"u1","email":"persona.anna@mana.test","archetype":"adhd-student","tickCadence":"daily","lastActiveAt":null,"actions7d":4}]`))
		require.NoError(t, err)
		require.Empty(t, p.NextCursor)
		require.Len(t, p.Personas, 1)
		require.Equal(t, "u1", p.Personas[0].UserID)
		require.Equal(t, 4, p.Personas[0].Actions7d)
		require.Nil(t, p.Personas[0].LastActiveAt)
	})
	t.Run("ObjectWithCursor", func(t *testing.T) {
		t.Parallel()
		p, err := decodePage([]byte(`{"personas":[{"id":"u2","email":"b@mana.test","lastActiveAt":"2025-01-02T03:04:05Z"}],"nextCursor":"abc"}`))
		require.NoError(t, err)
		require.Equal(t, "abc", p.NextCursor)
		require.Equal(t, "u2", p.Personas[0].UserID, "id is accepted for userId")
		require.Equal(t, 2025, p.Personas[0].LastActiveAt.Year())
	})
	t.Run("ObjectLastPage", func(t *testing.T) {
		t.Parallel()
		p, err := decodePage([]byte(`{"personas":[],"nextCursor":null}`))
		require.NoError(t, err)
		require.Empty(t, p.NextCursor)
		require.Empty(t, p.Personas)
	})
	t.Run("ObjectWithoutPersonas", func(t *testing.T) {
		t.Parallel()
		_, err := decodePage([]byte(`{"items":[]}`))
		require.ErrorContains(t, err, `without "personas"`)
	})
	t.Run("Scalar", func(t *testing.T) {
		t.Parallel()
		_, err := decodePage([]byte(`"nope"`))
		require.ErrorContains(t, err, "unexpected list response")
	})
}

func TestUpsertRequestNeverShowsPassword(t *testing.T) {
	t.Parallel()
	req := UpsertRequest{Email: "persona.anna@mana.test", Password: "1FJ7w8KbjK5CWVa8NqfobexAFNuQKxiA", Archetype: "adhd-student"}
	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("upsert", "req", req)
	for _, s := range []string{fmt.Sprint(req), fmt.Sprintf("%+v", req), fmt.Sprintf("%#v", req), logs.String()} {
		require.NotContains(t, s, req.Password)
		require.Contains(t, s, req.Email)
	}
	body, err := json.Marshal(req)
	require.NoError(t, err)
	require.Contains(t, string(body), req.Password, "the wire body does carry it")
}

// hangUp accepts TCP connections and closes them at once: a network fault,
// not an API. It returns the base URL and a counter of connections.
func hangUp(t *testing.T) (string, *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = ln.Close() })
	var n atomic.Int64
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			n.Add(1)
			_ = conn.Close()
		}
	}()
	return "http://" + ln.Addr().String(), &n
}

func TestRetriesOnNetworkErrors(t *testing.T) {
	t.Parallel()
	const token = "secret-admin-jwt"
	calls := []struct {
		name string
		run  func(c *Client) error
	}{
		{"List", func(c *Client) error { _, err := c.ListPersonas(context.Background(), ListOptions{}); return err }},
		{"Get", func(c *Client) error { _, err := c.GetPersona(context.Background(), "u1"); return err }},
		{"Delete", func(c *Client) error { return c.DeletePersona(context.Background(), "u1") }},
		{"Upsert", func(c *Client) error {
			_, err := c.UpsertPersona(context.Background(), UpsertRequest{Email: "persona.x@mana.test", Password: "pw-secret-123"})
			return err
		}},
	}
	for _, tc := range calls {
		t.Run(tc.name+"RetriedThenFails", func(t *testing.T) {
			t.Parallel()
			base, conns := hangUp(t)
			c, err := New(base, token, WithRetryPolicy(retry.Policy{MaxAttempts: 3}))
			require.NoError(t, err)
			err = tc.run(c)
			require.Error(t, err)
			require.Equal(t, int64(3), conns.Load())
			require.Contains(t, err.Error(), "after 3 attempts")
			require.NotContains(t, err.Error(), token)
			require.NotContains(t, err.Error(), "pw-secret-123")
		})
	}
	t.Run("NoRetriesWhenDisabled", func(t *testing.T) {
		t.Parallel()
		base, conns := hangUp(t)
		c, err := New(base, token, WithRetries(0))
		require.NoError(t, err)
		_, err = c.ListPersonas(context.Background(), ListOptions{})
		require.Error(t, err)
		require.Equal(t, int64(1), conns.Load())
	})
	t.Run("StopsWhenCallerGivesUp", func(t *testing.T) {
		t.Parallel()
		base, conns := hangUp(t)
		c, err := New(base, token, WithRetryPolicy(retry.Policy{MaxAttempts: 6}))
		require.NoError(t, err)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err = c.ListPersonas(ctx, ListOptions{})
		require.ErrorIs(t, err, context.Canceled)
		require.Zero(t, conns.Load())
	})
	t.Run("EmptyIDRejectedLocally", func(t *testing.T) {
		t.Parallel()
		base, conns := hangUp(t)
		c, err := New(base, token)
		require.NoError(t, err)
		require.ErrorContains(t, c.DeletePersona(context.Background(), ""), "empty id")
		_, err = c.GetPersona(context.Background(), "")
		require.ErrorContains(t, err, "empty id")
		require.Zero(t, conns.Load())
	})
}
