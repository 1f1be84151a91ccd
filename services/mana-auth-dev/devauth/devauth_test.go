package devauth_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mana/personas/pkg/dbtest"
	"github.com/mana/personas/pkg/manaauth"
	"github.com/mana/personas/pkg/manaauth/contracttest"
	"github.com/mana/personas/pkg/retry"
	"github.com/mana/personas/services/mana-auth-dev/devauth"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/bcrypt"
)

const (
	serviceKey    = "test-service-key-0123"
	adminEmail    = "admin@mana.test"
	adminPassword = "admin-test-password"
)

// bundle is a stand-in served over real HTTP on its own database.
type bundle struct {
	srv    *devauth.Server
	url    string
	dbURL  string
	client *manaauth.Client
}

func config(dbURL, baseURL string) devauth.Config {
	return devauth.Config{
		BaseURL: baseURL, DatabaseURL: dbURL, ServiceKeys: []string{"old-key-rotated-out", serviceKey},
		AdminEmail: adminEmail, AdminPassword: adminPassword, PasswordCost: bcrypt.MinCost,
	}
}

// start serves a stand-in on dbURL; its base URL (the issuer) is the
// listener's address, known before the server is built.
func start(t *testing.T, dbURL string, opts ...manaauth.Option) *bundle {
	t.Helper()
	ts := httptest.NewUnstartedServer(nil)
	base := "http://" + ts.Listener.Addr().String()
	srv, err := devauth.New(context.Background(), config(dbURL, base))
	require.NoError(t, err)
	ts.Config.Handler = srv.Handler()
	ts.Start()
	t.Cleanup(func() {
		srv.Drain()
		ts.Close()
		_ = srv.Close()
	})
	client, err := manaauth.New(base, append([]manaauth.Option{manaauth.WithServiceKey(serviceKey)}, opts...)...)
	require.NoError(t, err)
	return &bundle{srv: srv, url: base, dbURL: dbURL, client: client}
}

func setup(t *testing.T, opts ...manaauth.Option) *bundle {
	t.Helper()
	return start(t, dbtest.Empty(t, "authdev"), opts...)
}

func adminToken(t *testing.T, b *bundle) string {
	t.Helper()
	res, err := b.client.Login(context.Background(), adminEmail, adminPassword)
	require.NoError(t, err)
	return res.AccessToken
}

func TestContract(t *testing.T) {
	t.Parallel()
	b := setup(t)
	contracttest.RunConfig(t, contracttest.Config{
		BaseURL: b.url, AdminEmail: adminEmail, AdminPassword: adminPassword,
		ServiceKey: serviceKey, RequireAdminRole: true,
	})
}

func TestRestart(t *testing.T) {
	t.Parallel()

	t.Run("UsersKeyAndTokensSurviveARestart", func(t *testing.T) {
		t.Parallel()
		ctx := context.Background()
		dbURL := dbtest.Empty(t, "authdev")
		first := start(t, dbURL)
		reg, err := first.client.Register(ctx, manaauth.RegisterRequest{Email: "keep@mana.test", Password: "password-1"})
		require.NoError(t, err)
		token := adminToken(t, first)

		second := start(t, dbURL)
		require.Equal(t, first.srv.KeyID(), second.srv.KeyID())
		// The first instance's admin token is accepted by the second
		// (same key, and the issuer is checked against the key only).
		_, err = second.client.Login(ctx, "keep@mana.test", "password-1")
		require.NoError(t, err)
		ver, err := manaauth.NewVerifier(ctx, second.url, manaauth.WithIssuer(first.url))
		require.NoError(t, err)
		t.Cleanup(ver.Close)
		claims, err := ver.Verify(ctx, token)
		require.NoError(t, err)
		require.True(t, claims.IsAdmin())

		u, err := second.client.FindUserByEmail(ctx, adminToken(t, second), "keep@mana.test")
		require.NoError(t, err)
		require.Equal(t, reg.User.ID, u.ID)
	})
}

