// Command mana-auth-dev is a development stand-in for mana-auth, the
// platform's identity service (see package devauth). It never runs in
// production.
//
// Usage:
//
//	mana-auth-dev [serve]      serve the stand-in (default)
//	mana-auth-dev admin-token  log in as the configured admin against the
//	                           running stand-in and print the access token
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/mana/personas/pkg/manaauth"
	"github.com/mana/personas/services/mana-auth-dev/devauth"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "mana-auth-dev:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	cmd := "serve"
	if len(args) > 0 {
		cmd = args[0]
	}
	cfg, err := loadConfig(os.Getenv)
	if err != nil {
		return err
	}
	switch cmd {
	case "serve":
		return serve(cfg)
	case "admin-token":
		return adminToken(cfg)
	default:
		return fmt.Errorf("unknown command %q (want serve or admin-token)", cmd)
	}
}

func serve(cfg config) error {
	log := slog.New(slog.NewJSONHandler(os.Stdout, &slog.HandlerOptions{Level: cfg.LogLevel}))
	log.Info("starting mana-auth-dev (development stand-in, never for production)", cfg.masked()...)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	srv, err := devauth.New(ctx, cfg.devauth(log))
	if err != nil {
		return err
	}
	defer func() { _ = srv.Close() }()

	hs := &http.Server{
		Addr:              net.JoinHostPort(cfg.ListenHost, strconv.Itoa(cfg.Port)),
		Handler:           srv.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       60 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.ListenAndServe() }()
	log.Info("listening", "addr", hs.Addr)

	select {
	case err := <-errc:
		return fmt.Errorf("serving: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down")
	srv.Drain() // release requests held by hang faults
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

// adminToken prints an admin JWT from the running stand-in, for `make dev`.
func adminToken(cfg config) error {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	c, err := manaauth.New(cfg.BaseURL)
	if err != nil {
		return err
	}
	res, err := c.Login(ctx, cfg.AdminEmail, cfg.AdminPassword)
	if err != nil {
		return fmt.Errorf("logging in as %s at %s: %w", cfg.AdminEmail, cfg.BaseURL, err)
	}
	fmt.Println(res.AccessToken)
	return nil
}

func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable)"
	}
	return u.Redacted()
}
