package main

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mana/personas/pkg/adminclient"
)

func (a *app) cmdList(ctx context.Context, args []string) int {
	fs := newFlagSet("list", "[flags]", "List the personas that exist, newest first, with their actions of the last 7 days.")
	api := addAPIFlags(fs)
	archetype := fs.String("archetype", "", "only this archetype")
	cadence := fs.String("cadence", "", "only this cadence (daily, weekdays, hourly)")
	query := fs.String("q", "", "only personas whose email or name contains this")
	tags := fs.String("tag", "", "only personas with every one of these tags (comma-separated)")
	status := fs.String("status", "", "only personas in this state (enabled, disabled, backing-off, quarantined, leased, overdue)")
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
	personas, err := client.ListAllPersonas(ctx, adminclient.ListOptions{Archetype: *archetype, Cadence: *cadence, Query: *query,
		Tags: splitTags(*tags), Status: *status}, 0)
	if err != nil {
		return a.fail("list", "cannot list personas at %s: %s", apiURL, seedFailure(err))
	}
	if out.json() {
		if personas == nil {
			personas = []adminclient.Persona{}
		}
		if err := writeJSON(a.stdout, map[string]any{"personas": personas, "count": len(personas)}); err != nil {
			return a.fail("list", "%v", err)
		}
		return exitOK
	}
	tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "EMAIL\tARCHETYPE\tCADENCE\tACTIONS 7D\tLAST ACTIVE\tUSER ID")
	for _, p := range personas {
		last := "never"
		if p.LastActiveAt != nil {
			last = p.LastActiveAt.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", p.Email, p.Archetype, p.TickCadence, p.Actions7d, last, p.UserID)
	}
	if err := tw.Flush(); err != nil {
		return a.fail("list", "write output: %v", err)
	}
	fmt.Fprintf(a.stdout, "%d personas\n", len(personas))
	return exitOK
}

func (a *app) cmdShow(ctx context.Context, args []string) int {
	fs := newFlagSet("show", "[flags] USERID|EMAIL", "Print one persona with its 20 newest actions and its feedback per module, as JSON.")
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
	id := fs.Arg(0)
	if strings.Contains(id, "@") {
		p, err := client.FindByEmail(ctx, id)
		if err != nil {
			return a.fail("show", "%s at %s: %s", id, apiURL, seedFailure(err))
		}
		id = p.UserID
	}
	detail, err := client.GetPersona(ctx, id)
	if err != nil {
		return a.fail("show", "%s at %s: %s", id, apiURL, seedFailure(err))
	}
	if err := writeJSON(a.stdout, detail); err != nil {
		return a.fail("show", "%v", err)
	}
	return exitOK
}

// splitTags splits a comma-separated -tag value (nil when empty).
func splitTags(v string) []string {
	var out []string
	for _, t := range strings.Split(v, ",") {
		if t = strings.TrimSpace(t); t != "" {
			out = append(out, t)
		}
	}
	return out
}
