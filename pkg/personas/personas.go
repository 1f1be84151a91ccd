package personas

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/mail"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"
)

// Cadence is how often a persona should live a day in the product.
type Cadence string

// The cadences. The due rules are in Due.
const (
	CadenceDaily    Cadence = "daily"
	CadenceWeekdays Cadence = "weekdays"
	CadenceHourly   Cadence = "hourly"
)

// Valid reports whether c is one of the known cadences.
func (c Cadence) Valid() bool {
	return c == CadenceDaily || c == CadenceWeekdays || c == CadenceHourly
}

// Limits on what the store accepts. The database enforces the same bounds
// with CHECK constraints; these give callers a clear message first.
const (
	MaxUserIDLen       = 128
	MaxEmailLen        = 320
	MaxNameLen         = 200
	MaxArchetypeLen    = 64
	MaxSystemPromptLen = 20000
	MaxModules         = 50
	MaxModuleLen       = 64
	MaxModuleWeight    = 1000
	MaxTags            = 10
	MaxTagLen          = 32
)

// Persona is one synthetic user. UserID is the mana-auth user id.
type Persona struct {
	bun.BaseModel `bun:"table:personas.personas"`

	UserID         string             `bun:"user_id,pk" json:"userId"`
	Email          string             `bun:"email" json:"email"`
	Name           string             `bun:"name" json:"name"`
	Archetype      string             `bun:"archetype" json:"archetype"`
	SystemPrompt   string             `bun:"system_prompt" json:"systemPrompt"`
	ModuleMix      map[string]float64 `bun:"module_mix,type:jsonb" json:"moduleMix"`
	TickCadence    Cadence            `bun:"tick_cadence" json:"tickCadence"`
	LastActiveAt   *time.Time         `bun:"last_active_at" json:"lastActiveAt"`
	LeaseOwner     *string            `bun:"lease_owner" json:"-"`
	LeaseExpiresAt *time.Time         `bun:"lease_expires_at" json:"-"`
	CreatedAt      time.Time          `bun:"created_at" json:"createdAt"`
	UpdatedAt      time.Time          `bun:"updated_at" json:"updatedAt"`

	// LastDoneAt is when the persona last completed a period (see Due).
	LastDoneAt          *time.Time `bun:"last_done_at" json:"lastDoneAt"`
	ConsecutiveFailures int        `bun:"consecutive_failures" json:"consecutiveFailures"`
	NextAttemptAt       *time.Time `bun:"next_attempt_at" json:"nextAttemptAt"`
	QuarantinedAt       *time.Time `bun:"quarantined_at" json:"quarantinedAt"`
	Enabled             bool       `bun:"enabled" json:"enabled"`
	Tags                []string   `bun:"tags,array" json:"tags"`
	// OwnTickHour is the tick hour set in the catalog (nil: derived).
	OwnTickHour        *int        `bun:"tick_hour" json:"-"`
	AutoTickHour       int         `bun:"auto_tick_hour" json:"-"`
	LastTickStatus     *TickStatus `bun:"last_tick_status" json:"-"`
	LastTickFinishedAt *time.Time  `bun:"last_tick_finished_at" json:"-"`
	LeaseTokenHash     []byte      `bun:"lease_token_hash" json:"-"`
	LeaseSeconds       *int        `bun:"lease_seconds" json:"-"`
	LeaseTickID        *string     `bun:"lease_tick_id" json:"-"`
	// MaxHistoryDays: how many days of raw history the persona keeps (nil:
	// the global retention rule); see Prune.
	MaxHistoryDays *int `bun:"max_history_days" json:"maxHistoryDays"`

	// Views derived from the columns above when read (see derive).
	TickHour    int       `bun:"-" json:"tickHour"` // the effective hour, own or derived
	Quarantined bool      `bun:"-" json:"quarantined"`
	LastTick    *LastTick `bun:"-" json:"lastTick"`
	Lease       *Lease    `bun:"-" json:"lease"`
}

// LastTick is the outcome of a persona's latest finished tick.
type LastTick struct {
	Status     TickStatus `json:"status"`
	FinishedAt *time.Time `json:"finishedAt"`
}

// Lease is who holds a persona, until when. A lease past ExpiresAt that
// is still shown has not been swept into a crash yet.
type Lease struct {
	RunnerID  string    `json:"runnerId"`
	ExpiresAt time.Time `json:"expiresAt"`
	TickID    *string   `json:"tickId,omitempty"`
}

// derive fills the views of the stored columns.
func (p *Persona) derive() {
	p.TickHour = p.AutoTickHour
	if p.OwnTickHour != nil {
		p.TickHour = *p.OwnTickHour
	}
	p.Quarantined = p.QuarantinedAt != nil
	p.LastTick = nil
	if p.LastTickStatus != nil {
		p.LastTick = &LastTick{Status: *p.LastTickStatus, FinishedAt: p.LastTickFinishedAt}
	}
	p.Lease = nil
	if p.LeaseExpiresAt != nil {
		l := &Lease{ExpiresAt: *p.LeaseExpiresAt, TickID: p.LeaseTickID}
		if p.LeaseOwner != nil {
			l.RunnerID = *p.LeaseOwner
		}
		p.Lease = l
	}
}

