package edge

// The main of a personas service, shared by personas-internal and
// personas-admin: the subcommands (serve, migrate, prune, help), configuration and
// JSON logger, the database pool, migrations (on demand, or in the
// background when auto-migration is on), and serving with timeouts and
// graceful shutdown. A service supplies its configuration loader and builds
// its HTTP handler; everything else is the same for both.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/uptrace/bun"

	"github.com/mana/personas/pkg/personas"
)

// Settings are the settings every service has, whatever else it reads.
type Settings struct {
	// Host is the address to listen on (LISTEN_HOST): empty means every
	// interface, as containers need; make dev sets 127.0.0.1.
	Host        string
	Port        int
	DatabaseURL string
	LogLevel    string
	AutoMigrate bool
	DBMaxConns  int
	// PprofAddr, when set, serves net/http/pprof there (a loopback address
	// such as 127.0.0.1:6060: never expose it). Empty in normal operation.
	PprofAddr string
	// StoreOptions configure the store serve builds (the failure policy:
	// personas.WithBackoff, personas.WithQuarantineAfter).
	StoreOptions []personas.Option
	// Retention: the prune subcommand's windows (zero: the defaults).
	Retention Retention
}

// Program describes one service.
type Program[C any] struct {
	// Name as logged and shown in usage, e.g. "personas-internal".
	Name string
	// Serves says what serve serves, e.g. "the internal API".
	Serves string
	// Load reads the configuration. It returns the common settings even
	// when it also returns an error, so the error can be logged at the
	// configured level. C is logged at start: make it a slog.LogValuer
	// that masks secrets.
	Load func(getenv func(string) string) (C, Settings, error)
	// Handler builds the service's HTTP handler over the store; the
	// returned function (may be nil) releases what it holds.
	Handler func(ctx context.Context, cfg C, store *personas.Store, logger *slog.Logger) (http.Handler, func(), error)
}

func (p Program[C]) usage() string {
	return fmt.Sprintf(`usage: %[1]s [serve|migrate|backfill [batchSize]|prune [--dry-run] [--batch-size N] [--duty D]]

  serve     serve %[2]s on $LISTEN_HOST:$PORT (default)
  migrate   apply pending database migrations to $DATABASE_URL and exit
  backfill  rebuild the insight rollups from the stored actions and feedback,
            batchSize personas per transaction (default 100); idempotent, and
            resumes where an interrupted run stopped
  prune     delete raw rows older than $PERSONAS_RETENTION_DAYS (default 90) and
            rollups older than $PERSONAS_ROLLUP_RETENTION_DAYS (default 730), in
            batches, deleting for the share --duty of the time (default %[3]g);
            --dry-run only counts. Exit 3: another prune is running

Configuration comes from the environment; see the README.
`, p.Name, p.Serves, personas.DefaultPruneDuty)
}

// Run is main without the process (tests call it too): it runs the
// subcommand in args until ctx ends, and returns the exit code: 0 ok,
// 1 failure, 2 usage (prune: 3 when another prune is running).
func Run[C any](ctx context.Context, p Program[C], args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	cmd := "serve"
	if len(args) > 0 {
		cmd = args[0]
	}
	batch := defaultBackfillBatch
	var pf pruneFlags
	switch cmd {
	case "serve", "migrate":
	case "backfill":
		if len(args) > 2 {
			_, _ = fmt.Fprintf(stderr, "backfill takes at most one argument\n%s", p.usage())
			return 2
		}
		if len(args) == 2 {
			n, err := strconv.Atoi(args[1])
			if err != nil || n < 1 || n > personas.MaxBackfillBatch {
				_, _ = fmt.Fprintf(stderr, "batchSize must be an integer from 1 to %d\n%s", personas.MaxBackfillBatch, p.usage())
				return 2
			}
			batch = n
		}
	case "prune":
		var err error
		if pf, err = parsePruneFlags(args[1:], stderr); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return 0
			}
			_, _ = fmt.Fprintf(stderr, "%v\n%s", err, p.usage())
			return 2
		}
	case "-h", "--help", "help":
		_, _ = fmt.Fprint(stdout, p.usage())
		return 0
	default:
		_, _ = fmt.Fprintf(stderr, "unknown command %q\n%s", cmd, p.usage())
		return 2
	}
	cfg, set, cfgErr := p.Load(getenv)
	logs := NewLogWriter(stdout, 200*time.Millisecond)
	defer func() { _ = logs.Close() }()
	logger, err := NewLogger(logs, set.LogLevel, p.Name)
	if err != nil {
		_, _ = fmt.Fprintln(stderr, err)
		return 1
	}
	if cfgErr != nil {
		logger.Error("invalid configuration", "error", cfgErr.Error())
		return 1
	}
	db, err := personas.OpenDB(set.DatabaseURL, personas.PoolConfig{MaxConns: set.DBMaxConns})
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

	if cmd == "backfill" {
		return backfill(ctx, db, batch, logger)
	}
	if cmd == "prune" {
		return runPrune(ctx, p.Name, personas.New(db, set.StoreOptions...), set.Retention, pf, logger)
	}

	logger.Info("starting", "config", cfg)
	if set.AutoMigrate {
		go personas.MigrateUntilDone(ctx, db, logger)
	}
	handler, release, err := p.Handler(ctx, cfg, personas.New(db, set.StoreOptions...), logger)
	if err != nil {
		logger.Error("start", "error", err.Error())
		return 1
	}
	if release != nil {
		defer release()
	}
	if set.PprofAddr != "" {
		go servePprof(ctx, set.PprofAddr, logger)
	}
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", net.JoinHostPort(set.Host, strconv.Itoa(set.Port)))
	if err != nil {
		logger.Error("listen", "error", err.Error())
		return 1
	}
	if err := Serve(ctx, ln, handler, ServeOptions{}, logger); err != nil {
		logger.Error("server stopped", "error", err.Error())
		return 1
	}
	return 0
}

// defaultBackfillBatch is backfill's batch size in personas.
const defaultBackfillBatch = 100

// backfill rebuilds the rollups, logging progress per batch.
func backfill(ctx context.Context, db *bun.DB, batch int, logger *slog.Logger) int {
	if err := personas.New(db).CheckSchema(ctx); err != nil {
		logger.Error("backfill", "error", err.Error())
		return 1
	}
	start := time.Now()
	res, err := personas.New(db).BackfillRollups(ctx, batch, func(done int) {
		logger.Info("backfill progress", "personas", done)
	})
	if err != nil {
		logger.Error("backfill failed; run it again to resume", "error", err.Error(), "personas", res.Personas)
		return 1
	}
	logger.Info("backfill done", "personas", res.Personas, "batches", res.Batches, "resumed", res.Resumed,
		"seconds", time.Since(start).Seconds())
	return 0
}

// servePprof serves the runtime profiles on addr until ctx ends.
func servePprof(ctx context.Context, addr string, logger *slog.Logger) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", addr)
	if err != nil {
		logger.Warn("pprof listener", "error", err.Error())
		return
	}
	// Profiles take up to their "seconds" parameter: no write timeout.
	if err := Serve(ctx, ln, mux, ServeOptions{WriteTimeout: time.Hour}, logger); err != nil {
		logger.Warn("pprof server", "error", err.Error())
	}
}

// Main runs p as the process: SIGINT and SIGTERM end it gracefully, and the
// process exits with Run's code. A service's main is one call to it; its
// tests call Run with their own arguments and environment.
func Main[C any](p Program[C]) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := Run(ctx, p, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
