package personas

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/uptrace/bun"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// migrationLockKey is the pg_advisory_lock key that serialises migrations
// across replicas starting at once ("personas" in ASCII).
const migrationLockKey int64 = 0x706572736f6e6173

// Migration is one numbered, embedded SQL file.
type Migration struct {
	Version int
	Name    string
	SQL     string
}

// Migrations returns the embedded migrations in version order.
func Migrations() ([]Migration, error) {
	entries, err := fs.ReadDir(migrationFS, "migrations")
	if err != nil {
		return nil, fmt.Errorf("read migrations: %w", err)
	}
	var out []Migration
	for _, e := range entries {
		name := e.Name()
		num, _, ok := strings.Cut(name, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("migration %q: name must be NNNN_description.sql", name)
		}
		body, err := fs.ReadFile(migrationFS, "migrations/"+name)
		if err != nil {
			return nil, fmt.Errorf("read migration %s: %w", name, err)
		}
		out = append(out, Migration{Version: v, Name: strings.TrimSuffix(name, ".sql"), SQL: string(body)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	for i := 1; i < len(out); i++ {
		if out[i].Version == out[i-1].Version {
			return nil, fmt.Errorf("migration %s: version %d is used twice", out[i].Name, out[i].Version)
		}
	}
	// A gap is allowed: branches developed in parallel reserve numbers
	// (0004 and 0005 were), and Migrate applies every version the database
	// lacks, not only those above its highest.
	return out, nil
}

// LatestVersion is the highest version the code has (see CheckSchema for
// "current": every embedded version applied).
func LatestVersion() int {
	ms, err := Migrations()
	if err != nil || len(ms) == 0 {
		return 0
	}
	return ms[len(ms)-1].Version
}

// SchemaVersion returns the version the database is at (0 when the schema or
// its bookkeeping table does not exist yet).
func SchemaVersion(ctx context.Context, db bun.IDB) (int, error) {
	var exists bool
	if err := db.NewRaw(`SELECT to_regclass('personas.schema_migrations') IS NOT NULL`).Scan(ctx, &exists); err != nil {
		return 0, fmt.Errorf("check schema: %w", translate(err))
	}
	if !exists {
		return 0, nil
	}
	var v int
	if err := db.NewRaw(`SELECT COALESCE(max(version), 0) FROM personas.schema_migrations`).Scan(ctx, &v); err != nil {
		return 0, fmt.Errorf("read schema version: %w", translate(err))
	}
	return v, nil
}

// Migrate applies every pending migration, each in its own transaction,
// under an advisory lock so that replicas starting together apply each
// migration exactly once. It is idempotent. It returns the versions applied.
func Migrate(ctx context.Context, db *bun.DB) ([]int, error) {
	ms, err := Migrations()
	if err != nil {
		return nil, err
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("migrate: connect: %w", err)
	}
	defer func() { _ = conn.Close() }()

	if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock(?)`, migrationLockKey); err != nil {
		return nil, fmt.Errorf("migrate: advisory lock: %w", err)
	}
	defer func() {
		// A fresh context: the caller's may be cancelled, the lock must go.
		_, _ = conn.ExecContext(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock(?)`, migrationLockKey)
	}()

	if _, err := conn.ExecContext(ctx, `CREATE SCHEMA IF NOT EXISTS personas;
CREATE TABLE IF NOT EXISTS personas.schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)`); err != nil {
		return nil, fmt.Errorf("migrate: bookkeeping table: %w", err)
	}
	done, err := appliedVersions(ctx, conn)
	if err != nil {
		return nil, err
	}
	known := map[int]bool{}
	for _, m := range ms {
		known[m.Version] = true
	}
	for v := range done {
		if !known[v] {
			return nil, fmt.Errorf("migrate: database has version %d, which this binary does not know (its newest is %d): deploy the newer binary", v, LatestVersion())
		}
	}
	var applied []int
	for _, m := range ms {
		if done[m.Version] {
			continue
		}
		err := conn.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
			if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, `INSERT INTO personas.schema_migrations (version, name) VALUES (?, ?)`, m.Version, m.Name)
			return err
		})
		if err != nil {
			return applied, fmt.Errorf("migrate: apply %s: %w", m.Name, err)
		}
		applied = append(applied, m.Version)
	}
	return applied, nil
}

// appliedVersions returns the versions recorded in schema_migrations
// (none when the table does not exist yet).
func appliedVersions(ctx context.Context, db bun.IDB) (map[int]bool, error) {
	out := map[int]bool{}
	var exists bool
	if err := db.NewRaw(`SELECT to_regclass('personas.schema_migrations') IS NOT NULL`).Scan(ctx, &exists); err != nil {
		return nil, fmt.Errorf("check schema: %w", translate(err))
	}
	if !exists {
		return out, nil
	}
	var vs []int
	if err := db.NewRaw(`SELECT version FROM personas.schema_migrations`).Scan(ctx, &vs); err != nil {
		return nil, fmt.Errorf("read schema versions: %w", translate(err))
	}
	for _, v := range vs {
		out[v] = true
	}
	return out, nil
}

// PendingVersions returns the embedded versions the database has not applied.
func PendingVersions(ctx context.Context, db bun.IDB) ([]int, error) {
	ms, err := Migrations()
	if err != nil {
		return nil, err
	}
	done, err := appliedVersions(ctx, db)
	if err != nil {
		return nil, err
	}
	var out []int
	for _, m := range ms {
		if !done[m.Version] {
			out = append(out, m.Version)
		}
	}
	return out, nil
}

// MigrateUntilDone applies migrations, retrying with backoff while the
// database is unreachable, until it succeeds or ctx ends. Services run it
// in the background when auto-migration is on, so a database that is down
// at start delays readiness instead of crash-looping the pod.
func MigrateUntilDone(ctx context.Context, db *bun.DB, logger *slog.Logger) {
	delay := time.Second
	for {
		applied, err := Migrate(ctx, db)
		if err == nil {
			if len(applied) > 0 {
				logger.Info("migrations applied", "applied", applied, "version", LatestVersion())
			}
			return
		}
		if ctx.Err() != nil {
			return
		}
		logger.Warn("auto-migration failed; retrying", "error", err.Error(), "retry_in", delay.String())
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		delay = min(delay*2, 30*time.Second)
	}
}
