package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mana/personas/deploy/internal/repo"
	"github.com/mana/personas/pkg/adminclient"
	"github.com/mana/personas/pkg/internalclient"
	"github.com/mana/personas/pkg/manaauth"
	"github.com/mana/personas/pkg/runnersim"
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
	// The fleet rollup (per day and module) is kept at ingest; rows
	// written straight into rating_daily are added to it here the same way.
	_, err = s.db(t).ExecContext(ctx, `INSERT INTO personas.rating_fleet_daily AS f (day, module, shard, n, r1, r2, r3, r4, r5)
		SELECT day, module, (hashtext(persona_id) & 7)::smallint, n, r1, r2, r3, r4, r5
		  FROM personas.rating_daily WHERE module = $1 AND persona_id = $2
		ON CONFLICT (day, module, shard) DO UPDATE SET n = f.n + EXCLUDED.n, r1 = f.r1 + EXCLUDED.r1,
		   r2 = f.r2 + EXCLUDED.r2, r3 = f.r3 + EXCLUDED.r3, r4 = f.r4 + EXCLUDED.r4, r5 = f.r5 + EXCLUDED.r5`, flagModule, maya)
	require.NoError(t, err)

	// A signed-up user who is not an admin.
	auth, err := manaauth.New(s.authURL) // mana-auth itself: the gateway does not route register or login
	require.NoError(t, err)
	userEmail, userPassword := "someone@mana.test", "not-an-admin-password"
	_, err = auth.Register(ctx, manaauth.RegisterRequest{Email: userEmail, Password: userPassword, Name: "Someone"})
	require.NoError(t, err)
	login, err := auth.Login(ctx, userEmail, userPassword)
	require.NoError(t, err)

	// A persona kept disabled until the browser test enables it while the
	// fleet is paused: never ticked, so due the moment it is enabled, and
	// the simulator must not get it before the fleet is resumed.
	_, err = admin.UpsertPersona(ctx, adminclient.UpsertRequest{
		Email: livePersonaEmail, Name: "Lena Live", Password: "live-persona-password-123", Archetype: list[0].Archetype,
		SystemPrompt: "Du bist Lena und probierst jeden Tag die Aufgabenliste aus.", ModuleMix: map[string]float64{"todo": 1}, TickCadence: "daily",
	})
	require.NoError(t, err)
	livePersona, err := admin.FindByEmail(ctx, livePersonaEmail)
	require.NoError(t, err)
	_, err = admin.SetEnabled(ctx, livePersona.UserID, false)
	require.NoError(t, err)

	// The runner simulator (pkg/runnersim) runs through the gateway for the
	// whole browser run. The fleet is paused first, so the checks that
	// compare pages with the API see still data; the browser test resumes
	// the fleet from the overview page, pauses it and resumes it again.
	// Every claim's answer is recorded, to check afterwards that none leased
	// a persona while the fleet was paused.
	_, err = admin.SetFleetPaused(ctx, true)
	require.NoError(t, err)
	claims := &claimRecorder{base: http.DefaultTransport}
	simClient, err := internalclient.New(s.gateway, serviceKey, internalclient.WithRetries(1, 0),
		internalclient.WithHTTPClient(&http.Client{Transport: claims, Timeout: 15 * time.Second}))
	require.NoError(t, err)
	simCtx, stopSim := context.WithCancel(ctx)
	simDone := make(chan *runnersim.Stats, 1)
	go func() {
		stats, _ := runnersim.Run(simCtx, runnersim.Config{
			Client: simClient, Runners: 2, RunnerPrefix: "sim-e2e", Interval: 2 * time.Second, ClaimLimit: 2,
			LeaseSeconds: 60, Work: time.Second, Mix: runnersim.Mix{runnersim.OK: 3, runnersim.Empty: 1, runnersim.Failed: 1},
		})
		simDone <- stats
	}()
	simStopped := false
	stopSimulator := func() *runnersim.Stats {
		if simStopped {
			return nil
		}
		simStopped = true
		stopSim()
		return <-simDone
	}
	t.Cleanup(func() { stopSimulator() })

	t.Logf("seeded after %s", time.Since(start).Round(time.Millisecond))
	shots := os.Getenv("DASHBOARD_SHOTS_DIR")
	if shots == "" {
		shots = filepath.Join(root, ".dev", "dashboard-shots")
	}
	runCtx, cancel := context.WithTimeout(ctx, 12*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(runCtx, node, filepath.Join(ui, "e2e", "dashboard.mjs"))
	cmd.Dir = ui
	cmd.Env = append(os.Environ(),
		"GATEWAY_URL="+s.gateway, "AUTH_URL="+s.authURL,
		"ADMIN_EMAIL="+adminEmail, "ADMIN_PASSWORD="+adminPassword, "ADMIN_TOKEN="+token,
		"USER_EMAIL="+userEmail, "USER_PASSWORD="+userPassword, "USER_TOKEN="+login.AccessToken,
		"SHOTS_DIR="+shots, "CHROMIUM_PATH="+chromium,
		"FLAG_MODULE="+flagModule, "TICK_PERSONA="+julia, "TICK_ID="+tickID, "TICK_SUMMARY="+tickSummary,
		"LIVE_PERSONA="+livePersona.UserID,
	)
	out, err := cmd.CombinedOutput()
	t.Logf("dashboard.mjs:\n%s", strings.TrimRight(string(out), "\n"))
	require.NoError(t, err, "the browser tests failed; output above")

	// What the simulator saw while the browser paused and resumed the fleet.
	stats := stopSimulator()
	t.Logf("simulator: %s", stats)
	var window struct{ FirstResume, Paused, Resumed int64 }
	for line := range strings.SplitSeq(string(out), "\n") {
		if _, js, ok := strings.Cut(line, "FLEET_WINDOW "); ok {
			require.NoError(t, json.Unmarshal([]byte(js), &window), line)
		}
	}
	require.NotZero(t, window.Resumed, "dashboard.mjs printed no FLEET_WINDOW line")
	firstResume, paused, resumed := time.UnixMilli(window.FirstResume), time.UnixMilli(window.Paused), time.UnixMilli(window.Resumed)
	require.True(t, firstResume.Before(paused) && paused.Before(resumed), "window %+v", window)
	var before, during, after, leasedAfter int
	for _, c := range claims.all() {
		switch {
		case c.err != nil:
			continue
		case c.done.Before(firstResume):
			before++
			require.True(t, c.paused && c.leased == 0, "a claim before the first resume leased %d personas (paused %v)", c.leased, c.paused)
		case c.sent.After(paused) && c.done.Before(resumed):
			during++
			require.True(t, c.paused && c.leased == 0, "a claim sent %s after the pause leased %d personas", c.sent.Sub(paused), c.leased)
		case c.sent.After(resumed):
			after++
			require.False(t, c.paused, "a claim after the resume was answered paused")
			leasedAfter += c.leased
		}
	}
	require.Positive(t, before, "the simulator asked while the fleet was paused from the start")
	require.GreaterOrEqual(t, during, 2, "the simulator kept asking while the browser had the fleet paused")
	require.Positive(t, after, "the simulator claimed after the resume")
	require.Positive(t, leasedAfter, "claims after the resume leased personas again")
	db := s.db(t)
	var startedWhilePaused, liveTicks int
	require.NoError(t, db.QueryRowContext(ctx, `SELECT count(*) FROM personas.persona_ticks WHERE started_at > $1 AND started_at < $2`,
		paused, resumed).Scan(&startedWhilePaused))
	require.Zero(t, startedWhilePaused, "ticks started while the fleet was paused")
	require.NoError(t, db.QueryRowContext(ctx, `SELECT count(*) FROM personas.persona_ticks WHERE persona_id = $1 AND started_at > $2`,
		livePersona.UserID, resumed).Scan(&liveTicks))
	require.Positive(t, liveTicks, "the persona enabled during the pause was ticked after the resume")
	t.Logf("claims: %d before the first resume, %d while paused (all refused), %d after the resume (%d personas leased)", before, during, after, leasedAfter)
}

