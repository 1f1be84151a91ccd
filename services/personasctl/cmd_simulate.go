package main

import (
	"context"
	"fmt"
	"time"

	"github.com/mana/personas/pkg/internalclient"
	"github.com/mana/personas/pkg/runnersim"
)

// devServiceKey is personas-internal's development default key.
const devServiceKey = "dev-service-key"

// cmdSimulate acts as one or more persona runners against the internal API
// (pkg/runnersim), so a development stack shows ticks of every status.
func (a *app) cmdSimulate(ctx context.Context, args []string) int {
	fs := newFlagSet("simulate", "[flags]",
		"Act as persona runners against the internal API: claim due personas, start ticks, post\n"+
			"actions in several batches with seq, post German feedback, renew leases, and finish with a\n"+
			"scripted mix of outcomes (ok, empty, failed, timeout, crash without finish). Ctrl-C stops\n"+
			"it cleanly: held leases are released. The server's clock cannot be moved from here: for\n"+
			"fast backoff and crash detection run personas-internal with short PERSONAS_BACKOFF_MIN/MAX\n"+
			"and use a short --lease.")
	api := fs.String("api", "", "gateway (or personas-internal) base URL (default $MANA_API_URL, else "+DefaultAPIURL+")")
	key := fs.String("service-key", "", "X-Service-Key (default $MANA_SERVICE_KEY, else the development key outside production)")
	runners := fs.Int("runners", 2, "runners running at once")
	interval := fs.Duration("interval", 5*time.Second, "pause between one runner's claim cycles")
	perMinute := fs.Int("per-minute", 0, "claim cycles per minute per runner (overrides --interval)")
	claim := fs.Int("claim", 2, "personas per claim")
	lease := fs.Int("lease", 30, "lease seconds per claim (10-21600)")
	work := fs.Duration("work", 2*time.Second, "how long one simulated tick takes (spread over its batches)")
	duration := fs.Duration("duration", 0, "stop after this long (0: until Ctrl-C or --iterations)")
	iterations := fs.Int("iterations", 0, "claim cycles per runner (0: no limit)")
	mixFlag := fs.String("mix", "ok=60,empty=10,failed=15,timeout=5,crash=10", "outcome weights")
	seed := fs.Uint64("seed", 0, "random seed (0: random)")
	quiet := fs.Bool("quiet", false, "print only the summary")
	if code, ok := a.parse(fs, args); !ok {
		return code
	}
	if fs.NArg() > 0 {
		return a.usageError(fs, "unexpected arguments %v", fs.Args())
	}
	mix, err := runnersim.ParseMix(*mixFlag)
	if err != nil {
		return a.usageError(fs, "--mix: %v", err)
	}
	if *runners < 1 || *claim < 1 || *perMinute < 0 || *iterations < 0 || *duration < 0 {
		return a.usageError(fs, "--runners and --claim must be at least 1; --per-minute, --iterations and --duration not negative")
	}
	if *perMinute > 0 {
		*interval = time.Minute / time.Duration(*perMinute)
	}
	apiURL, usage, err := a.resolveAPI(fs, &apiFlags{api: *api})
	if err != nil {
		if usage {
			return a.usageError(fs, "%v", err)
		}
		return a.fail(fs.Name(), "%v", err)
	}
	serviceKey := *key
	if serviceKey == "" {
		serviceKey = a.cfg.ServiceKey
	}
	if serviceKey == "" {
		if a.cfg.production() {
			return a.fail(fs.Name(), "no service key: set MANA_SERVICE_KEY (or pass --service-key)")
		}
		serviceKey = devServiceKey
	}
	client, err := internalclient.New(apiURL, serviceKey)
	if err != nil {
		return a.fail(fs.Name(), "%v", err)
	}
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}
	cfg := runnersim.Config{
		Client: client, Runners: *runners, Interval: *interval, ClaimLimit: *claim, LeaseSeconds: *lease,
		Work: *work, Iterations: *iterations, Mix: mix, Seed: *seed,
	}
	if !*quiet {
		cfg.Out = a.stdout
		fmt.Fprintf(a.stdout, "simulating %d runner(s) against %s every %s (Ctrl-C stops)\n", *runners, apiURL, *interval)
	}
	stats, err := runnersim.Run(ctx, cfg)
	if err != nil {
		return a.fail(fs.Name(), "%v", err)
	}
	fmt.Fprintln(a.stdout, stats.String())
	if stats.Claims == 0 && stats.Errors > 0 {
		return exitFailure
	}
	return exitOK
}
