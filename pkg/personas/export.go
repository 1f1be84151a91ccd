package personas

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"
)

// Export streams raw rows (parse markers included) for operators: one
// REPEATABLE READ, read-only transaction, so the rows are one consistent
// snapshot however long the stream takes, read row by row from the driver,
// so memory stays flat whatever the row count. Rows come in a fixed order
// (time, persona, id): two exports of the same snapshot are identical.

// Export kinds.
const (
	ExportActions  = "actions"
	ExportFeedback = "feedback"
	ExportTicks    = "ticks"
)

// ExportFilter narrows an export. Times bound created_at: [From, To).
// Module matches a rating's module, or a tool's module (the part of its
// name before the first "."); ticks have no module.
type ExportFilter struct {
	From, To *time.Time
	Persona  string
	Module   string
}

type exportCol struct{ name, expr string }

// isoExpr formats a timestamptz column like the API (toISOString).
func isoExpr(col string) string {
	return `to_char(` + col + ` AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`
}

var exportCols = map[string][]exportCol{
	ExportActions: {
		{"personaId", "persona_id"}, {"id", "id"}, {"tickId", "tick_id"}, {"seq", "seq"}, {"toolName", "tool_name"},
		{"inputHash", "input_hash"}, {"result", "result"}, {"errorMessage", "error_message"},
		{"latencyMs", "latency_ms"}, {"createdAt", isoExpr("created_at")},
	},
	ExportFeedback: {
		{"personaId", "persona_id"}, {"id", "id"}, {"tickId", "tick_id"}, {"module", "module"},
		{"rating", "rating"}, {"notes", "notes"}, {"createdAt", isoExpr("created_at")},
	},
	ExportTicks: {
		{"personaId", "persona_id"}, {"tickId", "tick_id"}, {"runnerId", "runner_id"}, {"status", "status"},
		{"startedAt", isoExpr("started_at")}, {"finishedAt", isoExpr("finished_at")}, {"errorKind", "error_kind"},
		{"errorMessage", "error_message"}, {"ratingStatus", "rating_status"}, {"model", "model"},
		{"tokensIn", "tokens_in"}, {"tokensOut", "tokens_out"}, {"createdAt", isoExpr("created_at")},
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
	checkText(p, "persona", f.Persona, 0, MaxUserIDLen)
	checkText(p, "module", f.Module, 0, MaxModuleLen)
	if kind == ExportTicks && f.Module != "" {
		p.Add("module", "ticks have no module")
	}
	if f.From != nil && f.To != nil && f.From.After(*f.To) {
		p.Add("from", "must not be after to")
	}
}

// ExportRow is one exported row: JSON is the row as one JSON object (keys
// in ExportColumns order), Fields its values as text (nil for NULL).
type ExportRow struct {
	JSON   string
	Fields []*string
}

// Export runs the export of kind and calls emit for each row, in order,
// until emit returns an error (which Export returns) or the rows end.
// withJSON chooses what ExportRow carries: the JSON object, or the fields.
func (s *Store) Export(ctx context.Context, kind string, f ExportFilter, withJSON bool, emit func(ExportRow) error) error {
	var p Problems
	f.Check(&p, kind)
	if err := p.Err(); err != nil {
		return err
	}
	cols, t := exportCols[kind], exportTables[kind]
	sel := make([]string, len(cols))
	for i, c := range cols {
		sel[i] = "(" + c.expr + ")::text AS \"" + c.name + "\""
	}
	var where []string
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
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
	q := "SELECT " + strings.Join(sel, ", ") + " FROM " + t.table //nolint:gosec // G202: see above
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY " + t.order
	if withJSON {
		// Typed JSON from the original columns (numbers stay numbers).
		typed := make([]string, len(cols))
		for i, c := range cols {
			typed[i] = c.expr + " AS \"" + c.name + "\""
		}
		q = "SELECT row_to_json(x)::text FROM " + t.table + " CROSS JOIN LATERAL (SELECT " + strings.Join(typed, ", ") + ") AS x"
		if len(where) > 0 {
			q += " WHERE " + strings.Join(where, " AND ")
		}
		q += " ORDER BY " + t.order
		sel = sel[:1]
	}

	tx, err := s.db.DB.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true})
	if err != nil {
		return fmt.Errorf("export: %w", translate(err))
	}
	defer func() { _ = tx.Rollback() }()
	rows, err := tx.QueryContext(ctx, q, execArgs(args)...)
	if err != nil {
		return fmt.Errorf("export: %w", translate(err))
	}
	defer func() { _ = rows.Close() }()
	vals := make([]sql.NullString, len(sel))
	dest := make([]any, len(sel))
	for i := range vals {
		dest[i] = &vals[i]
	}
	row := ExportRow{Fields: make([]*string, len(sel))}
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return fmt.Errorf("export: %w", translate(err))
		}
		if withJSON {
			row.JSON = vals[0].String
		} else {
			for i, v := range vals {
				row.Fields[i] = nil
				if v.Valid {
					s := v.String
					row.Fields[i] = &s
				}
			}
		}
		if err := emit(row); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("export: %w", translate(err))
	}
	return nil
}
