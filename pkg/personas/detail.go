package personas

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"time"

	fastjson "github.com/goccy/go-json"
)

// The admin detail: one persona with its 7-day count, its newest actions
// and its ratings per module, answered by one statement (personaDetail),
// i.e. one round trip and one plan cached per connection. The parts are
// the same expressions the single-purpose reads (Actions7d, RecentActions,
// FeedbackByModule) use, so the two can never disagree.

// DetailRecentActions is how many actions the detail carries.
const DetailRecentActions = 20

// actions7dExpr counts one persona's actions in the activity window: the
// hourly buckets from the end of the window's first hour on, plus that
// first, partial hour from its rows. persona is the persona id expression,
// start and hourEnd the placeholders of the window start and the end of the
// hour it falls in (see activityWindow).
func actions7dExpr(persona, start, hourEnd string) string {
	return strings.NewReplacer("$p", persona, "$start", start, "$end", hourEnd).Replace(
		`(COALESCE((SELECT sum(h.actions) FROM personas.persona_activity_hourly h
      WHERE h.persona_id = $p AND h.hour >= $end::timestamptz), 0)
 + (SELECT count(*) FROM personas.persona_actions a
      WHERE a.persona_id = $p AND a.created_at >= $start::timestamptz AND a.created_at < $end::timestamptz))`)
}

// recentActionsExpr selects one persona's newest actions, newest first
// (within one batch, the later row first), through
// persona_actions_recent_idx.
const recentActionsExpr = `SELECT a.id, a.tick_id, a.seq, a.tool_name, a.input_hash, a.result, a.error_message, a.latency_ms, a.created_at, a.n
  FROM personas.persona_actions AS a
 WHERE a.persona_id = $p
 ORDER BY a.created_at DESC, a.n DESC
 LIMIT $limit::integer`

// moduleFeedbackExpr aggregates one persona's ratings per module from the
// daily rollup rating_daily (rollups.go): it is kept at ingest in the same
// statement as each insert, so it holds every rating the raw table does
// and outlives the raw rows by the rollup retention (prune.go); parse
// markers never enter it, so they are in no aggregate. The mean is
// computed in numeric as avg() does (sum / count, then float8), so it is
// the true mean, bit for bit what averaging the raw rows gives.
const moduleFeedbackExpr = `SELECT d.module, (sum(d.sum)::numeric / sum(d.n))::float8 AS avg_rating, sum(d.n) AS count,
       sum(d.r1) AS r1, sum(d.r2) AS r2, sum(d.r3) AS r3, sum(d.r4) AS r4, sum(d.r5) AS r5,
       max(d.last_at) AS last_rated_at
  FROM personas.rating_daily AS d
 WHERE d.persona_id = $p
 GROUP BY d.module`

// personaDetailSQL: ?0 persona id, ?1 the activity window's start, ?2 the
// end of the hour it starts in, ?3 how many actions, then the overdue
// rule's arguments (detailOverdueUses). No row: no such persona. The
// actions and the modules come as JSON arrays (in their order), decoded by
// PersonaDetail; each subquery reads one persona's rows through an index
// that leads with persona_id.
//
// The persona's columns are listed (personaColumns), not p.*: a column
// added by a later migration then does not change the result type of the
// statement prepared on connections that are open while it runs.
var personaDetailSQL = `
SELECT ` + personaColumns("p") + `,
       ` + actions7dExpr("p.user_id", "?1", "?2") + ` AS actions_7d,
       COALESCE((` + detailOverdueSQL + `), false) AS overdue,
       (SELECT COALESCE(json_agg(json_build_object(
                   'id', r.id, 'tickId', r.tick_id, 'seq', r.seq, 'toolName', r.tool_name, 'inputHash', r.input_hash,
                   'result', r.result, 'errorMessage', r.error_message, 'latencyMs', r.latency_ms, 'createdAt', r.created_at)
                 ORDER BY r.created_at DESC, r.n DESC), '[]')
          FROM (` + strings.NewReplacer("$p", "p.user_id", "$limit", "?3").Replace(recentActionsExpr) + `) AS r) AS recent_actions,
       (SELECT COALESCE(json_agg(json_build_object(
                   'module', m.module, 'avgRating', m.avg_rating, 'count', m.count,
                   'r', json_build_array(m.r1, m.r2, m.r3, m.r4, m.r5), 'lastRatedAt', m.last_rated_at)
                 ORDER BY m.module), '[]')
          FROM (` + strings.ReplaceAll(moduleFeedbackExpr, "$p", "p.user_id") + `) AS m) AS feedback_by_module
  FROM personas.personas AS p
 WHERE p.user_id = ?0::text`

