package main

// Insight: the product-wide views (modules, one module's trend with its
// regression verdict, tools, the fleet overview, the notes feed). Every
// view but the feed reads the store's rollups; see pkg/personas/insight.go
// for the rules. Handlers only read and check query parameters: every
// problem is reported at once, by parameter name.

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/mana/personas/pkg/edge"
	"github.com/mana/personas/pkg/errs"
	"github.com/mana/personas/pkg/personas"
)

// queryTags reads a tag list: the parameter repeated and/or
// comma-separated. Nil when absent.
func queryTags(c echo.Context, name string) []string {
	vals, ok := c.QueryParams()[name]
	if !ok {
		return nil
	}
	out := []string{}
	for _, v := range vals {
		for _, t := range strings.Split(v, ",") {
			if t = strings.TrimSpace(t); t != "" {
				out = append(out, t)
			}
		}
	}
	return out
}

// queryTime reads an optional time: RFC 3339, or a UTC day YYYY-MM-DD.
func queryTime(c echo.Context, name string, p *errs.Problems) *time.Time {
	v := c.QueryParam(name)
	if v == "" {
		return nil
	}
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return &t
	}
	if t, err := time.Parse(time.DateOnly, v); err == nil {
		return &t
	}
	p.Add(name, "must be an RFC 3339 time or a day (YYYY-MM-DD)")
	return nil
}

// queryFloat reads an optional number.
func queryFloat(c echo.Context, name string, p *errs.Problems) *float64 {
	if !c.QueryParams().Has(name) {
		return nil
	}
	f, err := strconv.ParseFloat(c.QueryParam(name), 64)
	if err != nil {
		p.Add(name, "must be a number")
		return nil
	}
	return &f
}

// window reads the window parameter and adds its problem to p.
func window(c echo.Context, p *errs.Problems, def string, allowed ...string) personas.Window {
	w, err := personas.ParseWindow("window", c.QueryParam("window"), def, allowed...)
	if err != nil {
		p.Add("window", "must be one of %s", strings.Join(allowed, ", "))
	}
	return w
}

// ---- GET /modules -------------------------------------------------------

type moduleJSON struct {
	personas.ModuleSummary
	LastRatedAt string `json:"lastRatedAt"`
}

type modulesResponse struct {
	Window  string           `json:"window"`
	From    string           `json:"from"`
	To      string           `json:"to"`
	Modules []moduleJSON     `json:"modules"`
	Sources personas.Sources `json:"sources"`
}

// modules answers the modules table for window 7d (default) or 28d;
// includeTag and excludeTag narrow it by persona tags.
func (h *handlers) modules(c echo.Context) error {
	var p errs.Problems
	q := personas.ModulesQuery{Window: window(c, &p, "7d", "7d", "28d"),
		Tags: personas.TagFilter{Include: queryTags(c, "includeTag"), Exclude: queryTags(c, "excludeTag")}}
	personas.CheckTags(&p, "includeTag", q.Tags.Include)
	personas.CheckTags(&p, "excludeTag", q.Tags.Exclude)
	if err := p.Err(); err != nil {
		return err
	}
	res, err := h.store.ModulesSummary(c.Request().Context(), q)
	if err != nil {
		return err
	}
	out := modulesResponse{Window: res.Window, From: res.From, To: res.To, Modules: make([]moduleJSON, len(res.Modules)),
		Sources: personas.ModulesSources()}
	for i, m := range res.Modules {
		out.Modules[i] = moduleJSON{ModuleSummary: m, LastRatedAt: edge.ISOTime(m.LastRatedAt)}
	}
	return c.JSON(http.StatusOK, out)
}

// ---- GET /modules/:module/trend ------------------------------------------

type trendResponse struct {
	personas.Trend
	Sources personas.Sources `json:"sources"`
}

