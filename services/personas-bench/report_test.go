package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const oldReport = "# Benchmarks\n\nold preamble\n\n" +
	"## " + adminTitle + "\n\nold admin table\n\n" +
	"## " + planTitle + " (10000 personas, EXPLAIN ANALYZE)\n\n```\n## not a heading inside a fence\n```\n\n" +
	"## Database restart under write load (issue 9, C10)\n\nhand-measured table\n\n" +
	"## " + goBenchTitle + "\n\n```\nBenchmarkX 1 ns/op\n```\n\n" +
	"## " + rssTitlePrefix + " valid and hostile bodies (issue 9, B5)\n\nrss table\n"

// The full run keeps the sections it does not write (a hand-measured one,
// the -big run's) and drops those it writes or make bench appends again.
func TestKeptSections(t *testing.T) {
	withBig := replaceSection(oldReport, bigTitle, "## "+bigTitle+"\n\nbig table\n")
	kept := keptSections(withBig)
	for _, want := range []string{"## Database restart under write load (issue 9, C10)\n\nhand-measured table", "## " + bigTitle + "\n\nbig table"} {
		if !strings.Contains(kept, want) {
			t.Errorf("kept sections lack %q:\n%s", want, kept)
		}
	}
	for _, gone := range []string{"old preamble", "old admin table", "not a heading", "BenchmarkX", "rss table"} {
		if strings.Contains(kept, gone) {
			t.Errorf("kept sections still hold %q:\n%s", gone, kept)
		}
	}
}

// The -big run's section goes before the Go benchmarks the first time and
// replaces itself afterwards, leaving the rest as it was.
func TestReplaceSection(t *testing.T) {
	once := replaceSection(oldReport, bigTitle, "## "+bigTitle+"\n\nfirst\n")
	if i, j := strings.Index(once, "## "+bigTitle), strings.Index(once, "## "+goBenchTitle); i < 0 || i > j {
		t.Fatalf("big section not placed before the Go benchmarks:\n%s", once)
	}
	twice := replaceSection(once, bigTitle, "## "+bigTitle+"\n\nsecond\n")
	if strings.Contains(twice, "first") || strings.Count(twice, "## "+bigTitle) != 1 || !strings.Contains(twice, "second") {
		t.Fatalf("big section not replaced in place:\n%s", twice)
	}
	if strings.Replace(twice, "second", "first", 1) != once {
		t.Fatalf("replacing the section changed the rest of the report:\n%s", twice)
	}
}

func TestTableRow(t *testing.T) {
	doc := "## " + adminTitle + "\n\n| scenario | conns | a | b | p99 |\n| insight x | 1 | 3 | 4 | 5.00 | 6 | 7 |\n| insight x | 32 | 9 | 9 | 9 | 9 | 9 |\n"
	cells := tableRow(doc, adminTitle, "insight x", 1)
	if cells == nil || cells[4] != "5.00" || cells[6] != "7" {
		t.Fatalf("tableRow = %q", cells)
	}
	if tableRow(doc, adminTitle, "insight y", 1) != nil {
		t.Fatal("tableRow found a row that is not there")
	}
}

// -section (make bench-prune) puts a section made elsewhere into the report
// by its heading, replacing its old text, keeping the rest; the full run
// then keeps it.
func TestPutSection(t *testing.T) {
	dir := t.TempDir()
	out, from := filepath.Join(dir, "BENCHMARKS.md"), filepath.Join(dir, "section.md")
	write := func(name, text string) {
		if err := os.WriteFile(name, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(out, oldReport)
	const title = "Prune under ingest (issue 13 A)"
	for _, body := range []string{"first", "second"} {
		write(from, "## "+title+"\n\n"+body+"\n")
		if err := putSection(out, from); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(got)
	if strings.Count(doc, "## "+title) != 1 || strings.Contains(doc, "first") || !strings.Contains(doc, "second") {
		t.Fatalf("section not replaced in place:\n%s", doc)
	}
	if strings.Replace(doc, "## "+title+"\n\nsecond\n\n", "", 1) != oldReport {
		t.Fatalf("putting the section changed the rest of the report:\n%s", doc)
	}
	if !strings.Contains(keptSections(doc), "## "+title+"\n\nsecond") {
		t.Fatalf("the full run would drop the section")
	}
	write(from, "no heading\n")
	if err := putSection(out, from); err == nil {
		t.Fatal("a file without a heading was accepted")
	}
}
