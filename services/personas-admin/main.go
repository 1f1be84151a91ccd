// Command personas-admin serves the admin-facing personas API: create or
// update a persona (a mana-auth user stamped kind=persona plus its row in
// the personas store), list personas with their recent activity, show one
// persona with its actions and feedback, and delete one. It admits only
// admin JWTs issued by mana-auth, forwards the caller's bearer to mana-auth's
// admin endpoints, and never holds a database transaction open across a call
// to mana-auth.
//
// Usage:
//
//	personas-admin [serve]   serve HTTP on $PORT (default 3062)
//	personas-admin migrate   apply database migrations and exit
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/mana/personas/pkg/httpx"
	"github.com/mana/personas/pkg/manaauth"
	"github.com/mana/personas/pkg/personas"
)

const serviceName = "personas-admin"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

const usage = `usage: personas-admin [serve|migrate]

  serve    serve the admin API on $PORT (default)
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
	// Neither constructor talks to mana-auth: an unreachable mana-auth
	// shows in /readyz and as 503s, never as a crash loop.
	auth, verifier, err := newAuth(ctx, cfg, logger)
	if err != nil {
		logger.Error("mana-auth", "error", err.Error())
		return 1
	}
	defer verifier.Close()
	srv := newServer(store, auth, verifier, logger)
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

// newAuth builds the mana-auth client (for the admin and persona-stamp
// endpoints) and the JWT verifier (keys from mana-auth's JWKS). The verifier
// fetches its keys in the background; ctx bounds its refresh.
func newAuth(ctx context.Context, cfg Config, logger *slog.Logger) (*manaauth.Client, *manaauth.Verifier, error) {
	client, err := manaauth.New(cfg.AuthURL,
		manaauth.WithServiceKey(cfg.ServiceKey),
		manaauth.WithTimeout(cfg.AuthCallTimeout),
		manaauth.WithLogger(logger),
	)
	if err != nil {
		return nil, nil, err
	}
	verifier, err := manaauth.NewVerifier(ctx, cfg.AuthURL,
		manaauth.WithIssuer(cfg.Issuer),
		manaauth.WithAudience(cfg.Audience),
		manaauth.WithTimeout(cfg.AuthCallTimeout),
		manaauth.WithRefetchInterval(cfg.JWKSRefetchInterval),
		manaauth.WithLogger(logger),
	)
	if err != nil {
		return nil, nil, err
	}
	return client, verifier, nil
}
