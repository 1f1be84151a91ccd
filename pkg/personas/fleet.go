package personas

import (
	"context"
	"fmt"
	"strconv"
	"time"
)

// MaxUpdatedByLen bounds who paused or resumed the fleet (an admin email).
const MaxUpdatedByLen = 320

// FleetState is the operators' switch for the whole fleet.
type FleetState struct {
	Paused    bool      `bun:"paused" json:"paused"`
	UpdatedAt time.Time `bun:"updated_at" json:"updatedAt"`
	UpdatedBy *string   `bun:"updated_by" json:"updatedBy"`
}

// FleetState returns whether the fleet is paused, since when and by whom.
func (s *Store) FleetState(ctx context.Context) (FleetState, error) {
	var st FleetState
	err := s.db.NewRaw(`SELECT paused, updated_at, updated_by FROM personas.runner_state`).Scan(ctx, &st)
	if err != nil {
		return st, fmt.Errorf("fleet state: %w", translate(err))
	}
	return st, nil
}

// SetFleetPaused pauses or resumes the fleet. While paused, Due and Claim
// return no personas and Paused: claims stop at once, leases already held
// run on until finished, released or expired. by names the operator.
func (s *Store) SetFleetPaused(ctx context.Context, paused bool, by string) (FleetState, error) {
	var p Problems
	checkText(&p, "updatedBy", by, 0, MaxUpdatedByLen)
	if err := p.Err(); err != nil {
		return FleetState{}, err
	}
	var who *string
	if by != "" {
		who = &by
	}
	var st FleetState
	err := s.db.NewRaw(`
UPDATE personas.runner_state SET paused = ?0, updated_at = ?1, updated_by = ?2
RETURNING paused, updated_at, updated_by`, paused, s.Now(), who).Scan(ctx, &st)
	if err != nil {
		return st, fmt.Errorf("set fleet paused: %w", translate(err))
	}
	return st, nil
}

// SetEnabled enables or disables one persona. A disabled persona is never
// due; a lease it holds runs on. ErrNotFound for an unknown persona.
func (s *Store) SetEnabled(ctx context.Context, personaID string, enabled bool) error {
	return s.updatePersona(ctx, "set enabled", `enabled = ?1, updated_at = ?2`, personaID, enabled, s.Now())
}

// Unquarantine lifts a persona's quarantine and forgets its failures and
// backoff, so it is due again under the normal schedule. It also works on
// a persona that is not quarantined (resetting its failures). ErrNotFound
// for an unknown persona.
func (s *Store) Unquarantine(ctx context.Context, personaID string) error {
	return s.updatePersona(ctx, "unquarantine",
		`quarantined_at = NULL, consecutive_failures = 0, next_attempt_at = NULL, updated_at = ?1`, personaID, s.Now())
}

