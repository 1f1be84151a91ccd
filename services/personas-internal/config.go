package main

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/mana/personas/pkg/edge"
	"github.com/mana/personas/pkg/personas"
)

// devServiceKey is the development default. Production refuses it.
const devServiceKey = "dev-service-key"

// minProductionKeyLen: production keys must be at least this long.
const minProductionKeyLen = 24

// Config is everything personas-internal reads from its environment.
// Environment variables are read here and nowhere else.
type Config struct {
	ListenHost         string // LISTEN_HOST, default empty: every interface
	Port               int    // PORT, default 3061
	DatabaseURL        string // DATABASE_URL, required in production
	ServiceKey         string // MANA_SERVICE_KEY
	ServiceKeyPrevious string // MANA_SERVICE_KEY_PREVIOUS, accepted too while rotating
	Production         bool   // NODE_ENV=production
	LogLevel           string // LOG_LEVEL: debug, info, warn, error
	AutoMigrate        bool   // PERSONAS_AUTO_MIGRATE, default true outside production
	DBMaxConns         int    // PERSONAS_DB_MAX_CONNS, default 16
	// Retention (the prune subcommand): PERSONAS_RETENTION_DAYS (90) and
	// PERSONAS_ROLLUP_RETENTION_DAYS (730).
	Retention edge.Retention
	PprofAddr string // PERSONAS_PPROF_ADDR: serve runtime profiles there (loopback only); unset by default

	// The failure policy of the schedule (see pkg/personas: attempts).
	BackoffMin      time.Duration // PERSONAS_BACKOFF_MIN, default 1m: the wait after the first consecutive failure
	BackoffMax      time.Duration // PERSONAS_BACKOFF_MAX, default 0: the cadence's period (1h or 24h)
	QuarantineAfter int           // PERSONAS_QUARANTINE_AFTER, default 5 consecutive failures
	// OverdueGrace: a persona due for longer than this counts as overdue
	// in the personas_overdue gauge (PERSONAS_OVERDUE_GRACE, default 2h).
	OverdueGrace time.Duration
	// DevDayLength compresses the schedule's calendar (PERSONAS_DEV_DAY_LENGTH,
	// e.g. 4m; unset: real days; refused in production): make dev's
	// simulator keeps finding due personas. See personas.WithDayLength.
	DevDayLength time.Duration
	// RequestTimeout bounds each request (not read from the environment;
	// zero is the edge's default). Tests shorten it to provoke overload.
	RequestTimeout time.Duration
}

// Defaults and bounds of the schedule settings.
const (
	defaultOverdueGrace = 2 * time.Hour
	maxBackoff          = 7 * 24 * time.Hour
	maxQuarantineAfter  = 1000
)