func TestConfig(t *testing.T) {
	t.Parallel()

	t.Run("RefusesProduction", func(t *testing.T) {
		t.Parallel()
		cfg := config("postgres://unused", "http://localhost:3001")
		cfg.Env = "production"
		_, err := devauth.New(context.Background(), cfg)
		require.ErrorContains(t, err, "production")
	})

	t.Run("RequiresAServiceKey", func(t *testing.T) {
		t.Parallel()
		cfg := config("postgres://unused", "http://localhost:3001")
		cfg.ServiceKeys = nil
		_, err := devauth.New(context.Background(), cfg)
		require.ErrorContains(t, err, "service key")
	})

	t.Run("AdminAccountIsCreatedWithDefaults", func(t *testing.T) {
		t.Parallel()
		cfg := config(dbtest.Empty(t, "authdev"), "http://localhost:1")
		cfg.AdminEmail, cfg.AdminPassword = "", ""
		srv, err := devauth.New(context.Background(), cfg)
		require.NoError(t, err)
		t.Cleanup(func() { _ = srv.Close() })
		ts := httptest.NewServer(srv.Handler())
		t.Cleanup(ts.Close)
		c, err := manaauth.New(ts.URL)
		require.NoError(t, err)
		res, err := c.Login(context.Background(), devauth.DefaultAdminEmail, devauth.DefaultAdminPassword)
		require.NoError(t, err)
		require.Equal(t, "admin", res.User.Role)
	})
}

func TestEndpoints(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()

	t.Run("HealthzIsOK", func(t *testing.T) {
		t.Parallel()
		res, err := http.Get(b.url + "/healthz")
		require.NoError(t, err)
		defer res.Body.Close()
		require.Equal(t, http.StatusOK, res.StatusCode)
	})

	t.Run("JWKSHasBetterAuthShape", func(t *testing.T) {
		t.Parallel()
		res, err := http.Get(b.url + "/api/auth/jwks")
		require.NoError(t, err)
		defer res.Body.Close()
		var body struct {
			Keys []map[string]string `json:"keys"`
		}
		require.NoError(t, json.NewDecoder(res.Body).Decode(&body))
		require.Len(t, body.Keys, 1)
		k := body.Keys[0]
		require.ElementsMatch(t, []string{"alg", "crv", "x", "kty", "kid"}, keys(k))
		require.Equal(t, "EdDSA", k["alg"])
		require.Equal(t, b.srv.KeyID(), k["kid"])
	})

	t.Run("RegisterRefusesBadInput", func(t *testing.T) {
		t.Parallel()
		for name, body := range map[string]string{
			"NotJSON":       `{`,
			"BadEmail":      `{"email":"nope","password":"password-1","name":"x"}`,
			"ShortPassword": `{"email":"short@mana.test","password":"1234567","name":"x"}`,
		} {
			res, err := http.Post(b.url+"/api/v1/auth/register", "application/json", strings.NewReader(body))
			require.NoError(t, err, name)
			res.Body.Close()
			require.Equal(t, http.StatusBadRequest, res.StatusCode, name)
		}
	})

	t.Run("LoginUnknownEmailIsInvalidCredentials", func(t *testing.T) {
		t.Parallel()
		res, err := http.Post(b.url+"/api/v1/auth/login", "application/json",
			strings.NewReader(`{"email":"ghost@mana.test","password":"whatever-1"}`))
		require.NoError(t, err)
		defer res.Body.Close()
		require.Equal(t, http.StatusUnauthorized, res.StatusCode)
		var body map[string]string
		require.NoError(t, json.NewDecoder(res.Body).Decode(&body))
		require.Equal(t, "INVALID_EMAIL_OR_PASSWORD", body["code"])
	})

	t.Run("AdminForbiddenBodyMatchesContract", func(t *testing.T) {
		t.Parallel()
		_, err := b.client.Register(ctx, manaauth.RegisterRequest{Email: "plain@mana.test", Password: "password-1"})
		require.NoError(t, err)
		login, err := b.client.Login(ctx, "plain@mana.test", "password-1")
		require.NoError(t, err)
		req, _ := http.NewRequest(http.MethodGet, b.url+"/api/v1/admin/users", nil)
		req.Header.Set("Authorization", "Bearer "+login.AccessToken)
		res, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer res.Body.Close()
		require.Equal(t, http.StatusForbidden, res.StatusCode)
		var body map[string]string
		require.NoError(t, json.NewDecoder(res.Body).Decode(&body))
		require.Equal(t, map[string]string{"error": "Forbidden", "message": "Admin access required"}, body)
	})

	t.Run("SearchPagesAndFindUserByEmailPicksExactMatch", func(t *testing.T) {
		t.Parallel()
		// Substring matches of the wanted email on several pages.
		for _, e := range []string{"xpage@mana.test", "page@mana.test.other", "apage@mana.test", "page@mana.testing"} {
			_, err := b.client.Register(ctx, manaauth.RegisterRequest{Email: e, Password: "password-1"})
			require.NoError(t, err)
		}
		want, err := b.client.Register(ctx, manaauth.RegisterRequest{Email: "page@mana.test", Password: "password-1"})
		require.NoError(t, err)
		admin := adminToken(t, b)
		p1, err := b.client.SearchUsers(ctx, admin, "PAGE@mana.test", 1, 2)
		require.NoError(t, err)
		require.Len(t, p1.Users, 2)
		require.Equal(t, 5, p1.Total)
		p3, err := b.client.SearchUsers(ctx, admin, "page@mana.test", 3, 2)
		require.NoError(t, err)
		require.Len(t, p3.Users, 1)
		p9, err := b.client.SearchUsers(ctx, admin, "page@mana.test", 9, 2)
		require.NoError(t, err)
		require.Empty(t, p9.Users)
		require.Equal(t, 5, p9.Total)

		small, err := manaauth.New(b.url, manaauth.WithPageSize(1))
		require.NoError(t, err)
		u, err := small.FindUserByEmail(ctx, admin, "Page@Mana.Test")
		require.NoError(t, err)
		require.Equal(t, want.User.ID, u.ID)
	})

	t.Run("ServiceKeyRotationAcceptsEveryConfiguredKey", func(t *testing.T) {
		t.Parallel()
		reg, err := b.client.Register(ctx, manaauth.RegisterRequest{Email: "rotate@mana.test", Password: "password-1"})
		require.NoError(t, err)
		old, err := manaauth.New(b.url, manaauth.WithServiceKey("old-key-rotated-out"))
		require.NoError(t, err)
		_, err = old.StampPersona(ctx, reg.User.ID)
		require.NoError(t, err)
	})
}

