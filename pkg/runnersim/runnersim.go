// Package runnersim simulates persona runners against the internal API,
// through pkg/internalclient only, so that a development stack, the
// end-to-end tests and the dashboard's browser tests see a living system
// without an LLM: ticks of every status, actions in several batches,
// German feedback, renewals, crashes.
//
// Each simulated runner loops: claim → for each persona: start → actions
// in 2+ batches with seq (renewing the lease between them) → feedback →
// finish, with an outcome drawn from a scripted mix (ok, empty, failed,
// timeout, crash). A crash stops the tick without a finish or release, as
// a runner that died would: the server counts it when the lease lapses.
// When the context ends (SIGINT in personasctl simulate) every runner
// releases the leases it still holds and returns.
//
// The simulator cannot move the server's clock. To see backoff, crashes
// and quarantine within minutes, run the server with short settings (for
// example PERSONAS_BACKOFF_MIN=5s PERSONAS_BACKOFF_MAX=30s) and the
// simulator with a short lease (LeaseSeconds 10–30): crashed personas come
// back after their lease and backoff, not after hours.
//
// It never retries a claim itself and treats a 409 (lease lost) as "stop
// driving this persona", as a real runner must.
package runnersim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mana/personas/pkg/internalclient"
)

// Outcome is what a simulated tick does.
type Outcome string

// The outcomes of the script.
const (
	OK      Outcome = "ok"
	Empty   Outcome = "empty"
	Failed  Outcome = "failed"
	Timeout Outcome = "timeout"
	Crash   Outcome = "crash"
)

// Outcomes lists every outcome in a stable order.
var Outcomes = []Outcome{OK, Empty, Failed, Timeout, Crash}

// Mix weighs the outcomes; the weights need not sum to anything.
type Mix map[Outcome]int

// DefaultMix: mostly good days, some of every kind of bad one.
var DefaultMix = Mix{OK: 60, Empty: 10, Failed: 15, Timeout: 5, Crash: 10}

// ParseMix reads "ok=60,empty=10,failed=15,timeout=5,crash=10"; outcomes
// left out weigh 0.
func ParseMix(s string) (Mix, error) {
	m := Mix{}
	total := 0
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		n, err := strconv.Atoi(strings.TrimSpace(v))
		o := Outcome(strings.TrimSpace(k))
		if !ok || err != nil || n < 0 || !o.valid() {
			return nil, fmt.Errorf("mix %q: want outcome=weight pairs such as ok=60,failed=20 (outcomes: ok, empty, failed, timeout, crash)", part)
		}
		m[o] = n
		total += n
	}
	if total == 0 {
		return nil, errors.New("mix: at least one outcome needs a positive weight")
	}
	return m, nil
}

func (o Outcome) valid() bool {
	for _, x := range Outcomes {
		if o == x {
			return true
		}
	}
	return false
}

// Config describes a simulation. Zero values take the defaults noted.
type Config struct {
	Client *internalclient.Client
	// Runners is how many runners run at once (default 1); runner i is
	// "<RunnerPrefix>-<i>".
	Runners      int
	RunnerPrefix string // default "sim"
	// Interval is the pause between a runner's claim cycles (default 5 s).
	Interval time.Duration
	// ClaimLimit is how many personas one claim asks for (default 2, the
	// real runner's concurrency).
	ClaimLimit int
	// LeaseSeconds is the lease a claim asks for (0: the server's default).
	LeaseSeconds int
	// Work is how long a simulated tick takes, spread over its batches
	// (default 300 ms). Leases are renewed between batches.
	Work time.Duration
	// Iterations bounds each runner's claim cycles (0: until ctx ends).
	Iterations int
	Mix        Mix    // default DefaultMix
	Seed       uint64 // 0: random
	// Out receives one line per tick (nil: nothing).
	Out io.Writer
	// Model and PlatformVersion are reported on each tick start.
	Model, PlatformVersion string
}

// Stats counts what the simulation did.
type Stats struct {
	mu         sync.Mutex
	Claims     int
	Paused     int // claims answered paused
	Ticks      map[Outcome]int
	Actions    int
	Ratings    int
	Renewals   int
	LostLeases int // ticks stopped because the lease was lost
	Released   int // leases given back at shutdown
	Errors     int // calls that failed otherwise
}

func (s *Stats) add(f func(s *Stats)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s)
}

