package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/bcrypt"

	"github.com/mana/personas/pkg/dbtest"
	"github.com/mana/personas/pkg/manaauth"
	"github.com/mana/personas/pkg/openapitest"
	"github.com/mana/personas/pkg/personas"
	"github.com/mana/personas/pkg/personas/personastest"
	"github.com/mana/personas/services/mana-auth-dev/devauth"
)

const (
	testServiceKey    = "test-service-key-0123456789"
	testAdminEmail    = "admin@mana.test"
	testAdminPassword = "admin-test-password"
	apiPath           = "/api/v1/personas/admin"
)

// t0 is the store's clock at the start of every test: a Monday, 12:00 UTC.
var t0 = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

// bundle is personas-admin served over real HTTP on its own database, in
// front of its own mana-auth-dev (the only stand-in), itself on its own
// database and served over real HTTP.
type bundle struct {
	store   *personas.Store
	clock   *personastest.Clock
	auth    *devauth.Server
	authURL string
	authDB  string
	mana    *manaauth.Client // the test's own view of mana-auth
	url     string
	http    *http.Client // validates every exchange against openapi.yaml
	admin   string       // an admin JWT

	// startAuth starts a stand-in that setupWith left stopped.
	startAuth func()
}

type setupOptions struct {
	callTimeout  time.Duration
	startAuthNow bool
}

// setup starts mana-auth-dev and personas-admin. Calls to mana-auth get 2 s,
// so hang faults end quickly while ordinary calls, retries included, fit
// easily even under -race.
func setup(t *testing.T) *bundle {
	t.Helper()
	return setupWith(t, setupOptions{callTimeout: 2 * time.Second, startAuthNow: true})
}

func setupWith(t *testing.T, o setupOptions) *bundle {
	t.Helper()
	b := &bundle{clock: personastest.NewClock(t0), authDB: dbtest.Empty(t, "authdev")}
	b.store = personastest.New(t, personas.WithClock(b.clock.Now))

	var authTS *httptest.Server
	b.auth, authTS = newAuthServer(t, b.authDB, "")
	b.authURL = "http://" + authTS.Listener.Addr().String()
	var err error
	b.mana, err = manaauth.New(b.authURL, manaauth.WithServiceKey(testServiceKey))
	require.NoError(t, err)

	b.url = serveAdmin(t, b.store, Config{
		AuthURL: b.authURL, Issuer: b.authURL, Audience: "mana", ServiceKey: testServiceKey,
		AuthCallTimeout: o.callTimeout, JWKSRefetchInterval: 10 * time.Millisecond,
	})
	b.http = openapitest.Client(t, openAPIDoc)
	b.http.Timeout = 30 * time.Second
	if o.startAuthNow {
		authTS.Start()
		b.admin = b.login(t, testAdminEmail, testAdminPassword)
	} else {
		b.startAuth = func() {
			authTS.Start()
			b.admin = b.login(t, testAdminEmail, testAdminPassword)
		}
	}
	return b
}

// newAuthServer builds a stand-in on dbURL behind an unstarted server whose
// address is its issuer (or issuer, when given). The caller starts it.
func newAuthServer(t *testing.T, dbURL, issuer string) (*devauth.Server, *httptest.Server) {
	t.Helper()
	ts := httptest.NewUnstartedServer(nil)
	if issuer == "" {
		issuer = "http://" + ts.Listener.Addr().String()
	}
	srv, err := devauth.New(context.Background(), devauth.Config{
		BaseURL: issuer, DatabaseURL: dbURL, ServiceKeys: []string{testServiceKey},
		AdminEmail: testAdminEmail, AdminPassword: testAdminPassword, PasswordCost: bcrypt.MinCost,
	})
	require.NoError(t, err)
	ts.Config.Handler = srv.Handler()
	t.Cleanup(func() {
		srv.Drain()
		ts.Close()
		_ = srv.Close()
	})
	return srv, ts
}

