package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// report is what one run measured, and writes it into -out.
type report struct {
	o        options
	results  []result
	export   *exportResult
	peak     int64 // personas-internal's VmHWM over the whole run
	plan     string
	loadTime time.Duration
	rows     map[string]int64 // table → rows after the run
}

// Sections. The full run writes the preamble and every section below; the
// -big run writes only bigTitle. Sections of -out that neither writes are
// kept as they are (e.g. hand-measured ones), except those make bench
// appends again after this program (goBenchTitle, rssTitlePrefix).
const (
	adminTitle     = "Admin and insight endpoints (personas-admin, issues 11 and 13)"
	targetsOld     = "Targets (issues 2 and 10)"
	targetsNew     = "Targets (issues 11 and 13)"
	statementsT    = "Statements per operation"
	planTitle      = "Plan of the due query"
	bigTitle       = "Insight at ten times the data (issue 11, flatness)"
	goBenchTitle   = "Go benchmarks"
	rssTitlePrefix = "Peak memory under the largest"
)

// ownTitle reports whether the full run writes (or make bench appends) the
// section with this title.
func ownTitle(title string) bool {
	for _, t := range []string{adminTitle, targetsOld, targetsNew, statementsT, goBenchTitle} {
		if title == t {
			return true
		}
	}
	return strings.HasPrefix(title, planTitle) || strings.HasPrefix(title, rssTitlePrefix)
}

