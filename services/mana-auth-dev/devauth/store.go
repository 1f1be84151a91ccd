package devauth

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"strings"
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
ALTER TABLE mana_auth_dev.sessions
	ADD COLUMN IF NOT EXISTS updated_at timestamptz NOT NULL DEFAULT now(),
	ADD COLUMN IF NOT EXISTS ip_address text,
	ADD COLUMN IF NOT EXISTS user_agent text;
CREATE INDEX IF NOT EXISTS sessions_user_id ON mana_auth_dev.sessions (user_id);
-- Better Auth's organization plugin: organization and member. personal_owner
-- is the stand-in's own column: the user whose personal organization this is
-- (at most one each), so creating it is idempotent and deleting the user
-- deletes it.
CREATE TABLE IF NOT EXISTS mana_auth_dev.organizations (
	id             text PRIMARY KEY,
	name           text NOT NULL,
	slug           text NOT NULL UNIQUE,
	logo           text,
	metadata       text,
	personal_owner text UNIQUE REFERENCES mana_auth_dev.users (id) ON DELETE CASCADE,
	created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS mana_auth_dev.members (
	id              text PRIMARY KEY,
	organization_id text NOT NULL REFERENCES mana_auth_dev.organizations (id) ON DELETE CASCADE,
	user_id         text NOT NULL REFERENCES mana_auth_dev.users (id) ON DELETE CASCADE,
	role            text NOT NULL DEFAULT 'member',
	created_at      timestamptz NOT NULL DEFAULT now(),
	UNIQUE (organization_id, user_id)
);
CREATE INDEX IF NOT EXISTS members_user_id ON mana_auth_dev.members (user_id);
-- Secrets the stand-in keeps across restarts (the cookie-signing HMAC key).
CREATE TABLE IF NOT EXISTS mana_auth_dev.secrets (
	name       text PRIMARY KEY,
	value      bytea NOT NULL,
	created_at timestamptz NOT NULL DEFAULT now()
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

// createUser inserts u together with its personal organization, as the
// platform does at sign-up; ok is false when the email is taken (any case).
func (s *store) createUser(ctx context.Context, u *user) (created *user, ok bool, err error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, false, err
	}
	defer func() { _ = tx.Rollback() }()
	row := tx.QueryRowContext(ctx, `
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
	if err := ensurePersonalOrg(ctx, tx, created); err != nil {
		return nil, false, err
	}
	if err := tx.Commit(); err != nil {
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

// backfillPersonalOrgs gives every user created before organizations existed
// in the stand-in (or by hand) their personal organization.
func (s *store) backfillPersonalOrgs(ctx context.Context) error {
	users, err := s.usersWithoutPersonalOrg(ctx)
	if err != nil {
		return err
	}
	for _, u := range users {
		if err := ensurePersonalOrg(ctx, s.db, u); err != nil {
			return err
		}
	}
	return nil
}

func (s *store) usersWithoutPersonalOrg(ctx context.Context) ([]*user, error) {
	rows, err := s.db.QueryContext(ctx, `
		SELECT `+userColumns+` FROM mana_auth_dev.users u
		WHERE NOT EXISTS (SELECT 1 FROM mana_auth_dev.organizations o WHERE o.personal_owner = u.id)`)
	if err != nil {
		return nil, fmt.Errorf("listing users without a personal organization: %w", err)
	}
	defer func() { _ = rows.Close() }()
	var users []*user
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, err
		}
		users = append(users, u)
	}
	return users, rows.Err()
}

// execer is what ensurePersonalOrg needs: a *sql.DB or a *sql.Tx.
type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// ensurePersonalOrg creates u's personal organization, with u as its owner,
// unless it exists. Idempotent and safe to race: the organization is unique
// per owner and the membership per organization and user.
func ensurePersonalOrg(ctx context.Context, db execer, u *user) error {
	name := u.Name
	if name == "" {
		name, _, _ = strings.Cut(u.Email, "@")
	}
	orgID := randomID(32)
	if _, err := db.ExecContext(ctx, `
		INSERT INTO mana_auth_dev.organizations (id, name, slug, metadata, personal_owner)
		VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (personal_owner) DO NOTHING`,
		orgID, name, "personal-"+strings.ToLower(u.ID), personalMetadata, u.ID); err != nil {
		return fmt.Errorf("creating personal organization: %w", err)
	}
	if _, err := db.ExecContext(ctx, `
		INSERT INTO mana_auth_dev.members (id, organization_id, user_id, role)
		SELECT $1, o.id, $2, 'owner' FROM mana_auth_dev.organizations o WHERE o.personal_owner = $2
		ON CONFLICT (organization_id, user_id) DO NOTHING`, randomID(32), u.ID); err != nil {
		return fmt.Errorf("adding owner to personal organization: %w", err)
	}
	return nil
}

// personalMetadata is the metadata of a personal organization: Better Auth
// stores organization metadata as a JSON string and answers it as one.
const personalMetadata = `{"type":"personal"}`

// organization is a row of mana_auth_dev.organizations as the plugin lists it.
type organization struct {
	ID        string
	Name      string
	Slug      string
	Logo      sql.NullString
	Metadata  sql.NullString
	CreatedAt time.Time
}

// organizationsOf lists the organizations userID is a member of, oldest
// first (so the personal one, created at sign-up, leads).
func (s *store) organizationsOf(ctx context.Context, userID string) ([]organization, error) {
	rows, err := s.db.QueryContext(ctx, `
		SELECT o.id, o.name, o.slug, o.logo, o.metadata, o.created_at
		FROM mana_auth_dev.organizations o
		JOIN mana_auth_dev.members m ON m.organization_id = o.id
		WHERE m.user_id = $1
		ORDER BY o.created_at, o.id`, userID)
	if err != nil {
		return nil, fmt.Errorf("listing organizations: %w", err)
	}
	defer func() { _ = rows.Close() }()
	out := []organization{}
	for rows.Next() {
		var o organization
		if err := rows.Scan(&o.ID, &o.Name, &o.Slug, &o.Logo, &o.Metadata, &o.CreatedAt); err != nil {
			return nil, fmt.Errorf("listing organizations: %w", err)
		}
		out = append(out, o)
	}
	return out, rows.Err()
}

// secret returns the named secret of n random bytes, creating it on first
// use; it persists so signed cookies survive a restart.
func (s *store) secret(ctx context.Context, name string, n int) ([]byte, error) {
	var value []byte
	err := s.inLockedTx(ctx, func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, `SELECT value FROM mana_auth_dev.secrets WHERE name = $1`, name).Scan(&value)
		if errors.Is(err, sql.ErrNoRows) {
			value = make([]byte, n)
			if _, err := rand.Read(value); err != nil {
				return err
			}
			_, err = tx.ExecContext(ctx, `INSERT INTO mana_auth_dev.secrets (name, value) VALUES ($1, $2)`, name, value)
		}
		if err != nil {
			return fmt.Errorf("loading secret %s: %w", name, err)
		}
		return nil
	})
	return value, err
}

func (s *store) userByEmail(ctx context.Context, email string) (*user, error) {
	return scanUser(s.db.QueryRowContext(ctx,
		`SELECT `+userColumns+` FROM mana_auth_dev.users WHERE lower(email) = lower($1)`, email))
}

func (s *store) userByID(ctx context.Context, id string) (*user, error) {
	return scanUser(s.db.QueryRowContext(ctx,
		`SELECT `+userColumns+` FROM mana_auth_dev.users WHERE id = $1`, id))
}

// session is a row of mana_auth_dev.sessions.
type session struct {
	ID        string
	Token     string
	UserID    string
	ExpiresAt time.Time
	CreatedAt time.Time
	UpdatedAt time.Time
	IPAddress sql.NullString
	UserAgent sql.NullString
}

const sessionColumns = `id, token, user_id, expires_at, created_at, updated_at, ip_address, user_agent`

func scanSession(row scanner) (*session, error) {
	var ss session
	err := row.Scan(&ss.ID, &ss.Token, &ss.UserID, &ss.ExpiresAt, &ss.CreatedAt, &ss.UpdatedAt, &ss.IPAddress, &ss.UserAgent)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errNotFound
	}
	if err != nil {
		return nil, err
	}
	return &ss, nil
}

// createSession opens a session of userID for ttl; ip and userAgent are
// recorded as Better Auth does (empty = NULL).
func (s *store) createSession(ctx context.Context, userID string, ttl time.Duration, ip, userAgent string) (*session, error) {
	ss, err := scanSession(s.db.QueryRowContext(ctx, `
		INSERT INTO mana_auth_dev.sessions (id, token, user_id, expires_at, ip_address, user_agent)
		VALUES ($1, $2, $3, now() + make_interval(secs => $4), NULLIF($5, ''), NULLIF($6, ''))
		RETURNING `+sessionColumns, randomID(32), randomID(32), userID, ttl.Seconds(), ip, userAgent))
	if err != nil {
		return nil, fmt.Errorf("creating session: %w", err)
	}
	return ss, nil
}

// sessionByToken returns the unexpired session with token and its user;
// errNotFound when there is none.
func (s *store) sessionByToken(ctx context.Context, token string) (*session, *user, error) {
	ss, err := scanSession(s.db.QueryRowContext(ctx, `
		SELECT `+sessionColumns+` FROM mana_auth_dev.sessions WHERE token = $1 AND expires_at > now()`, token))
	if err != nil {
		return nil, nil, err
	}
	u, err := s.userByID(ctx, ss.UserID)
	if err != nil {
		return nil, nil, err
	}
	return ss, u, nil
}

// deleteSession ends the session with token; ending an unknown one is not
// an error (signing out twice is harmless).
func (s *store) deleteSession(ctx context.Context, token string) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM mana_auth_dev.sessions WHERE token = $1`, token); err != nil {
		return fmt.Errorf("deleting session: %w", err)
	}
	return nil
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
