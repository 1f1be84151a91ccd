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
}

// Option configures a Store.
type Option func(*Store)

// WithClock replaces the wall clock. Every timestamp the store writes or
// compares (activity, due rules, leases, the 7-day window) comes from it, so
// tests can move time without sleeping.
func WithClock(now func() time.Time) Option {
	return func(s *Store) { s.now = now }
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
	s := &Store{db: db, now: time.Now}
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
	v, err := SchemaVersion(ctx, s.db)
	if err != nil {
		return err
	}
	if want := LatestVersion(); v < want {
		return SchemaError(fmt.Sprintf("database schema is at version %d, this binary needs %d", v, want))
	}
	return nil
}
