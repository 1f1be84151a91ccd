package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mana/personas/pkg/adminclient"
)

// exportKinds are what GET /export/{kind} serves.
var exportKinds = []string{"actions", "feedback", "ticks"}

// cmdExport writes raw actions, feedback or ticks to a file (or stdout),
// with a progress line on stderr when stderr is a terminal.
func (a *app) cmdExport(ctx context.Context, args []string) int {
	fs := newFlagSet("export", "[flags] actions|feedback|ticks",
		"Export raw rows (parse markers included) from one consistent snapshot of the store, as NDJSON or CSV.\n"+
			"The file appears only when the export is complete (it is written under a temporary name first).\n"+
			"On a terminal, stderr shows rows, bytes and the rate as they arrive; otherwise the command is quiet.")
	api := addAPIFlags(fs)
	out := fs.String("o", "-", "output file (- for stdout)")
	format := fs.String("format", "", "ndjson or csv (default: csv when -o ends in .csv, else ndjson)")
	var f adminclient.ExportFilter
	fs.StringVar(&f.From, "from", "", "only rows created at or after this RFC 3339 time or day (YYYY-MM-DD)")
	fs.StringVar(&f.To, "to", "", "only rows created before this RFC 3339 time or day (YYYY-MM-DD)")
	fs.StringVar(&f.Persona, "persona", "", "only this persona's rows (user id)")
	fs.StringVar(&f.Module, "module", "", "only this module's rows (a rating's module, a tool's part before the first \".\"; not for ticks)")
	if code, ok := a.parse(fs, args); !ok {
		return code
	}
	if fs.NArg() != 1 {
		return a.usageError(fs, "expected exactly one of %s", strings.Join(exportKinds, ", "))
	}
	kind := fs.Arg(0)
	if !contains(exportKinds, kind) {
		return a.usageError(fs, "unknown kind %q: expected one of %s", kind, strings.Join(exportKinds, ", "))
	}
	f.Format = *format
	if f.Format == "" {
		f.Format = "ndjson"
		if strings.HasSuffix(strings.ToLower(*out), ".csv") {
			f.Format = "csv"
		}
	}
	if f.Format != "ndjson" && f.Format != "csv" {
		return a.usageError(fs, "--format must be ndjson or csv, not %q", f.Format)
	}
	if *out == "" {
		return a.usageError(fs, "-o needs a file name (or - for stdout)")
	}
	client, apiURL, code := a.client(fs, api)
	if client == nil {
		return code
	}

	body, err := client.Export(ctx, kind, f)
	if err != nil {
		return a.fail("export", "%s at %s: %s", kind, apiURL, seedFailure(err))
	}
	defer func() { _ = body.Close() }()

	dst, commit, abort, err := openOutput(*out, a.stdout)
	if err != nil {
		return a.fail("export", "%v", err)
	}
	counter := newRowCounter(f.Format == "csv")
	var bar *progressBar
	if tty, ok := a.stderr.(*os.File); ok && a.isTerminal(tty) {
		bar = newProgressBar(a.stderr, counter, time.Now)
	}
	w := bufio.NewWriterSize(dst, 256<<10)
	buf := make([]byte, 64<<10)
	var copyErr error
	for {
		n, rerr := body.Read(buf)
		if n > 0 {
			counter.Write(buf[:n])
			if _, werr := w.Write(buf[:n]); werr != nil {
				copyErr = fmt.Errorf("write %s: %w", *out, werr)
				break
			}
			if bar != nil {
				bar.tick(false)
			}
		}
		if errors.Is(rerr, io.EOF) {
			break
		}
		if rerr != nil {
			copyErr = fmt.Errorf("the export broke off after %d rows: %w", counter.rows(), rerr)
			break
		}
	}
	if copyErr == nil {
		if err := w.Flush(); err != nil {
			copyErr = fmt.Errorf("write %s: %w", *out, err)
		}
	}
	if bar != nil {
		bar.tick(true)
	}
	if copyErr != nil {
		abort()
		return a.fail("export", "%v", copyErr)
	}
	if err := commit(); err != nil {
		return a.fail("export", "%v", err)
	}
	return exitOK
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// openOutput opens where the export goes: stdout for "-", else a temporary
// file next to path that commit renames to path and abort removes, so an
// incomplete export never looks like a complete file.
func openOutput(path string, stdout io.Writer) (w io.Writer, commit func() error, abort func(), err error) {
	if path == "-" {
		return stdout, func() error { return nil }, func() {}, nil
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.partial")
	if err != nil {
		return nil, nil, nil, fmt.Errorf("create %s: %w", path, err)
	}
	commit = func() error {
		if err := tmp.Sync(); err != nil {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
			return fmt.Errorf("write %s: %w", path, err)
		}
		if err := tmp.Close(); err != nil {
			_ = os.Remove(tmp.Name())
			return fmt.Errorf("write %s: %w", path, err)
		}
		if err := os.Rename(tmp.Name(), path); err != nil {
			_ = os.Remove(tmp.Name())
			return fmt.Errorf("write %s: %w", path, err)
		}
		return nil
	}
	abort = func() {
		_ = tmp.Close()
		_ = os.Remove(tmp.Name())
	}
	return tmp, commit, abort, nil
}

// rowCounter counts the rows and bytes of an NDJSON or CSV stream as it
// passes: a row ends at a line break outside quotes (CSV fields may hold
// line breaks); the CSV header is not a row.
type rowCounter struct {
	csv     bool
	inQuote bool
	lines   int64
	bytes   int64
}

func newRowCounter(csv bool) *rowCounter { return &rowCounter{csv: csv} }

func (c *rowCounter) Write(p []byte) {
	c.bytes += int64(len(p))
	for _, b := range p {
		switch {
		case b == '"' && c.csv:
			c.inQuote = !c.inQuote // "" inside quotes toggles twice
		case b == '\n' && !c.inQuote:
			c.lines++
		}
	}
}

func (c *rowCounter) rows() int64 {
	if c.csv && c.lines > 0 {
		return c.lines - 1
	}
	return c.lines
}

// progressBar redraws one status line on a terminal: a moving bar (the
// total is not known in advance), rows, bytes, the rate and the time taken.
type progressBar struct {
	w       io.Writer
	c       *rowCounter
	now     func() time.Time
	start   time.Time
	drawn   time.Time
	frame   int
	written bool
}

// progressEvery is how often the line is redrawn at most.
const progressEvery = 100 * time.Millisecond

func newProgressBar(w io.Writer, c *rowCounter, now func() time.Time) *progressBar {
	return &progressBar{w: w, c: c, now: now, start: now()}
}

// tick redraws the line when it is due; final draws the last state and
// ends the line.
func (p *progressBar) tick(final bool) {
	t := p.now()
	if !final && p.written && t.Sub(p.drawn) < progressEvery {
		return
	}
	p.drawn, p.written = t, true
	p.frame++
	line := renderProgress(p.c.rows(), p.c.bytes, t.Sub(p.start), p.frame, final)
	end := ""
	if final {
		end = "\n"
	}
	_, _ = fmt.Fprintf(p.w, "\r%s\x1b[K%s", line, end)
}

// barWidth is the width of the moving bar.
const barWidth = 20

// renderProgress is the status line: "[   ====      ] 12,345 rows  3.1 MB
// 45,678 rows/s  1.2 MB/s  0:03". The bar is a block bouncing with each
// frame; when done it is full.
func renderProgress(rows, bytes int64, took time.Duration, frame int, done bool) string {
	bar := []byte(strings.Repeat(" ", barWidth))
	if done {
		bar = []byte(strings.Repeat("=", barWidth))
	} else {
		const block = 4
		span := barWidth - block
		pos := frame % (2 * span)
		if pos > span {
			pos = 2*span - pos
		}
		for i := pos; i < pos+block; i++ {
			bar[i] = '='
		}
	}
	secs := took.Seconds()
	rate, byteRate := 0.0, 0.0
	if secs > 0 {
		rate, byteRate = float64(rows)/secs, float64(bytes)/secs
	}
	total := int64(took.Round(time.Second).Seconds())
	return fmt.Sprintf("[%s] %s rows  %s  %s rows/s  %s/s  %d:%02d",
		bar, thousands(rows), humanBytes(float64(bytes)), thousands(int64(rate)), humanBytes(byteRate), total/60, total%60)
}

// thousands writes n with "," between groups of three digits.
func thousands(n int64) string {
	s := fmt.Sprint(n)
	if n < 0 {
		return "-" + thousands(-n)
	}
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// humanBytes renders a byte count in B, kB, MB or GB (powers of 1000).
func humanBytes(n float64) string {
	switch {
	case n < 1e3:
		return fmt.Sprintf("%.0f B", n)
	case n < 1e6:
		return fmt.Sprintf("%.1f kB", n/1e3)
	case n < 1e9:
		return fmt.Sprintf("%.1f MB", n/1e6)
	default:
		return fmt.Sprintf("%.2f GB", n/1e9)
	}
}