// detailOverdueSQL is the overview's overdue rule in personaDetailSQL,
// its arguments from ?4 on.
var detailOverdueSQL, detailOverdueUses = renumberRule(overdueSQL, 4)

// personaColumns lists Persona's stored columns (its bun tags), qualified by
// alias.
func personaColumns(alias string) string {
	var cols []string
	t := reflect.TypeOf(Persona{})
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("bun"), ",")
		if f.Anonymous || name == "" || name == "-" {
			continue
		}
		cols = append(cols, alias+"."+name)
	}
	return strings.Join(cols, ", ")
}

// PersonaDetail is the admin detail of one persona.
type PersonaDetail struct {
	Persona   Persona
	Actions7d int64
	// Overdue: the overview's overdue rule (StatusSQL["overdue"]) holds.
	Overdue bool
	// RecentActions: the DetailRecentActions newest, newest first.
	RecentActions []Action
	// FeedbackByModule: by module name.
	FeedbackByModule []ModuleFeedback
	// Sources: which parts came from rollups (see DetailSources).
	Sources Sources
}

type detailRow struct {
	Persona       `bun:",extend"`
	Actions7d     int64           `bun:"actions_7d"`
	Overdue       bool            `bun:"overdue"`
	RecentActions json.RawMessage `bun:"recent_actions"`
	Feedback      json.RawMessage `bun:"feedback_by_module"`
}

// moduleFeedbackJSON is one module of the statement's feedback array.
type moduleFeedbackJSON struct {
	Module      string    `json:"module"`
	AvgRating   float64   `json:"avgRating"`
	Count       int       `json:"count"`
	R           [5]int    `json:"r"`
	LastRatedAt time.Time `json:"lastRatedAt"`
}

func (m moduleFeedbackJSON) feedback() ModuleFeedback {
	return ModuleFeedback{
		Module: m.Module, AvgRating: m.AvgRating, Count: m.Count, LastRatedAt: m.LastRatedAt.UTC(),
		Distribution: map[string]int{"1": m.R[0], "2": m.R[1], "3": m.R[2], "4": m.R[3], "5": m.R[4]},
	}
}

// PersonaDetail returns the persona with its 7-day count (as Actions7d),
// its DetailRecentActions newest actions (as RecentActions) and its ratings
// per module (as FeedbackByModule), in one statement; ErrNotFound for an
// unknown id.
func (s *Store) PersonaDetail(ctx context.Context, personaID string) (*PersonaDetail, error) {
	b := s.mustBind("personaDetail", BindInput{PersonaID: personaID})
	var rows []detailRow
	if err := s.queryPrepared(ctx, b.Name, &rows, b.Args...); err != nil {
		return nil, fmt.Errorf("persona detail: %w", translate(err))
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("persona detail: %w", ErrNotFound)
	}
	r := &rows[0]
	out := &PersonaDetail{Persona: r.Persona, Actions7d: r.Actions7d, Overdue: r.Overdue, Sources: DetailSources()}
	out.Persona.derive()
	if err := fastjson.Unmarshal(r.RecentActions, &out.RecentActions); err != nil {
		return nil, fmt.Errorf("persona detail: decode actions: %w", err)
	}
	for i := range out.RecentActions {
		out.RecentActions[i].CreatedAt = out.RecentActions[i].CreatedAt.UTC()
	}
	var mods []moduleFeedbackJSON
	if err := fastjson.Unmarshal(r.Feedback, &mods); err != nil {
		return nil, fmt.Errorf("persona detail: decode feedback: %w", err)
	}
	out.FeedbackByModule = make([]ModuleFeedback, len(mods))
	for i, m := range mods {
		out.FeedbackByModule[i] = m.feedback()
	}
	return out, nil
}
