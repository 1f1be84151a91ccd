package main

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/mana/personas/pkg/adminclient"
)

// cmdTrends prints the modules table with the flagged modules marked, or
// one module's weekly trend as a small text chart.
func (a *app) cmdTrends(ctx context.Context, args []string) int {
	fs := newFlagSet("trends", "[flags] [MODULE]",
		"Print every module's rating over the window with the change against the previous one, flagged modules\n"+
			"marked with !, or with MODULE its weekly trend as a text chart with the regression verdict.")
	api := addAPIFlags(fs)
	window := fs.String("window", "7d", "window of the modules table: 7d or 28d")
	out := addOutputFlag(fs)
	if code, ok := a.parse(fs, args); !ok {
		return code
	}
	if err := out.check(); err != nil {
		return a.usageError(fs, "%v", err)
	}
	if *window != "7d" && *window != "28d" {
		return a.usageError(fs, "--window must be 7d or 28d, not %q", *window)
	}
	if fs.NArg() > 1 {
		return a.usageError(fs, "expected at most one MODULE")
	}
	client, apiURL, code := a.client(fs, api)
	if client == nil {
		return code
	}
	if fs.NArg() == 1 {
		tr, err := client.ModuleTrend(ctx, fs.Arg(0))
		if err != nil {
			return a.fail("trends", "trend of %s at %s: %s", fs.Arg(0), apiURL, seedFailure(err))
		}
		if out.json() {
			if err := writeJSON(a.stdout, tr); err != nil {
				return a.fail("trends", "%v", err)
			}
			return exitOK
		}
		a.printTrend(tr)
		return exitOK
	}
	mods, err := client.Modules(ctx, *window)
	if err != nil {
		return a.fail("trends", "modules at %s: %s", apiURL, seedFailure(err))
	}
	flagged, err := client.FlaggedModules(ctx)
	if err != nil {
		return a.fail("trends", "overview at %s: %s", apiURL, seedFailure(err))
	}
	isFlagged := map[string]adminclient.FlaggedModule{}
	for _, f := range flagged {
		isFlagged[f.Module] = f
	}
	if out.json() {
		if err := writeJSON(a.stdout, map[string]any{"modules": mods, "flagged": flagged}); err != nil {
			return a.fail("trends", "%v", err)
		}
		return exitOK
	}
	fmt.Fprintf(a.stdout, "modules rated %s to %s (window %s)\n", mods.From, mods.To, mods.Window)
	tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\tMODULE\tMEAN\tCOUNT\tCHANGE\tPERSONAS\tREGRESSION")
	for _, m := range mods.Modules {
		mark, verdict := "", ""
		if f, ok := isFlagged[m.Module]; ok {
			mark, verdict = "!", fmt.Sprintf("%.2f lower since %s (%d weeks)", f.Drop, f.Since, f.Weeks)
		}
		change := "—"
		if m.Change != nil {
			change = fmt.Sprintf("%+.2f", m.Change.Delta)
			if m.Change.Significant {
				change += "*"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%.2f\t%d\t%s\t%d\t%s\n", mark, m.Module, m.Mean, m.Count, change, m.Personas, verdict)
	}
	if err := tw.Flush(); err != nil {
		return a.fail("trends", "write output: %v", err)
	}
	fmt.Fprintln(a.stdout, "* the change's 95% interval excludes 0; ! flagged (a drop for 3 weeks or more)")
	return exitOK
}

// printTrend draws one bar per bucket: the mean on a 1–5 scale.
func (a *app) printTrend(tr *adminclient.Trend) {
	fmt.Fprintf(a.stdout, "%s, by %s\n", tr.Module, tr.Bucket)
	const width = 40
	for _, b := range tr.Buckets {
		line := fmt.Sprintf("%s  ", b.Start)
		if b.Mean == nil {
			line += fmt.Sprintf("%-*s     n=0", width, "")
		} else {
			n := int((*b.Mean - 1) / 4 * width)
			line += fmt.Sprintf("%-*s %.2f n=%d", width, strings.Repeat("█", max(n, 0)), *b.Mean, b.Count)
		}
		if b.Partial {
			line += " (partial)"
		}
		if v := tr.Verdict; v.Flagged && v.Since != nil && b.Start >= *v.Since && !b.Partial {
			line += " !"
		}
		fmt.Fprintln(a.stdout, line)
	}
	if v := tr.Verdict; v.Flagged {
		fmt.Fprintf(a.stdout, "! flagged: %.2f below its baseline (%.2f → %.2f) for %d %ss since %s\n",
			*v.Drop, *v.BaselineMean, *v.RunMean, v.Buckets, tr.Bucket, *v.Since)
	} else {
		fmt.Fprintln(a.stdout, "not flagged")
	}
}
