package devauth_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
	"github.com/mana/personas/pkg/dbtest"
	"github.com/mana/personas/pkg/manaauth"
	"github.com/mana/personas/pkg/manaauth/contracttest"
	"github.com/mana/personas/pkg/retry"
	"github.com/mana/personas/services/mana-auth-dev/devauth"
	"github.com/stretchr/testify/require"
)

// serve runs a stand-in built from cfg (its BaseURL may differ from the
// listener's address, e.g. https for Secure cookies) and returns its URL.
func serve(t *testing.T, cfg devauth.Config) (*devauth.Server, string) {
	t.Helper()
	ts := httptest.NewUnstartedServer(nil)
	if cfg.BaseURL == "" {
		cfg.BaseURL = "http://" + ts.Listener.Addr().String()
	}
	srv, err := devauth.New(context.Background(), cfg)
	require.NoError(t, err)
	ts.Config.Handler = srv.Handler()
	ts.Start()
	t.Cleanup(func() {
		srv.Drain()
		ts.Close()
		_ = srv.Close()
	})
	return srv, ts.URL
}

// answer is a response read and closed at once.
type answer struct {
	StatusCode int
	Header     http.Header
	body       []byte
	cookies    []*http.Cookie
}

func (a *answer) Cookies() []*http.Cookie { return a.cookies }

func send(t *testing.T, req *http.Request, header map[string]string) *answer {
	t.Helper()
	for k, v := range header {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer func() { _ = res.Body.Close() }()
	body, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return &answer{StatusCode: res.StatusCode, Header: res.Header, body: body, cookies: res.Cookies()}
}

func post(t *testing.T, target, contentType, body string, header map[string]string) *answer {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, target, strings.NewReader(body))
	require.NoError(t, err)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	return send(t, req, header)
}

func get(t *testing.T, target string, header map[string]string) *answer {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, target, nil)
	require.NoError(t, err)
	return send(t, req, header)
}

func decodeBody(t *testing.T, res *answer, dst any) {
	t.Helper()
	require.NoError(t, json.Unmarshal(res.body, dst), "body %s", res.body)
}

func signIn(t *testing.T, base, email, password string) *answer {
	t.Helper()
	raw, _ := json.Marshal(map[string]string{"email": email, "password": password})
	return post(t, base+"/api/auth/sign-in/email", "application/json", string(raw), nil)
}

