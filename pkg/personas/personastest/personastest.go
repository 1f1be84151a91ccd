// Package personastest gives a test its own migrated personas database.
package personastest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"sync"
	"testing"
	"time"

	"github.com/mana/personas/pkg/dbtest"
	"github.com/mana/personas/pkg/personas"
)

// Template is the migrated personas schema, versioned by the migrations'
// content so a changed migration builds a new template.
func Template() dbtest.Template {
	ms, err := personas.Migrations()
	h := sha256.New()
	for _, m := range ms {
		h.Write([]byte(m.Name))
		h.Write([]byte(m.SQL))
	}
	version := hex.EncodeToString(h.Sum(nil))
	return dbtest.Template{
		Name:    "personas",
		Version: version,
		Setup: func(ctx context.Context, dsn string) error {
			if err != nil {
				return err
			}
			db, err := personas.OpenDB(dsn, personas.PoolConfig{MaxConns: 2})
			if err != nil {
				return err
			}
			defer func() { _ = db.Close() }()
			_, err = personas.Migrate(ctx, db)
			return err
		},
	}
}

// NewDSN returns the URL of a fresh, migrated database, dropped when t ends.
func NewDSN(t testing.TB) string {
	t.Helper()
	return dbtest.New(t, Template())
}

// maxConns bounds each test's pool: enough for the concurrency tests (8
// runners), small enough that parallel tests of several packages stay well
// inside the shared server's max_connections (100 by default).
const maxConns = 10

// New returns a store over a fresh, migrated database.
func New(t testing.TB, opts ...personas.Option) *personas.Store {
	t.Helper()
	db, err := personas.OpenDB(NewDSN(t), personas.PoolConfig{MaxConns: maxConns})
	if err != nil {
		t.Fatalf("personastest: %v", err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return personas.New(db, opts...)
}

// Clock is a settable clock for personas.WithClock, safe for concurrent use.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a clock stopped at t.
func NewClock(t time.Time) *Clock { return &Clock{t: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Set moves the clock to t.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}
