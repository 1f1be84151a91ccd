package manaauth_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mana/personas/pkg/manaauth"
	"github.com/mana/personas/pkg/reqid"
	"github.com/mana/personas/pkg/retry"
	"github.com/stretchr/testify/require"
)

const (
	secretPassword = "Sup3r-Secret-Passw0rd"
	secretBearer   = "eyJhbGciOiJFZERTQSJ9.secret-bearer.sig"
	secretKey      = "secret-service-key-42"
)

// fake is a mana-auth double answering every request with handler; it counts
// requests.
type fake struct {
	*httptest.Server
	hits atomic.Int64
}

func newFake(t *testing.T, handler http.HandlerFunc) *fake {
	t.Helper()
	f := &fake{}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.hits.Add(1)
		handler(w, r)
	}))
	t.Cleanup(f.Close)
	return f
}

func reply(status int, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}
}

func newClient(t *testing.T, url string, opts ...manaauth.Option) (*manaauth.Client, *bytes.Buffer) {
	t.Helper()
	logs := &bytes.Buffer{}
	base := []manaauth.Option{
		manaauth.WithServiceKey(secretKey),
		manaauth.WithRetryPolicy(retry.Policy{MaxAttempts: 3, BaseDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond, PerAttempt: time.Minute}),
		manaauth.WithLogger(slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))),
	}
	c, err := manaauth.New(url, append(base, opts...)...)
	require.NoError(t, err)
	return c, logs
}

// calls runs every client method once.
var calls = map[string]func(ctx context.Context, c *manaauth.Client) error{
	"Register": func(ctx context.Context, c *manaauth.Client) error {
		_, err := c.Register(ctx, manaauth.RegisterRequest{Email: "a@mana.test", Password: secretPassword})
		return err
	},
	"Login": func(ctx context.Context, c *manaauth.Client) error {
		_, err := c.Login(ctx, "a@mana.test", secretPassword)
		return err
	},
	"SearchUsers": func(ctx context.Context, c *manaauth.Client) error {
		_, err := c.SearchUsers(ctx, secretBearer, "a", 1, 10)
		return err
	},
	"GetUser": func(ctx context.Context, c *manaauth.Client) error {
		_, err := c.GetUser(ctx, secretBearer, "u1")
		return err
	},
	"DeleteUser": func(ctx context.Context, c *manaauth.Client) error {
		return c.DeleteUser(ctx, secretBearer, "u1")
	},
	"StampPersona": func(ctx context.Context, c *manaauth.Client) error {
		_, err := c.StampPersona(ctx, "u1")
		return err
	},
	"JWKS": func(ctx context.Context, c *manaauth.Client) error {
		_, err := c.JWKS(ctx)
		return err
	},
}

// retried says which calls are safe to repeat.
var retried = map[string]bool{
	"Register": false, "Login": false,
	"SearchUsers": true, "GetUser": true, "DeleteUser": true, "StampPersona": true, "JWKS": true,
}

// sentSecrets lists the secrets each call sends: those (and the service
// key, which the client always knows) must never come back in an error or
// a log line, even from an upstream that echoes them.
var sentSecrets = map[string][]string{
	"Register": {secretPassword}, "Login": {secretPassword},
	"SearchUsers": {secretBearer}, "GetUser": {secretBearer}, "DeleteUser": {secretBearer},
}

func requireNoSecrets(t *testing.T, call string, texts ...string) {
	t.Helper()
	for _, s := range texts {
		for _, secret := range append([]string{secretKey}, sentSecrets[call]...) {
			require.NotContains(t, s, secret)
		}
	}
}