func keys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestFaults(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("RegisterFailsWith500ThenRecovers", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		require.NoError(t, b.srv.Faults().Set(devauth.OpRegister, devauth.Fault{Status: 500}))
		req := manaauth.RegisterRequest{Email: "f500@mana.test", Password: "password-1"}
		_, err := b.client.Register(ctx, req)
		var ue *manaauth.UpstreamError
		require.ErrorAs(t, err, &ue)
		require.Equal(t, 500, ue.Status)
		_, err = b.client.Register(ctx, req)
		require.ErrorAs(t, err, &ue, "fault stays until cleared")

		b.srv.Faults().Clear(devauth.OpRegister)
		_, err = b.client.Register(ctx, req)
		require.NoError(t, err, "the faulted attempts created nothing")
	})

	t.Run("HangingStampTimesOutThenRecovers", func(t *testing.T) {
		t.Parallel()
		b := setup(t, manaauth.WithTimeout(300*time.Millisecond))
		reg, err := b.client.Register(ctx, manaauth.RegisterRequest{Email: "hang@mana.test", Password: "password-1"})
		require.NoError(t, err)
		require.NoError(t, b.srv.Faults().Set(devauth.OpStamp, devauth.Fault{Hang: true, Times: 1}))
		_, err = b.client.StampPersona(ctx, reg.User.ID)
		require.ErrorIs(t, err, manaauth.ErrTimeout)
		require.ErrorIs(t, err, context.DeadlineExceeded)

		u, err := b.client.GetUser(ctx, adminToken(t, b), reg.User.ID)
		require.NoError(t, err)
		require.False(t, u.EmailVerified, "a hanging stamp did not stamp")

		res, err := b.client.StampPersona(ctx, reg.User.ID)
		require.NoError(t, err)
		require.True(t, res.EmailVerified)
	})

	t.Run("StampRetriesPastOne503", func(t *testing.T) {
		t.Parallel()
		b := setup(t, manaauth.WithRetryPolicy(retry.Policy{MaxAttempts: 2, BaseDelay: time.Millisecond, MaxDelay: time.Millisecond}))
		reg, err := b.client.Register(ctx, manaauth.RegisterRequest{Email: "retry@mana.test", Password: "password-1"})
		require.NoError(t, err)
		require.NoError(t, b.srv.Faults().Set(devauth.OpStamp, devauth.Fault{Status: 503, Times: 1}))
		_, err = b.client.StampPersona(ctx, reg.User.ID)
		require.NoError(t, err)
		require.Empty(t, b.srv.Faults().Active())
	})

	t.Run("DeleteFailingAfterTheWorkLeavesItDone", func(t *testing.T) {
		t.Parallel()
		b := setup(t, manaauth.WithRetryPolicy(retry.Policy{MaxAttempts: 1}))
		reg, err := b.client.Register(ctx, manaauth.RegisterRequest{Email: "after@mana.test", Password: "password-1"})
		require.NoError(t, err)
		admin := adminToken(t, b)
		require.NoError(t, b.srv.Faults().Set(devauth.OpDelete, devauth.Fault{Status: 500, After: true, Times: 1}))
		var ue *manaauth.UpstreamError
		require.ErrorAs(t, b.client.DeleteUser(ctx, admin, reg.User.ID), &ue)
		require.ErrorIs(t, b.client.DeleteUser(ctx, admin, reg.User.ID), manaauth.ErrNotFound, "the user is gone although the answer was 500")
	})

	t.Run("FaultEndpointNeedsServiceKeyAndDrivesFaults", func(t *testing.T) {
		t.Parallel()
		b := setup(t, manaauth.WithRetryPolicy(retry.Policy{MaxAttempts: 1}))
		post := func(key, body string) int {
			req, _ := http.NewRequest(http.MethodPost, b.url+"/__faults", bytes.NewBufferString(body))
			req.Header.Set("Content-Type", "application/json")
			if key != "" {
				req.Header.Set("X-Service-Key", key)
			}
			res, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			res.Body.Close()
			return res.StatusCode
		}
		require.Equal(t, http.StatusUnauthorized, post("", `{"op":"delete","status":500}`))
		require.Equal(t, http.StatusUnauthorized, post("wrong-key-123", `{"op":"delete","status":500}`))
		require.Equal(t, http.StatusBadRequest, post(serviceKey, `{"op":"nope","status":500}`))
		require.Equal(t, http.StatusBadRequest, post(serviceKey, `{"op":"delete","status":200}`))
		require.Equal(t, http.StatusOK, post(serviceKey, `{"op":"delete","status":502}`))

		reg, err := b.client.Register(ctx, manaauth.RegisterRequest{Email: "ep@mana.test", Password: "password-1"})
		require.NoError(t, err)
		admin := adminToken(t, b)
		var ue *manaauth.UpstreamError
		require.ErrorAs(t, b.client.DeleteUser(ctx, admin, reg.User.ID), &ue)
		require.Equal(t, 502, ue.Status)

		req, _ := http.NewRequest(http.MethodDelete, b.url+"/__faults", nil)
		req.Header.Set("X-Service-Key", serviceKey)
		res, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		res.Body.Close()
		require.Equal(t, http.StatusOK, res.StatusCode)
		require.NoError(t, b.client.DeleteUser(ctx, admin, reg.User.ID))
	})

	t.Run("DrainReleasesHangingRequests", func(t *testing.T) {
		t.Parallel()
		b := setup(t, manaauth.WithTimeout(time.Minute))
		require.NoError(t, b.srv.Faults().Set(devauth.OpJWKS, devauth.Fault{Hang: true}))
		var finished atomic.Bool
		done := make(chan error, 1)
		go func() {
			_, err := b.client.JWKS(ctx)
			finished.Store(true)
			done <- err
		}()
		// Wait until the request is parked in the fault, then drain.
		require.Eventually(t, func() bool { return b.srv.Faults().Hanging() == 1 }, 5*time.Second, 5*time.Millisecond)
		b.srv.Drain()
		err := <-done
		require.True(t, finished.Load())
		var ue *manaauth.UpstreamError
		require.ErrorAs(t, err, &ue)
		require.Zero(t, b.srv.Faults().Hanging())
	})
}
