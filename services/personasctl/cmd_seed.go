package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/mana/personas/pkg/adminclient"
	"github.com/mana/personas/pkg/catalog"
)

// Seed statuses, in text and JSON output.
const (
	statusCreated  = "created"
	statusUpdated  = "updated"
	statusUpserted = "upserted" // the server did not say which
	statusPlanned  = "planned"  // --dry-run
	statusFailed   = "failed"
	statusSkipped  = "skipped" // interrupted before its turn
)

type seedResult struct {
	Email     string        `json:"email"`
	Name      string        `json:"name"`
	Archetype string        `json:"archetype"`
	Cadence   string        `json:"tickCadence"`
	Status    string        `json:"status"`
	UserID    string        `json:"userId,omitempty"`
	Error     string        `json:"error,omitempty"`
	Problems  []problemJSON `json:"problems,omitempty"`

	modules string // module mix for the dry-run line
}

type seedSummary struct {
	Total    int `json:"total"`
	Created  int `json:"created"`
	Updated  int `json:"updated"`
	Upserted int `json:"upserted"`
	Planned  int `json:"planned"`
	Failed   int `json:"failed"`
	Skipped  int `json:"skipped"`
}

type seedReport struct {
	Command         string        `json:"command"`
	DryRun          bool          `json:"dryRun"`
	API             string        `json:"api,omitempty"`
	Catalog         string        `json:"catalog"`
	CatalogProblems []problemJSON `json:"catalogProblems"`
	Results         []seedResult  `json:"results"`
	Summary         seedSummary   `json:"summary"`
}

func (a *app) cmdSeed(ctx context.Context, args []string) int {
	fs := newFlagSet("seed", "[flags]",
		"Create or update every catalog persona through the admin API (POST /api/v1/personas/admin),\n"+
			"one line per persona, then a summary. The password sent for a new persona is derived from\n"+
			"PERSONA_SEED_SECRET (see `personasctl password`). Seeding is idempotent: a second run only\n"+
			"reports \"updated\". A catalog entry that breaks a rule fails on its own line and the\n"+
			"others are still seeded. Exit 1 if any persona failed or the catalog has problems.")
	api := addAPIFlags(fs)
	catalogPath := addCatalogFlag(fs)
	dryRun := fs.Bool("dry-run", false, "print what would be sent, send nothing (needs no token)")
	only := fs.String("only", "", "comma-separated emails: seed only these catalog personas")
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
	apiURL, usage, err := a.resolveAPI(fs, api)
	if err != nil {
		if usage {
			return a.usageError(fs, "%v", err)
		}
		return a.fail("seed", "%v", err)
	}
	secret, err := a.seedSecret()
	if err != nil {
		return a.fail("seed", "%v", err)
	}
	cat, catName, err := loadCatalog(*catalogPath)
	if err != nil {
		return a.fail("seed", "%v", err)
	}
	selected, err := selectPersonas(cat, *only)
	if err != nil {
		return a.usageError(fs, "%v", err)
	}

	var client *adminclient.Client
	if !*dryRun {
		tok, err := a.token(api)
		if err != nil {
			return a.fail("seed", "%v", err)
		}
		if client, err = adminclient.New(apiURL, tok, adminclient.WithUserAgent("personasctl")); err != nil {
			return a.fail("seed", "%v", err)
		}
	}

	probs := catalog.ProblemsByPersona(cat.Validate())
	report := seedReport{Command: "seed", DryRun: *dryRun, API: apiURL, Catalog: catName,
		CatalogProblems: problemsJSON(probs[-1]), Results: make([]seedResult, 0, len(selected))}

	// Text goes to stdout; with --output json stdout carries only the report
	// and progress lines go to stderr.
	lines := a.stdout
	if out.json() {
		lines = a.stderr
	}
	verb := "seeding"
	if *dryRun {
		verb = "dry run: would seed"
	}
	fmt.Fprintf(lines, "%s %d personas from %s into %s\n", verb, len(selected), catName, apiURL)
	for _, p := range probs[-1] {
		fmt.Fprintf(lines, "✗ catalog: %s\n", p)
	}

	// After a 401 or 403 every further upsert would fail the same way: the
	// rest are reported without being sent.
	var authErr string
	for n, i := range selected {
		p := cat.Personas[i]
		r := seedResult{Email: p.Email, Name: p.Name, Archetype: p.Archetype, Cadence: string(p.Cadence()), modules: formatMix(p.ModuleMix)}
		switch {
		case ctx.Err() != nil:
			r.Status, r.Error = statusSkipped, "interrupted"
		case len(probs[i]) > 0:
			r.Status, r.Problems = statusFailed, problemsJSON(probs[i])
			msgs := make([]string, len(probs[i]))
			for k, pr := range probs[i] {
				msgs[k] = pr.String()
			}
			r.Error = "invalid catalog entry: " + strings.Join(msgs, "; ")
		case *dryRun:
			r.Status = statusPlanned
		case authErr != "":
			r.Status, r.Error = statusFailed, "not sent: "+authErr
		default:
			res, err := client.UpsertPersona(ctx, adminclient.UpsertRequest{
				Email: p.Email, Name: p.Name, Password: catalog.Password(secret, p.Email),
				Archetype: p.Archetype, SystemPrompt: p.SystemPrompt, ModuleMix: p.ModuleMix,
				TickCadence: string(p.Cadence()), MaxHistoryDays: p.MaxHistoryDays, Tags: tagsOf(p),
			})
			switch {
			case err != nil:
				r.Status, r.Error = statusFailed, seedFailure(err)
				if errors.Is(err, adminclient.ErrUnauthorized) || errors.Is(err, adminclient.ErrForbidden) {
					authErr = r.Error
				}
			case res.Created == nil:
				r.Status, r.UserID = statusUpserted, res.UserID
			case *res.Created:
				r.Status, r.UserID = statusCreated, res.UserID
			default:
				r.Status, r.UserID = statusUpdated, res.UserID
			}
		}
		report.Results = append(report.Results, r)
		countSeed(&report.Summary, r.Status)
		printSeedLine(lines, progress(n+1, len(selected)), r)
	}

	s := report.Summary
	if *dryRun {
		fmt.Fprintf(lines, "summary: %d would be upserted, %d failed, of %d (dry run: nothing sent)\n", s.Planned, s.Failed, s.Total)
	} else {
		fmt.Fprintf(lines, "summary: %d created, %d updated, %d failed, of %d", s.Created, s.Updated+s.Upserted, s.Failed, s.Total)
		if s.Skipped > 0 {
			fmt.Fprintf(lines, " (%d skipped: interrupted)", s.Skipped)
		}
		fmt.Fprintln(lines)
	}
	if out.json() {
		if err := writeJSON(a.stdout, report); err != nil {
			return a.fail("seed", "%v", err)
		}
	}
	if s.Failed > 0 || s.Skipped > 0 || len(report.CatalogProblems) > 0 {
		return exitFailure
	}
	return exitOK
}

