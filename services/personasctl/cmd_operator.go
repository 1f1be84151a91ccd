package main

// Operator control through the admin API: pause and resume the fleet,
// enable or disable a persona, release its lease, lift its quarantine, and
// read its tick history.

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mana/personas/pkg/adminclient"
)

// cmdFleet builds pause, resume and fleet: set or show the fleet switch.
func cmdFleet(name, about string, set *bool) func(a *app, ctx context.Context, args []string) int {
	return func(a *app, ctx context.Context, args []string) int {
		fs := newFlagSet(name, "[flags]", about)
		api := addAPIFlags(fs)
		out := addOutputFlag(fs)
		if code, ok := a.parse(fs, args); !ok {
			return code
		}
		if err := out.check(); err != nil {
			return a.usageError(fs, "%v", err)
		}
		if fs.NArg() > 0 {
			return a.usageError(fs, "unexpected arguments: %s", strings.Join(fs.Args(), " "))
		}
		client, apiURL, code := a.client(fs, api)
		if client == nil {
			return code
		}
		var st *adminclient.FleetState
		var err error
		if set != nil {
			st, err = client.SetFleetPaused(ctx, *set)
		} else {
			st, err = client.FleetState(ctx)
		}
		if err != nil {
			return a.fail(name, "at %s: %s", apiURL, seedFailure(err))
		}
		if out.json() {
			if err := writeJSON(a.stdout, st); err != nil {
				return a.fail(name, "%v", err)
			}
			return exitOK
		}
		state := "running"
		if st.Paused {
			state = "paused (runners get no personas; leases already held run on)"
		}
		by := st.UpdatedBy
		if by == "" {
			by = "nobody yet"
		}
		fmt.Fprintf(a.stdout, "fleet %s; last switched %s by %s\n", state, st.UpdatedAt.UTC().Format(time.RFC3339), by)
		return exitOK
	}
}

func boolPtr(b bool) *bool { return &b }

// personaAction runs one call on one persona named by USERID or EMAIL and
// prints its outcome.
func personaAction(name, about string, do func(ctx context.Context, c *adminclient.Client, id string) (string, error)) func(a *app, ctx context.Context, args []string) int {
	return func(a *app, ctx context.Context, args []string) int {
		fs := newFlagSet(name, "[flags] USERID|EMAIL", about)
		api := addAPIFlags(fs)
		if code, ok := a.parse(fs, args); !ok {
			return code
		}
		if fs.NArg() != 1 || strings.TrimSpace(fs.Arg(0)) == "" {
			return a.usageError(fs, "expected exactly one USERID or EMAIL")
		}
		client, apiURL, code := a.client(fs, api)
		if client == nil {
			return code
		}
		id, err := resolvePersona(ctx, client, fs.Arg(0))
		if err != nil {
			return a.fail(name, "%s at %s: %s", fs.Arg(0), apiURL, seedFailure(err))
		}
		msg, err := do(ctx, client, id)
		if err != nil {
			return a.fail(name, "%s at %s: %s", fs.Arg(0), apiURL, seedFailure(err))
		}
		fmt.Fprintf(a.stdout, "%s: %s\n", fs.Arg(0), msg)
		return exitOK
	}
}

// resolvePersona turns an email into the persona's user id; anything else
// is taken as a user id.
func resolvePersona(ctx context.Context, client *adminclient.Client, arg string) (string, error) {
	if !strings.Contains(arg, "@") {
		return arg, nil
	}
	p, err := client.FindByEmail(ctx, arg)
	if err != nil {
		return "", err
	}
	return p.UserID, nil
}

func setEnabled(enabled bool) func(ctx context.Context, c *adminclient.Client, id string) (string, error) {
	return func(ctx context.Context, c *adminclient.Client, id string) (string, error) {
		if _, err := c.SetEnabled(ctx, id, enabled); err != nil {
			return "", err
		}
		if enabled {
			return "enabled (due again under its schedule)", nil
		}
		return "disabled (never due; a lease it holds runs on)", nil
	}
}

func releaseLease(ctx context.Context, c *adminclient.Client, id string) (string, error) {
	released, err := c.ReleaseLease(ctx, id)
	switch {
	case err != nil:
		return "", err
	case released:
		return "lease released (no failure counted)", nil
	default:
		return "held no lease", nil
	}
}

func unquarantine(ctx context.Context, c *adminclient.Client, id string) (string, error) {
	if _, err := c.Unquarantine(ctx, id); err != nil {
		return "", err
	}
	return "quarantine lifted, failures reset", nil
}

func (a *app) cmdTicks(ctx context.Context, args []string) int {
	fs := newFlagSet("ticks", "[flags] USERID|EMAIL [TICKID]",
		"List a persona's ticks, newest first; with TICKID, print that tick with its summary, actions and ratings as JSON.")
	api := addAPIFlags(fs)
	status := fs.String("status", "", "only ticks with this status (running, ok, empty, failed, timeout, crashed)")
	limit := fs.Int("limit", 20, "ticks per page (1-200)")
	cursor := fs.String("cursor", "", "continue after a previous page (its next cursor)")
	out := addOutputFlag(fs)
	if code, ok := a.parse(fs, args); !ok {
		return code
	}
	if err := out.check(); err != nil {
		return a.usageError(fs, "%v", err)
	}
	if fs.NArg() < 1 || fs.NArg() > 2 || strings.TrimSpace(fs.Arg(0)) == "" {
		return a.usageError(fs, "expected USERID or EMAIL, and optionally a TICKID")
	}
	if *limit < 1 || *limit > 200 {
		return a.usageError(fs, "--limit must be from 1 to 200")
	}
	client, apiURL, code := a.client(fs, api)
	if client == nil {
		return code
	}
	who := fs.Arg(0)
	id, err := resolvePersona(ctx, client, who)
	if err != nil {
		return a.fail("ticks", "%s at %s: %s", who, apiURL, seedFailure(err))
	}
	if fs.NArg() == 2 {
		d, err := client.GetTick(ctx, id, fs.Arg(1))
		if err != nil {
			return a.fail("ticks", "%s tick %s at %s: %s", who, fs.Arg(1), apiURL, seedFailure(err))
		}
		if err := writeJSON(a.stdout, d); err != nil {
			return a.fail("ticks", "%v", err)
		}
		return exitOK
	}
	page, err := client.ListTicks(ctx, id, adminclient.TickListOptions{Limit: *limit, Cursor: *cursor, Status: *status})
	if err != nil {
		return a.fail("ticks", "%s at %s: %s", who, apiURL, seedFailure(err))
	}
	if out.json() {
		if err := writeJSON(a.stdout, map[string]any{"ticks": page.Ticks, "nextCursor": page.NextCursor}); err != nil {
			return a.fail("ticks", "%v", err)
		}
		return exitOK
	}
	tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TICK\tSTATUS\tSTARTED\tDURATION\tACTIONS\tERRORS\tRATINGS\tERROR")
	for _, t := range page.Ticks {
		started := "-"
		if t.StartedAt != nil {
			started = t.StartedAt.UTC().Format(time.RFC3339)
		}
		dur := "-"
		if t.DurationMs != nil {
			dur = (time.Duration(*t.DurationMs) * time.Millisecond).String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%d\t%s\n", t.TickID, t.Status, started, dur, t.Actions, t.Errors, t.Ratings, t.ErrorKind)
	}
	if err := tw.Flush(); err != nil {
		return a.fail("ticks", "write output: %v", err)
	}
	if page.NextCursor != "" {
		fmt.Fprintf(a.stdout, "more: --cursor %s\n", page.NextCursor)
	}
	return exitOK
}