func (r *report) counts(ctx context.Context, pool *pgxpool.Pool) error {
	r.rows = map[string]int64{}
	for _, t := range []string{"personas", "persona_actions", "persona_feedback", "persona_ticks",
		"rating_daily", "action_daily", "action_error_daily"} {
		var n int64
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM personas.`+t).Scan(&n); err != nil {
			return err
		}
		r.rows[t] = n
	}
	return nil
}

// command is the exact command line of this run.
func command() string {
	return strings.Join(append([]string{"go run ./services/personas-bench"}, os.Args[1:]...), " ")
}

func machine(ctx context.Context, pool *pgxpool.Pool) (string, error) {
	var pgVersion string
	if err := pool.QueryRow(ctx, `SHOW server_version`).Scan(&pgVersion); err != nil {
		return "", err
	}
	cpu := "unknown CPU"
	if raw, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(raw), "\n") {
			if v, ok := strings.CutPrefix(line, "model name"); ok {
				cpu = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	return fmt.Sprintf("%d CPUs (%s), %s; PostgreSQL %s, default settings", runtime.NumCPU(), cpu, runtime.Version(), pgVersion), nil
}

func (r *report) write(ctx context.Context, pool *pgxpool.Pool) error {
	old, err := os.ReadFile(r.o.out)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	mach, err := machine(ctx, pool)
	if err != nil {
		return err
	}
	var out string
	if r.o.big {
		out = replaceSection(string(old), bigTitle, r.bigSection(mach, string(old)))
	} else {
		out = r.full(mach) + keptSections(string(old))
	}
	//nolint:gosec // a report committed to the repo, meant to be read
	if err := os.WriteFile(r.o.out, []byte(out), 0o644); err != nil {
		return err
	}
	logf("wrote %s", r.o.out)
	return nil
}

func mb(n int64) string { return fmt.Sprintf("%.1f", float64(n)/1e6) }

func us(d time.Duration) string { return strconv.FormatInt(d.Microseconds(), 10) }

func (r *report) find(name string, conc int) (result, bool) {
	for _, x := range r.results {
		if x.scenario == name && x.conc == conc {
			return x, true
		}
	}
	return result{}, false
}

func ratio(x result) float64 { return 100 * x.svc.rps() / x.raw.rps() }

func (r *report) dataLine() string {
	return fmt.Sprintf("%d personas (%d due, every %dth tagged `chaos`), %d actions and %d ratings (every %dth a `__parse` marker)"+
		" spread over %d days, %d ticks; rollups built by the store's own backfill (`Store.BackfillRollups`): %d rating_daily,"+
		" %d action_daily and %d action_error_daily rows. Counts after the run (the write scenarios add rows): %d actions, %d ratings",
		r.o.personas, r.o.due, chaosEvery, r.o.actions, r.o.ratings, parseEvery, r.o.days, r.rows["persona_ticks"],
		r.rows["rating_daily"], r.rows["action_daily"], r.rows["action_error_daily"], r.rows["persona_actions"], r.rows["persona_feedback"])
}

// full is the whole report of the default run.
func (r *report) full(mach string) string {
	o := r.o
	var b strings.Builder
	fmt.Fprintf(&b, "# Benchmarks\n\n")
	fmt.Fprintf(&b, "Produced by `make bench` on %s, that is, with `DATABASE_URL` from `deploy/scripts/db.sh`:\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(&b, "```\n%s\ndeploy/scripts/gobench.sh BENCHMARKS.md\ngo run ./services/personas-internal/rss -out BENCHMARKS.md\n```\n\n", command())
	fmt.Fprintf(&b, "The load phase of this run took %s. `make bench-big` adds the section \"%s\" (and keeps the rest).\n\n",
		r.loadTime.Round(time.Second), bigTitle)
	fmt.Fprintf(&b, "- Machine: %s.\n", mach)
	fmt.Fprintf(&b, "- **The load generator, the services and PostgreSQL share the same %d CPUs.** Absolute figures are\n", runtime.NumCPU())
	fmt.Fprintf(&b, "  bounded by that; the ratio column (service ÷ raw, measured in the same run) is the figure to compare.\n")
	fmt.Fprintf(&b, "- **Caveat: other work (other sessions' test suites, on other databases of the same PostgreSQL server)\n")
	fmt.Fprintf(&b, "  may be running on this machine during the run.** It takes CPU from both sides alike at random moments;\n")
	fmt.Fprintf(&b, "  alternating the sides round by round spreads it over both, but absolute figures are lower and noisier\n")
	fmt.Fprintf(&b, "  than on an idle machine, and a ratio can move by several points between runs. Load average\n")
	fmt.Fprintf(&b, "  (/proc/loadavg, 1 and 5 min) when the load phase began: %s; when it ended: %s.\n", o.loadStart, o.loadEnd)
	fmt.Fprintf(&b, "- Data (issue 13's set): %s. Each scenario and concurrency runs %d rounds of %s per side,\n", r.dataLine(), o.rounds, o.duration)
	fmt.Fprintf(&b, "  alternating which side goes first (S R, R S, ...); figures pool all rounds.\n")
	fmt.Fprintf(&b, "- *service*: HTTP to `bin/personas-internal` (NODE_ENV=production, JSON access logs at info to a file, pool of 32,\n")
	fmt.Fprintf(&b, "  GOMAXPROCS=1 as in its pod, whose 500m CPU limit makes Go choose 1). *service CPU* is the service process's\n")
	fmt.Fprintf(&b, "  user+system time per operation (from /proc), the share of the machine the service itself takes.\n")
	fmt.Fprintf(&b, "  *raw*: the store's own statements with the store's own arguments (`personas.Store.Bind`, which the store's\n")
	fmt.Fprintf(&b, "  methods run too), sent with pgx straight to PostgreSQL at the same concurrency; the statements of each\n")
	fmt.Fprintf(&b, "  operation are listed below.\n")
	fmt.Fprintf(&b, "- *PG CPU* is the user+system time per operation of the PostgreSQL backends serving the bench database\n")
	fmt.Fprintf(&b, "  (their pids from `pg_stat_activity`, their CPU from /proc; background processes such as the WAL writer,\n")
	fmt.Fprintf(&b, "  checkpointer and autovacuum are not counted).\n")
	fmt.Fprintf(&b, "- One operation of the *tick cycle* is one runner's whole tick: claim 1 → start the tick → 2 batches of 10\n")
	fmt.Fprintf(&b, "  actions → 4 ratings → finish ok, all under the claim's lease token (6 HTTP requests; 14 statements, 9 of\n")
	fmt.Fprintf(&b, "  them in 2 transactions): its ops/s are cycles/s and its CPU columns are per cycle.\n")
	fmt.Fprintf(&b, "- Claims are bounded to %d requests and tick cycles to %d per run so the due set never runs dry; leases\n",
		o.due/o.claimLimit*9/10, o.due*9/10)
	fmt.Fprintf(&b, "  are ended and the due personas made due again before every run.\n\n")
	b.WriteString("| scenario | conns | service ops/s | p50 ms | p99 ms | service CPU µs/op | service PG CPU µs/op | raw ops/s | p50 ms | p99 ms | raw PG CPU µs/op | service/raw throughput |\n")
	b.WriteString("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, x := range r.results {
		if x.admin {
			continue
		}
		fmt.Fprintf(&b, "| %s | %d | %.0f | %s | %s | %s | %s | %.0f | %s | %s | %s | %.0f%% |\n", x.scenario, x.conc,
			x.svc.rps(), ms(x.svc.p50), ms(x.svc.p99), us(x.svc.cpuPerOp), us(x.svc.pgPerOp),
			x.raw.rps(), ms(x.raw.p50), ms(x.raw.p99), us(x.raw.pgPerOp), ratio(x))
	}
	fmt.Fprintf(&b, "\npersonas-internal's peak RSS (VmHWM) over the whole run: **%s MB**.\n", mb(r.peak))

	r.adminSection(&b)
	r.targets(&b)
	r.statements(&b)
	if r.plan != "" {
		fmt.Fprintf(&b, "\n## %s (%d personas, EXPLAIN ANALYZE)\n\n```\n%s\n```\n", planTitle, o.personas, r.plan)
		fmt.Fprintf(&b, "\nThe walk over `personas_due_idx` stops at the limit; the cadence and lease are per-row filters.\n")
	}
	return b.String()
}

const adminHeader = "| scenario | conns | service ops/s | p50 ms | p99 ms | service CPU µs/op | service PG CPU µs/op | service peak RSS MB | raw ops/s | p50 ms | p99 ms | raw PG CPU µs/op | service/raw throughput | service calls failed |\n" +
	"| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n"

func adminRow(b *strings.Builder, x result) {
	fmt.Fprintf(b, "| %s | %d | %.0f | %s | %s | %s | %s | %s | %.0f | %s | %s | %s | %.0f%% | %d |\n", x.scenario, x.conc,
		x.svc.rps(), ms(x.svc.p50), ms(x.svc.p99), us(x.svc.cpuPerOp), us(x.svc.pgPerOp), mb(x.peak),
		x.raw.rps(), ms(x.raw.p50), ms(x.raw.p99), us(x.raw.pgPerOp), ratio(x), x.svc.failed)
}

func (r *report) adminSection(b *strings.Builder) {
	fmt.Fprintf(b, "\n## %s\n\n", adminTitle)
	b.WriteString("- *service*: HTTP to `bin/personas-admin` (NODE_ENV=production, pool of 32, GOMAXPROCS=1), every request\n")
	b.WriteString("  with a real admin JWT that the service verifies against the JWKS of `bin/mana-auth-dev` (the stand-in it\n")
	b.WriteString("  trusts as issuer, started by the bench as `make dev` does; the token from `mana-auth-dev admin-token`).\n")
	b.WriteString("  *service peak RSS* is personas-admin's VmHWM, reset (`/proc/PID/clear_refs`) before each service run.\n")
	fmt.Fprintf(b, "- The detail reads one of %d sampled non-due personas at random, the list endpoints read all %d personas.\n", detailSample, r.o.personas)
	b.WriteString("- *raw*: the statements the store sends for the same call, sent with pgx at the same concurrency. Where the\n")
	b.WriteString("  store has them as `Bind` statements, from `Bind`; otherwise captured from the store itself (a store of\n")
	b.WriteString("  the bench's own with a bun query hook, calling the same store methods with the same inputs as the\n")
	b.WriteString("  handler, once before the load, so the time-dependent arguments are those of that moment) and sent as\n")
	b.WriteString("  bun sends them: formatted SQL over the simple protocol, one round trip each. The statements are listed\n")
	b.WriteString("  below. The service also encodes JSON and verifies the JWT; the raw side only reads the rows.\n")
	b.WriteString("- *service calls failed*: calls answered other than 200 (the unpaged list at 32 callers can run past the\n")
	b.WriteString("  service's 15 s request deadline: 503 overloaded); they are not timed, and count in the CPU per call.\n")
	fmt.Fprintf(b, "- The insight views and the unpaged list run 2 rounds (S R, R S; the others %d), the unpaged list one wave of\n", r.o.rounds)
	b.WriteString("  calls (one per connection) per run: each of their calls is long, and this keeps `make bench` near 15 minutes.\n\n")
	b.WriteString(adminHeader)
	for _, x := range r.results {
		if x.admin {
			adminRow(b, x)
		}
	}
	if e := r.export; e != nil {
		fmt.Fprintf(b, "\nExport (`GET /admin/export/actions?format=ndjson`, every action, %d runs one after the other at 1 connection):\n\n", e.runs)
		b.WriteString("| rows per run | MB per run | rows/s | service CPU µs/1000 rows | PG CPU µs/1000 rows | service peak RSS MB |\n")
		b.WriteString("| ---: | ---: | ---: | ---: | ---: | ---: |\n")
		k := max(1, e.rows/1000)
		fmt.Fprintf(b, "| %d | %s | %.0f | %d | %d | %s |\n", e.rows/int64(e.runs), mb(e.bytes/int64(e.runs)), e.rowsPerSec(),
			e.cpu.Microseconds()/k, e.pgCPU.Microseconds()/k, mb(e.peak))
		b.WriteString("\nNo raw side for the export: the store sends its statement straight to database/sql (a read-only\n")
		b.WriteString("repeatable-read transaction, rows streamed), not through `Bind` nor bun's hook, so the bench cannot send the\n")
		b.WriteString("identical statement; the service's figure stands alone.\n")
	}
}

type target struct {
	what, measured string
	met            bool
}

func (r *report) targets(b *strings.Builder) {
	fmt.Fprintf(b, "\n## %s\n\n| target | measured | met |\n| --- | --- | --- |\n", targetsOld)
	maxConc := slices.Max(r.o.conc)
	for _, x := range r.results {
		switch {
		case strings.HasPrefix(x.scenario, "POST actions") && x.conc == maxConc:
			fmt.Fprintf(b, "| POST actions ≥ 70%% of raw throughput (%d conns) | %.0f%% | %s |\n", x.conc, ratio(x), yes(ratio(x) >= 70))
		case strings.HasPrefix(x.scenario, "GET /due (limit 1000") && x.conc == 1:
			fmt.Fprintf(b, "| GET /due, 1,000 due, p99 ≤ 20 ms at 1 conn | %s ms | %s |\n", ms(x.svc.p99), yes(x.svc.p99 <= 20*time.Millisecond))
		case x.scenario == tickCycleName:
			fmt.Fprintf(b, "| tick cycle ≥ 70%% of raw throughput (%d conns) | %.0f%% | %s |\n", x.conc, ratio(x), yes(ratio(x) >= 70))
		}
	}
	fmt.Fprintf(b, "| service RSS ≤ 60 MB under load | %s MB | %s |\n", mb(r.peak), yes(r.peak <= 60e6))

	fmt.Fprintf(b, "\n## %s\n\n", targetsNew)
	b.WriteString("\"Today\" in issue 13 is its own table (PostgreSQL CPU per request at 32 connections: admin detail 1.02 ms,\n")
	b.WriteString("POST feedback ×4 0.69 ms, POST actions ×20 1.43 ms); the PG CPU targets below are fractions of those figures.\n\n")
	b.WriteString("| issue | target | measured | met |\n| --- | --- | --- | --- |\n")
	row := func(issue string, t target) {
		fmt.Fprintf(b, "| %s | %s | %s | %s |\n", issue, t.what, t.measured, yes(t.met))
	}
	for _, t := range r.issue13() {
		row("13", t)
	}
	for _, t := range r.insightTargets(r.results, "") {
		row("11", t)
	}
	if e := r.export; e != nil {
		row("11", target{"export ≥ 100,000 rows/s", fmt.Sprintf("%.0f rows/s", e.rowsPerSec()), e.rowsPerSec() >= 100_000})
		row("11", target{"export: service RSS ≤ 64 MB", mb(e.peak) + " MB", e.peak <= 64e6})
	}
	fmt.Fprintf(b, "| 11 | the insight p99s at ten times the data | see \"%s\" (`make bench-big`) | — |\n", bigTitle)
	b.WriteString("| 11 | ingest with rollups ≥ 90% of ingest without them | see \"Go benchmarks\" (`BenchmarkIngestRollups`: the insert statement with and without its rollups, straight to PostgreSQL) | — |\n")
	b.WriteString("\nRatios still move by a few points between runs on this shared machine (PostgreSQL's fsync,\n")
	b.WriteString("checkpoints and autovacuum, the scheduler, the other work named above): that is why the sides alternate\n")
	b.WriteString("round by round. Rerun `make bench` before drawing conclusions from a small difference; to rerun one\n")
	b.WriteString("scenario, `-only` takes comma-separated parts of scenario names, e.g.\n")
	b.WriteString("`go run ./services/personas-bench -db bench_mine -out /tmp/bench.md -only 'tick cycle'`.\n")
}

// issue13 are issue 13's speed targets (B 5–8).
func (r *report) issue13() []target {
	var out []target
	for _, c := range r.o.conc {
		if x, ok := r.find(scDetail, c); ok {
			out = append(out, target{fmt.Sprintf("admin detail ≥ 70%% of raw throughput (%d conns)", c), fmt.Sprintf("%.0f%%", ratio(x)), ratio(x) >= 70})
		}
	}
	if x, ok := r.find(scDetail, 32); ok {
		out = append(out, target{"admin detail: PG CPU per request ≤ 0.51 ms (half of 1.02 ms; 32 conns)", us(x.svc.pgPerOp) + " µs", x.svc.pgPerOp <= 510*time.Microsecond})
	}
	if x, ok := r.find(scDetail, 1); ok {
		n := len(x.statements)
		out = append(out, target{"admin detail: one round trip to PostgreSQL", fmt.Sprintf("%d statements", n), n == 1})
	}
	writes := []struct {
		prefix, label string
		limit         time.Duration
		base          string
	}{
		{"POST feedback", "POST feedback ×4", 345 * time.Microsecond, "≤ 0.345 ms (50% of 0.69 ms)"},
		{"POST actions", "POST actions ×20", 1001 * time.Microsecond, "≤ 1.00 ms (70% of 1.43 ms)"},
	}
	for _, w := range writes {
		for _, x := range r.results {
			if strings.HasPrefix(x.scenario, w.prefix) && x.conc == 32 {
				out = append(out, target{w.label + ": PG CPU per request " + w.base + " (32 conns)", us(x.svc.pgPerOp) + " µs", x.svc.pgPerOp <= w.limit},
					target{w.label + " ≥ 85% of raw throughput (32 conns)", fmt.Sprintf("%.0f%%", ratio(x)), ratio(x) >= 85})
			}
		}
	}
	for _, x := range r.results {
		if strings.HasPrefix(x.scenario, "GET /due (default") {
			out = append(out, target{fmt.Sprintf("GET /due (default limit) ≥ 75%% of raw (%d conns)", x.conc), fmt.Sprintf("%.0f%%", ratio(x)), ratio(x) >= 75})
		}
	}
	for _, c := range r.o.conc {
		if x, ok := r.find(scList, c); ok {
			out = append(out, target{fmt.Sprintf("admin list limit=100 ≥ 75%% of raw (%d conns)", c), fmt.Sprintf("%.0f%%", ratio(x)), ratio(x) >= 75})
		}
	}
	if x, ok := r.find(scUnpaged, slices.Max(r.o.conc)); ok {
		out = append(out, target{fmt.Sprintf("admin list unpaged: service RSS ≤ 64 MB (%d personas, %d callers)", r.o.personas, x.conc), mb(x.peak) + " MB", x.peak <= 64e6})
	}
	return out
}

// insightTargets are issue 11's latency targets at 1 connection; suffix
// names the data size.
func (r *report) insightTargets(results []result, suffix string) []target {
	limits := []struct {
		name  string
		label string
		limit time.Duration
	}{
		{scModules7, "modules (7d)", 20 * time.Millisecond},
		{scModules8, "modules (28d)", 20 * time.Millisecond},
		{scTrend, "trend (bucket week)", 20 * time.Millisecond},
		{scOverview, "overview (7d)", 50 * time.Millisecond},
		{scTools, "tools (7d)", 30 * time.Millisecond},
	}
	var out []target
	for _, l := range limits {
		for _, x := range results {
			if x.scenario == l.name && x.conc == 1 {
				out = append(out, target{fmt.Sprintf("%s p99 ≤ %d ms at 1 conn%s", l.label, l.limit.Milliseconds(), suffix), ms(x.svc.p99) + " ms", x.svc.p99 <= l.limit})
			}
		}
	}
	return out
}

func (r *report) statements(b *strings.Builder) {
	fmt.Fprintf(b, "\n## %s\n\nRunner endpoints: both sides issue the same statements with the same arguments (`personas.Store.Bind`;\n", statementsT)
	b.WriteString("names as in `personas.BindNames`), all as cached prepared statements, each a round trip of its own.\n\n")
	b.WriteString("| scenario | statements |\n| --- | --- |\n")
	b.WriteString("| POST actions | insertActions |\n| POST feedback | insertFeedback |\n| GET /due | sweep, due |\n| POST /due/claim | sweep, claim |\n")
	b.WriteString("| tick cycle | sweep, claim; BEGIN, lockLease, startTick, bindTick, getTick, COMMIT; insertActions ×2; insertFeedback;" +
		" BEGIN, lockLease, tickStatus, finishTick, finishPersona, getTick, COMMIT |\n")
	b.WriteString("\nAdmin and insight endpoints: the statements of the raw side, in order (captured ones as the store sent\n")
	b.WriteString("them for the first sampled input, with its arguments inlined; each a round trip of its own).\n")
	seen := map[string]bool{}
	for _, x := range r.results {
		if !x.admin || seen[x.scenario] {
			continue
		}
		seen[x.scenario] = true
		names := make([]string, len(x.statements))
		for i, s := range x.statements {
			names[i] = s.name
		}
		fmt.Fprintf(b, "\n<details><summary>%s: %s</summary>\n\n", x.scenario, strings.Join(names, ", "))
		for _, s := range x.statements {
			fmt.Fprintf(b, "```sql\n-- %s\n%s\n```\n", s.name, strings.TrimSpace(s.sql))
		}
		b.WriteString("\n</details>\n")
	}
}

// bigSection is the -big run's section: the insight figures at this size
// beside those of the full run found in old.
func (r *report) bigSection(mach, old string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "## %s\n\n", bigTitle)
	fmt.Fprintf(&b, "Produced by `make bench-big` on %s, that is, with `DATABASE_URL` from `deploy/scripts/db.sh`:\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(&b, "```\n%s\n```\n\n", command())
	fmt.Fprintf(&b, "Machine: %s; load average when the load phase began: %s, when it ended: %s. Data: %s.\n",
		mach, r.o.loadStart, r.o.loadEnd, r.dataLine())
	fmt.Fprintf(&b, "The services, the raw side and the statements are those of \"%s\" (%d rounds of %s per side).\n\n",
		adminTitle, r.o.rounds, r.o.duration)
	b.WriteString(adminHeader)
	for _, x := range r.results {
		adminRow(&b, x)
	}
	b.WriteString("\nFlatness: service p99 at 1 connection, this data against the full run's (its table above).\n\n")
	b.WriteString("| scenario | p99 ms, full run | p99 ms, here | PG CPU µs/op, full run | PG CPU µs/op, here |\n| --- | ---: | ---: | ---: | ---: |\n")
	for _, x := range r.results {
		p99, pg := "—", "—"
		if cols := tableRow(old, adminTitle, x.scenario, x.conc); cols != nil {
			p99, pg = cols[4], cols[6]
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", x.scenario, p99, ms(x.svc.p99), pg, us(x.svc.pgPerOp))
	}
	b.WriteString("\n| target | measured | met |\n| --- | --- | --- |\n")
	for _, t := range r.insightTargets(r.results, fmt.Sprintf(" (%d actions, %d ratings)", r.o.actions, r.o.ratings)) {
		fmt.Fprintf(&b, "| %s | %s | %s |\n", t.what, t.measured, yes(t.met))
	}
	return b.String()
}

// tableRow finds the row of scenario at conc in the table of section
// title of a report, and returns its cells.
func tableRow(doc, title, scenario string, conc int) []string {
	for _, s := range splitSections(doc) {
		if s.title != title {
			continue
		}
		for _, line := range strings.Split(s.text, "\n") {
			cells := strings.Split(strings.Trim(line, "| "), " | ")
			if len(cells) > 6 && cells[0] == scenario && cells[1] == strconv.Itoa(conc) {
				return cells
			}
		}
	}
	return nil
}

type section struct {
	title string // empty for the text before the first "## "
	text  string // the whole section, heading included
}

// splitSections cuts a Markdown document at its "## " headings (outside
// code fences).
func splitSections(doc string) []section {
	var out []section
	cur := section{}
	var b strings.Builder
	fence := false
	for _, line := range strings.SplitAfter(doc, "\n") {
		if strings.HasPrefix(line, "```") {
			fence = !fence
		}
		if !fence && strings.HasPrefix(line, "## ") {
			cur.text = b.String()
			out = append(out, cur)
			b.Reset()
			cur = section{title: strings.TrimSpace(strings.TrimPrefix(line, "## "))}
		}
		b.WriteString(line)
	}
	cur.text = b.String()
	return append(out, cur)
}