const livePersonaEmail = "persona.lena.live@mana.test"

// claimRecorder records the answer to every claim the simulator makes:
// when it was sent and answered, whether the fleet was paused, and how
// many personas it leased.
type claimRecorder struct {
	base http.RoundTripper
	mu   sync.Mutex
	log  []claimRecord
}

type claimRecord struct {
	sent, done time.Time
	paused     bool
	leased     int
	err        error
}

func (c *claimRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method != http.MethodPost || !strings.HasSuffix(req.URL.Path, "/due/claim") {
		return c.base.RoundTrip(req)
	}
	rec := claimRecord{sent: time.Now()}
	res, err := c.base.RoundTrip(req)
	if err == nil {
		var body []byte
		body, err = io.ReadAll(res.Body)
		_ = res.Body.Close()
		res.Body = io.NopCloser(bytes.NewReader(body))
		if err == nil && res.StatusCode == http.StatusOK {
			var due struct {
				Paused   bool              `json:"paused"`
				Personas []json.RawMessage `json:"personas"`
			}
			err = json.Unmarshal(body, &due)
			rec.paused, rec.leased = due.Paused, len(due.Personas)
		} else if err == nil {
			err = fmt.Errorf("claim: HTTP %d", res.StatusCode)
		}
	}
	rec.done, rec.err = time.Now(), err
	c.mu.Lock()
	c.log = append(c.log, rec)
	c.mu.Unlock()
	if err != nil && res == nil {
		return nil, err
	}
	return res, nil
}

func (c *claimRecorder) all() []claimRecord {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]claimRecord(nil), c.log...)
}
