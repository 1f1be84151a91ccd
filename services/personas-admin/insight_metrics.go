package main

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mana/personas/pkg/personas"
)

// insightMetrics exposes the insight figures operators alert on, computed
// from the rollups at scrape time and kept for a minute (a scrape every
// 15 s costs one computation a minute): each module's 7-day mean rating,
// rating count and regression flag, each tool's 24 h error rate, and the
// number of overdue personas.
type insightMetrics struct {
	store  *personas.Store
	logger *slog.Logger

	mean, count, flagged, errorRate, overdue *prometheus.Desc

	mu      sync.Mutex
	at      time.Time
	metrics []prometheus.Metric
}

// insightRefresh is how long computed figures are served before the next
// scrape recomputes them.
const insightRefresh = time.Minute

func newInsightMetrics(store *personas.Store, logger *slog.Logger) *insightMetrics {
	return &insightMetrics{
		store: store, logger: logger,
		mean: prometheus.NewDesc("personas_module_rating_mean_7d",
			"Mean rating of the module over the last 7 UTC days (today included).", []string{"module"}, nil),
		count: prometheus.NewDesc("personas_module_ratings_7d",
			"Ratings of the module over the last 7 UTC days.", []string{"module"}, nil),
		flagged: prometheus.NewDesc("personas_module_regression_flagged",
			"1 when the module's weekly regression verdict (default rule, chaos excluded) is flagged.", []string{"module"}, nil),
		errorRate: prometheus.NewDesc("personas_tool_error_rate_24h",
			"Share of the tool's calls that failed today (UTC).", []string{"tool"}, nil),
		overdue: prometheus.NewDesc("personas_overdue",
			"Enabled, unquarantined personas due for longer than 2 h past their slot.", nil, nil),
	}
}

func (m *insightMetrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- m.mean
	ch <- m.count
	ch <- m.flagged
	ch <- m.errorRate
	ch <- m.overdue
}

func (m *insightMetrics) Collect(ch chan<- prometheus.Metric) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.metrics == nil || time.Since(m.at) >= insightRefresh {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		metrics, err := m.compute(ctx)
		cancel()
		if err != nil {
			// Keep serving the last figures; the schema may not be there yet.
			m.logger.Warn("insight metrics", "error", err.Error())
		} else {
			m.metrics, m.at = metrics, time.Now()
		}
	}
	for _, x := range m.metrics {
		ch <- x
	}
}

func (m *insightMetrics) compute(ctx context.Context) ([]prometheus.Metric, error) {
	week, err := personas.ParseWindow("window", "7d", "7d", "7d")
	if err != nil {
		return nil, err
	}
	day, err := personas.ParseWindow("window", "24h", "24h", "24h")
	if err != nil {
		return nil, err
	}
	mods, err := m.store.ModulesSummary(ctx, personas.ModulesQuery{Window: week})
	if err != nil {
		return nil, err
	}
	flagged, err := m.store.FlaggedModules(ctx)
	if err != nil {
		return nil, err
	}
	tools, err := m.store.Tools(ctx, day)
	if err != nil {
		return nil, err
	}
	fleet, err := m.store.FleetCounts(ctx, personas.OverviewGrace)
	if err != nil {
		return nil, err
	}
	isFlagged := map[string]bool{}
	for _, f := range flagged {
		isFlagged[f.Module] = true
	}
	out := []prometheus.Metric{prometheus.MustNewConstMetric(m.overdue, prometheus.GaugeValue, float64(fleet.Overdue))}
	seen := map[string]bool{}
	for _, mod := range mods.Modules {
		seen[mod.Module] = true
		out = append(out,
			prometheus.MustNewConstMetric(m.mean, prometheus.GaugeValue, mod.Mean, mod.Module),
			prometheus.MustNewConstMetric(m.count, prometheus.GaugeValue, float64(mod.Count), mod.Module),
			prometheus.MustNewConstMetric(m.flagged, prometheus.GaugeValue, b2f(isFlagged[mod.Module]), mod.Module))
	}
	for _, f := range flagged {
		if !seen[f.Module] { // flagged but not rated this week
			out = append(out, prometheus.MustNewConstMetric(m.flagged, prometheus.GaugeValue, 1, f.Module))
		}
	}
	for _, t := range tools.Tools {
		if t.Calls > 0 {
			out = append(out, prometheus.MustNewConstMetric(m.errorRate, prometheus.GaugeValue, t.ErrorRate, t.Name))
		}
	}
	return out, nil
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