// PersonaInput is what an admin sets on a persona (create or update).
type PersonaInput struct {
	UserID       string
	Email        string
	Name         string
	Archetype    string
	SystemPrompt string
	ModuleMix    map[string]float64
	TickCadence  Cadence // empty means daily
	// TickHour is the UTC hour (0–23) from which a daily or weekdays
	// persona is due each day; nil derives it from the user id
	// (DefaultTickHour), spreading the fleet over the day.
	TickHour *int
	// Tags label the persona ("chaos": makes mistakes on purpose, left out
	// of regression verdicts by default): lowercase slugs ([a-z0-9] words
	// joined by "-"), at most MaxTags of at most MaxTagLen characters,
	// stored sorted without repeats. Nil means none.
	Tags []string
	// MaxHistoryDays (MinHistoryDays–MaxHistoryDays, nil: the global rule)
	// is how far back the persona's raw history reaches: prune deletes its
	// actions, feedback and ticks older than that when it is shorter than
	// the global window, and the runner is told in /due and claims.
	MaxHistoryDays *int
}

// Bounds of PersonaInput.MaxHistoryDays.
const (
	MinHistoryDays = 1
	MaxHistoryDays = 3650
)

// Check adds every problem with the persona's own fields to p, by the admin
// API's JSON names. The user id is not among them: mana-auth assigns it, so
// a caller can check a request before any user exists.
func (in *PersonaInput) Check(p *Problems) {
	checkText(p, "email", in.Email, 3, MaxEmailLen)
	if in.Email != "" && !p.Has("email") {
		if a, err := mail.ParseAddress(in.Email); err != nil || a.Address != in.Email {
			p.Add("email", "must be a plain email address")
		}
	}
	checkText(p, "name", in.Name, 0, MaxNameLen)
	checkText(p, "archetype", in.Archetype, 1, MaxArchetypeLen)
	checkText(p, "systemPrompt", in.SystemPrompt, 1, MaxSystemPromptLen)
	if in.TickCadence != "" && !in.TickCadence.Valid() {
		p.Add("tickCadence", "must be one of daily, weekdays, hourly")
	}
	if in.TickHour != nil && (*in.TickHour < 0 || *in.TickHour > 23) {
		p.Add("tickHour", "must be an integer from 0 to 23")
	}
	CheckTags(p, "tags", in.Tags)
	if in.MaxHistoryDays != nil && (*in.MaxHistoryDays < MinHistoryDays || *in.MaxHistoryDays > MaxHistoryDays) {
		p.Add("maxHistoryDays", "must be an integer from %d to %d, or null for the global retention", MinHistoryDays, MaxHistoryDays)
	}
	if len(in.ModuleMix) == 0 {
		p.Add("moduleMix", "must name at least one module")
	}
	if len(in.ModuleMix) > MaxModules {
		p.Add("moduleMix", "at most %d modules", MaxModules)
	}
	for m, w := range in.ModuleMix {
		f := "moduleMix." + m
		checkText(p, f, m, 1, MaxModuleLen)
		if math.IsNaN(w) || math.IsInf(w, 0) || w < 0 || w > MaxModuleWeight {
			p.Add(f, "weight must be a number from 0 to %d", MaxModuleWeight)
		}
	}
}

// Validate reports every problem with the input, the user id included.
func (in *PersonaInput) Validate() error {
	var p Problems
	checkText(&p, "userId", in.UserID, 1, MaxUserIDLen)
	in.Check(&p)
	return p.Err()
}

var tagPattern = regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*$`)

// CheckTags adds every problem with a list of tags (persona tags, or tag
// filters) to p under field.
func CheckTags(p *Problems, field string, tags []string) {
	if len(tags) > MaxTags {
		p.Add(field, "at most %d tags", MaxTags)
	}
	for i, t := range tags {
		f := field + "[" + strconv.Itoa(i) + "]"
		switch {
		case len(t) > MaxTagLen:
			p.Add(f, "must be at most %d characters", MaxTagLen)
		case !tagPattern.MatchString(t):
			p.Add(f, "must be a lowercase slug: letters a-z and digits, words joined by '-'")
		}
	}
}

// normTags sorts and deduplicates tags (never nil).
func normTags(tags []string) []string {
	out := append([]string{}, tags...)
	slices.Sort(out)
	return slices.Compact(out)
}

func checkText(p *Problems, field, v string, minLen, maxLen int) {
	n := utf8.RuneCountInString(v)
	switch {
	case !utf8.ValidString(v):
		p.Add(field, "must be valid UTF-8")
	case strings.ContainsRune(v, 0):
		p.Add(field, "must not contain NUL characters")
	case minLen > 0 && strings.TrimSpace(v) == "":
		p.Add(field, "is required")
	case n < minLen:
		p.Add(field, "must be at least %d characters", minLen)
	case n > maxLen:
		p.Add(field, "must be at most %d characters", maxLen)
	}
}

// UpsertPersona creates the persona or updates it in place (keyed by
// user id) and reports whether it was created. An update that changes
// anything moves updated_at strictly forward. Activity, leases, the
// failure state, enabled and created_at survive an update. An email already used by another persona
// is ErrConflict.
func (s *Store) UpsertPersona(ctx context.Context, in PersonaInput) (created bool, err error) {
	if err := in.Validate(); err != nil {
		return false, err
	}
	cadence := in.TickCadence
	if cadence == "" {
		cadence = CadenceDaily
	}
	mix, err := json.Marshal(in.ModuleMix)
	if err != nil {
		return false, fmt.Errorf("encode module mix: %w", err)
	}
	now := s.Now()
	err = s.db.NewRaw(`