// serveAdmin wires personas-admin as main does and serves it.
func serveAdmin(t *testing.T, store *personas.Store, cfg Config) string {
	t.Helper()
	logger := slog.New(slog.NewJSONHandler(io.Discard, nil))
	ctx, cancel := context.WithCancel(context.Background())
	auth, verifier, err := newAuth(ctx, cfg, logger)
	require.NoError(t, err)
	ts := httptest.NewServer(newServer(store, auth, verifier, logger).Echo)
	t.Cleanup(func() {
		ts.Close()
		verifier.Close()
		cancel()
	})
	return ts.URL
}

func (b *bundle) login(t *testing.T, email, password string) string {
	t.Helper()
	res, err := b.mana.Login(context.Background(), email, password)
	require.NoError(t, err)
	return res.AccessToken
}

// registerUser creates a regular mana-auth user and returns its id.
func (b *bundle) registerUser(t *testing.T, email string) string {
	t.Helper()
	res, err := b.mana.Register(context.Background(), manaauth.RegisterRequest{Email: email, Password: "user-password-1"})
	require.NoError(t, err)
	return res.User.ID
}

// call sends a request with the admin bearer (headers can replace or, with
// an empty value, remove it) and returns status and body.
func (b *bundle) call(t *testing.T, method, path, body string, headers ...string) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(context.Background(), method, b.url+path, rd)
	require.NoError(t, err)
	if b.admin != "" {
		req.Header.Set("Authorization", "Bearer "+b.admin)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i+1] == "" {
			req.Header.Del(headers[i])
			continue
		}
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := b.http.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(raw)
}

// upsertBody is a valid upsert body for email; extra fields replace or (nil)
// remove the defaults.
func upsertBody(email string, extra map[string]any) string {
	m := map[string]any{
		"email": email, "name": "Anna", "password": "persona-password-1", "archetype": "adhd-student",
		"systemPrompt": "Du bist Anna, 21, Studentin.", "moduleMix": map[string]float64{"todo": 0.3, "journal": 0.7},
		"tickCadence": "daily",
	}
	for k, v := range extra {
		if v == nil {
			delete(m, k)
			continue
		}
		m[k] = v
	}
	raw, _ := json.Marshal(m)
	return string(raw)
}

type upsertResult struct {
	OK      bool   `json:"ok"`
	UserID  string `json:"userId"`
	Email   string `json:"email"`
	Created bool   `json:"created"`
}

// upsert posts a valid persona and requires 200.
func (b *bundle) upsert(t *testing.T, email string, extra map[string]any) upsertResult {
	t.Helper()
	status, body := b.call(t, http.MethodPost, apiPath, upsertBody(email, extra))
	require.Equal(t, http.StatusOK, status, body)
	var res upsertResult
	require.NoError(t, json.Unmarshal([]byte(body), &res))
	return res
}

// personaRows returns the persona rows with exactly this email.
func (b *bundle) personaRows(t *testing.T, email string) []personas.PersonaSummary {
	t.Helper()
	list, _, err := b.store.ListPersonas(context.Background(), personas.ListFilter{Q: email})
	require.NoError(t, err)
	var out []personas.PersonaSummary
	for _, p := range list {
		if strings.EqualFold(p.Email, email) {
			out = append(out, p)
		}
	}
	return out
}

// authUsers returns mana-auth's users with exactly this email.
func (b *bundle) authUsers(t *testing.T, email string) []manaauth.User {
	t.Helper()
	page, err := b.mana.SearchUsers(context.Background(), b.admin, email, 1, 100)
	require.NoError(t, err)
	var out []manaauth.User
	for _, u := range page.Users {
		if strings.EqualFold(u.Email, email) {
			out = append(out, u)
		}
	}
	return out
}

// signingKey reads the stand-in's Ed25519 signing key from its database, so
// the JWT tests can forge tokens that differ from genuine ones in exactly
// one respect.
func signingKey(t *testing.T, authDB string) (kid string, seed []byte) {
	t.Helper()
	db, err := sql.Open("pgx", authDB)
	require.NoError(t, err)
	defer db.Close()
	require.NoError(t, db.QueryRowContext(context.Background(),
		`SELECT kid, seed FROM mana_auth_dev.signing_keys ORDER BY created_at DESC, kid LIMIT 1`).Scan(&kid, &seed))
	return kid, seed
}
