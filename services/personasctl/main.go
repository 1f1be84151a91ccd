// Command personasctl is the operator CLI for Mana personas: it validates the
// persona catalog, derives persona passwords, seeds the catalog into Mana
// through the admin API, and cleans up personas that are no longer in it.
//
// It talks to the admin API only through pkg/adminclient and reads the
// environment only in config.go. It never prints the admin token or a
// password, except `personasctl password`, whose purpose is to print one.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := runContext(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is the whole program minus the process: tests call it in-process.
func run(args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) int {
	return runContext(context.Background(), args, getenv, stdin, stdout, stderr)
}

func runContext(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) int {
	a := &app{
		cfg:        loadConfig(getenv),
		stdin:      stdin,
		stdout:     stdout,
		stderr:     stderr,
		isTerminal: isTerminal,
	}
	return a.dispatch(ctx, args)
}

// app is one invocation: configuration and the three streams.
type app struct {
	cfg    config
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	// isTerminal decides whether cleanup may ask for confirmation.
	isTerminal func(io.Reader) bool
}

type command struct {
	name    string
	summary string
	run     func(a *app, ctx context.Context, args []string) int
}

func commands() []command {
	return []command{
		{"catalog", "validate or list the persona catalog", (*app).cmdCatalog},
		{"password", "print the derived password of a persona", (*app).cmdPassword},
		{"seed", "create or update every catalog persona through the admin API", (*app).cmdSeed},
		{"list", "list the personas that exist (admin API)", (*app).cmdList},
		{"show", "show one persona with its recent actions and feedback", (*app).cmdShow},
		{"trends", "module ratings with regressions flagged, or one module's weekly trend", (*app).cmdTrends},
		{"cleanup", "delete personas that are not in the catalog", (*app).cmdCleanup},
		{"fleet", "show whether the fleet is paused", cmdFleet("fleet", "Show whether the whole fleet is paused, since when and by whom.", nil)},
		{"pause", "pause the whole fleet (runners get no personas)", cmdFleet("pause",
			"Pause the whole fleet: runners' due lists and claims are empty until resume. Leases already held run on.", boolPtr(true))},
		{"resume", "resume the fleet", cmdFleet("resume", "Resume the whole fleet after pause.", boolPtr(false))},
		{"enable", "put a persona back into the schedule", personaAction("enable",
			"Enable a persona: it is due again under its schedule.", setEnabled(true))},
		{"disable", "take a persona out of the schedule", personaAction("disable",
			"Disable a persona: it is never due until enabled (a lease it holds runs on).", setEnabled(false))},
		{"release", "end a persona's lease (no failure counted)", personaAction("release",
			"End whatever lease the persona has, without counting a failure; its runner's later writes are stored as stale.", releaseLease)},
		{"unquarantine", "lift a persona's quarantine and reset its failures", personaAction("unquarantine",
			"Lift a persona's quarantine and reset its consecutive failures and backoff.", unquarantine)},
		{"ticks", "list a persona's ticks, or show one", (*app).cmdTicks},
		{"export", "write raw actions, feedback or ticks to a file (NDJSON or CSV)", (*app).cmdExport},
		{"simulate", "act as persona runners against the internal API (development, tests)", (*app).cmdSimulate},
	}
}

func (a *app) dispatch(ctx context.Context, args []string) int {
	if len(args) == 0 {
		a.usage(a.stderr)
		return exitUsage
	}
	name, rest := args[0], args[1:]
	switch name {
	case "help", "-h", "-help", "--help":
		if len(rest) > 0 {
			// "help seed" is "seed --help".
			return a.dispatch(ctx, []string{rest[0], "--help"})
		}
		a.usage(a.stdout)
		return exitOK
	}
	for _, c := range commands() {
		if c.name == name {
			return c.run(a, ctx, rest)
		}
	}
	fmt.Fprintf(a.stderr, "personasctl: unknown command %q\n\n", name)
	a.usage(a.stderr)
	return exitUsage
}

func (a *app) usage(w io.Writer) {
	fmt.Fprintln(w, "usage: personasctl <command> [flags] [args]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Operator CLI for Mana personas (synthetic test users).")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "commands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-12s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Run `personasctl <command> --help` for its flags.")
	fmt.Fprintln(w, "Environment: MANA_API_URL (gateway, default "+DefaultAPIURL+"), MANA_ADMIN_JWT (admin token),")
	fmt.Fprintln(w, "PERSONA_SEED_SECRET (password key; required when NODE_ENV=production), MANA_SERVICE_KEY (simulate), NODE_ENV.")
	fmt.Fprintln(w, "Exit codes: 0 ok, 1 failure, 2 usage error.")
}

// flagSet is a subcommand's flags with its own usage text. Parse errors and
// --help are handled by parse, which returns the exit code to stop with.
type flagSet struct {
	*flag.FlagSet
	synopsis string // e.g. "seed [flags]"
	about    string
}

// newFlagSet makes the flags of command name ("seed", "catalog validate");
// synopsis follows the name in the usage line.
func newFlagSet(name, synopsis, about string) *flagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // parse prints errors and usage itself
	return &flagSet{FlagSet: fs, synopsis: strings.TrimSpace(name + " " + synopsis), about: about}
}

func (fs *flagSet) printUsage(w io.Writer) {
	fmt.Fprintf(w, "usage: personasctl %s\n\n%s\n", fs.synopsis, fs.about)
	hasFlags := false
	fs.VisitAll(func(*flag.Flag) { hasFlags = true })
	if hasFlags {
		fmt.Fprintln(w, "\nflags:")
		fs.SetOutput(w)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}
}

// parse parses args; ok is false when the command must stop with code.
func (a *app) parse(fs *flagSet, args []string) (code int, ok bool) {
	err := fs.Parse(args)
	switch {
	case err == nil:
		return exitOK, true
	case errors.Is(err, flag.ErrHelp):
		fs.printUsage(a.stdout)
		return exitOK, false
	default:
		return a.usageError(fs, "%v", err), false
	}
}

// usageError prints a usage problem with the command's usage and returns 2.
func (a *app) usageError(fs *flagSet, format string, args ...any) int {
	fmt.Fprintf(a.stderr, "personasctl %s: %s\n\n", fs.Name(), fmt.Sprintf(format, args...))
	fs.printUsage(a.stderr)
	return exitUsage
}

// fail prints a failure and returns 1.
func (a *app) fail(cmd, format string, args ...any) int {
	fmt.Fprintf(a.stderr, "personasctl %s: %s\n", cmd, fmt.Sprintf(format, args...))
	return exitFailure
}

func (a *app) warn(format string, args ...any) {
	fmt.Fprintf(a.stderr, "warning: %s\n", fmt.Sprintf(format, args...))
}

// isTerminal reports whether r is an interactive terminal (a character
// device), without depending on a terminal library.
func isTerminal(r io.Reader) bool {
	f, ok := r.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
