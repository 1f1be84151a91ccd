package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/mana/personas/pkg/edge"
	"github.com/mana/personas/pkg/manaauth"
)

// Development defaults. Production refuses devServiceKey and requires
// MANA_AUTH_URL and DATABASE_URL to be set explicitly.
const (
	devServiceKey = "dev-service-key"
	devAuthURL    = "http://localhost:3001"
)

// minProductionKeyLen: production service keys must be at least this long.
const minProductionKeyLen = 24

// defaultAuthCallTimeout bounds one call to mana-auth (retries included). It
// is well below the request deadline (15 s), so a hanging mana-auth yields a
// clear 504 naming the step instead of a generic timeout.
const defaultAuthCallTimeout = 5 * time.Second

// Config is everything personas-admin reads from its environment.
// Environment variables are read here and nowhere else.
type Config struct {
	ListenHost  string // LISTEN_HOST, default empty: every interface
	Port        int    // PORT, default 3062
	DatabaseURL string // DATABASE_URL, required in production
	AuthURL     string // MANA_AUTH_URL, default http://localhost:3001; required in production
	ServiceKey  string // MANA_SERVICE_KEY, sent to mana-auth's persona-stamp endpoint
	Issuer      string // MANA_AUTH_ISSUER, expected iss of admin JWTs; default AuthURL
	Audience    string // MANA_AUTH_AUDIENCE, expected aud of admin JWTs; default "mana"
	Production  bool   // NODE_ENV=production
	LogLevel    string // LOG_LEVEL: debug, info, warn, error
	AutoMigrate bool   // PERSONAS_AUTO_MIGRATE, default true outside production
	DBMaxConns  int    // PERSONAS_DB_MAX_CONNS, default 16
	// Retention (the prune subcommand): PERSONAS_RETENTION_DAYS (90) and
	// PERSONAS_ROLLUP_RETENTION_DAYS (730).
	Retention edge.Retention
	PprofAddr string // PERSONAS_PPROF_ADDR: serve runtime profiles there (loopback only); unset by default

	// Not configurable from the environment; tests shorten them.
	AuthCallTimeout     time.Duration // one mana-auth call, default 5 s
	JWKSRefetchInterval time.Duration // minimum gap between on-demand JWKS fetches
}

func loadConfig(getenv func(string) string) (Config, error) {
	c := Config{
		AuthURL:             strings.TrimSpace(getenv("MANA_AUTH_URL")),
		ServiceKey:          getenv("MANA_SERVICE_KEY"),
		Issuer:              strings.TrimSpace(getenv("MANA_AUTH_ISSUER")),
		Audience:            strings.TrimSpace(getenv("MANA_AUTH_AUDIENCE")),
		Production:          edge.IsProduction(getenv("NODE_ENV")),
		AuthCallTimeout:     defaultAuthCallTimeout,
		JWKSRefetchInterval: manaauth.DefaultRefetchInterval,
	}
	set, errs := edge.LoadSettings(getenv, 3062, c.Production)
	c.ListenHost, c.Port, c.DatabaseURL, c.LogLevel = set.Host, set.Port, set.DatabaseURL, set.LogLevel
	c.AutoMigrate, c.DBMaxConns, c.PprofAddr, c.Retention = set.AutoMigrate, set.DBMaxConns, set.PprofAddr, set.Retention
	if c.Production {
		if c.AuthURL == "" {
			errs = append(errs, errors.New("MANA_AUTH_URL is required in production"))
		}
		if c.ServiceKey == "" || c.ServiceKey == devServiceKey || len(c.ServiceKey) < minProductionKeyLen {
			errs = append(errs, fmt.Errorf("MANA_SERVICE_KEY must be set to a real secret of at least %d characters in production (not the development default)", minProductionKeyLen))
		}
	} else {
		if c.AuthURL == "" {
			c.AuthURL = devAuthURL
		}
		if c.ServiceKey == "" {
			c.ServiceKey = devServiceKey
		}
	}
	if c.AuthURL != "" {
		if err := checkBaseURL(c.AuthURL); err != nil {
			errs = append(errs, fmt.Errorf("MANA_AUTH_URL: %w", err))
		}
		c.AuthURL = strings.TrimRight(c.AuthURL, "/")
	}
	if c.Issuer == "" {
		// mana-auth's issuer is its base URL.
		c.Issuer = c.AuthURL
	}
	if c.Audience == "" {
		c.Audience = manaauth.DefaultAudience
	}
	return c, errors.Join(errs...)
}

// checkBaseURL accepts http(s)://host[:port] with an optional path.
func checkBaseURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%q is not a URL", raw)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("%q: want http(s)://host[:port] without credentials, query or fragment", raw)
	}
	return nil
}

func (c Config) settings() edge.Settings {
	return edge.Settings{Host: c.ListenHost, Port: c.Port, DatabaseURL: c.DatabaseURL, LogLevel: c.LogLevel, AutoMigrate: c.AutoMigrate, DBMaxConns: c.DBMaxConns, PprofAddr: c.PprofAddr, Retention: c.Retention}
}

// LogValue is the configuration as logged at start: secrets masked.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("listen_host", c.ListenHost),
		slog.Int("port", c.Port),
		slog.String("database", edge.RedactDSN(c.DatabaseURL)),
		slog.String("mana_auth_url", c.AuthURL),
		slog.String("mana_auth_issuer", c.Issuer),
		slog.String("mana_auth_audience", c.Audience),
		slog.String("service_key", edge.Mask(c.ServiceKey)),
		slog.Bool("production", c.Production),
		slog.Bool("auto_migrate", c.AutoMigrate),
		slog.Int("db_max_conns", c.DBMaxConns),
		slog.Int("retention_days", c.Retention.RawDays),
		slog.Int("rollup_retention_days", c.Retention.RollupDays),
		slog.String("mana_auth_call_timeout", c.AuthCallTimeout.String()),
	)
}
