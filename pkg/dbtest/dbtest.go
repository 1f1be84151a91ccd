// Package dbtest gives each test its own PostgreSQL database, so tests run in
// parallel and never see each other's rows.
//
// A database is cloned from a template built once per schema version (the
// template's name carries a hash of whatever the caller says defines it, such
// as the migration files), which makes a fresh, migrated database cost one
// CREATE DATABASE ... TEMPLATE. Databases are dropped when the test ends.
//
// The server comes from DATABASE_URL, or postgres@127.0.0.1:5432. If it does
// not answer, the test fails with instructions: tests never skip for a
// missing database.
//
// A test that must stop, restart or crash its server takes a whole one of
// its own instead: PrivateCluster (initdb and pg_ctl on a free port). The
// shared server is never stopped or reconfigured by a test.
package dbtest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"hash/fnv"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
)

// DefaultURL is used when DATABASE_URL is unset.
const DefaultURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// ServerURL returns the URL of the server tests create databases on.
func ServerURL() string {
	if u := os.Getenv("DATABASE_URL"); u != "" {
		return u
	}
	return DefaultURL
}

// Template describes a database that tests clone.
type Template struct {
	// Name is a short prefix such as "personas"; letters, digits, underscore.
	Name string
	// Version identifies the template's content (for example a hash of the
	// migration files). A new version builds a new template.
	Version string
	// Setup fills a fresh, empty database reachable at dsn.
	Setup func(ctx context.Context, dsn string) error
}

// New returns the URL of a fresh database cloned from tmpl, dropped when t ends.
func New(t testing.TB, tmpl Template) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	admin := openAdmin(t)
	name, err := ensureTemplate(ctx, admin, tmpl)
	if err != nil {
		t.Fatalf("dbtest: building template %q: %v", tmpl.Name, err)
	}
	return create(ctx, t, admin, tmpl.Name, name)
}

// Empty returns the URL of a fresh, empty database, dropped when t ends.
func Empty(t testing.TB, prefix string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return create(ctx, t, openAdmin(t), prefix, "template0")
}

// WithDatabase returns base with its database name replaced by name.
func WithDatabase(base, name string) (string, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return "", fmt.Errorf("DATABASE_URL must be a postgres:// URL for tests")
	}
	u.Path = "/" + name
	return u.String(), nil
}

func openAdmin(t testing.TB) *sql.DB {
	t.Helper()
	dsn := ServerURL()
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatalf("dbtest: %v", err)
	}
	t.Cleanup(func() { _ = db.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		t.Fatalf("dbtest: PostgreSQL is not reachable at %s: %v\n"+
			"  Start it with `make db` (finds, starts or installs PostgreSQL and prints its URL),\n"+
			"  or set DATABASE_URL to a server where this role may CREATE DATABASE.",
			redact(dsn), err)
	}
	return db
}

func create(ctx context.Context, t testing.TB, admin *sql.DB, prefix, template string) string {
	t.Helper()
	name := fmt.Sprintf("t_%s_%s_%s", prefix, slug(t.Name()), randomSuffix())
	var err error
	// CREATE DATABASE ... TEMPLATE fails while another session is connected
	// to the template (only possible while it is being built); retry briefly.
	for attempt := 0; attempt < 20; attempt++ {
		_, err = admin.ExecContext(ctx, fmt.Sprintf(`CREATE DATABASE %q TEMPLATE %q`, name, template))
		if err == nil || !strings.Contains(err.Error(), "being accessed by other users") {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("dbtest: creating database %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := admin.ExecContext(ctx, fmt.Sprintf(`DROP DATABASE IF EXISTS %q WITH (FORCE)`, name)); err != nil {
			t.Errorf("dbtest: dropping database %s: %v", name, err)
		}
	})
	dsn, err := WithDatabase(ServerURL(), name)
	if err != nil {
		t.Fatalf("dbtest: %v", err)
	}
	return dsn
}

// ensureTemplate builds the template database once per version. Concurrent
// test binaries serialise on an advisory lock; a template is renamed to its
// final name only when complete, so a crashed build is never cloned.
func ensureTemplate(ctx context.Context, admin *sql.DB, tmpl Template) (string, error) {
	sum := sha256.Sum256([]byte(tmpl.Version))
	final := fmt.Sprintf("tmpl_%s_%s", tmpl.Name, hex.EncodeToString(sum[:6]))
	building := final + "_building"

	conn, err := admin.Conn(ctx)
	if err != nil {
		return "", err
	}
	defer func() { _ = conn.Close() }()
	h := fnv.New64a()
	_, _ = h.Write([]byte(final))
	key := int64(h.Sum64() >> 1)
	if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock($1)`, key); err != nil {
		return "", fmt.Errorf("advisory lock: %w", err)
	}
	defer func() { _, _ = conn.ExecContext(context.Background(), `SELECT pg_advisory_unlock($1)`, key) }()

	var exists bool
	if err := conn.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, final).Scan(&exists); err != nil {
		return "", err
	}
	if exists {
		return final, nil
	}
	if _, err := conn.ExecContext(ctx, fmt.Sprintf(`DROP DATABASE IF EXISTS %q WITH (FORCE)`, building)); err != nil {
		return "", err
	}
	if _, err := conn.ExecContext(ctx, fmt.Sprintf(`CREATE DATABASE %q TEMPLATE template0`, building)); err != nil {
		return "", err
	}
	dsn, err := WithDatabase(ServerURL(), building)
	if err != nil {
		return "", err
	}
	if err := tmpl.Setup(ctx, dsn); err != nil {
		return "", err
	}
	// Setup's connections must be gone before the rename and before cloning.
	if _, err := conn.ExecContext(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1`, building); err != nil {
		return "", err
	}
	if _, err := conn.ExecContext(ctx, fmt.Sprintf(`ALTER DATABASE %q RENAME TO %q`, building, final)); err != nil {
		return "", err
	}
	return final, nil
}

func slug(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	out := b.String()
	if len(out) > 24 {
		out = out[:24]
	}
	return out
}

func randomSuffix() string {
	var b [5]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func redact(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}