func cookieNamed(res *answer, name string) *http.Cookie {
	for _, c := range res.Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

func TestContractWithShortTTLAndTrustedOrigin(t *testing.T) {
	t.Parallel()
	cfg := config(dbtest.Empty(t, "authdev"), "")
	cfg.TokenTTL = 7 * time.Second
	cfg.TrustedOrigins = []string{"http://dash.mana.test:5173"}
	_, base := serve(t, cfg)
	contracttest.RunConfig(t, contracttest.Config{
		BaseURL: base, AdminEmail: adminEmail, AdminPassword: adminPassword, ServiceKey: serviceKey,
		RequireAdminRole: true, TokenTTL: 7 * time.Second, Origin: "http://dash.mana.test:5173",
	})
}

func TestBrowserFlow(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("CookieIsTokenDotHMACSignature", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		_, err := b.client.Register(ctx, manaauth.RegisterRequest{Email: "sig@mana.test", Password: "password-1"})
		require.NoError(t, err)
		res := signIn(t, b.url, "sig@mana.test", "password-1")
		require.Equal(t, http.StatusOK, res.StatusCode)
		var body map[string]any
		decodeBody(t, res, &body)
		require.Contains(t, body, "url")
		require.Nil(t, body["url"])
		ck := cookieNamed(res, "mana.session_token")
		require.NotNil(t, ck)
		require.False(t, ck.Secure, "http base URL: no Secure")
		require.Equal(t, 7*24*3600, ck.MaxAge)
		signed, err := url.QueryUnescape(ck.Value)
		require.NoError(t, err)
		token, sig, ok := strings.Cut(signed, ".")
		require.True(t, ok)
		require.Equal(t, body["token"], token)
		raw, err := base64.StdEncoding.DecodeString(sig)
		require.NoError(t, err, "the signature is padded standard base64, as better-call writes it")
		require.Len(t, raw, sha256.Size)

		// The signature is an HMAC with a key the stand-in keeps: a
		// signature made with another key is refused.
		m := hmac.New(sha256.New, []byte("some other key"))
		m.Write([]byte(token))
		forged := url.QueryEscape(token + "." + base64.StdEncoding.EncodeToString(m.Sum(nil)))
		res = get(t, b.url+"/api/auth/token", map[string]string{"Cookie": "mana.session_token=" + forged})
		require.Equal(t, http.StatusUnauthorized, res.StatusCode)

		// The signed value works as a bearer too (decoded or not).
		for _, v := range []string{ck.Value, signed} {
			res = get(t, b.url+"/api/auth/organization/list", map[string]string{"Authorization": "Bearer " + v})
			require.Equal(t, http.StatusOK, res.StatusCode)
		}
	})

	t.Run("CookiesSurviveARestart", func(t *testing.T) {
		t.Parallel()
		dbURL := dbtest.Empty(t, "authdev")
		first := start(t, dbURL)
		_, err := first.client.Register(ctx, manaauth.RegisterRequest{Email: "stay@mana.test", Password: "password-1"})
		require.NoError(t, err)
		ck := cookieNamed(signIn(t, first.url, "stay@mana.test", "password-1"), "mana.session_token")
		require.NotNil(t, ck)
		second := start(t, dbURL)
		res := get(t, second.url+"/api/auth/token", map[string]string{"Cookie": "mana.session_token=" + ck.Value})
		require.Equal(t, http.StatusOK, res.StatusCode, "the HMAC key persists like the signing key")
	})

	t.Run("HTTPSBaseURLGivesSecurePrefixedCookie", func(t *testing.T) {
		t.Parallel()
		cfg := config(dbtest.Empty(t, "authdev"), "https://auth.mana.test")
		srv, base := serve(t, cfg)
		c, err := manaauth.New(base)
		require.NoError(t, err)
		_, err = c.Register(ctx, manaauth.RegisterRequest{Email: "tls@mana.test", Password: "password-1"})
		require.NoError(t, err)
		res := signIn(t, base, "tls@mana.test", "password-1")
		require.Equal(t, http.StatusOK, res.StatusCode)
		ck := cookieNamed(res, "__Secure-mana.session_token")
		require.NotNil(t, ck, "Better Auth prefixes Secure cookies with __Secure-: %v", res.Header.Values("Set-Cookie"))
		require.True(t, ck.Secure)
		require.Nil(t, cookieNamed(res, "mana.session_token"))

		res = get(t, base+"/api/auth/token", map[string]string{"Cookie": "__Secure-mana.session_token=" + ck.Value})
		require.Equal(t, http.StatusOK, res.StatusCode)
		var body struct {
			Token string `json:"token"`
		}
		decodeBody(t, res, &body)
		_, payload := splitJWT(t, body.Token)
		require.Equal(t, srv.Issuer(), payload["iss"])
		require.Equal(t, "https://auth.mana.test", payload["iss"])

		// The origin of a https base URL is trusted; the plain http one is not.
		res = post(t, base+"/api/auth/sign-out", "application/json", "{}", map[string]string{
			"Origin": "http://auth.mana.test", "Cookie": "__Secure-mana.session_token=" + ck.Value,
		})
		require.Equal(t, http.StatusForbidden, res.StatusCode)
		res = post(t, base+"/api/auth/sign-out", "application/json", "{}", map[string]string{
			"Origin": "https://auth.mana.test", "Cookie": "__Secure-mana.session_token=" + ck.Value,
		})
		require.Equal(t, http.StatusOK, res.StatusCode)
	})

	t.Run("OriginChecks", func(t *testing.T) {
		t.Parallel()
		cfg := config(dbtest.Empty(t, "authdev"), "")
		cfg.TrustedOrigins = []string{"http://localhost:5173", "https://Dash.Mana.Test/"}
		_, base := serve(t, cfg)
		c, err := manaauth.New(base)
		require.NoError(t, err)
		_, err = c.Register(ctx, manaauth.RegisterRequest{Email: "orig@mana.test", Password: "password-1"})
		require.NoError(t, err)
		body := `{"email":"orig@mana.test","password":"password-1"}`
		for origin, want := range map[string]int{
			"":                                    http.StatusOK, // no Origin header: a server-side caller
			base:                                  http.StatusOK,
			"http://localhost:5173":               http.StatusOK,
			"https://dash.mana.test":              http.StatusOK,
			"http://localhost:5174":               http.StatusForbidden,
			"https://dash.mana.test.evil.example": http.StatusForbidden,
			"null":                                http.StatusForbidden,
			"https://evil.example":                http.StatusForbidden,
		} {
			h := map[string]string{}
			if origin != "" {
				h["Origin"] = origin
			}
			res := post(t, base+"/api/auth/sign-in/email", "application/json", body, h)
			require.Equal(t, want, res.StatusCode, "origin %q", origin)
			if want == http.StatusForbidden {
				var e map[string]string
				decodeBody(t, res, &e)
				require.Equal(t, map[string]string{"code": "INVALID_ORIGIN", "message": "Invalid origin"}, e)
			}
		}
	})

	t.Run("SignInAndSignOutRequireJSON", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		for _, ct := range []string{"", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "text/plain", "application/jsonp"} {
			res := post(t, b.url+"/api/auth/sign-in/email", ct, `{"email":"admin@mana.test","password":"admin-test-password"}`, nil)
			require.Equal(t, http.StatusUnsupportedMediaType, res.StatusCode, ct)
			require.Empty(t, res.Cookies(), ct)
			res = post(t, b.url+"/api/auth/sign-out", ct, `{}`, nil)
			require.Equal(t, http.StatusUnsupportedMediaType, res.StatusCode, ct)
		}
		res := post(t, b.url+"/api/auth/sign-in/email", "application/json; charset=utf-8", `{"email":"admin@mana.test","password":"admin-test-password"}`, nil)
		require.Equal(t, http.StatusOK, res.StatusCode, "parameters of the media type are fine")
	})

	t.Run("SignInRefusesBadInput", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		for body, code := range map[string]string{`{`: "VALIDATION_ERROR", `{"email":"nope","password":"x"}`: "INVALID_EMAIL"} {
			res := post(t, b.url+"/api/auth/sign-in/email", "application/json", body, nil)
			require.Equal(t, http.StatusBadRequest, res.StatusCode, body)
			var e map[string]string
			decodeBody(t, res, &e)
			require.Equal(t, code, e["code"])
		}
		res := signIn(t, b.url, "ghost@mana.test", "password-1")
		require.Equal(t, http.StatusUnauthorized, res.StatusCode)
		require.Empty(t, res.Cookies())
	})

	t.Run("SignOutWithoutSessionIsFailedToGetSession", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		res := post(t, b.url+"/api/auth/sign-out", "application/json", "", nil)
		require.Equal(t, http.StatusBadRequest, res.StatusCode)
		var e map[string]string
		decodeBody(t, res, &e)
		require.Equal(t, "FAILED_TO_GET_SESSION", e["code"])
		ck := cookieNamed(res, "mana.session_token")
		require.NotNil(t, ck, "the cookie is expired anyway")
		require.Negative(t, ck.MaxAge)
	})

	t.Run("SignOutWithBearerEndsTheSession", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		login, err := b.client.Login(ctx, adminEmail, adminPassword)
		require.NoError(t, err)
		res := post(t, b.url+"/api/auth/sign-out", "application/json", "{}", map[string]string{"Authorization": "Bearer " + login.Token})
		require.Equal(t, http.StatusOK, res.StatusCode)
		_, err = b.client.ListOrganizations(ctx, login.Token)
		require.ErrorIs(t, err, manaauth.ErrUnauthorized)
		// Signing out again with the ended token still answers success.
		res = post(t, b.url+"/api/auth/sign-out", "application/json", "{}", map[string]string{"Authorization": "Bearer " + login.Token})
		require.Equal(t, http.StatusOK, res.StatusCode)
	})

	t.Run("ExpiredSessionIsNoSession", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		login, err := b.client.Login(ctx, adminEmail, adminPassword)
		require.NoError(t, err)
		db := openDB(t, b.dbURL)
		_, err = db.ExecContext(ctx, `UPDATE mana_auth_dev.sessions SET expires_at = now() - interval '1 second' WHERE token = $1`, login.Token)
		require.NoError(t, err)
		_, err = b.client.ListOrganizations(ctx, login.Token)
		require.ErrorIs(t, err, manaauth.ErrUnauthorized)
		res := get(t, b.url+"/api/auth/get-session", map[string]string{"Authorization": "Bearer " + login.Token})
		require.Equal(t, http.StatusOK, res.StatusCode)
		var v any
		decodeBody(t, res, &v)
		require.Nil(t, v)
	})

	t.Run("TokenRenewsAcrossExpiry", func(t *testing.T) {
		t.Parallel()
		var mu sync.Mutex
		now := time.Now()
		clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
		cfg := config(dbtest.Empty(t, "authdev"), "")
		cfg.TokenTTL, cfg.Now = devauth.MinTokenTTL, clock
		_, base := serve(t, cfg)
		res := signIn(t, base, adminEmail, adminPassword)
		require.Equal(t, http.StatusOK, res.StatusCode)
		ck := cookieNamed(res, "mana.session_token")
		tokenAt := func() string {
			res := get(t, base+"/api/auth/token", map[string]string{"Cookie": "mana.session_token=" + ck.Value})
			require.Equal(t, http.StatusOK, res.StatusCode)
			var body struct {
				Token string `json:"token"`
			}
			decodeBody(t, res, &body)
			return body.Token
		}
		first := tokenAt()
		ver, err := manaauth.NewVerifier(ctx, base, manaauth.WithClock(clock))
		require.NoError(t, err)
		t.Cleanup(ver.Close)
		c1, err := ver.Verify(ctx, first)
		require.NoError(t, err)
		require.Equal(t, c1.IssuedAt.Add(5*time.Second), c1.ExpiresAt)

		mu.Lock()
		now = now.Add(5*time.Second + manaauth.DefaultClockSkew + time.Second)
		mu.Unlock()
		_, err = ver.Verify(ctx, first)
		require.ErrorIs(t, err, manaauth.ErrInvalidToken, "the first JWT has expired")
		c2, err := ver.Verify(ctx, tokenAt())
		require.NoError(t, err, "the session cookie gets a fresh one")
		require.Equal(t, c1.SessionID, c2.SessionID)
		require.True(t, c2.ExpiresAt.After(c1.ExpiresAt))
	})
}

