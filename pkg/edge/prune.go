package edge

// The prune subcommand (a Kubernetes CronJob runs it nightly) and the
// gauges that show its last run on the long-running services. A CronJob's
// pod lives for seconds, too short for Prometheus to scrape and with no
// Pushgateway here: the run logs its figures as one JSON summary line and
// records them in personas.prune_runs, from which every service's
// /metrics reads the personas_prune_* gauges.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mana/personas/pkg/personas"
)

// Retention is the retention settings every service reads
// (PERSONAS_RETENTION_DAYS, PERSONAS_ROLLUP_RETENTION_DAYS).
type Retention struct {
	RawDays    int
	RollupDays int
}

// RetentionVars parses the two settings (v, w: their values) and checks
// that rollups outlive the raw rows.
func RetentionVars(raw, rollup string) (Retention, error) {
	var errs []error
	r := Retention{}
	var err error
	if r.RawDays, err = IntVar(raw, "PERSONAS_RETENTION_DAYS", personas.DefaultRetentionDays, personas.MinRetentionDays, personas.MaxRetentionDays); err != nil {
		errs = append(errs, err)
	}
	if r.RollupDays, err = IntVar(rollup, "PERSONAS_ROLLUP_RETENTION_DAYS", personas.DefaultRollupRetentionDays, personas.MinRetentionDays, personas.MaxRetentionDays); err != nil {
		errs = append(errs, err)
	}
	if len(errs) == 0 && r.RollupDays < r.RawDays {
		errs = append(errs, fmt.Errorf("PERSONAS_ROLLUP_RETENTION_DAYS (%d) must not be below PERSONAS_RETENTION_DAYS (%d): the rollups stand in for pruned raw rows", r.RollupDays, r.RawDays))
	}
	return r, errors.Join(errs...)
}

// orDefault fills a zero Retention (a Settings built by hand) with the defaults.
func (r Retention) orDefault() Retention {
	if r.RawDays == 0 {
		r.RawDays = personas.DefaultRetentionDays
	}
	if r.RollupDays == 0 {
		r.RollupDays = personas.DefaultRollupRetentionDays
	}
	return r
}

// Exit codes of the subcommands (0 ok, 1 failure, 2 usage) and prune's own.
const exitPruneRunning = 3

type pruneFlags struct {
	dryRun    bool
	batchSize int
	duty      float64
}

