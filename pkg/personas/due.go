package personas

import (
	"context"
	"crypto/md5" //nolint:gosec // not for security: a stable spread of tick hours, identical to the SQL in 0003
	"crypto/rand"
	"crypto/sha256"
	"database/sql/driver"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/mana/personas/pkg/errs"
)

// The schedule (see the package comment for why it is built this way). A
// persona is due when all of these hold, relative to the store's clock:
//   - its period is not done: hourly — not done since the start of the
//     current clock hour; daily — not done since 00:00 UTC today and the
//     hour of day has reached its tick hour; weekdays — like daily, on
//     Monday to Friday only. Never done: due at once (weekdays: on a weekday);
//   - it is enabled, not quarantined, its next_attempt_at (backoff after a
//     failure) has passed, it holds no lease, and the fleet is not paused.
//
// "Done" (last_done_at) is set by an ok or empty finish, a release with the
// outcome done, and by a write that carries no lease token for a tick with
// no tick record (runners that predate ticks, whose only signal is that
// they wrote). Due personas come never done first, then the longest since
// done, ties broken by user id.
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
	MaxLeaseTokenLen  = 128
	// leaseTokenBytes of crypto/rand make one token (base64url, 22 chars).
	leaseTokenBytes = 16
	// sweepBatch bounds how many lapsed leases one sweep turns into crashes;
	// the rest are taken by the next call.
	sweepBatch = 1000
)

// DuePersona is a persona as the runner sees it. Its static fields
// (email to cadence) come from the profile cache (profiles.go), so the due
// and claim statements do not read them; AppendJSON writes the runner's
// JSON object reusing their cached encoding.
type DuePersona struct {
	UserID       string `bun:"user_id" json:"userId"`
	Email        string `bun:"-" json:"email"`
	Archetype    string `bun:"-" json:"archetype"`
	SystemPrompt string `bun:"-" json:"systemPrompt"`
	// ModuleMix is passed through as stored (a JSON object validated on
	// write), not decoded and re-encoded on the runner's hot path.
	ModuleMix    json.RawMessage `bun:"-" json:"moduleMix"`
	TickCadence  Cadence         `bun:"-" json:"tickCadence"`
	LastActiveAt *time.Time      `bun:"last_active_at" json:"lastActiveAt"`
	// UpdatedAt is the row's, the profile cache's key.
	UpdatedAt time.Time `bun:"updated_at" json:"-"`
	// MaxHistoryDays is how far back the persona's own story reaches (raw
	// history kept, in days); nil: the global retention rule.
	MaxHistoryDays *int `bun:"max_history_days" json:"maxHistoryDays"`
	// Attempt is 1 plus the persona's consecutive failures: 1 for a
	// persona whose last tick went well.
	Attempt int `bun:"attempt" json:"attempt"`
	// LeaseToken and LeaseExpiresAt are set by Claim only. The token is
	// the only proof of holding the lease: renew, release, tick start,
	// writes and finish carry it.
	LeaseToken     string     `bun:"lease_token" json:"leaseToken,omitempty"`
	LeaseExpiresAt *time.Time `bun:"lease_expires_at" json:"leaseExpiresAt,omitempty"`

	profile *profile
}

// DueResult is the answer of Due and Claim. When the fleet is paused,
// Personas is empty and Paused is true.
type DueResult struct {
	Personas   []DuePersona `json:"personas"`
	ServerTime time.Time    `json:"serverTime"`
	Paused     bool         `json:"paused,omitempty"`
}

// dueWhere selects due personas. Its first condition bounds the walk of
// personas_due_idx: nobody done within the current clock hour is due.
// A lease that lapsed but has not been swept yet still has its token hash,
// so it is not due: the sweep counts it as a crash first.
// Arguments: ?0 now, ?1 start of the hour, ?2 start of the day (UTC),
// ?3 hour of the day, ?4 today is a weekday.
const dueWhere = `
COALESCE(last_done_at, '-infinity'::timestamptz) < ?1::timestamptz
AND enabled AND quarantined_at IS NULL
AND lease_token_hash IS NULL
AND (lease_expires_at IS NULL OR lease_expires_at <= ?0::timestamptz)
AND (next_attempt_at IS NULL OR next_attempt_at <= ?0::timestamptz)
AND NOT EXISTS (SELECT 1 FROM personas.runner_state WHERE paused)
AND (tick_cadence = 'hourly'
     OR ((tick_cadence = 'daily' OR ?4::boolean)
         AND (last_done_at IS NULL
              OR (last_done_at < ?2::timestamptz AND COALESCE(tick_hour, auto_tick_hour) <= ?3::integer))))`

