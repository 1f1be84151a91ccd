package devauth

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
)

// errNotFound is the store's "no such row"; handlers turn it into 404.
var errNotFound = errors.New("not found")

// schemaLockKey serialises schema creation and first-key generation across
// stand-in processes sharing a database.
const schemaLockKey = 0x6d616e61617574 // "manaaut"

// schema is idempotent: the stand-in runs it at every start, so a fresh
// database needs no manual step and a restart keeps every user and the key.
const schema = `
CREATE SCHEMA IF NOT EXISTS mana_auth_dev;
CREATE TABLE IF NOT EXISTS mana_auth_dev.users (
	id             text PRIMARY KEY,
	email          text NOT NULL,
	name           text NOT NULL DEFAULT '',
	password_hash  text NOT NULL,
	role           text NOT NULL DEFAULT 'user',
	kind           text NOT NULL DEFAULT 'human',
	access_tier    text NOT NULL DEFAULT 'public',
	email_verified boolean NOT NULL DEFAULT false,
	image          text,
	created_at     timestamptz NOT NULL DEFAULT now(),
	updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX IF NOT EXISTS users_email_lower ON mana_auth_dev.users (lower(email));
CREATE TABLE IF NOT EXISTS mana_auth_dev.sessions (
	id         text PRIMARY KEY,
	token      text NOT NULL UNIQUE,
	user_id    text NOT NULL REFERENCES mana_auth_dev.users (id) ON DELETE CASCADE,
	created_at timestamptz NOT NULL DEFAULT now(),
	expires_at timestamptz NOT NULL
);
CREATE TABLE IF NOT EXISTS mana_auth_dev.signing_keys (
	kid        text PRIMARY KEY,
	seed       bytea NOT NULL,
	created_at timestamptz NOT NULL DEFAULT now()
);
`

// user is a row of mana_auth_dev.users.
type user struct {
	ID            string
	Email         string
	Name          string
	PasswordHash  string
	Role          string
	Kind          string
	AccessTier    string
	EmailVerified bool
	Image         sql.NullString
	CreatedAt     time.Time
	UpdatedAt     time.Time
}

const userColumns = `id, email, name, password_hash, role, kind, access_tier, email_verified, image, created_at, updated_at`

type scanner interface{ Scan(dest ...any) error }

func scanUser(row scanner) (*user, error) {
	var u user
	err := row.Scan(&u.ID, &u.Email, &u.Name, &u.PasswordHash, &u.Role, &u.Kind, &u.AccessTier,
		&u.EmailVerified, &u.Image, &u.CreatedAt, &u.UpdatedAt)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errNotFound
	}
	if err != nil {
		return nil, err
	}
	return &u, nil
}

// store is the stand-in's persistence in schema mana_auth_dev.
type store struct{ db *sql.DB }

func openStore(ctx context.Context, dsn string) (*store, error) {
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, fmt.Errorf("opening database: %w", err)
	}
	db.SetMaxOpenConns(10)
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := db.PingContext(pctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("connecting to database: %w", err)
	}
	return &store{db: db}, nil
}

// inLockedTx runs f in a transaction holding the stand-in's advisory lock.
func (s *store) inLockedTx(ctx context.Context, f func(tx *sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(schemaLockKey)); err != nil {
		return fmt.Errorf("advisory lock: %w", err)
	}
	if err := f(tx); err != nil {
		return err
	}
	return tx.Commit()
}

func (s *store) migrate(ctx context.Context) error {
	return s.inLockedTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, schema); err != nil {
			return fmt.Errorf("creating schema mana_auth_dev: %w", err)
		}
		return nil
	})
}

// signingKey returns the persisted Ed25519 key, creating it on first start.
func (s *store) signingKey(ctx context.Context) (kid string, key ed25519.PrivateKey, err error) {
	err = s.inLockedTx(ctx, func(tx *sql.Tx) error {
		var seed []byte
		err := tx.QueryRowContext(ctx,
			`SELECT kid, seed FROM mana_auth_dev.signing_keys ORDER BY created_at DESC, kid LIMIT 1`).Scan(&kid, &seed)
		if errors.Is(err, sql.ErrNoRows) {
			kid = randomID(32)
			_, priv, gerr := ed25519.GenerateKey(rand.Reader)
			if gerr != nil {
				return gerr
			}
			seed = priv.Seed()
			if _, err := tx.ExecContext(ctx,
				`INSERT INTO mana_auth_dev.signing_keys (kid, seed) VALUES ($1, $2)`, kid, seed); err != nil {
				return fmt.Errorf("storing signing key: %w", err)
			}
		} else if err != nil {
			return fmt.Errorf("loading signing key: %w", err)
		}
		if len(seed) != ed25519.SeedSize {
			return fmt.Errorf("stored signing key %s has a bad seed length %d", kid, len(seed))
		}
		key = ed25519.NewKeyFromSeed(seed)
		return nil
	})
	return kid, key, err
}

