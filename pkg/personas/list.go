package personas

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	fastjson "github.com/goccy/go-json"
	"github.com/uptrace/bun/dialect/pgdialect"
)

// PersonaSummary is a persona in the admin list.
type PersonaSummary struct {
	Persona   `bun:",extend"`
	Actions7d int64 `bun:"actions_7d" json:"actions7d"`
	// Overdue: the overview's overdue rule (StatusSQL["overdue"]) holds.
	Overdue bool `bun:"overdue" json:"overdue"`
	// ModuleMixJSON is module_mix as PostgreSQL sent it (a JSON object),
	// for callers that pass it through; StreamPersonas leaves ModuleMix nil
	// and ListPersonas decodes it.
	ModuleMixJSON json.RawMessage `bun:"-" json:"-"`
}

// ListFilter narrows and pages the admin list. Zero values mean no filter;
// Limit 0 means every persona (the historical, unpaged shape).
type ListFilter struct {
	Limit     int
	Cursor    string
	Archetype string
	Cadence   Cadence
	Q         string // case-insensitive substring of email or name
	// Tags: the persona has every one of them.
	Tags []string
	// Status: one of ListStatuses (see StatusSQL for each rule).
	Status string
	// Lean leaves the system prompt out (SystemPrompt is ""): the list
	// without the prompts, which the detail has.
	Lean bool
}

// Limits of the admin list: one page, and the search text.
const (
	MaxListLimit = 500
	MaxQueryLen  = 200
)

// activityWindowAt is the actions7d window (ActivityWindow) at now.
func activityWindowAt(now time.Time) (start, hourStart, hourEnd time.Time) {
	start = now.Add(-ActivityWindow)
	hourStart = start.Truncate(time.Hour)
	return start, hourStart, hourStart.Add(time.Hour)
}

// listColumns are what a list item shows (personaJSON in personas-admin),
// in the order StreamPersonas scans them; listLeanColumns leave the prompt
// out.
const (
	listColumnsHead = `p.user_id, p.email, p.name, p.archetype, `
	listColumnsTail = `p.module_mix, p.tick_cadence, p.last_active_at, p.created_at, p.updated_at,
       p.consecutive_failures, p.next_attempt_at, p.quarantined_at, p.enabled, p.tags, p.tick_hour, p.auto_tick_hour,
       p.last_tick_status, p.last_tick_finished_at, p.lease_owner, p.lease_expires_at, p.lease_tick_id, p.max_history_days`
)

// checkList validates f and decodes its cursor (nil without one).
func checkList(f ListFilter) (*listCursor, error) {
	var p Problems
	if f.Limit < 0 || f.Limit > MaxListLimit {
		p.Add("limit", "must be between 1 and %d", MaxListLimit)
	}
	if f.Cadence != "" && !f.Cadence.Valid() {
		p.Add("cadence", "must be one of daily, weekdays, hourly")
	}
	if utf8.RuneCountInString(f.Q) > MaxQueryLen {
		p.Add("q", "must be at most %d characters", MaxQueryLen)
	}
	if utf8.RuneCountInString(f.Archetype) > MaxArchetypeLen {
		p.Add("archetype", "must be at most %d characters", MaxArchetypeLen)
	}
	CheckTags(&p, "tag", f.Tags)
	if f.Status != "" {
		if _, ok := StatusSQL[f.Status]; !ok {
			p.Add("status", "must be one of %s", strings.Join(ListStatuses, ", "))
		}
	}
	var cur *listCursor
	if f.Cursor != "" {
		cur = new(listCursor)
		raw, decErr := base64.RawURLEncoding.DecodeString(f.Cursor)
		if decErr != nil || json.Unmarshal(raw, cur) != nil || cur.UserID == "" {
			p.Add("cursor", "is not a cursor returned by this API")
		}
	}
	return cur, p.Err()
}

