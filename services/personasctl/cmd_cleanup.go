package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/mana/personas/pkg/adminclient"
)

// Cleanup actions and statuses.
const (
	actionKeep   = "keep"
	actionDelete = "delete"

	statusKept    = "kept"
	statusDeleted = "deleted"
	statusGone    = "gone" // already deleted by someone else: fine
)

type cleanupEntry struct {
	UserID    string `json:"userId"`
	Email     string `json:"email"`
	Name      string `json:"name,omitempty"`
	Archetype string `json:"archetype,omitempty"`
	InCatalog bool   `json:"inCatalog"`
	Action    string `json:"action"`
	Status    string `json:"status"`
	Error     string `json:"error,omitempty"`
}

type cleanupSummary struct {
	Listed   int `json:"listed"`
	Kept     int `json:"kept"`
	ToDelete int `json:"toDelete"`
	Deleted  int `json:"deleted"`
	Failed   int `json:"failed"`
}

type cleanupReport struct {
	Command  string         `json:"command"`
	DryRun   bool           `json:"dryRun"`
	All      bool           `json:"all"`
	API      string         `json:"api"`
	Catalog  string         `json:"catalog,omitempty"`
	Aborted  bool           `json:"aborted"`
	Error    string         `json:"error,omitempty"`
	Personas []cleanupEntry `json:"personas"`
	Summary  cleanupSummary `json:"summary"`
}

func (a *app) cmdCleanup(ctx context.Context, args []string) int {
	fs := newFlagSet("cleanup", "[flags]",
		"List the personas that exist (admin API), mark those whose email is not in the catalog,\n"+
			"and delete them (user and all their data) after confirmation. In a terminal it asks y/N;\n"+
			"elsewhere it refuses unless --yes is given. Exit 1 if any delete failed.")
	api := addAPIFlags(fs)
	catalogPath := addCatalogFlag(fs)
	dryRun := fs.Bool("dry-run", false, "only list what would be deleted")
	yes := fs.Bool("yes", false, "delete without asking")
	all := fs.Bool("all", false, "delete every persona, whether in the catalog or not (e.g. to reset a test system)")
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
	interactive := a.isTerminal(a.stdin)
	if !*dryRun && !*yes && !interactive {
		return a.usageError(fs, "refusing to delete without confirmation: stdin is not a terminal; pass --yes (or --dry-run to only list)")
	}

	// Load the catalog before calling anything: deciding what to delete from
	// a broken catalog could delete personas that should stay.
	keep := map[string]bool{}
	catName := ""
	if !*all {
		cat, name, err := loadCatalog(*catalogPath)
		if err != nil {
			return a.fail("cleanup", "%v", err)
		}
		catName = name
		if probs := cat.Validate(); len(probs) > 0 {
			for _, p := range probs {
				fmt.Fprintf(a.stderr, "%s\n", p)
			}
			return a.fail("cleanup", "%s has %d problems; fix them first (`personasctl catalog validate`) — cleanup decides what to delete from it", name, len(probs))
		}
		for _, p := range cat.Personas {
			keep[strings.ToLower(p.Email)] = true
		}
	}

	client, apiURL, code := a.client(fs, api)
	if client == nil {
		return code
	}
	report := cleanupReport{Command: "cleanup", DryRun: *dryRun, All: *all, API: apiURL, Catalog: catName, Personas: []cleanupEntry{}}
	lines := a.stdout
	if out.json() {
		lines = a.stderr
	}
	finish := func(code int) int {
		if out.json() {
			if err := writeJSON(a.stdout, report); err != nil {
				return a.fail("cleanup", "%v", err)
			}
		}
		return code
	}

	personas, err := client.ListAllPersonas(ctx, adminclient.ListOptions{}, 0)
	if err != nil {
		report.Error = "list personas: " + describeErr(err)
		fmt.Fprintf(a.stderr, "personasctl cleanup: cannot list personas at %s: %s\n", apiURL, seedFailure(err))
		return finish(exitFailure)
	}

	var doomed []int
	for _, p := range personas {
		e := cleanupEntry{UserID: p.UserID, Email: p.Email, Name: p.Name, Archetype: p.Archetype, InCatalog: keep[strings.ToLower(p.Email)]}
		if e.InCatalog {
			e.Action, e.Status = actionKeep, statusKept
			report.Summary.Kept++
		} else {
			e.Action, e.Status = actionDelete, statusPlanned
			doomed = append(doomed, len(report.Personas))
			report.Summary.ToDelete++
		}
		report.Personas = append(report.Personas, e)
	}
	report.Summary.Listed = len(personas)

	fmt.Fprintf(lines, "%d personas at %s; %d to delete\n", len(personas), apiURL, len(doomed))
	for _, e := range report.Personas {
		mark := "  keep  "
		if e.Action == actionDelete {
			mark = "  DELETE"
		}
		fmt.Fprintf(lines, "%s %s (%s, userId %s)\n", mark, e.Email, e.Archetype, e.UserID)
	}
	if len(doomed) == 0 {
		fmt.Fprintln(lines, "nothing to delete")
		return finish(exitOK)
	}
	if *dryRun {
		fmt.Fprintf(lines, "summary: %d would be deleted, %d kept (dry run: nothing deleted)\n", len(doomed), report.Summary.Kept)
		return finish(exitOK)
	}
	if !*yes {
		ok, err := a.confirm(fmt.Sprintf("Delete %d personas and all their data? [y/N] ", len(doomed)))
		if err != nil || !ok {
			report.Aborted = true
			fmt.Fprintln(lines, "aborted: nothing deleted")
			return finish(exitFailure)
		}
	}

	for n, idx := range doomed {
		e := &report.Personas[idx]
		prefix := progress(n+1, len(doomed))
		if ctx.Err() != nil {
			e.Status, e.Error = statusSkipped, "interrupted"
			report.Summary.Failed++
			fmt.Fprintf(lines, "%s ✗ %s: interrupted\n", prefix, e.Email)
			continue
		}
		err := client.DeletePersona(ctx, e.UserID)
		switch {
		case err == nil:
			e.Status = statusDeleted
			report.Summary.Deleted++
			fmt.Fprintf(lines, "%s ✓ deleted %s\n", prefix, e.Email)
		case errors.Is(err, adminclient.ErrNotFound):
			e.Status = statusGone
			report.Summary.Deleted++
			fmt.Fprintf(lines, "%s ✓ already gone %s\n", prefix, e.Email)
		default:
			e.Status, e.Error = statusFailed, seedFailure(err)
			report.Summary.Failed++
			fmt.Fprintf(lines, "%s ✗ %s: %s\n", prefix, e.Email, e.Error)
		}
	}
	s := report.Summary
	fmt.Fprintf(lines, "summary: %d deleted, %d failed, %d kept\n", s.Deleted, s.Failed, s.Kept)
	if s.Failed > 0 {
		return finish(exitFailure)
	}
	return finish(exitOK)
}

// confirm asks on stderr and reads one answer line from stdin; only y or
// yes (any case) agrees.
func (a *app) confirm(question string) (bool, error) {
	fmt.Fprint(a.stderr, question)
	line, err := bufio.NewReader(a.stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return false, fmt.Errorf("read confirmation: %w", err)
	}
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return true, nil
	}
	return false, nil
}