INSERT INTO personas.personas AS p
       (user_id, email, name, archetype, system_prompt, module_mix, tick_cadence, tick_hour, tags, max_history_days,
        created_at, updated_at)
VALUES (?0, ?1, ?2, ?3, ?4, ?5::jsonb, ?6, ?8::smallint, ?9::text[], ?10::smallint, ?7, ?7)
ON CONFLICT (user_id) DO UPDATE
   SET email = EXCLUDED.email, name = EXCLUDED.name, archetype = EXCLUDED.archetype,
       system_prompt = EXCLUDED.system_prompt, module_mix = EXCLUDED.module_mix,
       tick_cadence = EXCLUDED.tick_cadence, tick_hour = EXCLUDED.tick_hour, tags = EXCLUDED.tags,
       max_history_days = EXCLUDED.max_history_days,
       -- Strictly forward, even when the clock stands still: /due's profile
       -- cache (profiles.go) takes an unchanged updated_at to mean unchanged fields.
       updated_at = GREATEST(EXCLUDED.updated_at, p.updated_at + interval '1 microsecond')
 WHERE (p.email, p.name, p.archetype, p.system_prompt, p.module_mix, p.tick_cadence, p.tick_hour, p.tags, p.max_history_days)
       IS DISTINCT FROM
       (EXCLUDED.email, EXCLUDED.name, EXCLUDED.archetype, EXCLUDED.system_prompt, EXCLUDED.module_mix,
        EXCLUDED.tick_cadence, EXCLUDED.tick_hour, EXCLUDED.tags, EXCLUDED.max_history_days)
RETURNING (xmax = 0) AS created`,
		in.UserID, in.Email, in.Name, in.Archetype, in.SystemPrompt, string(mix), string(cadence), now, in.TickHour,
		pgdialect.Array(normTags(in.Tags)), in.MaxHistoryDays,
	).Scan(ctx, &created)
	if errors.Is(err, sql.ErrNoRows) {
		// The row exists and already says all this: nothing to change, and
		// updated_at keeps telling when something last did.
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("upsert persona: %w", translate(err))
	}
	return created, nil
}

// GetPersona returns one persona, or ErrNotFound.
func (s *Store) GetPersona(ctx context.Context, userID string) (*Persona, error) {
	p := new(Persona)
	if err := s.db.NewSelect().Model(p).Where("user_id = ?", userID).Scan(ctx); err != nil {
		return nil, fmt.Errorf("get persona: %w", translate(err))
	}
	p.derive()
	return p, nil
}

// PersonaByEmail returns the persona with this email (compared ignoring
// case, through the unique index personas_email_key), or ErrNotFound.
func (s *Store) PersonaByEmail(ctx context.Context, email string) (*Persona, error) {
	p := new(Persona)
	if err := s.db.NewSelect().Model(p).Where("lower(email) = lower(?)", email).Scan(ctx); err != nil {
		return nil, fmt.Errorf("persona by email: %w", translate(err))
	}
	return p, nil
}

// DeletePersona removes the persona with its actions, feedback and activity
// (ON DELETE CASCADE) in one statement. Unknown ids are ErrNotFound.
func (s *Store) DeletePersona(ctx context.Context, userID string) error {
	res, err := s.db.NewDelete().Model((*Persona)(nil)).Where("user_id = ?", userID).Exec(ctx)
	if err != nil {
		return fmt.Errorf("delete persona: %w", translate(err))
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}

type listCursor struct {
	CreatedAt time.Time `json:"c"`
	UserID    string    `json:"u"`
}

// ActivityWindow is the span "actions7d" covers: the actions recorded in
// the last 7 days, exactly. The hourly buckets that lie wholly inside the
// window are summed; the one hour the window starts in is counted from its
// rows (one persona's actions of one hour, through an index).
const ActivityWindow = 7 * 24 * time.Hour

// actions7dSQL counts one persona's actions in the window (actions7dExpr).
// Arguments: the persona id expression is spliced in by the caller; ?0 the
// window start, ?1 the start of the hour it falls in, ?2 the end of that
// hour.
var actions7dSQL = actions7dExpr("%[1]s", "?0", "?2")

func (s *Store) activityWindow() (start, hourStart, hourEnd time.Time) {
	return activityWindowAt(s.Now())
}

func escapeLike(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}