// bindList builds the listPersonas statement for f (validated) at now:
// the filters that are set become conditions, so each combination is its
// own prepared statement with a plan of its own.
func bindList(f ListFilter, cur *listCursor, now time.Time) Bound {
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return "?" + strconv.Itoa(len(args)-1)
	}
	// actions7dSQL's ?0 and ?2 (its ?1 is not used by it) become ?0, ?1.
	start, _, hourEnd := activityWindowAt(now)
	arg(start)
	arg(hourEnd)
	actions7d := strings.ReplaceAll(fmt.Sprintf(actions7dSQL, "p.user_id"), "?2", "?1")
	var q strings.Builder
	q.WriteString("SELECT " + listColumnsHead)
	if !f.Lean {
		q.WriteString("p.system_prompt, ")
	}
	overdue, uses := renumberRule(overdueSQL, len(args))
	args = append(args, ruleArgs(uses, now)...)
	q.WriteString(listColumnsTail + ",\n       " + actions7d + " AS actions_7d,\n       COALESCE((" + overdue + "), false) AS overdue\n  FROM personas.personas AS p\n WHERE true")
	if f.Archetype != "" {
		q.WriteString("\n   AND p.archetype = " + arg(f.Archetype) + "::text")
	}
	if f.Cadence != "" {
		q.WriteString("\n   AND p.tick_cadence = " + arg(string(f.Cadence)) + "::text")
	}
	if f.Q != "" {
		pattern := arg("%" + escapeLike(strings.ToLower(f.Q)) + "%")
		q.WriteString("\n   AND (lower(p.email) LIKE " + pattern + "::text OR lower(p.name) LIKE " + pattern + "::text)")
	}
	if len(f.Tags) > 0 {
		q.WriteString("\n   AND p.tags @> " + arg(normTags(f.Tags)) + "::text[]")
	}
	if f.Status != "" {
		rule, uses := renumberRule(StatusSQL[f.Status], len(args))
		args = append(args, ruleArgs(uses, now)...)
		q.WriteString("\n   AND (" + rule + ")")
	}
	if cur != nil {
		q.WriteString("\n   AND (p.created_at, p.user_id) < (" + arg(cur.CreatedAt) + "::timestamptz, " + arg(cur.UserID) + "::text)")
	}
	q.WriteString("\n ORDER BY p.created_at DESC, p.user_id DESC")
	if f.Limit > 0 {
		q.WriteString("\n LIMIT " + arg(f.Limit+1) + "::integer")
	}
	return Bound{Name: "listPersonas", SQL: toPostgresPlaceholders(q.String()), Args: args}
}

// StreamPersonas calls fn with each persona of the list, newest first, each
// with the number of actions recorded in the last 7 days (read from the
// hourly buckets kept at ingest), as PostgreSQL sends the rows: the list is
// never held in memory. fn gets the same *PersonaSummary each time,
// overwritten by the next row (ModuleMix nil, ModuleMixJSON set; with
// f.Lean no SystemPrompt). An invalid filter is reported before any call
// of fn. nextCursor is empty on the last page (and without a limit).
func (s *Store) StreamPersonas(ctx context.Context, f ListFilter, fn func(*PersonaSummary) error) (nextCursor string, err error) {
	if _, err := checkList(f); err != nil {
		return "", err
	}
	b := s.mustBind("listPersonas", BindInput{List: f})
	rows, err := s.db.DB.QueryContext(ctx, b.SQL, execArgs(b.Args)...)
	if err != nil {
		return "", fmt.Errorf("list personas: %w", translate(err))
	}
	defer func() { _ = rows.Close() }()
	var (
		it    PersonaSummary
		p     = &it.Persona
		mix   []byte
		dest  = make([]any, 0, 26)
		n     int
		lastC time.Time
		lastU string
	)
	dest = append(dest, &p.UserID, &p.Email, &p.Name, &p.Archetype)
	if !f.Lean {
		dest = append(dest, &p.SystemPrompt)
	}
	dest = append(dest, &mix, &p.TickCadence, &p.LastActiveAt, &p.CreatedAt, &p.UpdatedAt,
		&p.ConsecutiveFailures, &p.NextAttemptAt, &p.QuarantinedAt, &p.Enabled, pgdialect.Array(&p.Tags), &p.OwnTickHour, &p.AutoTickHour,
		&p.LastTickStatus, &p.LastTickFinishedAt, &p.LeaseOwner, &p.LeaseExpiresAt, &p.LeaseTickID, &p.MaxHistoryDays,
		&it.Actions7d, &it.Overdue)
	for rows.Next() {
		n++
		if f.Limit > 0 && n > f.Limit {
			raw, _ := json.Marshal(listCursor{CreatedAt: lastC, UserID: lastU})
			nextCursor = base64.RawURLEncoding.EncodeToString(raw)
			break
		}
		p.Tags = nil
		if err := rows.Scan(dest...); err != nil {
			return "", fmt.Errorf("list personas: read row: %w", translate(err))
		}
		it.ModuleMixJSON = mix
		p.derive()
		lastC, lastU = p.CreatedAt, p.UserID
		if err := fn(&it); err != nil {
			return "", err
		}
	}
	if err := rows.Err(); err != nil {
		return "", fmt.Errorf("list personas: %w", translate(err))
	}
	return nextCursor, nil
}

// ListPersonas is StreamPersonas collected into a slice, with ModuleMix
// decoded. nextCursor is empty on the last page.
func (s *Store) ListPersonas(ctx context.Context, f ListFilter) (items []PersonaSummary, nextCursor string, err error) {
	items = []PersonaSummary{}
	next, err := s.StreamPersonas(ctx, f, func(it *PersonaSummary) error {
		c := *it
		c.ModuleMixJSON = append(json.RawMessage(nil), it.ModuleMixJSON...)
		if err := fastjson.Unmarshal(c.ModuleMixJSON, &c.ModuleMix); err != nil {
			return fmt.Errorf("list personas: module mix of %s: %w", c.UserID, err)
		}
		items = append(items, c)
		return nil
	})
	if err != nil {
		return nil, "", err
	}
	return items, next, nil
}