// String is a one-line summary.
func (s *Stats) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var parts []string
	for _, o := range Outcomes {
		parts = append(parts, fmt.Sprintf("%s=%d", o, s.Ticks[o]))
	}
	return fmt.Sprintf("claims=%d paused=%d ticks[%s] actions=%d ratings=%d renewals=%d lost=%d released=%d errors=%d",
		s.Claims, s.Paused, strings.Join(parts, " "), s.Actions, s.Ratings, s.Renewals, s.LostLeases, s.Released, s.Errors)
}

// Run runs the simulation until ctx ends or every runner has done its
// iterations, and returns what happened. It returns an error only for an
// invalid configuration; failed calls are counted and logged.
func Run(ctx context.Context, cfg Config) (*Stats, error) {
	if cfg.Client == nil {
		return nil, errors.New("runnersim: Client is required")
	}
	if cfg.Runners <= 0 {
		cfg.Runners = 1
	}
	if cfg.RunnerPrefix == "" {
		cfg.RunnerPrefix = "sim"
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 5 * time.Second
	}
	if cfg.ClaimLimit <= 0 {
		cfg.ClaimLimit = 2
	}
	if cfg.Work <= 0 {
		cfg.Work = 300 * time.Millisecond
	}
	if cfg.Mix == nil {
		cfg.Mix = DefaultMix
	}
	if cfg.Model == "" {
		cfg.Model = "sim-model"
	}
	if cfg.PlatformVersion == "" {
		cfg.PlatformVersion = "sim"
	}
	seed := cfg.Seed
	if seed == 0 {
		seed = rand.Uint64()
	}
	stats := &Stats{Ticks: map[Outcome]int{}}
	var out sync.Mutex
	logf := func(format string, args ...any) {
		if cfg.Out == nil {
			return
		}
		out.Lock()
		defer out.Unlock()
		_, _ = fmt.Fprintf(cfg.Out, format+"\n", args...)
	}
	var wg sync.WaitGroup
	for i := range cfg.Runners {
		r := &runner{
			cfg: cfg, id: fmt.Sprintf("%s-%d", cfg.RunnerPrefix, i+1), stats: stats, logf: logf,
			rng: rand.New(rand.NewPCG(seed, uint64(i+1))), held: map[string]string{},
		}
		wg.Go(func() { r.loop(ctx) })
	}
	wg.Wait()
	return stats, nil
}

type runner struct {
	cfg   Config
	id    string
	stats *Stats
	logf  func(string, ...any)
	rng   *rand.Rand
	n     int               // ticks started, for tick ids
	held  map[string]string // persona → lease token, while driving
}

func (r *runner) loop(ctx context.Context) {
	defer r.releaseAll()
	for it := 0; r.cfg.Iterations == 0 || it < r.cfg.Iterations; it++ {
		if ctx.Err() != nil {
			return
		}
		got, err := r.cfg.Client.Claim(ctx, internalclient.ClaimRequest{
			RunnerID: r.id, Limit: r.cfg.ClaimLimit, LeaseSeconds: r.cfg.LeaseSeconds,
		})
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			r.stats.add(func(s *Stats) { s.Errors++ })
			r.logf("%s claim: %v", r.id, err)
		case got.Paused:
			r.stats.add(func(s *Stats) { s.Claims++; s.Paused++ })
		default:
			r.stats.add(func(s *Stats) { s.Claims++ })
			for _, p := range got.Personas {
				r.held[p.UserID] = p.LeaseToken
			}
			for _, p := range got.Personas {
				if ctx.Err() != nil {
					return // releaseAll gives back the rest
				}
				r.tick(ctx, p)
			}
		}
		if !sleep(ctx, jitter(r.rng, r.cfg.Interval)) {
			return
		}
	}
}

// releaseAll gives back the leases still held (shutdown), with a context
// of its own: the run's has ended.
func (r *runner) releaseAll() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for persona, token := range r.held {
		if err := r.cfg.Client.ReleaseLease(ctx, persona, token, internalclient.ReleaseAbandoned); err == nil || errors.Is(err, internalclient.ErrLeaseLost) {
			r.stats.add(func(s *Stats) { s.Released++ })
		}
		delete(r.held, persona)
	}
}

