package personas

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

// Export streams raw rows (parse markers included) for operators: one
// statement in a REPEATABLE READ, read-only transaction, so the rows are one
// consistent snapshot however long the stream takes; read row by row from
// the driver's buffer (pgx's raw values, no per-row allocation) and encoded
// by hand into the caller's buffered writer, so memory stays flat whatever
// the row count. Rows come in a fixed order (time, persona, then a unique
// key): two exports of the same snapshot are byte-identical.

// Export kinds.
const (
	ExportActions  = "actions"
	ExportFeedback = "feedback"
	ExportTicks    = "ticks"
)

// Export formats.
const (
	FormatNDJSON = "ndjson"
	FormatCSV    = "csv"
)

// ExportFilter narrows an export. Times bound created_at: [From, To).
// Module matches a rating's module, or a tool's module (the part of its
// name before the first "."); ticks have no module. Format is ndjson (the
// default when empty) or csv.
type ExportFilter struct {
	From, To *time.Time
	Persona  string
	Module   string
	Format   string
}

// exportCol is one exported column: its name, the SQL that reads it as
// text, and whether NDJSON writes it as a number rather than a string.
type exportCol struct {
	name, expr string
	number     bool
}

// isoExpr formats a timestamptz column like the API (toISOString).
func isoExpr(col string) string {
	return `to_char(` + col + ` AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`
}

func text(name, col string) exportCol { return exportCol{name: name, expr: col} }
func num(name, col string) exportCol  { return exportCol{name: name, expr: col, number: true} }
func iso(name, col string) exportCol  { return exportCol{name: name, expr: isoExpr(col)} }

var exportCols = map[string][]exportCol{
	ExportActions: {
		text("personaId", "persona_id"), text("id", "id"), text("tickId", "tick_id"), num("seq", "seq"),
		text("toolName", "tool_name"), text("inputHash", "input_hash"), text("result", "result"),
		text("errorMessage", "error_message"), num("latencyMs", "latency_ms"), iso("createdAt", "created_at"),
	},
	ExportFeedback: {
		text("personaId", "persona_id"), text("id", "id"), text("tickId", "tick_id"), text("module", "module"),
		num("rating", "rating"), text("notes", "notes"), iso("createdAt", "created_at"),
	},
	ExportTicks: {
		text("personaId", "persona_id"), text("tickId", "tick_id"), text("runnerId", "runner_id"), text("status", "status"),
		iso("startedAt", "started_at"), iso("finishedAt", "finished_at"), text("errorKind", "error_kind"),
		text("errorMessage", "error_message"), text("ratingStatus", "rating_status"), text("model", "model"),
		num("tokensIn", "tokens_in"), num("tokensOut", "tokens_out"), iso("createdAt", "created_at"),
	},
}

var exportTables = map[string]struct{ table, order, module string }{
	ExportActions:  {"personas.persona_actions AS r", "r.created_at, r.persona_id, r.n", "split_part(r.tool_name, '.', 1)"},
	ExportFeedback: {"personas.persona_feedback AS r", "r.created_at, r.persona_id, r.id", "r.module"},
	ExportTicks:    {"personas.persona_ticks AS r", "r.created_at, r.persona_id, r.tick_id", ""},
}

// ExportColumns returns the column names of an export kind (nil for an
// unknown kind).
func ExportColumns(kind string) []string {
	cols := exportCols[kind]
	if cols == nil {
		return nil
	}
	out := make([]string, len(cols))
	for i, c := range cols {
		out[i] = c.name
	}
	return out
}

// Check adds every problem with an export request to p.
func (f *ExportFilter) Check(p *Problems, kind string) {
	if exportCols[kind] == nil {
		p.Add("kind", "must be one of actions, feedback, ticks")
	}
	switch f.Format {
	case "", FormatNDJSON, FormatCSV:
	default:
		p.Add("format", "must be one of ndjson, csv")
	}
	checkText(p, "persona", f.Persona, 0, MaxUserIDLen)
	checkText(p, "module", f.Module, 0, MaxModuleLen)
	if kind == ExportTicks && f.Module != "" {
		p.Add("module", "ticks have no module")
	}
	if f.From != nil && f.To != nil && f.From.After(*f.To) {
		p.Add("from", "must not be after to")
	}
}

// ExportSink receives an export. Begin is called once, after the query
// has started and before the first byte is written to W (so a failing
// query is still an ordinary error); Row after each row, with the number
// of rows so far (to flush now and then). Either may be nil.
type ExportSink struct {
	W     *bufio.Writer
	Begin func() error
	Row   func(rows int64) error
}

// exportQuery builds the statement of an export (pgx placeholders).
func exportQuery(kind string, f ExportFilter) (string, []any) {
	cols, t := exportCols[kind], exportTables[kind]
	sel := make([]string, len(cols))
	for i, c := range cols {
		sel[i] = "(" + c.expr + ")::text"
	}
	var where []string
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	if f.From != nil {
		where = append(where, "r.created_at >= "+arg(*f.From))
	}
	if f.To != nil {
		where = append(where, "r.created_at < "+arg(*f.To))
	}
	if f.Persona != "" {
		where = append(where, "r.persona_id = "+arg(f.Persona))
	}
	if f.Module != "" {
		where = append(where, t.module+" = "+arg(f.Module))
	}
	// Identifiers come from the fixed tables above; values are bound parameters.
	q := "SELECT " + strings.Join(sel, ", ") + " FROM " + t.table
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	return q + " ORDER BY " + t.order, args
}

