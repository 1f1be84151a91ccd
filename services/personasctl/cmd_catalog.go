package main

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
)

func (a *app) cmdCatalog(ctx context.Context, args []string) int {
	fs := newFlagSet("catalog", "validate|list [flags]", "Work with the persona catalog without calling any service.\n\n"+
		"  validate  check every rule and report each problem with its path\n"+
		"  list      print the catalog's personas and shared spaces")
	if code, ok := a.parse(fs, args); !ok {
		return code
	}
	if fs.NArg() == 0 {
		return a.usageError(fs, "missing subcommand")
	}
	switch sub, rest := fs.Arg(0), fs.Args()[1:]; sub {
	case "validate":
		return a.cmdCatalogValidate(rest)
	case "list":
		return a.cmdCatalogList(rest)
	default:
		return a.usageError(fs, "unknown subcommand %q", sub)
	}
}

func (a *app) cmdCatalogValidate(args []string) int {
	fs := newFlagSet("catalog validate", "[--catalog PATH] [--output text|json]",
		"Check the catalog against every rule: plain lowercase emails in @mana.test, unique;\n"+
			"name and archetype set; prompts of at least 20 characters; module weights ≥ 0 with\n"+
			"one positive; cadence daily, weekdays or hourly (default daily); shared spaces\n"+
			"naming personas that exist. Exit 1 lists every problem.")
	path := addCatalogFlag(fs)
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
	c, name, err := loadCatalog(*path)
	if err != nil {
		if out.json() {
			_ = writeJSON(a.stdout, map[string]any{"catalog": name, "valid": false, "error": err.Error(), "problems": []problemJSON{}})
		}
		return a.fail("catalog validate", "%v", err)
	}
	probs := c.Validate()
	if out.json() {
		if err := writeJSON(a.stdout, map[string]any{
			"catalog": name, "valid": len(probs) == 0, "personas": len(c.Personas),
			"sharedSpaces": len(c.SharedSpaces), "problems": problemsJSON(probs),
		}); err != nil {
			return a.fail("catalog validate", "%v", err)
		}
	} else {
		for _, p := range probs {
			fmt.Fprintln(a.stdout, p.String())
		}
		if len(probs) == 0 {
			fmt.Fprintf(a.stdout, "ok: %s: %d personas, %d shared spaces\n", name, len(c.Personas), len(c.SharedSpaces))
		} else {
			fmt.Fprintf(a.stdout, "invalid: %s: %d problems\n", name, len(probs))
		}
	}
	if len(probs) > 0 {
		return exitFailure
	}
	return exitOK
}

func (a *app) cmdCatalogList(args []string) int {
	fs := newFlagSet("catalog list", "[--catalog PATH] [--output text|json]", "Print the catalog's personas and shared spaces (json: the decoded catalog).")
	path := addCatalogFlag(fs)
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
	c, _, err := loadCatalog(*path)
	if err != nil {
		return a.fail("catalog list", "%v", err)
	}
	if probs := c.Validate(); len(probs) > 0 {
		for _, p := range probs {
			a.warn("%s", p)
		}
	}
	if out.json() {
		if err := writeJSON(a.stdout, c); err != nil {
			return a.fail("catalog list", "%v", err)
		}
		return exitOK
	}
	tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "EMAIL\tNAME\tARCHETYPE\tCADENCE\tMODULES")
	for _, p := range c.Personas {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", p.Email, p.Name, p.Archetype, p.Cadence(), formatMix(p.ModuleMix))
	}
	if err := tw.Flush(); err != nil {
		return a.fail("catalog list", "write output: %v", err)
	}
	if len(c.SharedSpaces) > 0 {
		fmt.Fprintln(a.stdout)
		fmt.Fprintln(a.stdout, "shared spaces:")
		for _, s := range c.SharedSpaces {
			fmt.Fprintf(a.stdout, "  %s (%s): %s\n", s.Name, s.Kind, strings.Join(s.Members, ", "))
		}
	}
	return exitOK
}

// formatMix renders a module mix heaviest first: "todo .4, calendar .3".
func formatMix(mix map[string]float64) string {
	modules := slices.Sorted(maps.Keys(mix))
	slices.SortStableFunc(modules, func(x, y string) int {
		switch {
		case mix[x] > mix[y]:
			return -1
		case mix[x] < mix[y]:
			return 1
		}
		return 0
	})
	parts := make([]string, len(modules))
	for i, m := range modules {
		parts[i] = fmt.Sprintf("%s %s", m, strings.TrimPrefix(fmt.Sprintf("%g", mix[m]), "0"))
	}
	return strings.Join(parts, ", ")
}