func countSeed(s *seedSummary, status string) {
	s.Total++
	switch status {
	case statusCreated:
		s.Created++
	case statusUpdated:
		s.Updated++
	case statusUpserted:
		s.Upserted++
	case statusPlanned:
		s.Planned++
	case statusFailed:
		s.Failed++
	case statusSkipped:
		s.Skipped++
	}
}

func printSeedLine(w io.Writer, prefix string, r seedResult) {
	switch r.Status {
	case statusFailed, statusSkipped:
		fmt.Fprintf(w, "%s ✗ %s: %s\n", prefix, r.Email, r.Error)
	case statusPlanned:
		fmt.Fprintf(w, "%s · would upsert %s (%s, %s, %s: %s)\n", prefix, r.Email, r.Name, r.Archetype, r.Cadence, r.modules)
	default:
		fmt.Fprintf(w, "%s ✓ %s %s (userId %s)\n", prefix, r.Status, r.Email, r.UserID)
	}
}

// seedFailure explains an upsert error, with a hint for the usual causes.
func seedFailure(err error) string {
	msg := describeErr(err)
	switch {
	case errors.Is(err, adminclient.ErrUnauthorized):
		return msg + " (the admin token is missing, expired or not from this mana-auth; tokens live 15 minutes)"
	case errors.Is(err, adminclient.ErrForbidden):
		return msg + " (the token's role is not \"admin\"; see the README on the role claim)"
	}
	return msg
}

// selectPersonas returns the indices to seed: all, or those named by --only.
func selectPersonas(cat *catalog.Catalog, only string) ([]int, error) {
	if strings.TrimSpace(only) == "" {
		idx := make([]int, len(cat.Personas))
		for i := range idx {
			idx[i] = i
		}
		return idx, nil
	}
	var idx []int
	var unknown []string
	for _, email := range strings.Split(only, ",") {
		email = strings.TrimSpace(email)
		if email == "" {
			continue
		}
		found := false
		for i, p := range cat.Personas {
			if strings.EqualFold(p.Email, email) && !slices.Contains(idx, i) {
				idx, found = append(idx, i), true
			}
		}
		if !found && !alreadySelected(cat, idx, email) {
			unknown = append(unknown, email)
		}
	}
	if len(unknown) > 0 {
		return nil, fmt.Errorf("--only names personas that are not in the catalog: %s", strings.Join(unknown, ", "))
	}
	if len(idx) == 0 {
		return nil, errors.New("--only names no persona")
	}
	return idx, nil
}

func alreadySelected(cat *catalog.Catalog, idx []int, email string) bool {
	for _, i := range idx {
		if strings.EqualFold(cat.Personas[i].Email, email) {
			return true
		}
	}
	return false
}

// tagsOf is a catalog persona's tags for the upsert: nil (keep) when the
// catalog leaves them out, else the list, an empty one included.
func tagsOf(p catalog.Persona) *[]string {
	if p.Tags == nil {
		return nil
	}
	tags := append([]string{}, p.Tags...)
	return &tags
}