// Export runs the export of kind into sink and returns the number of rows
// written. A problem with the request is a validation error before the
// query; an error of sink's callbacks or writer ends the export and is
// returned as is.
func (s *Store) Export(ctx context.Context, kind string, f ExportFilter, sink ExportSink) (int64, error) {
	var p Problems
	f.Check(&p, kind)
	if err := p.Err(); err != nil {
		return 0, err
	}
	q, args := exportQuery(kind, f)
	enc := exportEncoder{cols: exportCols[kind], csv: f.Format == FormatCSV, w: sink.W}
	conn, err := s.db.DB.Conn(ctx)
	if err != nil {
		return 0, fmt.Errorf("export: %w", translate(err))
	}
	defer func() { _ = conn.Close() }()
	// A failing sink cancels the query rather than reading the rest of it.
	qctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var n int64
	var sinkErr error
	err = conn.Raw(func(dc any) error {
		ctx := qctx
		pc := dc.(*stdlib.Conn).Conn()
		tx, err := pc.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
		if err != nil {
			return err
		}
		defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
		rows, err := tx.Query(ctx, q, append([]any{pgx.QueryExecModeExec}, args...)...)
		if err != nil {
			return err
		}
		defer func() {
			if sinkErr != nil {
				cancel()
			}
			rows.Close()
		}()
		begun := false
		begin := func() error {
			begun = true
			if sink.Begin != nil {
				if err := sink.Begin(); err != nil {
					return err
				}
			}
			return enc.header()
		}
		for rows.Next() {
			if !begun {
				if sinkErr = begin(); sinkErr != nil {
					return sinkErr
				}
			}
			if sinkErr = enc.row(rows.RawValues()); sinkErr != nil {
				return sinkErr
			}
			n++
			if sink.Row != nil {
				if sinkErr = sink.Row(n); sinkErr != nil {
					return sinkErr
				}
			}
		}
		if err := rows.Err(); err != nil {
			return err
		}
		if !begun {
			sinkErr = begin()
		}
		return sinkErr
	})
	if err != nil {
		if sinkErr != nil && errors.Is(err, sinkErr) {
			return n, err
		}
		return n, fmt.Errorf("export: %w", translate(err))
	}
	return n, nil
}

// exportEncoder writes rows of text values (nil for NULL) as NDJSON or CSV.
// NDJSON: one object per line, keys in column order, like PostgreSQL's
// row_to_json (no spaces; numbers bare; only '"', '\\' and control
// characters escaped). CSV: RFC 4180 like encoding/csv (a header line,
// "\n" line ends, a field quoted when it holds a comma, quote, CR or LF or
// starts with a space or tab; NULL and "" are both empty).
type exportEncoder struct {
	cols []exportCol
	csv  bool
	w    *bufio.Writer
}

func (e *exportEncoder) header() error {
	if !e.csv {
		return nil
	}
	for i, c := range e.cols {
		if i > 0 {
			_ = e.w.WriteByte(',')
		}
		_, _ = e.w.WriteString(c.name)
	}
	return e.w.WriteByte('\n')
}

func (e *exportEncoder) row(vals [][]byte) error {
	w := e.w
	if e.csv {
		for i, v := range vals {
			if i > 0 {
				_ = w.WriteByte(',')
			}
			writeCSVField(w, v)
		}
		return w.WriteByte('\n')
	}
	_ = w.WriteByte('{')
	for i, v := range vals {
		c := e.cols[i]
		if i > 0 {
			_ = w.WriteByte(',')
		}
		_ = w.WriteByte('"')
		_, _ = w.WriteString(c.name)
		_, _ = w.WriteString(`":`)
		switch {
		case v == nil:
			_, _ = w.WriteString("null")
		case c.number:
			_, _ = w.Write(v)
		default:
			writeJSONString(w, v)
		}
	}
	_, err := w.WriteString("}\n")
	return err
}

const hexDigits = "0123456789abcdef"

// writeJSONString writes v (UTF-8 from the database) as a JSON string.
func writeJSONString(w *bufio.Writer, v []byte) {
	_ = w.WriteByte('"')
	start := 0
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		_, _ = w.Write(v[start:i])
		switch c {
		case '"', '\\':
			_ = w.WriteByte('\\')
			_ = w.WriteByte(c)
		case '\n':
			_, _ = w.WriteString(`\n`)
		case '\r':
			_, _ = w.WriteString(`\r`)
		case '\t':
			_, _ = w.WriteString(`\t`)
		case '\b':
			_, _ = w.WriteString(`\b`)
		case '\f':
			_, _ = w.WriteString(`\f`)
		default:
			_, _ = w.WriteString(`\u00`)
			_ = w.WriteByte(hexDigits[c>>4])
			_ = w.WriteByte(hexDigits[c&0xf])
		}
		start = i + 1
	}
	_, _ = w.Write(v[start:])
	_ = w.WriteByte('"')
}

// writeCSVField writes v as one CSV field.
func writeCSVField(w *bufio.Writer, v []byte) {
	if !csvNeedsQuotes(v) {
		_, _ = w.Write(v)
		return
	}
	_ = w.WriteByte('"')
	start := 0
	for i, c := range v {
		if c == '"' {
			_, _ = w.Write(v[start : i+1])
			_ = w.WriteByte('"')
			start = i + 1
		}
	}
	_, _ = w.Write(v[start:])
	_ = w.WriteByte('"')
}

func csvNeedsQuotes(v []byte) bool {
	if len(v) == 0 {
		return false
	}
	if r, _ := utf8.DecodeRune(v); unicode.IsSpace(r) || (len(v) == 2 && v[0] == '\\' && v[1] == '.') {
		return true
	}
	for _, c := range v {
		if c == ',' || c == '"' || c == '\r' || c == '\n' {
			return true
		}
	}
	return false
}
