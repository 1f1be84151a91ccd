// Package e2e runs the users' journeys over HTTP through the real gateway:
// nginx rendered from deploy/gateway in front of personas-internal,
// personas-admin and the mana-auth stand-in, all built as `make build` does
// and started on free ports against a database of the test's own.
package e2e

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
	"github.com/stretchr/testify/require"

	"github.com/mana/personas/deploy/internal/repo"
	"github.com/mana/personas/pkg/adminclient"
	"github.com/mana/personas/pkg/catalog"
	"github.com/mana/personas/pkg/internalclient"
	"github.com/mana/personas/pkg/manaauth"
)

const (
	adminEmail    = "admin@mana.test"
	adminPassword = "mana-dev-admin-password" // mana-auth-dev's development default
)

func (s *stack) adminToken(t *testing.T) string {
	t.Helper()
	// At mana-auth's own URL, as bin/mana-auth-dev admin-token does: the
	// gateway exposes only the JWKS and the dashboard's session endpoints
	// of mana-auth, not /api/v1/auth/login (deploy/README.md).
	auth, err := manaauth.New(s.authURL)
	require.NoError(t, err)
	login, err := auth.Login(context.Background(), adminEmail, adminPassword)
	require.NoError(t, err)
	require.NotEmpty(t, login.AccessToken)
	return login.AccessToken
}