// trend answers one module's buckets and regression verdict.
func (h *handlers) trend(c echo.Context) error {
	var p errs.Problems
	q := personas.TrendQuery{
		Module:     c.Param("module"),
		Bucket:     c.QueryParam("bucket"),
		From:       queryTime(c, "from", &p),
		To:         queryTime(c, "to", &p),
		Archetype:  c.QueryParam("archetype"),
		Cadence:    personas.Cadence(c.QueryParam("cadence")),
		Persona:    c.QueryParam("persona"),
		Tags:       personas.TagFilter{Include: queryTags(c, "includeTag")},
		Delta:      queryFloat(c, "delta", &p),
		MinRatings: edge.QueryInt(c, "n", &p),
	}
	if k := edge.QueryInt(c, "k", &p); k != nil {
		q.K = *k
		if q.K == 0 {
			q.K = -1 // explicit 0 is out of range, not the default
		}
	}
	// excludeTag names who the verdict leaves out (chaos by default) and,
	// when given, the buckets too; excludeTag= (empty) leaves nobody out.
	if ex := queryTags(c, "excludeTag"); ex != nil {
		q.VerdictExclude = ex
		q.Tags.Exclude = ex
	}
	check := q // Check fills in defaults: on a copy, the store's clock decides them
	check.Check(&p, time.Now())
	if err := p.Err(); err != nil {
		return err
	}
	res, err := h.store.ModuleTrend(c.Request().Context(), q)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, trendResponse{Trend: res, Sources: personas.TrendSources()})
}

// ---- GET /tools ---------------------------------------------------------

type toolsResponse struct {
	personas.ToolsResult
	Sources personas.Sources `json:"sources"`
}

// tools answers calls, error rates, p95 latency and error groups per tool
// and module for window 24h, 7d (default) or 28d.
func (h *handlers) tools(c echo.Context) error {
	var p errs.Problems
	w := window(c, &p, "7d", "24h", "7d", "28d")
	if err := p.Err(); err != nil {
		return err
	}
	res, err := h.store.Tools(c.Request().Context(), w)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toolsResponse{ToolsResult: res, Sources: personas.ToolsSources()})
}

// ---- GET /overview ------------------------------------------------------

type overviewResponse struct {
	personas.Overview
	Since   string           `json:"since"`
	Sources personas.Sources `json:"sources"`
}

// overview answers the Monday page for window 24h or 7d (default).
func (h *handlers) overview(c echo.Context) error {
	var p errs.Problems
	w := window(c, &p, "7d", "24h", "7d")
	if err := p.Err(); err != nil {
		return err
	}
	res, err := h.store.Overview(c.Request().Context(), w)
	if err != nil {
		return err
	}
	since, _ := time.Parse(time.RFC3339, res.Since)
	return c.JSON(http.StatusOK, overviewResponse{Overview: res, Since: edge.ISOTime(since), Sources: personas.OverviewSources()})
}

// ---- GET /feedback ------------------------------------------------------

type feedItemJSON struct {
	ID               string  `json:"id"`
	PersonaID        string  `json:"personaId"`
	PersonaName      string  `json:"personaName"`
	PersonaArchetype string  `json:"personaArchetype"`
	TickID           string  `json:"tickId"`
	Module           string  `json:"module"`
	Rating           int     `json:"rating"`
	Notes            *string `json:"notes"`
	CreatedAt        string  `json:"createdAt"`
}

type feedResponse struct {
	Feedback   []feedItemJSON `json:"feedback"`
	NextCursor *string        `json:"nextCursor"`
}

// feedback answers the notes feed, newest first, one page per call.
func (h *handlers) feedback(c echo.Context) error {
	var p errs.Problems
	q := personas.FeedQuery{
		Module:    c.QueryParam("module"),
		Persona:   c.QueryParam("persona"),
		Archetype: c.QueryParam("archetype"),
		From:      queryTime(c, "from", &p),
		To:        queryTime(c, "to", &p),
		Cursor:    c.QueryParam("cursor"),
	}
	for name, dst := range map[string]*int{"minRating": &q.MinRating, "maxRating": &q.MaxRating, "limit": &q.Limit} {
		if v := edge.QueryInt(c, name, &p); v != nil {
			*dst = *v
			if *v == 0 {
				*dst = -1 // explicit 0 is out of range, not "no filter"
			}
		}
	}
	q.Check(&p)
	if err := p.Err(); err != nil {
		return err
	}
	items, next, err := h.store.FeedbackFeed(c.Request().Context(), q)
	if err != nil {
		return err
	}
	out := feedResponse{Feedback: make([]feedItemJSON, len(items))}
	for i, it := range items {
		out.Feedback[i] = feedItemJSON{
			ID: it.ID, PersonaID: it.PersonaID, PersonaName: it.PersonaName, PersonaArchetype: it.PersonaArchetype,
			TickID: it.TickID, Module: it.Module, Rating: it.Rating, Notes: it.Notes, CreatedAt: edge.ISOTime(it.CreatedAt),
		}
	}
	if next != "" {
		out.NextCursor = &next
	}
	return c.JSON(http.StatusOK, out)
}