const dueOrder = `COALESCE(last_done_at, '-infinity'::timestamptz), user_id`

// dueSQL: dueWhere's arguments, then ?5 the limit.
const dueSQL = `
SELECT user_id, updated_at, last_active_at, max_history_days, consecutive_failures + 1 AS attempt
  FROM personas.personas
 WHERE ` + dueWhere + `
 ORDER BY ` + dueOrder + `
 LIMIT ?5::integer`

// claimSQL: dueWhere's arguments, then ?5 the limit, ?6 the runner, ?7 the
// end of the lease, ?8 one fresh token per row that may be claimed, ?9 the
// lease in seconds. Tokens are numbered in user id order and joined to the
// claimed rows by that number; only their SHA-256 is stored.
const claimSQL = `
WITH due AS (
    SELECT user_id
      FROM personas.personas
     WHERE ` + dueWhere + `
     ORDER BY ` + dueOrder + `
     LIMIT ?5::integer
       FOR UPDATE SKIP LOCKED
), numbered AS (
    SELECT user_id, row_number() OVER (ORDER BY user_id) AS rn FROM due
), upd AS (
    UPDATE personas.personas AS p
       SET lease_owner = ?6::text, lease_expires_at = ?7::timestamptz,
           lease_token_hash = sha256(convert_to(t.token, 'UTF8')), lease_seconds = ?9::integer,
           lease_tick_id = NULL
      FROM numbered JOIN unnest(?8::text[]) WITH ORDINALITY AS t(token, rn) ON t.rn = numbered.rn
     WHERE p.user_id = numbered.user_id
 RETURNING p.user_id, p.updated_at, p.last_active_at, p.last_done_at, p.max_history_days,
           p.consecutive_failures + 1 AS attempt, t.token AS lease_token, p.lease_expires_at
)
SELECT user_id, updated_at, last_active_at, max_history_days, attempt, lease_token, lease_expires_at
  FROM upd
 ORDER BY ` + dueOrder

// leaseCleared ends a lease (SET list).
const leaseCleared = `lease_owner = NULL, lease_expires_at = NULL, lease_token_hash = NULL,
       lease_seconds = NULL, lease_tick_id = NULL`

// failureSet counts one consecutive failure of persona p (SET list): the
// next attempt waits min·2^(failures-1), capped at max (0: the cadence's
// period), minus up to 20% jitter but never below min; the failure that
// reaches the quarantine threshold quarantines. Arguments are SQL
// expressions: now, min and max in seconds, the threshold.
func failureSet(now, minSecs, maxSecs, quarantineAfter string) string {
	return fmt.Sprintf(`consecutive_failures = p.consecutive_failures + 1,
       next_attempt_at = %[1]s + make_interval(secs => GREATEST(%[2]s, LEAST(
           CASE WHEN %[3]s > 0 THEN %[3]s WHEN p.tick_cadence = 'hourly' THEN 3600 ELSE 86400 END,
           %[2]s * power(2, LEAST(p.consecutive_failures, 40))) * (1 - 0.2 * random()))),
       quarantined_at = CASE WHEN p.consecutive_failures + 1 >= %[4]s
                             THEN COALESCE(p.quarantined_at, %[1]s) ELSE p.quarantined_at END`,
		now, minSecs, maxSecs, quarantineAfter)
}

