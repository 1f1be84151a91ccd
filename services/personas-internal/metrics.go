package main

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mana/personas/pkg/personas"
)

// The service's own metrics, next to the request metrics pkg/edge keeps.
// Counters are counted where the event happens (ingest, finish); the fleet
// gauges are read from the store when Prometheus scrapes, cached briefly so
// that a scrape is cheap however often it comes.

type rowMetrics struct {
	written       *prometheus.CounterVec
	duplicates    *prometheus.CounterVec
	ticksFinished *prometheus.CounterVec
	actionResults *prometheus.CounterVec

	mu      sync.Mutex
	modules map[string]struct{} // module label values seen (bounded)
}

// maxModuleLabels bounds the module label: tool names are free text, and a
// runner that invents names must not grow the metric without end. Modules
// beyond the first maxModuleLabels are counted as "other".
const maxModuleLabels = 64

func newRowMetrics(reg prometheus.Registerer) *rowMetrics {
	m := &rowMetrics{
		written: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "personas_rows_inserted_total", Help: "Rows inserted, by kind (actions, feedback).",
		}, []string{"kind"}),
		duplicates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "personas_rows_deduplicated_total", Help: "Rows received that were already stored (retries), by kind.",
		}, []string{"kind"}),
		ticksFinished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "personas_ticks_finished_total",
			Help: "Ticks finished, by status (ok, empty, failed, timeout) and error kind (none when not given). Repeated finishes are not counted.",
		}, []string{"status", "error_kind"}),
		actionResults: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "personas_action_results_total",
			Help: "Tool calls reported, by module (the tool name before its first dot: todo.create is todo) and result (ok, error). Batches that only repeat stored rows are not counted.",
		}, []string{"module", "result"}),
		modules: map[string]struct{}{},
	}
	reg.MustRegister(m.written, m.duplicates, m.ticksFinished, m.actionResults)
	return m
}

// countActions counts a batch's rows by module and result. A retry that
// inserted nothing is skipped, so retries do not inflate the counts.
func (m *rowMetrics) countActions(rows []personas.ActionInput, res personas.WriteResult) {
	if res.Written == 0 {
		return
	}
	type key struct{ module, result string }
	n := map[key]int{}
	for _, r := range rows {
		n[key{m.module(r.ToolName), string(r.Result)}]++
	}
	for k, v := range n {
		m.actionResults.WithLabelValues(k.module, k.result).Add(float64(v))
	}
}

// module is the module label of a tool name.
func (m *rowMetrics) module(tool string) string {
	mod, _, _ := strings.Cut(tool, ".")
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.modules[mod]; ok {
		return mod
	}
	if len(m.modules) >= maxModuleLabels {
		return "other"
	}
	m.modules[mod] = struct{}{}
	return mod
}

// fleetCollector exports the fleet's state as gauges computed at scrape
// time from store.FleetCounts (one pass over the personas table), cached
// for fleetCacheFor so frequent scrapes or several Prometheus servers cost
// one query per interval. A failing query keeps the last values (and logs);
// before any success the gauges are absent.
type fleetCollector struct {
	store  *personas.Store
	grace  time.Duration
	logger *slog.Logger

	overdue, leased, quarantined, backingOff, enabled, total, paused *prometheus.Desc

	mu      sync.Mutex
	at      time.Time
	last    *personas.FleetCounts
	lastErr time.Time
}

const (
	fleetCacheFor     = 10 * time.Second
	fleetQueryTimeout = 2 * time.Second
)

func newFleetCollector(store *personas.Store, grace time.Duration, logger *slog.Logger) *fleetCollector {
	d := func(name, help string) *prometheus.Desc { return prometheus.NewDesc(name, help, nil, nil) }
	return &fleetCollector{
		store: store, grace: grace, logger: logger,
		overdue:     d("personas_overdue", "Enabled, unquarantined personas due for longer than PERSONAS_OVERDUE_GRACE (the exit criterion: every persona ticks at least once a day)."),
		leased:      d("personas_leased", "Personas whose lease has not expired."),
		quarantined: d("personas_quarantined", "Personas quarantined after consecutive failures (never due until an operator lifts it)."),
		backingOff:  d("personas_backing_off", "Personas waiting out a backoff after a failure."),
		enabled:     d("personas_enabled", "Enabled personas."),
		total:       d("personas_total", "All personas."),
		paused:      d("personas_fleet_paused", "1 while operators have paused the fleet (no claims), else 0."),
	}
}

// Describe implements prometheus.Collector.
func (f *fleetCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{f.overdue, f.leased, f.quarantined, f.backingOff, f.enabled, f.total, f.paused} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (f *fleetCollector) Collect(ch chan<- prometheus.Metric) {
	c := f.counts()
	if c == nil {
		return
	}
	g := func(d *prometheus.Desc, v int) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v))
	}
	g(f.overdue, c.Overdue)
	g(f.leased, c.Leased)
	g(f.quarantined, c.Quarantined)
	g(f.backingOff, c.BackingOff)
	g(f.enabled, c.Enabled)
	g(f.total, c.Personas)
	paused := 0
	if c.Paused {
		paused = 1
	}
	g(f.paused, paused)
}

// counts returns the cached counts, refreshed when older than
// fleetCacheFor. Scrapes that arrive together wait for one query.
func (f *fleetCollector) counts() *personas.FleetCounts {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := time.Now()
	if f.last != nil && now.Sub(f.at) < fleetCacheFor {
		return f.last
	}
	if now.Sub(f.lastErr) < fleetCacheFor {
		return f.last // the database just failed: do not query on every scrape
	}
	ctx, cancel := context.WithTimeout(context.Background(), fleetQueryTimeout)
	defer cancel()
	c, err := f.store.FleetCounts(ctx, f.grace)
	if err != nil {
		f.lastErr = now
		f.logger.Warn("fleet metrics", "error", err.Error())
		return f.last
	}
	f.last, f.at = &c, now
	return f.last
}