func TestOrganizationsOfExistingAccounts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("MissingPersonalOrganizationIsCreatedOnList", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		reg, err := b.client.Register(ctx, manaauth.RegisterRequest{Email: "old@mana.test", Password: "password-1", Name: "Old Timer"})
		require.NoError(t, err)
		db := openDB(t, b.dbURL)
		_, err = db.ExecContext(ctx, `DELETE FROM mana_auth_dev.organizations WHERE personal_owner = $1`, reg.User.ID)
		require.NoError(t, err)
		orgs, err := b.client.ListOrganizations(ctx, reg.Token)
		require.NoError(t, err)
		require.Len(t, orgs, 1)
		require.Equal(t, "personal", orgs[0].Type())
		require.Equal(t, "Old Timer", orgs[0].Name)
		require.Empty(t, orgs[0].Logo)
	})

	t.Run("StartBackfillsAccountsWithoutOne", func(t *testing.T) {
		t.Parallel()
		dbURL := dbtest.Empty(t, "authdev")
		first := start(t, dbURL)
		_, err := first.client.Register(ctx, manaauth.RegisterRequest{Email: "pre@mana.test", Password: "password-1"})
		require.NoError(t, err)
		db := openDB(t, dbURL)
		_, err = db.ExecContext(ctx, `DELETE FROM mana_auth_dev.organizations`)
		require.NoError(t, err)
		start(t, dbURL)
		var users, personal int
		require.NoError(t, db.QueryRowContext(ctx, `SELECT count(*) FROM mana_auth_dev.users`).Scan(&users))
		require.NoError(t, db.QueryRowContext(ctx, `
			SELECT count(*) FROM mana_auth_dev.organizations o
			JOIN mana_auth_dev.members m ON m.organization_id = o.id AND m.user_id = o.personal_owner AND m.role = 'owner'
			WHERE o.metadata = '{"type":"personal"}'`).Scan(&personal))
		require.Equal(t, 2, users, "the admin and the registered user")
		require.Equal(t, users, personal)
	})

	t.Run("DeletingTheUserDeletesTheirPersonalOrganization", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		reg, err := b.client.Register(ctx, manaauth.RegisterRequest{Email: "gone@mana.test", Password: "password-1"})
		require.NoError(t, err)
		require.NoError(t, b.client.DeleteUser(ctx, adminToken(t, b), reg.User.ID))
		var n int
		require.NoError(t, openDB(t, b.dbURL).QueryRowContext(ctx,
			`SELECT count(*) FROM mana_auth_dev.organizations WHERE personal_owner = $1`, reg.User.ID).Scan(&n))
		require.Zero(t, n)
	})

	t.Run("ListFaultIsInjectable", func(t *testing.T) {
		t.Parallel()
		b := setup(t, manaauth.WithRetryPolicy(retryOnce))
		login, err := b.client.Login(ctx, adminEmail, adminPassword)
		require.NoError(t, err)
		require.NoError(t, b.srv.Faults().Set(devauth.OpListOrgs, devauth.Fault{Status: 500, Times: 1}))
		_, err = b.client.ListOrganizations(ctx, login.Token)
		var ue *manaauth.UpstreamError
		require.ErrorAs(t, err, &ue)
		_, err = b.client.ListOrganizations(ctx, login.Token)
		require.NoError(t, err)
	})
}

