// Package devauth is a development stand-in for mana-auth, the platform's
// identity service. It implements the contract in pkg/manaauth/CONTRACT.md
// (JWKS, register, login, admin user search/detail/delete, persona-stamp,
// the organization list, and the browser session flow: sign-in with a
// signed session cookie, token, get-session, sign-out) over PostgreSQL
// schema mana_auth_dev, so local development and tests can
// run without the real service, and it can inject faults into its endpoints.
//
// It must never run in production: New refuses NODE_ENV=production, its
// default password hashing is deliberately cheap, and it exposes a fault
// endpoint.
package devauth

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/mail"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/mana/personas/pkg/manaauth"
	"golang.org/x/crypto/bcrypt"
)

// Defaults of Config.
const (
	DefaultAdminEmail    = "admin@mana.test"
	DefaultAdminPassword = "mana-dev-admin-password" //nolint:gosec // documented default of a development-only stand-in
	DefaultTokenTTL      = 15 * time.Minute
	// MinTokenTTL is the shortest JWT lifetime accepted: short enough for
	// browser tests of renewal across expiry, long enough to be usable.
	MinTokenTTL         = 5 * time.Second
	DefaultPasswordCost = 6
	Audience            = "mana"
)

// Config is everything a Server needs; the binary fills it from the
// environment, tests directly.
type Config struct {
	// BaseURL is the stand-in's public base URL and the JWT issuer.
	BaseURL string
	// DatabaseURL points at PostgreSQL; the stand-in owns schema mana_auth_dev.
	DatabaseURL string
	// ServiceKeys are accepted in X-Service-Key (several, for rotation).
	ServiceKeys []string
	// AdminEmail and AdminPassword define the admin account ensured at start.
	AdminEmail    string
	AdminPassword string
	// Env is NODE_ENV; "production" is refused.
	Env string
	// PasswordCost is the bcrypt cost (bcrypt.MinCost in tests). 0 = default.
	PasswordCost int
	// TokenTTL is the JWT lifetime (whole seconds, at least MinTokenTTL).
	// 0 = 15 minutes, like mana-auth.
	TokenTTL time.Duration
	// TrustedOrigins are origins (scheme://host[:port]) besides BaseURL's
	// from which the browser endpoints accept a POST carrying an Origin
	// header, like Better Auth's trustedOrigins.
	TrustedOrigins []string
	// Logger receives structured logs. nil = discard.
	Logger *slog.Logger
	// Now replaces time.Now for token timestamps. nil = time.Now.
	Now func() time.Time
}

// Validate fails fast on a configuration the stand-in cannot serve.
func (c *Config) Validate() error {
	var errs []error
	if strings.EqualFold(strings.TrimSpace(c.Env), "production") {
		errs = append(errs, errors.New("NODE_ENV=production: mana-auth-dev is a development stand-in and refuses to run in production"))
	}
	if c.BaseURL == "" {
		errs = append(errs, errors.New("base URL is required"))
	}
	if c.DatabaseURL == "" {
		errs = append(errs, errors.New("database URL is required"))
	}
	if len(c.ServiceKeys) == 0 {
		errs = append(errs, errors.New("at least one service key is required"))
	}
	for _, k := range c.ServiceKeys {
		if len(k) < 8 {
			errs = append(errs, errors.New("service keys must be at least 8 characters"))
			break
		}
	}
	if _, err := mail.ParseAddress(c.AdminEmail); err != nil || !strings.Contains(c.AdminEmail, "@") {
		errs = append(errs, fmt.Errorf("admin email %q is not an email address", c.AdminEmail))
	}
	if len(c.AdminPassword) < minPassword || len(c.AdminPassword) > maxPassword {
		errs = append(errs, fmt.Errorf("admin password must be %d..%d bytes", minPassword, maxPassword))
	}
	if c.PasswordCost != 0 && (c.PasswordCost < bcrypt.MinCost || c.PasswordCost > bcrypt.MaxCost) {
		errs = append(errs, fmt.Errorf("password cost must be %d..%d", bcrypt.MinCost, bcrypt.MaxCost))
	}
	if c.TokenTTL != 0 && c.TokenTTL < MinTokenTTL {
		errs = append(errs, fmt.Errorf("token TTL %s is below the minimum %s", c.TokenTTL, MinTokenTTL))
	}
	if c.TokenTTL%time.Second != 0 {
		errs = append(errs, fmt.Errorf("token TTL %s must be whole seconds (exp and iat are)", c.TokenTTL))
	}
	if c.BaseURL != "" {
		if _, err := parseOrigin(c.BaseURL, true); err != nil {
			errs = append(errs, fmt.Errorf("base URL: %w", err))
		}
	}
	for _, o := range c.TrustedOrigins {
		if _, err := parseOrigin(o, false); err != nil {
			errs = append(errs, fmt.Errorf("trusted origin: %w", err))
		}
	}
	return errors.Join(errs...)
}

