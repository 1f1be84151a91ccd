package personas

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"
)

// Store is the personas store. It is safe for concurrent use.
type Store struct {
	db  *bun.DB
	now func() time.Time

	backoffMin      time.Duration
	backoffMax      time.Duration // 0: the cadence's period
	quarantineAfter int
	dayLength       time.Duration // 0: the real calendar (see WithDayLength)

	profiles *profileCache // /due and claims (profiles.go)
}

// Defaults of the failure policy (see WithBackoff, WithQuarantineAfter).
const (
	DefaultBackoffMin      = time.Minute
	DefaultQuarantineAfter = 5
)

// Option configures a Store.
type Option func(*Store)

// WithClock replaces the wall clock. Every timestamp the store writes or
// compares (activity, due rules, leases, the 7-day window) comes from it, so
// tests can move time without sleeping.
func WithClock(now func() time.Time) Option {
	return func(s *Store) { s.now = now }
}

// WithBackoff sets the delay after a failed tick: min after the first
// consecutive failure, doubling with each further one, capped at max (0
// means the persona's cadence period: one hour or one day). Non-positive
// min keeps DefaultBackoffMin.
func WithBackoff(minDelay, maxDelay time.Duration) Option {
	return func(s *Store) {
		if minDelay > 0 {
			s.backoffMin = minDelay
		}
		if maxDelay > 0 {
			s.backoffMax = max(maxDelay, s.backoffMin)
		} else {
			s.backoffMax = 0
		}
	}
}

// WithQuarantineAfter sets how many consecutive failures quarantine a
// persona (n < 1 keeps DefaultQuarantineAfter).
func WithQuarantineAfter(n int) Option {
	return func(s *Store) {
		if n >= 1 {
			s.quarantineAfter = n
		}
	}
}

// WithDayLength runs the schedule (which personas are due and may be
// claimed) on a compressed calendar whose days last d instead of 24 hours,
// each with 24 "hours" of d/24 and the week's weekdays and weekend in turn.
// It exists for local development (make dev), where a daily persona
// would otherwise be done for the day after one good tick and the
// simulator would fall silent; services refuse it in production. Zero,
// under a minute or 24h is the real calendar. Everything else (timestamps,
// leases, backoff, the 7-day windows, the overdue rule) keeps real time.
func WithDayLength(d time.Duration) Option {
	return func(s *Store) {
		if d >= time.Minute && d < 24*time.Hour {
			s.dayLength = d
		}
	}
}

// PoolConfig bounds the connection pool.
type PoolConfig struct {
	MaxConns        int
	ConnMaxLifetime time.Duration
	ConnectTimeout  time.Duration
}

// OpenDB opens a pool to dsn (a postgres:// URL or key=value string) with
// pgx's simple protocol, as bun formats queries itself. It does not connect.
func OpenDB(dsn string, pc PoolConfig) (*bun.DB, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		// pgx's message may quote the DSN, password included: do not wrap it.
		return nil, errors.New("invalid DATABASE_URL: cannot parse it as a PostgreSQL connection string")
	}
	cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	if pc.ConnectTimeout > 0 {
		cfg.ConnectTimeout = pc.ConnectTimeout
	} else if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = 5 * time.Second
	}
	if cfg.RuntimeParams == nil {
		cfg.RuntimeParams = map[string]string{}
	}
	if _, ok := cfg.RuntimeParams["application_name"]; !ok {
		cfg.RuntimeParams["application_name"] = "personas"
	}
	sqldb := stdlib.OpenDB(*cfg)
	maxConns := pc.MaxConns
	if maxConns <= 0 {
		maxConns = 10
	}
	sqldb.SetMaxOpenConns(maxConns)
	sqldb.SetMaxIdleConns(maxConns)
	if pc.ConnMaxLifetime > 0 {
		sqldb.SetConnMaxLifetime(pc.ConnMaxLifetime)
	} else {
		sqldb.SetConnMaxLifetime(30 * time.Minute)
	}
	return bun.NewDB(sqldb, pgdialect.New()), nil
}

// New returns a store over db.
func New(db *bun.DB, opts ...Option) *Store {
	s := &Store{db: db, now: time.Now, backoffMin: DefaultBackoffMin, quarantineAfter: DefaultQuarantineAfter,
		profiles: newProfileCache()}
	for _, o := range opts {
		o(s)
	}
	return s
}

// DB returns the underlying pool (for migrations, health and metrics).
func (s *Store) DB() *bun.DB { return s.db }

// Now returns the store's current time in UTC, truncated to microseconds
// (PostgreSQL's resolution), so what is written reads back equal.
func (s *Store) Now() time.Time { return s.now().UTC().Truncate(time.Microsecond) }

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.db.PingContext(ctx); err != nil {
		return fmt.Errorf("ping database: %w", err)
	}
	return nil
}

// CheckSchema returns nil when the schema is at the version this code
// expects, and an error wrapping ErrSchemaNotReady (with the version found)
// when it is missing or behind.
func (s *Store) CheckSchema(ctx context.Context) error {
	pending, err := PendingVersions(ctx, s.db)
	if err != nil {
		return err
	}
	if len(pending) > 0 {
		v, err := SchemaVersion(ctx, s.db)
		if err != nil {
			return err
		}
		return SchemaError(fmt.Sprintf("database schema is at version %d, this binary needs %d (pending: %v)", v, LatestVersion(), pending))
	}
	return nil
}

// InTx runs fn in a transaction, committed when fn returns nil.
func (s *Store) InTx(ctx context.Context, fn func(ctx context.Context, tx bun.Tx) error) error {
	return translate(s.db.RunInTx(ctx, nil, fn))
}