func TestClientErrorMapping(t *testing.T) {
	t.Parallel()
	// An upstream that echoes every secret back in its error body.
	echo := fmt.Sprintf(`{"code":"X","message":"you sent %s / %s / %s"}`, secretPassword, secretBearer, secretKey)
	cases := []struct {
		name   string
		status int
		body   string
		want   error
	}{
		{"401IsUnauthorized", 401, `{"code":"INVALID_EMAIL_OR_PASSWORD","message":"Invalid email or password"}`, manaauth.ErrUnauthorized},
		{"403IsForbidden", 403, `{"error":"Forbidden","message":"Admin access required"}`, manaauth.ErrForbidden},
		{"404IsNotFound", 404, `{"error":"User not found"}`, manaauth.ErrNotFound},
		{"409IsAlreadyExists", 409, `{"error":"Conflict"}`, manaauth.ErrAlreadyExists},
		{"SecretsEchoedIn401AreScrubbed", 401, echo, manaauth.ErrUnauthorized},
	}
	for _, tc := range cases {
		for name, call := range calls {
			t.Run(tc.name+"/"+name, func(t *testing.T) {
				t.Parallel()
				f := newFake(t, reply(tc.status, tc.body))
				c, logs := newClient(t, f.URL)
				err := call(context.Background(), c)
				require.ErrorIs(t, err, tc.want)
				var se *manaauth.StatusError
				require.ErrorAs(t, err, &se)
				require.Equal(t, tc.status, se.Status)
				require.EqualValues(t, 1, f.hits.Load(), "4xx answers are never retried")
				requireNoSecrets(t, name, err.Error(), logs.String())
			})
		}
	}

	t.Run("422AlreadyExistsOnRegister", func(t *testing.T) {
		t.Parallel()
		f := newFake(t, reply(422, `{"code":"USER_ALREADY_EXISTS_USE_ANOTHER_EMAIL","message":"User already exists. Use another email."}`))
		c, _ := newClient(t, f.URL)
		err := calls["Register"](context.Background(), c)
		require.ErrorIs(t, err, manaauth.ErrAlreadyExists)
		require.Contains(t, err.Error(), "USER_ALREADY_EXISTS_USE_ANOTHER_EMAIL")
	})

	t.Run("Other400Or422OnRegisterIsRefused", func(t *testing.T) {
		t.Parallel()
		for _, status := range []int{400, 422} {
			long := strings.Repeat("y", 300)
			f := newFake(t, reply(status, `{"code":"PASSWORD_TOO_SHORT","message":"Password too short: `+secretPassword+` `+long+`"}`))
			c, logs := newClient(t, f.URL)
			err := calls["Register"](context.Background(), c)
			require.ErrorIs(t, err, manaauth.ErrRefused)
			require.NotErrorIs(t, err, manaauth.ErrAlreadyExists)
			var re *manaauth.RefusedError
			require.ErrorAs(t, err, &re)
			require.Equal(t, "register", re.Op)
			require.Equal(t, status, re.Status)
			require.Equal(t, "PASSWORD_TOO_SHORT", re.Code)
			require.True(t, strings.HasPrefix(re.Message, "Password too short: [redacted] yyy"), re.Message)
			var se *manaauth.StatusError
			require.ErrorAs(t, err, &se, "callers matching StatusError by status still see it")
			require.Equal(t, status, se.Status)
			require.EqualValues(t, 1, f.hits.Load())
			requireNoSecrets(t, "Register", err.Error(), logs.String())
		}
	})

	t.Run("422OnLoginIsUpstreamError", func(t *testing.T) {
		t.Parallel()
		f := newFake(t, reply(422, `{"code":"SOMETHING_ELSE"}`))
		c, _ := newClient(t, f.URL)
		err := calls["Login"](context.Background(), c)
		var ue *manaauth.UpstreamError
		require.ErrorAs(t, err, &ue)
		require.Equal(t, 422, ue.Status)
		require.NotErrorIs(t, err, manaauth.ErrRefused)
	})

	t.Run("UndecodableSuccessIsUpstreamError", func(t *testing.T) {
		t.Parallel()
		f := newFake(t, reply(200, `<html>proxy error</html>`))
		c, _ := newClient(t, f.URL)
		for name, call := range calls {
			if name == "DeleteUser" {
				continue // delete needs no body
			}
			var ue *manaauth.UpstreamError
			require.ErrorAs(t, call(context.Background(), c), &ue, name)
			require.Equal(t, 200, ue.Status, name)
			require.Contains(t, ue.Body, "proxy error", name)
		}
	})

	t.Run("LongBodyIsExcerpted", func(t *testing.T) {
		t.Parallel()
		f := newFake(t, reply(418, strings.Repeat("x", 5000)+secretPassword))
		c, _ := newClient(t, f.URL)
		err := calls["Login"](context.Background(), c)
		var ue *manaauth.UpstreamError
		require.ErrorAs(t, err, &ue)
		require.LessOrEqual(t, len(ue.Body), 210)
		requireNoSecrets(t, "Login", err.Error())
	})
}

