package personas

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/mana/personas/pkg/errs"
	"sort"
	"time"
)

// The due rules, relative to the store's clock:
//   - hourly: never active, or last active at least 1 h ago;
//   - daily: never active, or last active at least 24 h ago;
//   - weekdays: today (UTC) is Monday to Friday, and never active or last
//     active at least 24 h ago.
//
// A persona leased by a claim is not due until the lease runs out or the
// persona reports activity. Due personas come never-active first, then the
// longest idle, ties broken by user id.
const (
	HourlyInterval = time.Hour
	DailyInterval  = 24 * time.Hour
)

// Limits on /due and claims.
const (
	DefaultDueLimit   = 100
	MaxDueLimit       = 1000
	DefaultClaimLimit = 10
	MaxClaimLimit     = 100
	DefaultLease      = 10 * time.Minute
	MinLease          = 10 * time.Second
	MaxLease          = 6 * time.Hour
	MaxRunnerIDLen    = 128
)

// DuePersona is a persona as the runner sees it.
type DuePersona struct {
	UserID       string `bun:"user_id" json:"userId"`
	Email        string `bun:"email" json:"email"`
	Archetype    string `bun:"archetype" json:"archetype"`
	SystemPrompt string `bun:"system_prompt" json:"systemPrompt"`
	// ModuleMix is passed through as stored (a JSON object validated on
	// write), not decoded and re-encoded on the runner's hot path.
	ModuleMix      json.RawMessage `bun:"module_mix,type:jsonb" json:"moduleMix"`
	TickCadence    Cadence         `bun:"tick_cadence" json:"tickCadence"`
	LastActiveAt   *time.Time      `bun:"last_active_at" json:"lastActiveAt"`
	LeaseExpiresAt *time.Time      `bun:"lease_expires_at" json:"leaseExpiresAt,omitempty"`
}

// dueWhere selects due, unleased personas. Its first condition bounds the
// walk of personas_due_idx: nobody last active within the hour is due.
// Arguments: ?0 now, ?1 now-1h, ?2 now-24h, ?3 today is a weekday.
const dueWhere = `
COALESCE(last_active_at, '-infinity'::timestamptz) <= ?1::timestamptz
AND (lease_expires_at IS NULL OR lease_expires_at <= ?0::timestamptz)
AND (tick_cadence = 'hourly'
     OR (COALESCE(last_active_at, '-infinity'::timestamptz) <= ?2::timestamptz
         AND (tick_cadence = 'daily' OR ?3::boolean)))`

const dueOrder = `COALESCE(last_active_at, '-infinity'::timestamptz), user_id`

// dueSQL: dueWhere's arguments, then ?4 the limit.
const dueSQL = `
SELECT user_id, email, archetype, system_prompt, module_mix, tick_cadence, last_active_at
  FROM personas.personas
 WHERE ` + dueWhere + `
 ORDER BY ` + dueOrder + `
 LIMIT ?4::integer`

// claimSQL: dueWhere's arguments, then ?4 the limit, ?5 the runner, ?6 the
// end of the lease.
const claimSQL = `
WITH due AS (
    SELECT user_id
      FROM personas.personas
     WHERE ` + dueWhere + `
     ORDER BY ` + dueOrder + `
     LIMIT ?4::integer
       FOR UPDATE SKIP LOCKED
)
UPDATE personas.personas AS p
   SET lease_owner = ?5::text, lease_expires_at = ?6::timestamptz
  FROM due
 WHERE p.user_id = due.user_id
RETURNING p.user_id, p.email, p.archetype, p.system_prompt, p.module_mix, p.tick_cadence,
          p.last_active_at, p.lease_expires_at`

func (s *Store) dueArgs(now time.Time) []any {
	wd := now.Weekday()
	weekday := wd != time.Saturday && wd != time.Sunday
	return []any{now, now.Add(-HourlyInterval), now.Add(-DailyInterval), weekday}
}

// Due returns up to limit due personas (nil means DefaultDueLimit) without
// leasing them, and the time the answer was computed at.
func (s *Store) Due(ctx context.Context, limit *int) ([]DuePersona, time.Time, error) {
	now := s.Now()
	n := DefaultDueLimit
	if limit != nil {
		if *limit < 1 || *limit > MaxDueLimit {
			return nil, now, errs.InvalidField("limit", "must be an integer from 1 to %d", MaxDueLimit)
		}
		n = *limit
	}
	args := append(s.dueArgs(now), n)
	out := []DuePersona{}
	err := s.queryPrepared(ctx, "due", &out, args...)
	if err != nil {
		return nil, now, fmt.Errorf("list due personas: %w", translate(err))
	}
	return out, now, nil
}

// ClaimRequest asks for up to Limit due personas leased to RunnerID for
// LeaseSeconds. Nil fields take their defaults.
type ClaimRequest struct {
	RunnerID     string
	Limit        *int // default DefaultClaimLimit
	LeaseSeconds *int // default DefaultLease
}

// Validate reports every problem with the request.
func (r *ClaimRequest) Validate() error {
	var p Problems
	checkText(&p, "runnerId", r.RunnerID, 1, MaxRunnerIDLen)
	if r.Limit != nil && (*r.Limit < 1 || *r.Limit > MaxClaimLimit) {
		p.Add("limit", "must be an integer from 1 to %d", MaxClaimLimit)
	}
	if l := r.LeaseSeconds; l != nil && (*l < int(MinLease.Seconds()) || *l > int(MaxLease.Seconds())) {
		p.Add("leaseSeconds", "must be an integer from %d to %d", int(MinLease.Seconds()), int(MaxLease.Seconds()))
	}
	return p.Err()
}

// Lease is the lease the request asks for.
func (r *ClaimRequest) Lease() time.Duration {
	if r.LeaseSeconds == nil {
		return DefaultLease
	}
	return time.Duration(*r.LeaseSeconds) * time.Second
}

// Claim atomically leases up to Limit due personas to the runner and
// returns them in due order with the lease's end. One statement selects the
// rows FOR UPDATE SKIP LOCKED and stamps the lease, so concurrent claimers
// never receive the same persona: a row another claimer holds is skipped,
// and one it has just leased fails the due condition on recheck.
func (s *Store) Claim(ctx context.Context, req ClaimRequest) ([]DuePersona, time.Time, error) {
	now := s.Now()
	if err := req.Validate(); err != nil {
		return nil, now, err
	}
	limit := DefaultClaimLimit
	if req.Limit != nil {
		limit = *req.Limit
	}
	until := now.Add(req.Lease())
	args := append(s.dueArgs(now), limit, req.RunnerID, until)
	out := []DuePersona{}
	err := s.queryPrepared(ctx, "claim", &out, args...)
	if err != nil {
		return nil, now, fmt.Errorf("claim due personas: %w", translate(err))
	}
	// RETURNING has no order: restore the due order.
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i].LastActiveAt, out[j].LastActiveAt
		switch {
		case a == nil && b != nil:
			return true
		case a != nil && b == nil:
			return false
		case a != nil && b != nil && !a.Equal(*b):
			return a.Before(*b)
		}
		return out[i].UserID < out[j].UserID
	})
	return out, now, nil
}
