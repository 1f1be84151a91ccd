package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mana/personas/deploy/internal/repo"
	"github.com/mana/personas/pkg/adminclient"
	"github.com/mana/personas/pkg/internalclient"
	"github.com/mana/personas/pkg/manaauth"
)

// chromiumPath is Debian's Chromium; the browser tests drive it with
// playwright-core (its own browser download does not work here).
const chromiumPath = "/usr/bin/chromium"

// TestDashboard runs the dashboard's browser tests
// (services/personas-admin/ui/e2e/dashboard.mjs) against the whole stack
// behind the real gateway, seeded with the catalog and runner data;
// mana-auth-dev mints JWTs that live 20 s, so the dashboard's token renewal
// is checked across a real expiry. It never skips: no Chromium, no node or
// an unbuilt UI fail with the command that fixes it. Screenshots of every
// page at 1280 and 390 px land in .dev/dashboard-shots/ (or
// $DASHBOARD_SHOTS_DIR).
func TestDashboard(t *testing.T) {
	t.Parallel()
	root, err := repo.Root()
	require.NoError(t, err)
	ui := filepath.Join(root, "services", "personas-admin", "ui")
	chromium := chromiumPath
	if p := os.Getenv("CHROMIUM_PATH"); p != "" {
		chromium = p
	}
	if _, err := os.Stat(chromium); err != nil {
		require.FailNow(t, "Chromium not found at "+chromium+": the dashboard tests run a real browser. Install it: apt-get update && apt-get install -y chromium")
	}
	node, err := exec.LookPath("node")
	require.NoError(t, err, "node not found: the dashboard tests need Node 20+ (apt-get install -y nodejs npm)")
	for _, need := range []string{"node_modules/playwright-core", "node_modules/axe-core", "dist/index.html"} {
		if _, err := os.Stat(filepath.Join(ui, need)); err != nil {
			require.FailNow(t, need+" is missing in "+ui+": run make ui (make build and make test do) before this test")
		}
	}

	ctx := context.Background()
	start := time.Now()
	// JWTs that live 20 s: the browser test signs a tab in first and checks
	// at its end, past that tab's first expiry, that it still reaches the API
	// without signing in again.
	s := startStack(t, withJWTTTL(20*time.Second))
	t.Logf("stack up after %s", time.Since(start).Round(time.Millisecond))
	token := s.adminToken(t)

	// The catalog, seeded as an operator does.
	code, stdout, stderr := s.ctl(t, token, "seed")
	require.Equal(t, 0, code, "seed: %s %s", stdout, stderr)

	// Runner data: a few ticks of actions and ratings for some personas.
	admin, err := adminclient.New(s.gateway, token)
	require.NoError(t, err)
	list, err := admin.ListAllPersonas(ctx, adminclient.ListOptions{}, 100)
	require.NoError(t, err)
	require.Len(t, list, 10)
	runner, err := internalclient.New(s.gateway, serviceKey, internalclient.WithRetries(1, 0))
	require.NoError(t, err)
	notes := []string{"Hat gut geklappt.", "Die Suche war langsam, ich habe aufgegeben.", "Übersichtlich, aber zu viele Klicks."}
	for i, p := range list {
		if p.Email == "persona.maya@mana.test" || p.Email == "persona.kai@mana.test" {
			continue // some personas stay without activity
		}
		for tick := range 2 {
			tickID := fmt.Sprintf("tick-%d-%d", i, tick)
			actions := make([]internalclient.Action, 0, 4)
			for j := range 2 + i%3 {
				res := "ok"
				var msg *string
				if j == 1 && tick == 1 {
					res, msg = "error", ptr("upstream timeout")
				}
				actions = append(actions, internalclient.Action{TickID: tickID, Seq: ptr(j), ToolName: []string{"todo.create", "notes.search", "journal.write"}[j%3], Result: res, ErrorMessage: msg, LatencyMs: ptr(80 + 40*j)})
			}
			_, err := runner.PostActions(ctx, p.UserID, actions)
			require.NoError(t, err)
			_, err = runner.PostFeedback(ctx, p.UserID, []internalclient.Feedback{
				{TickID: tickID, Module: "todo", Rating: 1 + (i+tick)%5, Notes: ptr(notes[(i+tick)%3])},
				{TickID: tickID, Module: "notes", Rating: 2 + tick},
			})
			require.NoError(t, err)
		}
	}

	// One tick of julia's through the tick records, as a runner writes it:
	// start, actions, a rating, finish with a summary.
	var julia string
	for _, p := range list {
		if p.Email == "persona.julia@mana.test" {
			julia = p.UserID
		}
	}
	require.NotEmpty(t, julia, "seeded persona julia exists")
	const tickID, tickSummary = "tick-julia-recorded", "Heute drei Aufgaben angelegt, die Notizsuche war offline."
	_, err = runner.StartTick(ctx, julia, internalclient.TickStart{TickID: tickID, RunnerID: "runner-e2e", Model: ptr("e2e-model")})
	require.NoError(t, err)
	_, err = runner.PostActions(ctx, julia, []internalclient.Action{
		{TickID: tickID, Seq: ptr(0), ToolName: "todo.create", Result: "ok", LatencyMs: ptr(90)},
		{TickID: tickID, Seq: ptr(1), ToolName: "notes.search", Result: "error", ErrorMessage: ptr("index offline"), LatencyMs: ptr(3000)},
		{TickID: tickID, Seq: ptr(2), ToolName: "journal.write", Result: "ok", LatencyMs: ptr(120)},
	})
	require.NoError(t, err)
	_, err = runner.PostFeedback(ctx, julia, []internalclient.Feedback{{TickID: tickID, Module: "journal", Rating: 4, Notes: ptr("Schreiben ging flott.")}})
	require.NoError(t, err)
	_, err = runner.FinishTick(ctx, julia, tickID, internalclient.TickFinish{Status: internalclient.StatusOK, Summary: ptr(tickSummary), RatingStatus: ptr("ok")})
	require.NoError(t, err)
	// And a runner's lease and a quarantine on her, for the page's buttons
	// (a claim leases whichever personas are due; this is deterministic).
	_, err = s.db(t).ExecContext(ctx, `UPDATE personas.personas
		SET lease_owner = 'runner-e2e', lease_token_hash = sha256('e2e'::bytea), lease_seconds = 900,
		    lease_expires_at = now() + interval '15 minutes', consecutive_failures = 5, quarantined_at = now()
		WHERE user_id = $1`, julia)
	require.NoError(t, err)

	// A module that got worse: the weekly rollups of "calendar" (maya's, who
	// has no other activity) written directly, since the store's clock
	// cannot be moved back: five weeks rated 5, then the three last
	// complete weeks rated 2, six ratings each. The default verdict (3
	// weeks of ≥ 5 ratings, ≥ 0.5 below the baseline) flags it.
	var maya string
	for _, p := range list {
		if p.Email == "persona.maya@mana.test" {
			maya = p.UserID
		}
	}
	require.NotEmpty(t, maya, "seeded persona maya exists")
	const flagModule = "calendar"
	_, err = s.db(t).ExecContext(ctx, `INSERT INTO personas.rating_daily (day, module, persona_id, n, r2, r5, last_at)
		SELECT d, $1, $2, 6, CASE WHEN w <= 3 THEN 6 ELSE 0 END, CASE WHEN w <= 3 THEN 0 ELSE 6 END, d + time '12:00'
		FROM generate_series(1, 8) AS w, LATERAL (SELECT (now() AT TIME ZONE 'UTC')::date - 7 * w AS d) AS day`, flagModule, maya)
	require.NoError(t, err)

	// A signed-up user who is not an admin.
	auth, err := manaauth.New(s.authURL) // mana-auth itself: the gateway does not route register or login
	require.NoError(t, err)
	userEmail, userPassword := "someone@mana.test", "not-an-admin-password"
	_, err = auth.Register(ctx, manaauth.RegisterRequest{Email: userEmail, Password: userPassword, Name: "Someone"})
	require.NoError(t, err)
	login, err := auth.Login(ctx, userEmail, userPassword)
	require.NoError(t, err)

	t.Logf("seeded after %s", time.Since(start).Round(time.Millisecond))
	shots := os.Getenv("DASHBOARD_SHOTS_DIR")
	if shots == "" {
		shots = filepath.Join(root, ".dev", "dashboard-shots")
	}
	runCtx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(runCtx, node, filepath.Join(ui, "e2e", "dashboard.mjs"))
	cmd.Dir = ui
	cmd.Env = append(os.Environ(),
		"GATEWAY_URL="+s.gateway, "AUTH_URL="+s.authURL,
		"ADMIN_EMAIL="+adminEmail, "ADMIN_PASSWORD="+adminPassword, "ADMIN_TOKEN="+token,
		"USER_EMAIL="+userEmail, "USER_PASSWORD="+userPassword, "USER_TOKEN="+login.AccessToken,
		"SHOTS_DIR="+shots, "CHROMIUM_PATH="+chromium,
		"FLAG_MODULE="+flagModule, "TICK_PERSONA="+julia, "TICK_ID="+tickID, "TICK_SUMMARY="+tickSummary,
	)
	out, err := cmd.CombinedOutput()
	t.Logf("dashboard.mjs:\n%s", strings.TrimRight(string(out), "\n"))
	require.NoError(t, err, "the browser tests failed; output above")
}