// tick drives one claimed persona through one scripted tick.
func (r *runner) tick(ctx context.Context, p internalclient.DuePersona) {
	r.n++
	outcome := r.pick()
	tickID := fmt.Sprintf("%s-%s-%d-%d", r.id, p.UserID, time.Now().Unix(), r.n)
	token := internalclient.WithLeaseToken(p.LeaseToken)
	c := r.cfg.Client
	lost := func(err error) bool {
		if errors.Is(err, internalclient.ErrLeaseLost) {
			r.stats.add(func(s *Stats) { s.LostLeases++ })
			delete(r.held, p.UserID)
			r.logf("%s %s: lease lost, stopping", r.id, tickID)
			return true
		}
		if err != nil && ctx.Err() == nil {
			r.stats.add(func(s *Stats) { s.Errors++ })
			r.logf("%s %s: %v", r.id, tickID, err)
		}
		return err != nil
	}
	model, version := r.cfg.Model, r.cfg.PlatformVersion
	if _, err := c.StartTick(ctx, p.UserID, internalclient.TickStart{
		TickID: tickID, RunnerID: r.id, Model: &model, PlatformVersion: &version,
	}, token); lost(err) {
		return
	}
	modules := sortedModules(p.ModuleMix)
	batches := 0
	switch outcome {
	case OK, Timeout:
		batches = 2 + r.rng.IntN(2)
	case Crash:
		batches = 1
	case Failed:
		batches = r.rng.IntN(2)
	}
	seq, errorsN := 0, 0
	for b := range batches {
		if !sleep(ctx, r.cfg.Work/time.Duration(batches+1)) {
			return
		}
		rows := r.actions(tickID, modules, &seq, outcome, b)
		for _, a := range rows {
			if a.Result == "error" {
				errorsN++
			}
		}
		res, err := c.PostActions(ctx, p.UserID, rows, token)
		if lost(err) {
			return
		}
		r.stats.add(func(s *Stats) { s.Actions += res.Written })
		if _, err := c.RenewLease(ctx, p.UserID, p.LeaseToken, r.cfg.LeaseSeconds); lost(err) {
			return
		}
		r.stats.add(func(s *Stats) { s.Renewals++ })
	}
	if outcome == Crash {
		// The runner "dies": no finish, no release. The lease lapses and
		// the server counts a crash when it next looks at the schedule.
		delete(r.held, p.UserID)
		r.stats.add(func(s *Stats) { s.Ticks[Crash]++ })
		r.logf("%s %s %s attempt=%d crash (no finish)", r.id, p.UserID, tickID, p.Attempt)
		return
	}
	ratingStatus := "missing"
	if outcome == OK || outcome == Timeout {
		fb, parsed := r.feedback(tickID, modules)
		ratingStatus = "ok"
		if !parsed {
			ratingStatus = "unparsable"
		}
		res, err := c.PostFeedback(ctx, p.UserID, fb, token)
		if lost(err) {
			return
		}
		r.stats.add(func(s *Stats) { s.Ratings += res.Written })
	}
	fin := r.finish(outcome, ratingStatus, errorsN)
	if _, err := c.FinishTick(ctx, p.UserID, tickID, fin, token); lost(err) {
		return
	}
	delete(r.held, p.UserID)
	r.stats.add(func(s *Stats) { s.Ticks[outcome]++ })
	r.logf("%s %s %s attempt=%d %s", r.id, p.UserID, tickID, p.Attempt, outcome)
}

func (r *runner) pick() Outcome {
	total := 0
	for _, o := range Outcomes {
		total += r.cfg.Mix[o]
	}
	n := r.rng.IntN(total)
	for _, o := range Outcomes {
		if n < r.cfg.Mix[o] {
			return o
		}
		n -= r.cfg.Mix[o]
	}
	return OK
}

var verbs = []string{"list", "create", "update", "search", "complete"}

// actions is one batch of 3–8 tool calls "<module>.<verb>" numbered by seq
// across the whole tick, so the batches never collide.
func (r *runner) actions(tickID string, modules []string, seq *int, outcome Outcome, batch int) []internalclient.Action {
	n := 3 + r.rng.IntN(6)
	rows := make([]internalclient.Action, n)
	for i := range rows {
		s := *seq
		*seq++
		lat := 40 + r.rng.IntN(900)
		a := internalclient.Action{
			TickID: tickID, Seq: &s, Result: "ok", LatencyMs: &lat,
			ToolName: modules[r.rng.IntN(len(modules))] + "." + verbs[r.rng.IntN(len(verbs))],
		}
		if r.rng.IntN(10) == 0 || (outcome == Failed && batch == 0 && i == n-1) {
			msg := "Validierungsfehler: Pflichtfeld fehlt"
			a.Result, a.ErrorMessage = "error", &msg
		}
		rows[i] = a
	}
	return rows
}