// createUser inserts u; ok is false when the email is taken (any case).
func (s *store) createUser(ctx context.Context, u *user) (created *user, ok bool, err error) {
	row := s.db.QueryRowContext(ctx, `
		INSERT INTO mana_auth_dev.users (id, email, name, password_hash, role)
		VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT ((lower(email))) DO NOTHING
		RETURNING `+userColumns, u.ID, u.Email, u.Name, u.PasswordHash, u.Role)
	created, err = scanUser(row)
	if errors.Is(err, errNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("inserting user: %w", err)
	}
	return created, true, nil
}

// ensureAdmin creates or updates the configured admin account: role admin,
// verified, and the configured password, so a changed password takes effect
// at the next start.
func (s *store) ensureAdmin(ctx context.Context, id, email, name, hash string) error {
	_, err := s.db.ExecContext(ctx, `
		INSERT INTO mana_auth_dev.users (id, email, name, password_hash, role, email_verified)
		VALUES ($1, $2, $3, $4, 'admin', true)
		ON CONFLICT ((lower(email))) DO UPDATE
		SET password_hash = EXCLUDED.password_hash, role = 'admin', email_verified = true, updated_at = now()`,
		id, email, name, hash)
	if err != nil {
		return fmt.Errorf("ensuring admin account: %w", err)
	}
	return nil
}

func (s *store) userByEmail(ctx context.Context, email string) (*user, error) {
	return scanUser(s.db.QueryRowContext(ctx,
		`SELECT `+userColumns+` FROM mana_auth_dev.users WHERE lower(email) = lower($1)`, email))
}

func (s *store) userByID(ctx context.Context, id string) (*user, error) {
	return scanUser(s.db.QueryRowContext(ctx,
		`SELECT `+userColumns+` FROM mana_auth_dev.users WHERE id = $1`, id))
}

func (s *store) createSession(ctx context.Context, userID string, ttl time.Duration) (id, token string, err error) {
	id, token = randomID(32), randomID(32)
	_, err = s.db.ExecContext(ctx, `
		INSERT INTO mana_auth_dev.sessions (id, token, user_id, expires_at)
		VALUES ($1, $2, $3, now() + make_interval(secs => $4))`, id, token, userID, ttl.Seconds())
	if err != nil {
		return "", "", fmt.Errorf("creating session: %w", err)
	}
	return id, token, nil
}

// searchUsers is the admin search: case-insensitive substring of email or
// name, newest first, page counted from 1.
func (s *store) searchUsers(ctx context.Context, search string, page, limit int) ([]user, int, error) {
	rows, err := s.db.QueryContext(ctx, `
		SELECT `+userColumns+`, count(*) OVER ()
		FROM mana_auth_dev.users
		WHERE $1 = '' OR strpos(lower(email), lower($1)) > 0 OR strpos(lower(name), lower($1)) > 0
		ORDER BY created_at DESC, id
		LIMIT $2 OFFSET $3`, search, limit, (page-1)*limit)
	if err != nil {
		return nil, 0, fmt.Errorf("searching users: %w", err)
	}
	defer func() { _ = rows.Close() }()
	var out []user
	total := 0
	for rows.Next() {
		var u user
		if err := rows.Scan(&u.ID, &u.Email, &u.Name, &u.PasswordHash, &u.Role, &u.Kind, &u.AccessTier,
			&u.EmailVerified, &u.Image, &u.CreatedAt, &u.UpdatedAt, &total); err != nil {
			return nil, 0, fmt.Errorf("searching users: %w", err)
		}
		out = append(out, u)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("searching users: %w", err)
	}
	if len(out) == 0 && page > 1 {
		// The window count is empty past the last page; count separately.
		if err := s.db.QueryRowContext(ctx, `
			SELECT count(*) FROM mana_auth_dev.users
			WHERE $1 = '' OR strpos(lower(email), lower($1)) > 0 OR strpos(lower(name), lower($1)) > 0`,
			search).Scan(&total); err != nil {
			return nil, 0, fmt.Errorf("counting users: %w", err)
		}
	}
	return out, total, nil
}

func (s *store) deleteUser(ctx context.Context, id string) error {
	res, err := s.db.ExecContext(ctx, `DELETE FROM mana_auth_dev.users WHERE id = $1`, id)
	if err != nil {
		return fmt.Errorf("deleting user: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return errNotFound
	}
	return nil
}

// stampPersona marks a user as a persona; repeating it changes nothing.
func (s *store) stampPersona(ctx context.Context, id string) (*user, error) {
	u, err := scanUser(s.db.QueryRowContext(ctx, `
		UPDATE mana_auth_dev.users
		SET kind = 'persona', access_tier = 'founder', email_verified = true, updated_at = now()
		WHERE id = $1
		RETURNING `+userColumns, id))
	if err != nil && !errors.Is(err, errNotFound) {
		return nil, fmt.Errorf("stamping persona: %w", err)
	}
	return u, err
}

const idAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// randomID returns n characters from idAlphabet, like Better Auth's ids.
func randomID(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("crypto/rand failed: %v", err))
	}
	for i := range b {
		b[i] = idAlphabet[int(b[i])%len(idAlphabet)]
	}
	return string(b)
}