// sweepSQL turns lapsed leases into crashes, each exactly once: the row is
// locked (SKIP LOCKED: a concurrent sweep or finish owns it) and its token
// hash cleared in the same statement, so no later sweep sees it again. It
// also reads the fleet's pause flag, saving /due a round trip.
// Arguments: ?0 now, ?1 backoff min (s), ?2 backoff max (s, 0 = period),
// ?3 quarantine threshold.
var sweepSQL = `
WITH lapsed AS (
    SELECT user_id, lease_tick_id, lease_expires_at
      FROM personas.personas
     WHERE lease_token_hash IS NOT NULL AND lease_expires_at <= ?0::timestamptz
     ORDER BY lease_expires_at
     LIMIT ` + fmt.Sprint(sweepBatch) + `
       FOR UPDATE SKIP LOCKED
), crashed AS (
    UPDATE personas.personas AS p
       SET ` + failureSet("?0::timestamptz", "?1::float8", "?2::float8", "?3::integer") + `,
           ` + leaseCleared + `,
           last_tick_status = 'crashed', last_tick_finished_at = lapsed.lease_expires_at
      FROM lapsed
     WHERE p.user_id = lapsed.user_id
 RETURNING p.user_id
), ticks AS (
    UPDATE personas.persona_ticks AS t
       SET status = 'crashed', finished_at = lapsed.lease_expires_at
      FROM lapsed
     WHERE t.persona_id = lapsed.user_id AND t.tick_id = lapsed.lease_tick_id AND t.status = 'running'
)
SELECT COALESCE((SELECT paused FROM personas.runner_state), false) AS paused,
       (SELECT count(*) FROM crashed) AS crashed`

// dueArgs are the schedule's arguments at now on the real calendar (UTC):
// now, the start of its hour and of its day, the hour of day, and whether
// the day is a weekday.
func dueArgs(now time.Time) []any { return calendarArgs(now, 24*time.Hour) }

// scheduleArgs are dueArgs on the store's calendar: the real one, or with
// WithDayLength a compressed one.
func (s *Store) scheduleArgs(now time.Time) []any {
	if s.dayLength > 0 {
		return calendarArgs(now, s.dayLength)
	}
	return dueArgs(now)
}

// calendarArgs are dueArgs on a calendar whose days last dayLen, each of 24
// equal hours, counted from the Unix epoch (a UTC midnight, and a
// Thursday), so every replica agrees on it; 24h is the real UTC calendar.
func calendarArgs(now time.Time, dayLen time.Duration) []any {
	ns := now.UnixNano()
	day := ns / int64(dayLen)
	if ns%int64(dayLen) < 0 {
		day--
	}
	dayStart := time.Unix(0, day*int64(dayLen)).UTC()
	hourLen := dayLen / 24
	hour := min(int(now.Sub(dayStart)/hourLen), 23)
	wd := time.Weekday(((day+4)%7 + 7) % 7)
	weekday := wd != time.Saturday && wd != time.Sunday
	return []any{now, dayStart.Add(time.Duration(hour) * hourLen), dayStart, hour, weekday}
}

// sweep detects crashes (leases that lapsed without a finish) and reports
// whether the fleet is paused. Due and Claim run it first: crashes are
// found when the schedule is next looked at, with no background loop.
func (s *Store) sweep(ctx context.Context, now time.Time) (paused bool, err error) {
	var crashed int
	b := s.mustBind("sweep", BindInput{Now: now})
	err = s.queryRowPrepared(ctx, b.Name, b.Args...).Scan(&paused, &crashed)
	if err != nil {
		return false, fmt.Errorf("sweep lapsed leases: %w", translate(err))
	}
	return paused, nil
}

func (s *Store) failureArgs(now time.Time) []any {
	return []any{now, s.backoffMin.Seconds(), s.backoffMax.Seconds(), s.quarantineAfter}
}

// Due returns up to limit due personas (nil means DefaultDueLimit) without
// leasing them, and the time the answer was computed at. It first turns
// lapsed leases into crashes (see Claim).
func (s *Store) Due(ctx context.Context, limit *int) (DueResult, error) {
	now := s.Now()
	res := DueResult{Personas: []DuePersona{}, ServerTime: now}
	n := DefaultDueLimit
	if limit != nil {
		if *limit < 1 || *limit > MaxDueLimit {
			return res, errs.InvalidField("limit", "must be an integer from 1 to %d", MaxDueLimit)
		}
		n = *limit
	}
	paused, err := s.sweep(ctx, now)
	if err != nil || paused {
		res.Paused = paused
		return res, err
	}
	b := s.mustBind("due", BindInput{Now: now, Limit: n})
	if res.Personas, err = s.queryDue(ctx, b, false); err != nil {
		return res, fmt.Errorf("list due personas: %w", translate(err))
	}
	res.Personas, err = s.fillProfiles(ctx, res.Personas)
	return res, err
}

