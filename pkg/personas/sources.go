package personas

// Sources says, per admin response, which parts were answered from the
// rollups and which from raw rows (issue 13 A1). Raw rows (actions,
// ratings, ticks) are kept for PERSONAS_RETENTION_DAYS, the rollups (hourly
// activity buckets, daily rating and tool rollups) for
// PERSONAS_ROLLUP_RETENTION_DAYS: a part answered from rollups reaches
// that far back and is as exact as its rollup (counts and distributions
// are exact, latency percentiles come from a histogram); a part answered
// from raw rows reaches only as far as the raw window. A part listed under
// both combines them (the 7-day count: hourly buckets for the hours wholly
// inside the window, raw rows for the hour it starts in). Parts listed
// under neither are the catalog's current state (the persona itself, the
// fleet's counts). Parts are the response's JSON paths.
//
// Each view's sources are decided here, next to nothing else, so the rule
// has one place: change a view's query and its entry below together.
type Sources struct {
	Rollups []string `json:"rollups"`
	Raw     []string `json:"raw"`
}

// The views' sources. Slices are copied out, so callers cannot change them.
var viewSources = map[string]Sources{
	// PersonaDetail: the count from hourly buckets plus its first hour's
	// rows, the ratings from rating_daily, the actions themselves raw.
	"detail": {Rollups: []string{"persona.actions7d", "feedbackByModule"}, Raw: []string{"persona.actions7d", "recentActions"}},
	// ModulesSummary, ModuleTrend, Tools: the rating and tool rollups
	// (per persona, fleet, module_raters) only.
	"modules": {Rollups: []string{"modules"}},
	"trend":   {Rollups: []string{"buckets", "verdict"}},
	"tools":   {Rollups: []string{"tools", "modules"}},
	// Overview: ticks are counted from persona_ticks; flagged modules,
	// error-rate rises and ratings come from the rollups.
	"overview": {Rollups: []string{"flaggedModules", "errorRateRises", "ratings"}, Raw: []string{"ticks"}},
}

func sourcesOf(view string) Sources {
	s, ok := viewSources[view]
	if !ok {
		panic("personas: no sources for view " + view)
	}
	return Sources{Rollups: append([]string{}, s.Rollups...), Raw: append([]string{}, s.Raw...)}
}

// DetailSources: the admin detail's (PersonaDetail).
func DetailSources() Sources { return sourcesOf("detail") }

// ModulesSources: the modules table's (ModulesSummary).
func ModulesSources() Sources { return sourcesOf("modules") }

// TrendSources: a module trend's (ModuleTrend).
func TrendSources() Sources { return sourcesOf("trend") }

// ToolsSources: the tools view's (Tools).
func ToolsSources() Sources { return sourcesOf("tools") }

// OverviewSources: the overview's (Overview).
func OverviewSources() Sources { return sourcesOf("overview") }