func loadConfig(getenv func(string) string) (Config, error) {
	c := Config{
		ServiceKey:         getenv("MANA_SERVICE_KEY"),
		ServiceKeyPrevious: getenv("MANA_SERVICE_KEY_PREVIOUS"),
		Production:         edge.IsProduction(getenv("NODE_ENV")),
	}
	set, errs := edge.LoadSettings(getenv, 3061, c.Production)
	c.ListenHost, c.Port, c.DatabaseURL, c.LogLevel = set.Host, set.Port, set.DatabaseURL, set.LogLevel
	c.AutoMigrate, c.DBMaxConns, c.PprofAddr, c.Retention = set.AutoMigrate, set.DBMaxConns, set.PprofAddr, set.Retention
	var err error
	if c.BackoffMin, err = edge.DurationVar(getenv("PERSONAS_BACKOFF_MIN"), "PERSONAS_BACKOFF_MIN", personas.DefaultBackoffMin, time.Second, maxBackoff); err != nil {
		errs = append(errs, err)
	}
	if c.BackoffMax, err = edge.DurationVar(getenv("PERSONAS_BACKOFF_MAX"), "PERSONAS_BACKOFF_MAX", 0, 0, maxBackoff); err != nil {
		errs = append(errs, err)
	}
	if c.BackoffMax > 0 && c.BackoffMax < c.BackoffMin {
		errs = append(errs, fmt.Errorf("PERSONAS_BACKOFF_MAX (%s) must not be below PERSONAS_BACKOFF_MIN (%s)", c.BackoffMax, c.BackoffMin))
	}
	if c.QuarantineAfter, err = edge.IntVar(getenv("PERSONAS_QUARANTINE_AFTER"), "PERSONAS_QUARANTINE_AFTER", personas.DefaultQuarantineAfter, 1, maxQuarantineAfter); err != nil {
		errs = append(errs, err)
	}
	if c.OverdueGrace, err = edge.DurationVar(getenv("PERSONAS_OVERDUE_GRACE"), "PERSONAS_OVERDUE_GRACE", defaultOverdueGrace, time.Minute, maxBackoff); err != nil {
		errs = append(errs, err)
	}
	if c.DevDayLength, err = edge.DurationVar(getenv("PERSONAS_DEV_DAY_LENGTH"), "PERSONAS_DEV_DAY_LENGTH", 0, time.Minute, 24*time.Hour); err != nil {
		errs = append(errs, err)
	}
	if c.Production && c.DevDayLength > 0 {
		errs = append(errs, errors.New("PERSONAS_DEV_DAY_LENGTH is for local development only and must not be set in production"))
	}
	if c.Production {
		for name, key := range map[string]string{"MANA_SERVICE_KEY": c.ServiceKey, "MANA_SERVICE_KEY_PREVIOUS": c.ServiceKeyPrevious} {
			if name == "MANA_SERVICE_KEY_PREVIOUS" && key == "" {
				continue
			}
			if key == "" || key == devServiceKey || len(key) < minProductionKeyLen {
				errs = append(errs, fmt.Errorf("%s must be set to a real secret of at least %d characters in production (not the development default)", name, minProductionKeyLen))
			}
		}
	} else {
		if c.ServiceKey == "" {
			c.ServiceKey = devServiceKey
		}
	}
	return c, errors.Join(errs...)
}

func (c Config) settings() edge.Settings {
	return edge.Settings{
		Host: c.ListenHost, Port: c.Port, DatabaseURL: c.DatabaseURL, LogLevel: c.LogLevel, AutoMigrate: c.AutoMigrate,
		DBMaxConns: c.DBMaxConns, PprofAddr: c.PprofAddr, StoreOptions: c.storeOptions(), Retention: c.Retention,
	}
}

// overdueGrace is OverdueGrace, with the default for a Config built by
// hand (tests).
func (c Config) overdueGrace() time.Duration {
	if c.OverdueGrace == 0 {
		return defaultOverdueGrace
	}
	return c.OverdueGrace
}

// storeOptions is the store's failure policy from this configuration.
func (c Config) storeOptions() []personas.Option {
	return []personas.Option{personas.WithBackoff(c.BackoffMin, c.BackoffMax), personas.WithQuarantineAfter(c.QuarantineAfter),
		personas.WithDayLength(c.DevDayLength)}
}

// LogValue is the configuration as logged at start: secrets masked.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("listen_host", c.ListenHost),
		slog.Int("port", c.Port),
		slog.String("database", edge.RedactDSN(c.DatabaseURL)),
		slog.String("service_key", edge.Mask(c.ServiceKey)),
		slog.String("service_key_previous", edge.Mask(c.ServiceKeyPrevious)),
		slog.Bool("production", c.Production),
		slog.Bool("auto_migrate", c.AutoMigrate),
		slog.Int("db_max_conns", c.DBMaxConns),
		slog.Duration("dev_day_length", c.DevDayLength),
		slog.Int("retention_days", c.Retention.RawDays),
		slog.Int("rollup_retention_days", c.Retention.RollupDays),
		slog.Duration("backoff_min", c.BackoffMin),
		slog.Duration("backoff_max", c.BackoffMax),
		slog.Int("quarantine_after", c.QuarantineAfter),
		slog.Duration("overdue_grace", c.OverdueGrace),
	)
}