// Server is one stand-in instance.
type Server struct {
	cfg     Config
	log     *slog.Logger
	store   *store
	signer  *signer
	cookies cookieJar
	// origins are the trusted origins, normalised: BaseURL's and
	// TrustedOrigins.
	origins  map[string]bool
	verifier *manaauth.Verifier
	faults   *Faults
	echo     *echo.Echo
	now      func() time.Time

	drainOnce sync.Once
	done      chan struct{}
	// dummyHash keeps login timing similar for unknown emails.
	dummyHash []byte
}

// New validates cfg, prepares the schema, loads (or creates) the signing key
// and ensures the admin account.
func New(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.AdminEmail == "" {
		cfg.AdminEmail = DefaultAdminEmail
	}
	if cfg.AdminPassword == "" {
		cfg.AdminPassword = DefaultAdminPassword
	}
	cfg.BaseURL = strings.TrimRight(strings.TrimSpace(cfg.BaseURL), "/")
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("mana-auth-dev config: %w", err)
	}
	if cfg.PasswordCost == 0 {
		cfg.PasswordCost = DefaultPasswordCost
	}
	if cfg.TokenTTL == 0 {
		cfg.TokenTTL = DefaultTokenTTL
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}

	st, err := openStore(ctx, cfg.DatabaseURL)
	if err != nil {
		return nil, err
	}
	s, err := build(ctx, cfg, st)
	if err != nil {
		_ = st.db.Close()
		return nil, err
	}
	return s, nil
}

func build(ctx context.Context, cfg Config, st *store) (*Server, error) {
	if err := st.migrate(ctx); err != nil {
		return nil, err
	}
	kid, key, err := st.signingKey(ctx)
	if err != nil {
		return nil, err
	}
	sg := &signer{kid: kid, key: key, issuer: cfg.BaseURL, audience: Audience, ttl: cfg.TokenTTL}
	set, err := sg.keySet()
	if err != nil {
		return nil, err
	}
	ver, err := manaauth.NewStaticVerifier(set, cfg.BaseURL, manaauth.WithClock(cfg.Now), manaauth.WithLogger(cfg.Logger))
	if err != nil {
		return nil, err
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(cfg.AdminPassword), cfg.PasswordCost)
	if err != nil {
		return nil, fmt.Errorf("hashing admin password: %w", err)
	}
	email := strings.ToLower(strings.TrimSpace(cfg.AdminEmail))
	if err := st.ensureAdmin(ctx, randomID(32), email, "Admin", string(hash)); err != nil {
		return nil, err
	}
	if err := st.backfillPersonalOrgs(ctx); err != nil {
		return nil, err
	}
	cookieKey, err := st.secret(ctx, "cookie-hmac", 32)
	if err != nil {
		return nil, err
	}
	origins := map[string]bool{}
	for _, o := range append([]string{cfg.BaseURL}, cfg.TrustedOrigins...) {
		n, err := parseOrigin(o, o == cfg.BaseURL)
		if err != nil {
			return nil, err
		}
		origins[n] = true
	}
	dummy, err := bcrypt.GenerateFromPassword([]byte(randomID(16)), cfg.PasswordCost)
	if err != nil {
		return nil, err
	}
	done := make(chan struct{})
	s := &Server{
		cfg: cfg, log: cfg.Logger, store: st, signer: sg, verifier: ver,
		cookies: newCookieJar(cookieKey, strings.HasPrefix(cfg.BaseURL, "https://")), origins: origins,
		faults: &Faults{faults: map[Op]*Fault{}, done: done},
		now:    cfg.Now, done: done, dummyHash: dummy,
	}
	s.echo = s.routes()
	cfg.Logger.InfoContext(ctx, "mana-auth-dev ready", "issuer", cfg.BaseURL, "kid", kid, "admin", email)
	return s, nil
}

// Handler is the stand-in's HTTP handler.
func (s *Server) Handler() http.Handler { return s.echo }

// Faults gives tests direct control over injected faults.
func (s *Server) Faults() *Faults { return s.faults }

// Issuer is the iss of the tokens the stand-in mints.
func (s *Server) Issuer() string { return s.cfg.BaseURL }

// KeyID is the kid of the current signing key.
func (s *Server) KeyID() string { return s.signer.kid }

// Drain releases every request held by a hang fault; call it before
// shutting the HTTP server down. Idempotent.
func (s *Server) Drain() { s.drainOnce.Do(func() { close(s.done) }) }

// Close drains and closes the database.
func (s *Server) Close() error {
	s.Drain()
	return s.store.db.Close()
}

// Ping checks the database, for readiness.
func (s *Server) Ping(ctx context.Context) error { return s.store.db.PingContext(ctx) }

// validServiceKey compares in constant time against every configured key.
func (s *Server) validServiceKey(got string) bool {
	ok := 0
	for _, k := range s.cfg.ServiceKeys {
		ok |= subtle.ConstantTimeCompare([]byte(got), []byte(k))
	}
	return got != "" && ok == 1
}
