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
	"io"
	"log/slog"
	"net/http"

	"github.com/mana/personas/pkg/edge"
	"github.com/mana/personas/pkg/personas"
)

const serviceName = "personas-internal"

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
		Serves: "the internal API",
		Load: func(getenv func(string) string) (Config, edge.Settings, error) {
			cfg, err := loadConfig(getenv)
			return cfg, cfg.settings(), err
		},
		Handler: func(_ context.Context, cfg Config, store *personas.Store, logger *slog.Logger) (http.Handler, func(), error) {
			return newServer(cfg, store, logger).Echo, nil, nil
		},
	}
}
