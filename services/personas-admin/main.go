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
	"io"
	"log/slog"
	"net/http"

	"github.com/mana/personas/pkg/edge"
	"github.com/mana/personas/pkg/manaauth"
	"github.com/mana/personas/pkg/personas"
)

const serviceName = "personas-admin"

func main() { edge.Main(program()) }

// run is main without the process: tests call it. It returns the exit code:
// 0 ok, 1 failure, 2 usage.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	return edge.Run(ctx, program(), args, getenv, stdout, stderr)
}

// program is this service for edge: its configuration and its handler.
func program() edge.Program[Config] {
	return edge.Program[Config]{
		Name:   serviceName,
		Serves: "the admin API",
		Load: func(getenv func(string) string) (Config, edge.Settings, error) {
			cfg, err := loadConfig(getenv)
			return cfg, cfg.settings(), err
		},
		Handler: func(ctx context.Context, cfg Config, store *personas.Store, logger *slog.Logger) (http.Handler, func(), error) {
			// Neither constructor talks to mana-auth: an unreachable mana-auth
			// shows in /readyz and as 503s, never as a crash loop.
			auth, verifier, err := newAuth(ctx, cfg, logger)
			if err != nil {
				return nil, nil, err
			}
			return newServer(store, auth, verifier, logger).Echo, verifier.Close, nil
		},
	}
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