func (s *stack) db(t *testing.T) *sql.DB {
	t.Helper()
	db, err := sql.Open("pgx", s.dsn)
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func ptr[T any](v T) *T { return &v }

func TestRunnerJourney(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := startStack(t)
	admin, err := adminclient.New(s.gateway, s.adminToken(t))
	require.NoError(t, err)
	ids := map[string]string{}
	for _, p := range []struct{ email, cadence string }{
		{"persona.hourly@mana.test", "hourly"},
		{"persona.daily@mana.test", "daily"},
	} {
		res, err := admin.UpsertPersona(ctx, adminclient.UpsertRequest{
			Email: p.email, Password: catalog.Password(catalog.DevSeedSecret, p.email), Archetype: "solo-dev",
			SystemPrompt: "Du bist eine Testperson für den Runner.", ModuleMix: map[string]float64{"todo": 1}, TickCadence: p.cadence,
		})
		require.NoError(t, err)
		ids[p.cadence] = res.UserID
	}
	runner, err := internalclient.New(s.gateway, serviceKey, internalclient.WithRetries(1, 0))
	require.NoError(t, err)

	// Claim: one runner gets both, a second runner and /due get nothing.
	claimed, err := runner.Claim(ctx, internalclient.ClaimRequest{RunnerID: "runner-a", Limit: 10, LeaseSeconds: 300})
	require.NoError(t, err)
	require.Len(t, claimed.Personas, 2)
	require.NotNil(t, claimed.LeaseExpiresAt)
	other, err := runner.Claim(ctx, internalclient.ClaimRequest{RunnerID: "runner-b"})
	require.NoError(t, err)
	require.Empty(t, other.Personas)
	due, err := runner.ListDue(ctx, 0)
	require.NoError(t, err)
	require.Empty(t, due.Personas)

	// One tick in two batches with seq, the second batch retried, under
	// the claim's lease token.
	hourly := ids["hourly"]
	var token string
	for _, p := range claimed.Personas {
		if p.UserID == hourly {
			token = p.LeaseToken
		}
	}
	require.NotEmpty(t, token)
	lease := internalclient.WithLeaseToken(token)
	_, err = runner.StartTick(ctx, hourly, internalclient.TickStart{TickID: "tick-1", RunnerID: "runner-a"}, lease)
	require.NoError(t, err)
	batch := func(from, n int) []internalclient.Action {
		out := make([]internalclient.Action, n)
		for i := range out {
			out[i] = internalclient.Action{TickID: "tick-1", Seq: ptr(from + i), ToolName: "todo.create", Result: "ok", LatencyMs: ptr(100 + i)}
		}
		return out
	}
	res, err := runner.PostActions(ctx, hourly, batch(0, 3), lease)
	require.NoError(t, err)
	require.Equal(t, 3, res.Written)
	res, err = runner.PostActions(ctx, hourly, batch(3, 2), lease)
	require.NoError(t, err)
	require.Equal(t, 2, res.Written)
	res, err = runner.PostActions(ctx, hourly, batch(3, 2), lease)
	require.NoError(t, err)
	require.Equal(t, internalclient.WriteResult{OK: true, Written: 0, Duplicates: 2}, *res)

	fb, err := runner.PostFeedback(ctx, hourly, []internalclient.Feedback{
		{TickID: "tick-1", Module: "todo", Rating: 4, Notes: ptr("Aufgaben anlegen ging schnell.")},
		{TickID: "tick-1", Module: "journal", Rating: 2},
	}, lease)
	require.NoError(t, err)
	require.Equal(t, 2, fb.Written)
	fin, err := runner.FinishTick(ctx, hourly, "tick-1", internalclient.TickFinish{Status: internalclient.StatusOK}, lease)
	require.NoError(t, err)
	require.Equal(t, 5, fin.Tick.Actions)

	// Done for this hour (and the other persona still leased): nobody is due.
	due, err = runner.ListDue(ctx, 0)
	require.NoError(t, err)
	require.Empty(t, due.Personas)

	// An hour passes for the hourly persona: it is due again.
	_, err = s.db(t).ExecContext(ctx, `UPDATE personas.personas SET last_active_at = last_active_at - interval '61 minutes', last_done_at = last_done_at - interval '61 minutes' WHERE user_id = $1`, hourly)
	require.NoError(t, err)
	due, err = runner.ListDue(ctx, 0)
	require.NoError(t, err)
	require.Len(t, due.Personas, 1)
	require.Equal(t, hourly, due.Personas[0].UserID)

	// The admin reads back what the runner did.
	detail, err := admin.GetPersona(ctx, hourly)
	require.NoError(t, err)
	require.Len(t, detail.RecentActions, 5)
	require.Equal(t, "tick-1-4-todo.create", detail.RecentActions[0].ID, "newest first")
	var agg []struct {
		Module    string  `json:"module"`
		AvgRating float64 `json:"avgRating"`
		Count     int     `json:"count"`
	}
	require.NoError(t, json.Unmarshal(detail.FeedbackByModule, &agg))
	sort.Slice(agg, func(i, j int) bool { return agg[i].Module < agg[j].Module })
	require.Equal(t, "journal", agg[0].Module)
	require.InDelta(t, 2.0, agg[0].AvgRating, 1e-9)
	require.InDelta(t, 4.0, agg[1].AvgRating, 1e-9)
	page, err := admin.ListPersonas(ctx, adminclient.ListOptions{})
	require.NoError(t, err)
	counts := map[string]int{}
	for _, p := range page.Personas {
		counts[p.UserID] = p.Actions7d
	}
	require.Equal(t, map[string]int{hourly: 5, ids["daily"]: 0}, counts)
}

func TestAdminJourney(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := startStack(t)
	token := s.adminToken(t)
	admin, err := adminclient.New(s.gateway, token)
	require.NoError(t, err)
	root, err := repo.Root()
	require.NoError(t, err)
	cat, err := catalog.Load(filepath.Join(root, "services", "personasctl", "catalog", "personas.json"))
	require.NoError(t, err)

	type seedReport struct {
		Summary struct{ Total, Created, Updated, Failed int } `json:"summary"`
	}
	seed := func() seedReport {
		code, stdout, stderr := s.ctl(t, token, "seed", "--output", "json")
		require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", stdout, stderr)
		var r seedReport
		require.NoError(t, json.Unmarshal([]byte(stdout), &r), stdout)
		return r
	}

	// Seed: ten personas with the catalog's archetypes and cadences.
	first := seed()
	require.Equal(t, len(cat.Personas), first.Summary.Created)
	page, err := admin.ListPersonas(ctx, adminclient.ListOptions{})
	require.NoError(t, err)
	require.Len(t, page.Personas, len(cat.Personas))
	byEmail := map[string]adminclient.Persona{}
	for _, p := range page.Personas {
		byEmail[p.Email] = p
	}
	for _, want := range cat.Personas {
		got, ok := byEmail[want.Email]
		require.True(t, ok, want.Email)
		require.Equal(t, want.Archetype, got.Archetype, want.Email)
		require.Equal(t, string(want.Cadence()), got.TickCadence, want.Email)
		require.ElementsMatch(t, want.Tags, got.Tags, want.Email)
	}

	// Seeding again creates nothing.
	second := seed()
	require.Zero(t, second.Summary.Created)
	require.Equal(t, len(cat.Personas), second.Summary.Updated)
	again, err := admin.ListPersonas(ctx, adminclient.ListOptions{})
	require.NoError(t, err)
	require.Len(t, again.Personas, len(cat.Personas))

	// Feedback through the runner's API shows as true means in the detail.
	anna := byEmail["persona.anna@mana.test"]
	runner, err := internalclient.New(s.gateway, serviceKey)
	require.NoError(t, err)
	for i, r := range []int{5, 4, 4} {
		_, err := runner.PostFeedback(ctx, anna.UserID, []internalclient.Feedback{{TickID: "t" + string(rune('a'+i)), Module: "todo", Rating: r}})
		require.NoError(t, err)
	}
	detail, err := admin.GetPersona(ctx, anna.UserID)
	require.NoError(t, err)
	var agg []struct {
		Module       string         `json:"module"`
		AvgRating    float64        `json:"avgRating"`
		Count        int            `json:"count"`
		Distribution map[string]int `json:"distribution"`
	}
	require.NoError(t, json.Unmarshal(detail.FeedbackByModule, &agg))
	require.Len(t, agg, 1)
	require.InDelta(t, 13.0/3.0, agg[0].AvgRating, 1e-9)
	require.Equal(t, 3, agg[0].Count)
	require.Equal(t, map[string]int{"1": 0, "2": 0, "3": 0, "4": 2, "5": 1}, agg[0].Distribution)

	// Delete one: gone here and in mana-auth (its password no longer logs in).
	ben := byEmail["persona.ben@mana.test"]
	require.NoError(t, admin.DeletePersona(ctx, ben.UserID))
	_, err = admin.GetPersona(ctx, ben.UserID)
	require.ErrorIs(t, err, adminclient.ErrNotFound)
	auth, err := manaauth.New(s.authURL) // mana-auth itself: the gateway does not route login or register
	require.NoError(t, err)
	_, err = auth.Login(ctx, ben.Email, catalog.Password(catalog.DevSeedSecret, ben.Email))
	require.ErrorIs(t, err, manaauth.ErrUnauthorized)

	// A regular user is refused, with the pointer to the platform's endpoint.
	human, err := auth.Register(ctx, manaauth.RegisterRequest{Email: "human@example.com", Password: "a-human-password", Name: "Human"})
	require.NoError(t, err)
	err = admin.DeletePersona(ctx, human.User.ID)
	var apiErr *adminclient.APIError
	require.True(t, errors.As(err, &apiErr), "got %v", err)
	require.Equal(t, http.StatusBadRequest, apiErr.Status)
	require.Contains(t, apiErr.Message, "/api/v1/admin/users/")
	_, err = auth.Login(ctx, "human@example.com", "a-human-password")
	require.NoError(t, err, "the refused user still exists")

	// Cleanup removes every persona.
	code, stdout, stderr := s.ctl(t, token, "cleanup", "--all", "--yes")
	require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", stdout, stderr)
	empty, err := admin.ListPersonas(ctx, adminclient.ListOptions{})
	require.NoError(t, err)
	require.Empty(t, empty.Personas)
}

func TestGatewayEdges(t *testing.T) {
	t.Parallel()
	s := startStack(t)
	type reply struct {
		StatusCode int
		Header     http.Header
	}
	call := func(method, path string, header map[string]string) (reply, map[string]any) {
		req, err := http.NewRequestWithContext(context.Background(), method, s.gateway+path, nil)
		require.NoError(t, err)
		for k, v := range header {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		var body map[string]any
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
		return reply{StatusCode: resp.StatusCode, Header: resp.Header}, body
	}

	resp, body := call(http.MethodGet, "/api/v1/personas/internal/due", map[string]string{"X-Service-Key": serviceKey, "X-Request-Id": "e2e-request-1"})
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "e2e-request-1", resp.Header.Get("X-Request-Id"), "the id travels through nginx and back")
	require.Contains(t, body, "serverTime")

	resp, body = call(http.MethodGet, "/api/v1/personas/internal/due", nil)
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	require.Equal(t, "Unauthorized", body["error"])

	resp, body = call(http.MethodGet, "/api/v1/personas/admin", map[string]string{"Authorization": "Bearer not-a-jwt"})
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	require.NotEmpty(t, body["error"])

	resp, body = call(http.MethodGet, "/nowhere", nil)
	require.Equal(t, http.StatusNotFound, resp.StatusCode)
	require.NotEmpty(t, body["error"])
	require.NotEmpty(t, resp.Header.Get("X-Request-Id"), "the gateway mints an id when there is none")

	resp, _ = call(http.MethodGet, "/api/auth/jwks", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode, "mana-auth's JWKS is reachable through the gateway")
	// ...and nothing else of mana-auth: not traversal from the JWKS into its
	// admin API, not login (the stand-in would answer those).
	for _, path := range []string{"/api/auth/jwks/..;/..;/v1/admin/users", "/api/auth/jwks/..%3B/..%3B/v1/admin/users", "/api/v1/auth/login"} {
		resp, _ = call(http.MethodGet, path, nil)
		require.Equal(t, http.StatusNotFound, resp.StatusCode, path)
	}
}

// TestSeedWithInvalidPersona: one broken catalog entry fails on its own
// line (exit 1) while the valid ones still land.
func TestSeedWithInvalidPersona(t *testing.T) {
	t.Parallel()
	s := startStack(t)
	token := s.adminToken(t)
	path := filepath.Join(t.TempDir(), "catalog.json")
	require.NoError(t, os.WriteFile(path, []byte(`{"personas":[
  {"email":"persona.one@mana.test","name":"One","archetype":"solo-dev","tickCadence":"daily",
   "moduleMix":{"todo":1},"systemPrompt":"Du bist One, eine Testperson mit klaren Zielen."},
  {"email":"persona.two@example.com","name":"Two","archetype":"solo-dev","tickCadence":"daily",
   "moduleMix":{"todo":1},"systemPrompt":"Du bist Two, eine Testperson mit falscher Domain."},
  {"email":"persona.three@mana.test","name":"Three","archetype":"researcher","tickCadence":"hourly",
   "moduleMix":{"notes":1},"systemPrompt":"Du bist Three, eine Testperson, die viel liest."}
]}`), 0o600))
	code, stdout, stderr := s.ctl(t, token, "seed", "--catalog", path)
	require.Equal(t, 1, code, "stdout:\n%s\nstderr:\n%s", stdout, stderr)
	require.Contains(t, stdout+stderr, "persona.two@example.com")

	admin, err := adminclient.New(s.gateway, token)
	require.NoError(t, err)
	page, err := admin.ListPersonas(context.Background(), adminclient.ListOptions{})
	require.NoError(t, err)
	var emails []string
	for _, p := range page.Personas {
		emails = append(emails, p.Email)
	}
	require.ElementsMatch(t, []string{"persona.one@mana.test", "persona.three@mana.test"}, emails)
}