func parsePruneFlags(args []string, stderr io.Writer) (pruneFlags, error) {
	var f pruneFlags
	fs := flag.NewFlagSet("prune", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.BoolVar(&f.dryRun, "dry-run", false, "count what would be deleted; delete nothing")
	fs.IntVar(&f.batchSize, "batch-size", personas.DefaultPruneBatch, fmt.Sprintf("rows per delete statement (1–%d), each its own transaction", personas.MaxPruneBatch))
	fs.Float64Var(&f.duty, "duty", personas.DefaultPruneDuty, "share of wall time spent deleting (above 0, at most 1; 1: no pause between batches), so ingest keeps the rest")
	if err := fs.Parse(args); err != nil {
		return f, err
	}
	if fs.NArg() > 0 {
		return f, fmt.Errorf("prune: unexpected arguments %v", fs.Args())
	}
	if f.batchSize < 1 || f.batchSize > personas.MaxPruneBatch {
		return f, fmt.Errorf("prune: --batch-size must be from 1 to %d", personas.MaxPruneBatch)
	}
	if !(f.duty > 0 && f.duty <= 1) {
		return f, fmt.Errorf("prune: --duty must be above 0 and at most 1")
	}
	return f, nil
}

// runPrune is the prune subcommand: it returns the exit code.
func runPrune(ctx context.Context, name string, store *personas.Store, ret Retention, f pruneFlags, logger *slog.Logger) int {
	if err := schemaReady(ctx, name, store); err != nil {
		logger.Error("prune: schema not ready", "error", err.Error())
		return 1
	}
	ret = ret.orDefault()
	rawBefore, rollupBefore := personas.RetentionCutoffs(store.Now(), ret.RawDays, ret.RollupDays)
	logger.Info("prune starting", "dry_run", f.dryRun, "batch_size", f.batchSize, "duty", f.duty,
		"retention_days", ret.RawDays, "rollup_retention_days", ret.RollupDays,
		"raw_before", rawBefore, "rollup_before", rollupBefore)
	res, err := store.Prune(ctx, personas.PruneOptions{
		RawBefore: rawBefore, RollupBefore: rollupBefore, BatchSize: f.batchSize, Duty: f.duty, DryRun: f.dryRun,
		OnBatch: func(table string, n int64) { logger.Debug("prune batch", "table", table, "rows", n) },
	})
	tables := map[string]int64{}
	for _, c := range res.Tables {
		logger.Info("prune table", "table", c.Table, "retention", c.Retention, "rows", c.Rows, "batches", c.Batches, "dry_run", f.dryRun)
		tables[c.Table] = c.Rows
	}
	// The one line to read (or to alert on): every figure of the run.
	summary := []any{"dry_run", f.dryRun, "completed", err == nil, "rows_deleted", res.Total, "tables", tables,
		"duration_ms", res.Duration.Milliseconds(), "duty", f.duty, "paused_ms", res.Paused.Milliseconds(),
		"raw_before", rawBefore, "rollup_before", rollupBefore}
	switch {
	case errors.Is(err, personas.ErrPruneRunning):
		logger.Warn("prune not started: another prune is running", "error", err.Error())
		return exitPruneRunning
	case err != nil:
		logger.Error("prune summary", append(summary, "error", err.Error())...)
		return 1
	}
	logger.Info("prune summary", summary...)
	return 0
}

// PruneCollector exports the last recorded prune run (see Store.LastPrune)
// as gauges, read at scrape time and cached for a minute. Register it on a
// service's registry.
type PruneCollector struct {
	store  *personas.Store
	logger *slog.Logger

	last, rows, duration, completed *prometheus.Desc
	tableRows                       *prometheus.Desc

	mu      sync.Mutex
	run     *personas.PruneRun
	readAt  time.Time
	refresh time.Duration
}

// NewPruneCollector returns the collector over store.
func NewPruneCollector(store *personas.Store, logger *slog.Logger) *PruneCollector {
	return &PruneCollector{
		store: store, logger: logger, refresh: time.Minute,
		last:      prometheus.NewDesc("personas_prune_last_run_timestamp_seconds", "When the last prune (not a dry run) finished, Unix time; absent before the first.", nil, nil),
		rows:      prometheus.NewDesc("personas_prune_last_rows_deleted", "Rows the last prune deleted, all tables.", nil, nil),
		duration:  prometheus.NewDesc("personas_prune_last_duration_seconds", "How long the last prune ran.", nil, nil),
		completed: prometheus.NewDesc("personas_prune_last_completed", "1 when the last prune ran to the end, 0 when it was cancelled or failed part way.", nil, nil),
		tableRows: prometheus.NewDesc("personas_prune_last_table_rows_deleted", "Rows the last prune deleted, by table.", []string{"table"}, nil),
	}
}

// Describe implements prometheus.Collector.
func (p *PruneCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{p.last, p.rows, p.duration, p.completed, p.tableRows} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (p *PruneCollector) Collect(ch chan<- prometheus.Metric) {
	r := p.lastRun()
	if r == nil {
		return
	}
	completed := 0.0
	if r.Completed {
		completed = 1
	}
	ch <- prometheus.MustNewConstMetric(p.last, prometheus.GaugeValue, float64(r.FinishedAt.UnixMilli())/1000)
	ch <- prometheus.MustNewConstMetric(p.rows, prometheus.GaugeValue, float64(r.RowsDeleted))
	ch <- prometheus.MustNewConstMetric(p.duration, prometheus.GaugeValue, r.Duration().Seconds())
	ch <- prometheus.MustNewConstMetric(p.completed, prometheus.GaugeValue, completed)
	for table, n := range r.Deleted {
		ch <- prometheus.MustNewConstMetric(p.tableRows, prometheus.GaugeValue, float64(n), table)
	}
}

func (p *PruneCollector) lastRun() *personas.PruneRun {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.readAt.IsZero() && time.Since(p.readAt) < p.refresh {
		return p.run
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	r, err := p.store.LastPrune(ctx)
	if err != nil {
		// Keep showing the last figures read; a schema not yet migrated
		// or a database away must not fail the scrape.
		p.logger.Debug("prune gauges: cannot read the last run", "error", err.Error())
		return p.run
	}
	p.run, p.readAt = r, time.Now()
	return r
}