func TestBrowserConfig(t *testing.T) {
	t.Parallel()
	for name, mutate := range map[string]func(*devauth.Config){
		"TTLBelowMinimum":    func(c *devauth.Config) { c.TokenTTL = 4 * time.Second },
		"TTLNotWholeSeconds": func(c *devauth.Config) { c.TokenTTL = 5500 * time.Millisecond },
		"OriginWithPath":     func(c *devauth.Config) { c.TrustedOrigins = []string{"https://dash.mana.test/app"} },
		"OriginNotHTTP":      func(c *devauth.Config) { c.TrustedOrigins = []string{"dash.mana.test"} },
		"BaseURLNotHTTP":     func(c *devauth.Config) { c.BaseURL = "ftp://x" },
	} {
		cfg := config("postgres://unused", "http://localhost:3001")
		mutate(&cfg)
		require.Error(t, cfg.Validate(), name)
	}
}

var retryOnce = retry.Policy{MaxAttempts: 1}

func openDB(t *testing.T, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open("pgx", dsn)
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// splitJWT returns a compact JWT's header and payload, unverified.
func splitJWT(t *testing.T, token string) (map[string]any, map[string]any) {
	t.Helper()
	parts := strings.Split(token, ".")
	require.Len(t, parts, 3)
	dec := func(s string) map[string]any {
		raw, err := base64.RawURLEncoding.DecodeString(s)
		require.NoError(t, err)
		var m map[string]any
		require.NoError(t, json.Unmarshal(raw, &m))
		return m
	}
	return dec(parts[0]), dec(parts[1])
}