// keptSections are the sections of old that the full run does not write:
// hand-measured ones and the -big run's, as they were.
func keptSections(old string) string {
	var b strings.Builder
	for _, s := range splitSections(old) {
		if s.title == "" || ownTitle(s.title) {
			continue
		}
		b.WriteString("\n")
		b.WriteString(strings.TrimSpace(s.text))
		b.WriteString("\n")
	}
	return b.String()
}

// putSection replaces (or adds) in the file out the section that the file
// from holds, keeping every other section of out as it is.
func putSection(out, from string) error {
	text, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	var title string
	for _, s := range splitSections(string(text)) {
		if s.title != "" {
			title = s.title
			break
		}
	}
	if title == "" {
		return fmt.Errorf("%s: no \"## \" heading", from)
	}
	old, err := os.ReadFile(out)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	//nolint:gosec // a report committed to the repo, meant to be read
	if err := os.WriteFile(out, []byte(replaceSection(string(old), title, string(text))), 0o644); err != nil {
		return err
	}
	logf("wrote section %q of %s", title, out)
	return nil
}

// replaceSection puts text in place of the section with this title, or,
// without one, before the Go benchmarks (or at the end).
func replaceSection(doc, title, text string) string {
	secs := splitSections(doc)
	text = strings.TrimSpace(text) + "\n\n"
	var b strings.Builder
	done := false
	for _, s := range secs {
		switch {
		case s.title == title:
			b.WriteString(text)
			done = true
		case !done && s.title == goBenchTitle:
			b.WriteString(text)
			b.WriteString(s.text)
			done = true
		default:
			b.WriteString(s.text)
		}
	}
	if !done {
		if b.Len() > 0 && !strings.HasSuffix(b.String(), "\n\n") {
			b.WriteString("\n")
		}
		b.WriteString(text)
	}
	return b.String()
}