func (s *Store) updatePersona(ctx context.Context, what, set string, personaID string, args ...any) error {
	res, err := s.db.NewRaw(`UPDATE personas.personas SET `+set+` WHERE user_id = ?0`, append([]any{personaID}, args...)...).Exec(ctx)
	if err != nil {
		return fmt.Errorf("%s: %w", what, translate(err))
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}

// FleetCounts is a snapshot for metrics gauges.
type FleetCounts struct {
	Personas    int  `bun:"personas" json:"personas"`
	Enabled     int  `bun:"enabled" json:"enabled"`
	Leased      int  `bun:"leased" json:"leased"` // leases not yet expired
	Quarantined int  `bun:"quarantined" json:"quarantined"`
	BackingOff  int  `bun:"backing_off" json:"backingOff"` // waiting for next_attempt_at
	Overdue     int  `bun:"overdue" json:"overdue"`
	Paused      bool `bun:"paused" json:"paused"`
	// LastTickStatus counts personas by the status of their last tick
	// ("" for personas without one).
	LastTickStatus map[string]int `bun:"-" json:"lastTickStatus"`
}

// overdueSQL is FleetCounts' overdue rule over a personas row; arguments
// as there: dueArgs(now), then now − grace and its hour.
const overdueSQL = `enabled AND quarantined_at IS NULL AND (
           (last_done_at IS NULL AND created_at <= ?5 AND (tick_cadence <> 'weekdays' OR ?4))
        OR (tick_cadence = 'hourly' AND last_done_at < ?6)
        OR (tick_cadence <> 'hourly' AND (tick_cadence = 'daily' OR ?4) AND last_done_at < ?2
            AND COALESCE(tick_hour, auto_tick_hour) <= ?3
            AND ?2::timestamptz + make_interval(hours => COALESCE(tick_hour, auto_tick_hour)) <= ?5))`

// The persona states, each rule in one place: FleetCounts and Overview
// count by them, the admin list filters by them (status=). Each is a
// condition over a personas row with statusArgs' arguments (?0 is now).
const (
	enabledSQL     = `enabled`
	disabledSQL    = `NOT enabled`
	quarantinedSQL = `quarantined_at IS NOT NULL`
	// backingOffSQL: waiting out the backoff after a failed tick (not
	// quarantined); the list calls it "backing-off".
	backingOffSQL = `quarantined_at IS NULL AND next_attempt_at > ?0`
	// leasedSQL: a lease not yet expired (a lapsed one is a crash-to-be).
	leasedSQL = `lease_expires_at > ?0`
)

// StatusSQL maps the admin list's status filter to its rule; overdue is
// the overview's (OverviewGrace past its slot).
var StatusSQL = map[string]string{
	"enabled":     enabledSQL,
	"disabled":    disabledSQL,
	"backing-off": backingOffSQL,
	"quarantined": quarantinedSQL,
	"leased":      leasedSQL,
	"overdue":     overdueSQL,
}

// ListStatuses are StatusSQL's keys, in the order the API documents them.
var ListStatuses = []string{"enabled", "disabled", "backing-off", "quarantined", "leased", "overdue"}

// statusArgs are the arguments of the state rules at now, with the
// overview's grace for overdue.
func statusArgs(now time.Time) []any {
	return append(dueArgs(now), now.Add(-OverviewGrace), now.Add(-OverviewGrace).Truncate(time.Hour))
}

// renumberRule makes a state rule (its ?N are statusArgs' indexes) part of
// another statement: its placeholders become ?first, ?first+1, … in the
// order of first use, and uses[i] is the statusArgs index of ?first+i
// (ruleArgs gives their values).
func renumberRule(rule string, first int) (sql string, uses []int) {
	seen := map[string]string{}
	sql = bunPlaceholder.ReplaceAllStringFunc(rule, func(m string) string {
		if p, ok := seen[m]; ok {
			return p
		}
		n, _ := strconv.Atoi(m[1:])
		uses = append(uses, n)
		seen[m] = "?" + strconv.Itoa(first+len(uses)-1)
		return seen[m]
	})
	return sql, uses
}

// ruleArgs are the values of a renumbered rule's placeholders at now.
func ruleArgs(uses []int, now time.Time) []any {
	sa := statusArgs(now)
	out := make([]any, len(uses))
	for i, n := range uses {
		out[i] = sa[n]
	}
	return out
}

// FleetCounts counts personas by state in one pass over personas (no tick
// or action table is read). Overdue: enabled, not quarantined, and due by
// the schedule (leases and backoff aside) for longer than grace — since
// its slot opened (the clock hour, or today's tick hour) or, never done,
// since it was created. "Every persona ticks at least once a day" holds
// while Overdue stays 0 with a grace of a few hours.
func (s *Store) FleetCounts(ctx context.Context, overdueGrace time.Duration) (FleetCounts, error) {
	now := s.Now()
	args := append(dueArgs(now), now.Add(-overdueGrace), now.Add(-overdueGrace).Truncate(time.Hour))
	var c FleetCounts
	err := s.db.NewRaw(`
SELECT count(*) AS personas,
       count(*) FILTER (WHERE `+enabledSQL+`) AS enabled,
       count(*) FILTER (WHERE `+leasedSQL+`) AS leased,
       count(*) FILTER (WHERE `+quarantinedSQL+`) AS quarantined,
       count(*) FILTER (WHERE `+backingOffSQL+`) AS backing_off,
       count(*) FILTER (WHERE `+overdueSQL+`) AS overdue,
       COALESCE((SELECT paused FROM personas.runner_state), false) AS paused
  FROM personas.personas`, args...).Scan(ctx, &c)
	if err != nil {
		return c, fmt.Errorf("fleet counts: %w", translate(err))
	}
	var rows []struct {
		Status *string `bun:"status"`
		N      int     `bun:"n"`
	}
	err = s.db.NewRaw(`SELECT last_tick_status AS status, count(*) AS n FROM personas.personas GROUP BY 1`).Scan(ctx, &rows)
	if err != nil {
		return c, fmt.Errorf("fleet counts: %w", translate(err))
	}
	c.LastTickStatus = map[string]int{}
	for _, r := range rows {
		k := ""
		if r.Status != nil {
			k = *r.Status
		}
		c.LastTickStatus[k] = r.N
	}
	return c, nil
}