func TestClientRetries(t *testing.T) {
	t.Parallel()

	for name, call := range calls {
		t.Run("Persistent503/"+name, func(t *testing.T) {
			t.Parallel()
			f := newFake(t, reply(503, fmt.Sprintf(`{"error":"boom %s %s %s"}`, secretPassword, secretBearer, secretKey)))
			c, logs := newClient(t, f.URL)
			err := call(context.Background(), c)
			var ue *manaauth.UpstreamError
			require.ErrorAs(t, err, &ue)
			require.Equal(t, 503, ue.Status)
			if retried[name] {
				require.EqualValues(t, 3, f.hits.Load(), "safe calls are retried")
			} else {
				require.EqualValues(t, 1, f.hits.Load(), "register and login are never retried")
			}
			requireNoSecrets(t, name, err.Error(), logs.String())
		})

		t.Run("500IsNotRetried/"+name, func(t *testing.T) {
			t.Parallel()
			f := newFake(t, reply(500, `{"error":"bug"}`))
			c, _ := newClient(t, f.URL)
			var ue *manaauth.UpstreamError
			require.ErrorAs(t, call(context.Background(), c), &ue)
			require.Equal(t, 500, ue.Status)
			require.EqualValues(t, 1, f.hits.Load(), "a 500 is a bug a retry meets again")
		})
	}

	t.Run("HangingAttemptIsRetriedWithinTheCallDeadline", func(t *testing.T) {
		t.Parallel()
		var n atomic.Int64
		f := newFake(t, func(w http.ResponseWriter, r *http.Request) {
			if n.Add(1) == 1 {
				<-r.Context().Done()
				return
			}
			reply(200, `{"user":{"id":"u1"}}`)(w, r)
		})
		c, _ := newClient(t, f.URL, manaauth.WithRetryPolicy(retry.Policy{MaxAttempts: 2, PerAttempt: 250 * time.Millisecond}))
		u, err := c.GetUser(context.Background(), secretBearer, "u1")
		require.NoError(t, err)
		require.Equal(t, "u1", u.ID)
		require.EqualValues(t, 2, f.hits.Load())
	})

	t.Run("StampSucceedsAfterOne503", func(t *testing.T) {
		t.Parallel()
		var n atomic.Int64
		f := newFake(t, func(w http.ResponseWriter, r *http.Request) {
			if n.Add(1) == 1 {
				reply(503, `{}`)(w, r)
				return
			}
			require.Equal(t, secretKey, r.Header.Get("X-Service-Key"))
			reply(200, `{"ok":true,"userId":"u1","kind":"persona","tier":"founder","emailVerified":true}`)(w, r)
		})
		c, _ := newClient(t, f.URL)
		res, err := c.StampPersona(context.Background(), "u1")
		require.NoError(t, err)
		require.Equal(t, "founder", res.Tier)
		require.EqualValues(t, 2, f.hits.Load())
	})

	t.Run("NetworkErrorIsUpstreamErrorWithoutStatus", func(t *testing.T) {
		t.Parallel()
		f := newFake(t, reply(200, `{}`))
		url := f.URL
		f.Close()
		c, _ := newClient(t, url)
		var ue *manaauth.UpstreamError
		require.ErrorAs(t, calls["GetUser"](context.Background(), c), &ue)
		require.Zero(t, ue.Status)
		require.Error(t, ue.Err)
	})
}

