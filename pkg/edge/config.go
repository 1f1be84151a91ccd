package edge

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// IsProduction reports whether NODE_ENV (the platform's production switch)
// says production.
func IsProduction(nodeEnv string) bool {
	return strings.EqualFold(strings.TrimSpace(nodeEnv), "production")
}

// Mask shows that a secret is set without showing it.
func Mask(secret string) string {
	if secret == "" {
		return "(unset)"
	}
	return fmt.Sprintf("(set, %d chars)", len(secret))
}

// IntVar parses an integer setting named name; empty means def.
func IntVar(v, name string, def, lo, hi int) (int, error) {
	if strings.TrimSpace(v) == "" {
		return def, nil
	}
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n < lo || n > hi {
		return def, fmt.Errorf("%s=%q: want an integer from %d to %d", name, v, lo, hi)
	}
	return n, nil
}

// DurationVar parses a Go duration setting ("90s", "5m", "2h") named
// name; empty means def.
func DurationVar(v, name string, def, lo, hi time.Duration) (time.Duration, error) {
	if strings.TrimSpace(v) == "" {
		return def, nil
	}
	d, err := time.ParseDuration(strings.TrimSpace(v))
	if err != nil || d < lo || d > hi {
		return def, fmt.Errorf("%s=%q: want a Go duration from %s to %s (such as 90s, 5m, 2h)", name, v, lo, hi)
	}
	return d, nil
}

// BoolVar parses a boolean setting named name; empty means def.
func BoolVar(v, name string, def bool) (bool, error) {
	if strings.TrimSpace(v) == "" {
		return def, nil
	}
	b, err := strconv.ParseBool(strings.TrimSpace(v))
	if err != nil {
		return def, fmt.Errorf("%s=%q: want true or false", name, v)
	}
	return b, nil
}

// RedactDSN shows a database URL without its password.
func RedactDSN(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil || u.Scheme == "" {
		return "(set, not a URL)"
	}
	return u.Redacted()
}

// HostVar parses a listen address setting named name (LISTEN_HOST): empty
// means every interface; otherwise an IP address or "localhost".
func HostVar(v, name string) (string, error) {
	v = strings.TrimSpace(v)
	if v == "" || v == "localhost" || net.ParseIP(v) != nil {
		return v, nil
	}
	return "", fmt.Errorf("%s=%q: want an IP address (127.0.0.1, ::1, 0.0.0.0), localhost, or empty for every interface", name, v)
}

// DevDatabaseURL is the services' database outside production when
// DATABASE_URL is unset: the local server's postgres database.
const DevDatabaseURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// LoadSettings reads the settings every service has, the same way for both:
// LISTEN_HOST, PORT (defaultPort), DATABASE_URL (required in production,
// DevDatabaseURL otherwise), LOG_LEVEL, PERSONAS_AUTO_MIGRATE (default on
// outside production), PERSONAS_DB_MAX_CONNS (16), PERSONAS_PPROF_ADDR and
// the retention windows. It returns every problem, not just the first.
func LoadSettings(getenv func(string) string, defaultPort int, production bool) (Settings, []error) {
	var errs []error
	s := Settings{
		DatabaseURL: strings.TrimSpace(getenv("DATABASE_URL")),
		LogLevel:    getenv("LOG_LEVEL"),
		PprofAddr:   strings.TrimSpace(getenv("PERSONAS_PPROF_ADDR")),
	}
	var err error
	if s.Host, err = HostVar(getenv("LISTEN_HOST"), "LISTEN_HOST"); err != nil {
		errs = append(errs, err)
	}
	if s.Port, err = IntVar(getenv("PORT"), "PORT", defaultPort, 1, 65535); err != nil {
		errs = append(errs, err)
	}
	if s.DBMaxConns, err = IntVar(getenv("PERSONAS_DB_MAX_CONNS"), "PERSONAS_DB_MAX_CONNS", 16, 1, 500); err != nil {
		errs = append(errs, err)
	}
	if s.AutoMigrate, err = BoolVar(getenv("PERSONAS_AUTO_MIGRATE"), "PERSONAS_AUTO_MIGRATE", !production); err != nil {
		errs = append(errs, err)
	}
	if s.Retention, err = RetentionVars(getenv("PERSONAS_RETENTION_DAYS"), getenv("PERSONAS_ROLLUP_RETENTION_DAYS")); err != nil {
		errs = append(errs, err)
	}
	switch {
	case production && s.DatabaseURL == "":
		errs = append(errs, errors.New("DATABASE_URL is required in production"))
	case s.DatabaseURL == "":
		s.DatabaseURL = DevDatabaseURL
	}
	return s, errs
}
