package main

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/mana/personas/pkg/edge"
)

// devServiceKey is the development default. Production refuses it.
const devServiceKey = "dev-service-key"

// devDatabaseURL is the development default: the local server make dev uses.
const devDatabaseURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// minProductionKeyLen: production keys must be at least this long.
const minProductionKeyLen = 24

// Config is everything personas-internal reads from its environment.
// Environment variables are read here and nowhere else.
type Config struct {
	Port               int    // PORT, default 3061
	DatabaseURL        string // DATABASE_URL, required in production
	ServiceKey         string // MANA_SERVICE_KEY
	ServiceKeyPrevious string // MANA_SERVICE_KEY_PREVIOUS, accepted too while rotating
	Production         bool   // NODE_ENV=production
	LogLevel           string // LOG_LEVEL: debug, info, warn, error
	AutoMigrate        bool   // PERSONAS_AUTO_MIGRATE, default true outside production
	DBMaxConns         int    // PERSONAS_DB_MAX_CONNS, default 16
	PprofAddr          string // PERSONAS_PPROF_ADDR: serve runtime profiles there (loopback only); unset by default
	// RequestTimeout bounds each request (not read from the environment;
	// zero is the edge's default). Tests shorten it to provoke overload.
	RequestTimeout time.Duration
}

func loadConfig(getenv func(string) string) (Config, error) {
	var errs []error
	c := Config{
		DatabaseURL:        strings.TrimSpace(getenv("DATABASE_URL")),
		ServiceKey:         getenv("MANA_SERVICE_KEY"),
		ServiceKeyPrevious: getenv("MANA_SERVICE_KEY_PREVIOUS"),
		Production:         edge.IsProduction(getenv("NODE_ENV")),
		PprofAddr:          strings.TrimSpace(getenv("PERSONAS_PPROF_ADDR")),
		LogLevel:           getenv("LOG_LEVEL"),
	}
	var err error
	if c.Port, err = edge.IntVar(getenv("PORT"), "PORT", 3061, 1, 65535); err != nil {
		errs = append(errs, err)
	}
	if c.DBMaxConns, err = edge.IntVar(getenv("PERSONAS_DB_MAX_CONNS"), "PERSONAS_DB_MAX_CONNS", 16, 1, 500); err != nil {
		errs = append(errs, err)
	}
	if c.AutoMigrate, err = edge.BoolVar(getenv("PERSONAS_AUTO_MIGRATE"), "PERSONAS_AUTO_MIGRATE", !c.Production); err != nil {
		errs = append(errs, err)
	}
	if c.Production {
		if c.DatabaseURL == "" {
			errs = append(errs, errors.New("DATABASE_URL is required in production"))
		}
		for name, key := range map[string]string{"MANA_SERVICE_KEY": c.ServiceKey, "MANA_SERVICE_KEY_PREVIOUS": c.ServiceKeyPrevious} {
			if name == "MANA_SERVICE_KEY_PREVIOUS" && key == "" {
				continue
			}
			if key == "" || key == devServiceKey || len(key) < minProductionKeyLen {
				errs = append(errs, fmt.Errorf("%s must be set to a real secret of at least %d characters in production (not the development default)", name, minProductionKeyLen))
			}
		}
	} else {
		if c.DatabaseURL == "" {
			c.DatabaseURL = devDatabaseURL
		}
		if c.ServiceKey == "" {
			c.ServiceKey = devServiceKey
		}
	}
	return c, errors.Join(errs...)
}

func (c Config) settings() edge.Settings {
	return edge.Settings{Port: c.Port, DatabaseURL: c.DatabaseURL, LogLevel: c.LogLevel, AutoMigrate: c.AutoMigrate, DBMaxConns: c.DBMaxConns, PprofAddr: c.PprofAddr}
}

// LogValue is the configuration as logged at start: secrets masked.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.Int("port", c.Port),
		slog.String("database", edge.RedactDSN(c.DatabaseURL)),
		slog.String("service_key", edge.Mask(c.ServiceKey)),
		slog.String("service_key_previous", edge.Mask(c.ServiceKeyPrevious)),
		slog.Bool("production", c.Production),
		slog.Bool("auto_migrate", c.AutoMigrate),
		slog.Int("db_max_conns", c.DBMaxConns),
	)
}