func TestClientTimeouts(t *testing.T) {
	t.Parallel()

	for name, call := range calls {
		t.Run("HangingUpstreamIsErrTimeout/"+name, func(t *testing.T) {
			t.Parallel()
			release := make(chan struct{})
			f := newFake(t, func(w http.ResponseWriter, r *http.Request) {
				select {
				case <-r.Context().Done():
				case <-release:
				}
			})
			t.Cleanup(func() { close(release) })
			c, _ := newClient(t, f.URL, manaauth.WithTimeout(100*time.Millisecond))
			err := call(context.Background(), c)
			require.ErrorIs(t, err, manaauth.ErrTimeout)
			require.ErrorIs(t, err, context.DeadlineExceeded)
			require.EqualValues(t, 1, f.hits.Load(), "a spent deadline is not retried")
			requireNoSecrets(t, name, err.Error())
		})
	}

	t.Run("CallerDeadlineIsHonoured", func(t *testing.T) {
		t.Parallel()
		f := newFake(t, func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
		c, _ := newClient(t, f.URL, manaauth.WithTimeout(time.Minute))
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		_, err := c.GetUser(ctx, secretBearer, "u1")
		require.ErrorIs(t, err, manaauth.ErrTimeout)
	})

	t.Run("CallerCancelIsNotATimeout", func(t *testing.T) {
		t.Parallel()
		f := newFake(t, func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
		c, _ := newClient(t, f.URL)
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			for f.hits.Load() == 0 {
				time.Sleep(time.Millisecond)
			}
			cancel()
		}()
		_, err := c.GetUser(ctx, secretBearer, "u1")
		require.ErrorIs(t, err, context.Canceled)
		require.NotErrorIs(t, err, manaauth.ErrTimeout)
	})
}

func TestClientRequests(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("LoginReturnsAccessTokenAndSendsCredentialsInBody", func(t *testing.T) {
		t.Parallel()
		f := newFake(t, func(w http.ResponseWriter, r *http.Request) {
			require.Equal(t, "/api/v1/auth/login", r.URL.Path)
			require.Equal(t, http.MethodPost, r.Method)
			var in map[string]string
			require.NoError(t, json.NewDecoder(r.Body).Decode(&in))
			require.Equal(t, map[string]string{"email": "a@mana.test", "password": secretPassword}, in)
			reply(200, `{"redirect":false,"token":"opaque","refreshToken":"opaque","accessToken":"h.p.s",
				"user":{"id":"u1","email":"a@mana.test","name":null,"role":null,"image":null,"emailVerified":false,
				"createdAt":"2025-01-02T03:04:05.678Z","updatedAt":1735787045678}}`)(w, r)
		})
		c, logs := newClient(t, f.URL)
		res, err := c.Login(ctx, "a@mana.test", secretPassword)
		require.NoError(t, err)
		require.Equal(t, "h.p.s", res.AccessToken)
		require.Equal(t, "opaque", res.Token)
		require.Equal(t, "u1", res.User.ID)
		require.Equal(t, time.Date(2025, 1, 2, 3, 4, 5, 678e6, time.UTC), res.User.CreatedAt)
		require.Equal(t, res.User.CreatedAt, res.User.UpdatedAt)
		requireNoSecrets(t, "Login", logs.String())
	})

	t.Run("LoginWithoutAccessTokenIsUpstreamError", func(t *testing.T) {
		t.Parallel()
		f := newFake(t, reply(200, `{"token":"opaque","user":{"id":"u1"}}`))
		c, _ := newClient(t, f.URL)
		var ue *manaauth.UpstreamError
		require.ErrorAs(t, calls["Login"](ctx, c), &ue)
	})

	t.Run("RegisterDefaultsNameToLocalPart", func(t *testing.T) {
		t.Parallel()
		f := newFake(t, func(w http.ResponseWriter, r *http.Request) {
			var in map[string]string
			require.NoError(t, json.NewDecoder(r.Body).Decode(&in))
			require.Equal(t, "persona.anna", in["name"])
			reply(200, `{"token":"t","user":{"id":"u1","email":"persona.anna@mana.test"}}`)(w, r)
		})
		c, _ := newClient(t, f.URL)
		res, err := c.Register(ctx, manaauth.RegisterRequest{Email: "persona.anna@mana.test", Password: secretPassword})
		require.NoError(t, err)
		require.Equal(t, "u1", res.User.ID)
	})

	t.Run("AdminCallsForwardTheBearer", func(t *testing.T) {
		t.Parallel()
		f := newFake(t, func(w http.ResponseWriter, r *http.Request) {
			require.Equal(t, "Bearer "+secretBearer, r.Header.Get("Authorization"))
			require.Empty(t, r.Header.Get("X-Service-Key"), "the service key only goes to internal endpoints")
			require.Equal(t, "/api/v1/admin/users/a%2Fb/data", r.URL.EscapedPath())
			reply(200, `{"user":{"id":"a/b","email":"x@mana.test","emailVerified":true}}`)(w, r)
		})
		c, _ := newClient(t, f.URL)
		u, err := c.GetUser(ctx, secretBearer, "a/b")
		require.NoError(t, err)
		require.True(t, u.EmailVerified)
	})

	t.Run("EveryCallSendsTheRequestId", func(t *testing.T) {
		t.Parallel()
		var seen atomic.Int64
		f := newFake(t, func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("X-Request-Id") == "req-42" {
				seen.Add(1)
			}
			reply(503, `{}`)(w, r)
		})
		c, logs := newClient(t, f.URL, manaauth.WithRetryPolicy(retry.Policy{MaxAttempts: 2}))
		ctx := reqid.With(context.Background(), "req-42")
		for _, call := range calls {
			_ = call(ctx, c)
		}
		require.Equal(t, f.hits.Load(), seen.Load(), "every attempt of every call carries the id")
		require.NotContains(t, logs.String(), "Authorization")
	})

	t.Run("NoRequestIdWithoutOne", func(t *testing.T) {
		t.Parallel()
		f := newFake(t, func(w http.ResponseWriter, r *http.Request) {
			_, present := r.Header["X-Request-Id"]
			require.False(t, present)
			reply(200, `{"user":{"id":"u1"}}`)(w, r)
		})
		c, _ := newClient(t, f.URL)
		_, err := c.GetUser(ctx, secretBearer, "u1")
		require.NoError(t, err)
	})

	t.Run("StampWithoutServiceKeyFailsLocally", func(t *testing.T) {
		t.Parallel()
		f := newFake(t, reply(200, `{}`))
		c, err := manaauth.New(f.URL)
		require.NoError(t, err)
		_, err = c.StampPersona(ctx, "u1")
		require.ErrorContains(t, err, "service key")
		require.Zero(t, f.hits.Load())
	})

	t.Run("BadBaseURLIsRefused", func(t *testing.T) {
		t.Parallel()
		for _, u := range []string{"", "localhost:3001", "ftp://x", "http://user:pw@host", "http://host?q=1"} {
			_, err := manaauth.New(u)
			require.Error(t, err, u)
		}
		c, err := manaauth.New("http://localhost:3001/")
		require.NoError(t, err)
		require.Equal(t, "http://localhost:3001", c.BaseURL())
	})
}

