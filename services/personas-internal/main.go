// Command personas-internal serves the runner-facing personas API: which
// personas are due, claims that lease them to one runner, and the actions
// and feedback each tick reports. It is gated by the platform's shared
// service key and stores everything through pkg/personas.
//
// Usage:
//
//	personas-internal [serve]   serve HTTP on $PORT (default 3061)
//	personas-internal migrate   apply database migrations and exit
package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/mana/personas/pkg/httpx"
	"github.com/mana/personas/pkg/personas"
)

const serviceName = "personas-internal"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

const usage = `usage: personas-internal [serve|migrate]

  serve    serve the internal API on $PORT (default)
  migrate  apply pending database migrations to $DATABASE_URL and exit

Configuration comes from the environment; see the README.
`

// run is main without the process: tests call it too. It returns the exit
// code: 0 ok, 1 failure, 2 usage.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	cmd := "serve"
	if len(args) > 0 {
		cmd = args[0]
	}
	switch cmd {
	case "serve", "migrate":
	case "-h", "--help", "help":
		_, _ = fmt.Fprint(stdout, usage)
		return 0
	default:
		_, _ = fmt.Fprintf(stderr, "unknown command %q\n%s", cmd, usage)
		return 2
	}
	cfg, cfgErr := loadConfig(getenv)
	logger, err := httpx.NewLogger(stdout, cfg.LogLevel, serviceName)
	if err != nil {
		_, _ = fmt.Fprintln(stderr, err)
		return 1
	}
	if cfgErr != nil {
		logger.Error("invalid configuration", "error", cfgErr.Error())
		return 1
	}
	db, err := personas.OpenDB(cfg.DatabaseURL, personas.PoolConfig{MaxConns: cfg.DBMaxConns})
	if err != nil {
		logger.Error("database", "error", err.Error())
		return 1
	}
	defer func() { _ = db.Close() }()

	if cmd == "migrate" {
		applied, err := personas.Migrate(ctx, db)
		if err != nil {
			logger.Error("migration failed", "error", err.Error())
			return 1
		}
		logger.Info("migrations applied", "applied", applied, "version", personas.LatestVersion())
		return 0
	}

	logger.Info("starting", "config", cfg)
	store := personas.New(db)
	if cfg.AutoMigrate {
		go personas.MigrateUntilDone(ctx, db, logger)
	}
	srv := newServer(cfg, store, logger)
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", net.JoinHostPort("", strconv.Itoa(cfg.Port)))
	if err != nil {
		logger.Error("listen", "error", err.Error())
		return 1
	}
	if err := httpx.Serve(ctx, ln, srv.Echo, httpx.ServeOptions{}, logger); err != nil {
		logger.Error("server stopped", "error", err.Error())
		return 1
	}
	return 0
}