var notes = []string{
	"Hat gut funktioniert, ich habe schnell gefunden, was ich gesucht habe.",
	"Etwas umständlich, ich musste dreimal klicken, bis es gespeichert war.",
	"Die Suche hat nichts gefunden, obwohl der Eintrag da war. Nervig.",
	"Übersichtlich und ruhig, genau richtig für einen vollen Tag.",
	"Ich wusste nicht, ob es gespeichert wurde – eine Bestätigung fehlt.",
	"Schön schnell heute. Die Erinnerung kam pünktlich.",
	"Zu viele Optionen auf einmal, ich war kurz überfordert.",
}

// feedback rates each module once; sometimes, like the real runner, a
// module twice (the server keeps the first) or, when the model's answer
// was not JSON, the single row "__parse" with rating 3. parsed is false
// then.
func (r *runner) feedback(tickID string, modules []string) (rows []internalclient.Feedback, parsed bool) {
	if r.rng.IntN(8) == 0 {
		note := "Bewertung konnte nicht gelesen werden"
		return []internalclient.Feedback{{TickID: tickID, Module: "__parse", Rating: 3, Notes: &note}}, false
	}
	for _, m := range modules {
		note := notes[r.rng.IntN(len(notes))]
		rows = append(rows, internalclient.Feedback{TickID: tickID, Module: m, Rating: 1 + r.rng.IntN(5), Notes: &note})
	}
	if r.rng.IntN(4) == 0 {
		again := rows[0]
		again.Rating = 1 + r.rng.IntN(5)
		rows = append(rows, again)
	}
	return rows, true
}

var summaries = []string{
	"Heute habe ich meine Aufgaben sortiert und zwei davon erledigt. Das Tagebuch war kurz.",
	"Ein voller Tag: Termine verschoben, Notizen zum Projekt geschrieben, abends Stimmung eingetragen.",
	"Ich habe vor allem gelesen und ein paar Gedanken festgehalten.",
}

var failures = []struct{ kind, msg string }{
	{"auth", "login refused: INVALID_EMAIL_OR_PASSWORD"},
	{"llm", "LLM provider answered 500"},
	{"rate_limited", "LLM rate limit: 429, retry after 60 s"},
	{"tool", "tool todo.create kept failing"},
	{"internal", "runner: unexpected nil organization"},
}

func (r *runner) finish(outcome Outcome, ratingStatus string, errorsN int) internalclient.TickFinish {
	f := internalclient.TickFinish{Status: string(outcome), RatingStatus: &ratingStatus}
	in, out := int64(2000+r.rng.IntN(20000)), int64(200+r.rng.IntN(3000))
	switch outcome {
	case OK:
		s := summaries[r.rng.IntN(len(summaries))]
		f.Summary, f.TokensIn, f.TokensOut = &s, &in, &out
	case Empty:
		s := "Heute hatte ich keine Zeit für Mana."
		f.Summary, f.TokensIn, f.TokensOut = &s, &in, &out
	case Failed:
		fl := failures[r.rng.IntN(len(failures))]
		if errorsN > 0 {
			fl = failures[3]
		}
		f.ErrorKind, f.ErrorMessage = &fl.kind, &fl.msg
	case Timeout:
		kind, msg := "timeout", "tick exceeded its time budget"
		f.ErrorKind, f.ErrorMessage, f.TokensIn = &kind, &msg, &in
	}
	return f
}

func sortedModules(mix map[string]float64) []string {
	out := make([]string, 0, len(mix))
	for m := range mix {
		out = append(out, m)
	}
	sort.Strings(out)
	if len(out) == 0 {
		out = []string{"todo"}
	}
	return out
}

// jitter spreads d by ±20% so runners drift apart.
func jitter(rng *rand.Rand, d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return d*8/10 + time.Duration(rng.Int64N(int64(d)*4/10+1))
}

// sleep waits d or until ctx ends; false when ctx ended.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