func TestFindUserByEmail(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	// 7 substring matches of the wanted email; the exact one (other case)
	// is on the last page.
	emails := []string{
		"xanna@mana.test", "anna@mana.test.de", "anna@mana.testing", "b.anna@mana.test",
		"anna@mana.tes", "zz-anna@mana.test", "Anna@Mana.Test",
	}
	server := func(t *testing.T, pages *atomic.Int64) *fake {
		return newFake(t, func(w http.ResponseWriter, r *http.Request) {
			pages.Add(1)
			q := r.URL.Query()
			page, _ := strconv.Atoi(q.Get("page"))
			limit, _ := strconv.Atoi(q.Get("limit"))
			var users []map[string]string
			for i := (page - 1) * limit; i < page*limit && i < len(emails); i++ {
				if strings.Contains(strings.ToLower(emails[i]), strings.ToLower(q.Get("search"))) {
					users = append(users, map[string]string{"id": fmt.Sprintf("u%d", i), "email": emails[i]})
				}
			}
			raw, _ := json.Marshal(map[string]any{"users": users, "total": len(emails), "page": page, "limit": limit})
			reply(200, string(raw))(w, r)
		})
	}

	t.Run("PicksExactMatchAcrossPages", func(t *testing.T) {
		t.Parallel()
		var pages atomic.Int64
		f := server(t, &pages)
		c, _ := newClient(t, f.URL, manaauth.WithPageSize(3))
		u, err := c.FindUserByEmail(ctx, secretBearer, " anna@mana.test ")
		require.NoError(t, err)
		require.Equal(t, "u6", u.ID)
		require.EqualValues(t, 3, pages.Load())
	})

	t.Run("NoExactMatchIsNotFoundAfterLastPage", func(t *testing.T) {
		t.Parallel()
		var pages atomic.Int64
		f := server(t, &pages)
		c, _ := newClient(t, f.URL, manaauth.WithPageSize(3))
		_, err := c.FindUserByEmail(ctx, secretBearer, "anna@mana.t")
		require.ErrorIs(t, err, manaauth.ErrNotFound)
		require.EqualValues(t, 3, pages.Load(), "stops once total is reached")
	})

	t.Run("SearchErrorsPropagate", func(t *testing.T) {
		t.Parallel()
		f := newFake(t, reply(403, `{"error":"Forbidden"}`))
		c, _ := newClient(t, f.URL)
		_, err := c.FindUserByEmail(ctx, secretBearer, "anna@mana.test")
		require.ErrorIs(t, err, manaauth.ErrForbidden)
		require.False(t, errors.Is(err, manaauth.ErrNotFound))
	})
}
