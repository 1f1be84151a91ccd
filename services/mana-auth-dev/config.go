package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/mana/personas/services/mana-auth-dev/devauth"
)

// config is the whole configuration of mana-auth-dev. This file is the only
// place that reads the environment, and it reads each variable by its
// literal name so the manifest test can list them.
type config struct {
	ListenHost    string // empty: every interface
	Port          int
	DatabaseURL   string
	ServiceKeys   []string
	BaseURL       string
	AdminEmail    string
	AdminPassword string
	NodeEnv       string
	LogLevel      slog.Level
	// TokenTTL is the JWT lifetime (MANA_AUTH_DEV_JWT_TTL).
	TokenTTL time.Duration
	// TrustedOrigins may POST to the browser endpoints besides the base URL.
	TrustedOrigins []string
}

const defaultDatabaseURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// loadConfig reads the environment through getenv (os.Getenv in main).
func loadConfig(getenv func(string) string) (config, error) {
	var errs []error
	c := config{
		Port:          3001,
		DatabaseURL:   getenv("DATABASE_URL"),
		BaseURL:       strings.TrimSpace(getenv("MANA_AUTH_DEV_BASE_URL")),
		AdminEmail:    strings.TrimSpace(getenv("MANA_AUTH_DEV_ADMIN_EMAIL")),
		AdminPassword: getenv("MANA_AUTH_DEV_ADMIN_PASSWORD"),
		NodeEnv:       strings.TrimSpace(getenv("NODE_ENV")),
		TokenTTL:      devauth.DefaultTokenTTL,
	}
	if v := strings.TrimSpace(getenv("MANA_AUTH_DEV_JWT_TTL")); v != "" {
		d, err := time.ParseDuration(v)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("MANA_AUTH_DEV_JWT_TTL %q is not a Go duration (e.g. 15m, 30s)", v))
		case d < devauth.MinTokenTTL:
			errs = append(errs, fmt.Errorf("MANA_AUTH_DEV_JWT_TTL %s is below the minimum %s", d, devauth.MinTokenTTL))
		case d%time.Second != 0:
			errs = append(errs, fmt.Errorf("MANA_AUTH_DEV_JWT_TTL %s must be whole seconds", d))
		default:
			c.TokenTTL = d
		}
	}
	for _, o := range strings.Split(getenv("MANA_AUTH_DEV_TRUSTED_ORIGINS"), ",") {
		if o = strings.TrimRight(strings.TrimSpace(o), "/"); o != "" {
			c.TrustedOrigins = append(c.TrustedOrigins, o)
		}
	}
	if h := strings.TrimSpace(getenv("LISTEN_HOST")); h != "" {
		if h != "localhost" && net.ParseIP(h) == nil {
			errs = append(errs, fmt.Errorf("LISTEN_HOST %q: want an IP address, localhost, or empty for every interface", h))
		}
		c.ListenHost = h
	}
	if p := strings.TrimSpace(getenv("PORT")); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			errs = append(errs, fmt.Errorf("PORT %q is not a port number", p))
		}
		c.Port = n
	}
	if c.DatabaseURL == "" {
		c.DatabaseURL = defaultDatabaseURL
	}
	if c.BaseURL == "" {
		c.BaseURL = fmt.Sprintf("http://localhost:%d", c.Port)
	}
	if c.AdminEmail == "" {
		c.AdminEmail = devauth.DefaultAdminEmail
	}
	if c.AdminPassword == "" {
		c.AdminPassword = devauth.DefaultAdminPassword
	}
	// Several comma-separated keys are accepted so a key can be rotated.
	for _, k := range strings.Split(getenv("MANA_SERVICE_KEY"), ",") {
		if k = strings.TrimSpace(k); k != "" {
			c.ServiceKeys = append(c.ServiceKeys, k)
		}
	}
	if len(c.ServiceKeys) == 0 {
		errs = append(errs, errors.New("MANA_SERVICE_KEY is required (comma-separated for several keys)"))
	}
	if err := c.LogLevel.UnmarshalText([]byte(strings.TrimSpace(getenv("LOG_LEVEL")))); err != nil {
		c.LogLevel = slog.LevelInfo
		if strings.TrimSpace(getenv("LOG_LEVEL")) != "" {
			errs = append(errs, fmt.Errorf("LOG_LEVEL must be debug, info, warn or error"))
		}
	}
	if strings.EqualFold(c.NodeEnv, "production") {
		errs = append(errs, errors.New("NODE_ENV=production: mana-auth-dev is a development stand-in and refuses to run in production"))
	}
	return c, errors.Join(errs...)
}

// devauth turns the configuration into the server's.
func (c config) devauth(log *slog.Logger) devauth.Config {
	return devauth.Config{
		BaseURL: c.BaseURL, DatabaseURL: c.DatabaseURL, ServiceKeys: c.ServiceKeys,
		AdminEmail: c.AdminEmail, AdminPassword: c.AdminPassword, Env: c.NodeEnv, Logger: log,
		TokenTTL: c.TokenTTL, TrustedOrigins: c.TrustedOrigins,
	}
}

// masked is the configuration as logged at start: no secrets.
func (c config) masked() []any {
	return []any{
		"listenHost", c.ListenHost, "port", c.Port, "database", redactURL(c.DatabaseURL), "baseUrl", c.BaseURL,
		"adminEmail", c.AdminEmail, "adminPassword", "[set]", "serviceKeys", len(c.ServiceKeys),
		"nodeEnv", c.NodeEnv, "logLevel", c.LogLevel.String(),
		"jwtTtl", c.TokenTTL.String(), "trustedOrigins", strings.Join(c.TrustedOrigins, ","),
	}
}
