package personas

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// ReleaseOutcome says what a runner that gives a lease back did with it.
type ReleaseOutcome string

// The outcomes of a release.
const (
	// ReleaseAbandoned (the default): the runner stops without a verdict,
	// for example at shutdown. The schedule is unchanged: the persona is
	// due again as if never claimed.
	ReleaseAbandoned ReleaseOutcome = "abandoned"
	// ReleaseDone: the period is done, as after an ok finish.
	ReleaseDone ReleaseOutcome = "done"
	// ReleaseFailed: one consecutive failure, as after a failed finish.
	ReleaseFailed ReleaseOutcome = "failed"
)

// Valid reports whether o is a known outcome ("" counts as abandoned).
func (o ReleaseOutcome) Valid() bool {
	return o == "" || o == ReleaseAbandoned || o == ReleaseDone || o == ReleaseFailed
}

func checkToken(p *Problems, field, token string, required bool) {
	if token == "" {
		if required {
			p.Add(field, "is required")
		}
		return
	}
	checkText(p, field, token, 1, MaxLeaseTokenLen)
}

// ValidateRenew reports every problem with a renew's arguments (field
// names are the internal API's); RenewLease checks the same.
func ValidateRenew(token string, lease time.Duration) error {
	var p Problems
	checkToken(&p, "leaseToken", token, true)
	checkLease(&p, lease)
	return p.Err()
}

// ValidateRelease reports every problem with a release's arguments;
// ReleaseLease checks the same.
func ValidateRelease(token string, outcome ReleaseOutcome) error {
	var p Problems
	checkToken(&p, "leaseToken", token, true)
	if !outcome.Valid() {
		p.Add("outcome", "must be one of abandoned, done, failed")
	}
	return p.Err()
}

// RenewLease extends the lease held with token to now + lease (0: the
// length the claim asked for) and returns the new expiry. It fails with
// ErrLeaseLost when token is not the persona's current lease or the lease
// has already expired (a lapsed lease is never revived: another runner may
// be about to claim the persona), and ErrNotFound for an unknown persona.
func (s *Store) RenewLease(ctx context.Context, personaID, token string, lease time.Duration) (time.Time, error) {
	if err := ValidateRenew(token, lease); err != nil {
		return time.Time{}, err
	}
	now := s.Now()
	var secs any
	if lease > 0 {
		secs = int(lease.Truncate(time.Second).Seconds())
	}
	var until time.Time
	err := s.db.NewRaw(`
UPDATE personas.personas
   SET lease_expires_at = ?1::timestamptz + make_interval(secs => COALESCE(?3::integer, lease_seconds, ?4::integer))
 WHERE user_id = ?0 AND lease_token_hash = ?2 AND lease_expires_at > ?1::timestamptz
RETURNING lease_expires_at`, personaID, now, hashToken(token), secs, int(DefaultLease.Seconds())).Scan(ctx, &until)
	if errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, s.lostOrNotFound(ctx, personaID)
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("renew lease: %w", translate(err))
	}
	return until.UTC(), nil
}

// lostOrNotFound tells why a statement keyed by persona and token matched
// nothing.
func (s *Store) lostOrNotFound(ctx context.Context, personaID string) error {
	exists, err := s.db.NewSelect().Table("personas.personas").Where("user_id = ?", personaID).Exists(ctx)
	switch {
	case err != nil:
		return fmt.Errorf("look up persona: %w", translate(err))
	case !exists:
		return ErrNotFound
	}
	return ErrLeaseLost
}

// ReleaseLease ends the lease held with token, with the runner's verdict
// on the period (see ReleaseOutcome). A lease that lapsed but has not been
// counted as a crash yet can still be released by its holder. ErrLeaseLost
// when token is not the current lease, ErrNotFound for an unknown persona.
// Tick records are not touched: ticks are closed by FinishTick (or, bound
// to a lease that lapses, by the crash sweep).
func (s *Store) ReleaseLease(ctx context.Context, personaID, token string, outcome ReleaseOutcome) error {
	if err := ValidateRelease(token, outcome); err != nil {
		return err
	}
	set := leaseCleared
	switch outcome {
	case ReleaseDone:
		set += `, last_done_at = ?1::timestamptz, consecutive_failures = 0, next_attempt_at = NULL`
	case ReleaseFailed:
		set += ", " + failureSet("?1::timestamptz", "?3::float8", "?4::float8", "?5::integer")
	}
	now := s.Now()
	args := append([]any{personaID, now, hashToken(token)}, s.failureArgs(now)[1:]...)
	res, err := s.db.NewRaw(`
UPDATE personas.personas AS p
   SET `+set+`
 WHERE user_id = ?0 AND lease_token_hash = ?2`, args...).Exec(ctx)
	if err != nil {
		return fmt.Errorf("release lease: %w", translate(err))
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return s.lostOrNotFound(ctx, personaID)
	}
	return nil
}

// AdminReleaseLease ends whatever lease the persona has, for an operator:
// no failure is counted and the schedule is unchanged. The former holder's
// later writes are stored and reported as stale. Releasing a persona with
// no lease is not an error; ErrNotFound for an unknown persona.
func (s *Store) AdminReleaseLease(ctx context.Context, personaID string) error {
	res, err := s.db.NewRaw(`UPDATE personas.personas SET `+leaseCleared+` WHERE user_id = ?0`, personaID).Exec(ctx)
	if err != nil {
		return fmt.Errorf("release lease: %w", translate(err))
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}