// queryDue runs the due or claim statement and scans its rows (the
// columns in their SELECT order; claims add the lease's two) without
// reflection: this is the runner's hottest path, so it reads through pgx
// itself rather than database/sql, whose per-value conversion was a
// quarter of GET /due's CPU in a profile (−12% of its CPU at 32
// connections). As database/sql would, a statement that failed before
// reaching the server (a pooled connection the server had closed) drops
// that connection and runs once more on another.
func (s *Store) queryDue(ctx context.Context, b Bound, claim bool) ([]DuePersona, error) {
	out, err := s.queryDueOnce(ctx, b, claim)
	if err != nil && pgconn.SafeToRetry(err) && ctx.Err() == nil {
		out, err = s.queryDueOnce(ctx, b, claim)
	}
	return out, err
}

func (s *Store) queryDueOnce(ctx context.Context, b Bound, claim bool) ([]DuePersona, error) {
	conn, err := s.db.DB.Conn(ctx)
	if err != nil {
		return nil, err
	}
	defer func() { _ = conn.Close() }()
	out := []DuePersona{}
	err = conn.Raw(func(dc any) error {
		rows, err := dc.(*stdlib.Conn).Conn().Query(ctx, b.SQL, execArgs(b.Args)...)
		if err != nil {
			if pgconn.SafeToRetry(err) {
				// database/sql discards the connection.
				return errors.Join(driver.ErrBadConn, err)
			}
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var d DuePersona
			dest := []any{&d.UserID, &d.UpdatedAt, &d.LastActiveAt, &d.MaxHistoryDays, &d.Attempt}
			if claim {
				dest = append(dest, &d.LeaseToken, &d.LeaseExpiresAt)
			}
			if err := rows.Scan(dest...); err != nil {
				return err
			}
			out = append(out, d)
		}
		return rows.Err()
	})
	return out, err
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
	if r.LeaseSeconds != nil {
		checkLease(&p, time.Duration(*r.LeaseSeconds)*time.Second)
		if *r.LeaseSeconds == 0 {
			checkLease(&p, -1)
		}
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

func checkLease(p *Problems, d time.Duration) {
	if d != 0 && (d < MinLease || d > MaxLease) {
		p.Add("leaseSeconds", "must be an integer from %d to %d", int(MinLease.Seconds()), int(MaxLease.Seconds()))
	}
}

// Claim atomically leases up to Limit due personas to the runner and
// returns them in due order, each with its own lease token, the lease's end
// and the attempt number. One statement selects the rows FOR UPDATE SKIP
// LOCKED and stamps the lease, so concurrent claimers never receive the
// same persona: a row another claimer holds is skipped, and one it has just
// leased fails the due condition on recheck. Before claiming, lapsed leases
// are counted as crashes (one failure each, exactly once).
func (s *Store) Claim(ctx context.Context, req ClaimRequest) (DueResult, error) {
	now := s.Now()
	res := DueResult{Personas: []DuePersona{}, ServerTime: now}
	if err := req.Validate(); err != nil {
		return res, err
	}
	limit := DefaultClaimLimit
	if req.Limit != nil {
		limit = *req.Limit
	}
	paused, err := s.sweep(ctx, now)
	if err != nil || paused {
		res.Paused = paused
		return res, err
	}
	b := s.mustBind("claim", BindInput{Now: now, Limit: limit, RunnerID: req.RunnerID, Lease: req.Lease()})
	if res.Personas, err = s.queryDue(ctx, b, true); err != nil {
		return res, fmt.Errorf("claim due personas: %w", translate(err))
	}
	// A persona deleted between the claim and this read is dropped: its
	// lease went with its row.
	res.Personas, err = s.fillProfiles(ctx, res.Personas)
	return res, err
}

// newLeaseToken returns 128 random bits, base64url without padding.
func newLeaseToken() string {
	b := make([]byte, leaseTokenBytes)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b)
}

// hashToken is what the store keeps of a token, equal to the SQL
// sha256(convert_to(token, 'UTF8')) used by the claim.
func hashToken(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// DefaultTickHour is the tick hour of a persona without its own: the first
// four bytes of md5(userID), big-endian, modulo 24. It is the same number
// as the generated column auto_tick_hour, so Go and SQL agree.
func DefaultTickHour(userID string) int {
	h := md5.Sum([]byte(userID)) //nolint:gosec // see the import
	return int(binary.BigEndian.Uint32(h[:4]) % 24)
}
