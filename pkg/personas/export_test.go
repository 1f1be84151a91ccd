package personas_test

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mana/personas/pkg/errs"
	"github.com/mana/personas/pkg/personas"
	"github.com/mana/personas/pkg/personas/personastest"
)

// exportBundle is a store on its own database with a clock, and a plain
// connection to the same database for oracles.
type exportBundle struct {
	store *personas.Store
	clock *personastest.Clock
	db    *sql.DB
}

var exportT0 = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

func exportSetup(t *testing.T) *exportBundle {
	t.Helper()
	dsn := personastest.NewDSN(t)
	db, err := personas.OpenDB(dsn, personas.PoolConfig{MaxConns: 4})
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	b := &exportBundle{clock: personastest.NewClock(exportT0), db: db.DB}
	b.store = personas.New(db, personas.WithClock(b.clock.Now))
	ctx := context.Background()
	for _, id := range []string{"a", "b"} {
		_, err := b.store.UpsertPersona(ctx, personas.PersonaInput{
			UserID: id, Email: "persona." + id + "@mana.test", Name: strings.ToUpper(id), Archetype: "solo-dev",
			SystemPrompt: "Du bist " + id + ".", ModuleMix: map[string]float64{"todo": 1},
		})
		require.NoError(t, err)
	}
	return b
}

// export runs an export into a buffer.
func (b *exportBundle) export(t *testing.T, kind string, f personas.ExportFilter) (string, int64) {
	t.Helper()
	var buf bytes.Buffer
	w := bufio.NewWriter(&buf)
	n, err := b.store.Export(context.Background(), kind, f, personas.ExportSink{W: w})
	require.NoError(t, err)
	require.NoError(t, w.Flush())
	return buf.String(), n
}

// awkward are texts that need escaping or quoting somewhere.
var awkward = []string{
	`plain`, `with "quotes", and a comma`, "zwei\nZeilen\r\nund\ttab", `back\slash \. ` + `\`, " leading space",
	"\x01\x1f control", "Grüße 👋 — ok", "", `\.`, "\u00a0nbsp first",
}

func TestExportEncoding(t *testing.T) {
	t.Parallel()
	b := exportSetup(t)
	ctx := context.Background()
	for i, s := range awkward {
		notes := s
		b.clock.Advance(time.Second)
		_, err := b.store.InsertFeedback(ctx, "a", []personas.FeedbackInput{{TickID: fmt.Sprintf("t%d", i), Module: "todo", Rating: i%5 + 1, Notes: &notes}}, personas.WriteOptions{})
		require.NoError(t, err)
	}
	_, err := b.store.InsertFeedback(ctx, "b", []personas.FeedbackInput{{TickID: "null", Module: "journal", Rating: 2}}, personas.WriteOptions{})
	require.NoError(t, err)

	t.Run("NDJSONIsWhatPostgresWrites", func(t *testing.T) {
		got, n := b.export(t, personas.ExportFeedback, personas.ExportFilter{})
		require.EqualValues(t, len(awkward)+1, n)
		// The oracle: PostgreSQL's own row_to_json over the same columns.
		rows, err := b.db.QueryContext(ctx, `
SELECT row_to_json(x)::text FROM personas.persona_feedback AS r CROSS JOIN LATERAL (
       SELECT persona_id AS "personaId", id, tick_id AS "tickId", module, rating, notes,
              to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS "createdAt") AS x
 ORDER BY r.created_at, r.persona_id, r.id`)
		require.NoError(t, err)
		defer rows.Close()
		var want strings.Builder
		for rows.Next() {
			var line string
			require.NoError(t, rows.Scan(&line))
			want.WriteString(line + "\n")
		}
		require.NoError(t, rows.Err())
		require.Equal(t, want.String(), got)
		lines := strings.Split(strings.TrimSuffix(got, "\n"), "\n")
		for i, s := range awkward {
			var row struct {
				Notes  *string `json:"notes"`
				Rating int     `json:"rating"`
			}
			require.NoError(t, json.Unmarshal([]byte(lines[i]), &row), lines[i])
			require.Equal(t, s, *row.Notes)
			require.Equal(t, i%5+1, row.Rating)
		}
		require.Contains(t, lines[len(awkward)], `"notes":null`)
	})

	t.Run("CSVReadsBack", func(t *testing.T) {
		got, _ := b.export(t, personas.ExportFeedback, personas.ExportFilter{Format: personas.FormatCSV})
		recs, err := csv.NewReader(strings.NewReader(got)).ReadAll()
		require.NoError(t, err)
		require.Equal(t, personas.ExportColumns(personas.ExportFeedback), recs[0])
		require.Len(t, recs, 1+len(awkward)+1)
		for i, s := range awkward {
			// encoding/csv reads a quoted "\r\n" as "\n".
			require.Equal(t, strings.ReplaceAll(s, "\r\n", "\n"), recs[1+i][5])
			require.Equal(t, fmt.Sprint(i%5+1), recs[1+i][4])
		}
		require.Equal(t, "", recs[len(recs)-1][5], "NULL is an empty field")
		// Byte for byte what encoding/csv writes for the same records.
		var want bytes.Buffer
		cw := csv.NewWriter(&want)
		require.NoError(t, cw.Write(recs[0]))
		rows, err := b.db.QueryContext(ctx, `SELECT persona_id, id, tick_id, module, rating::text, COALESCE(notes, ''),
       to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
  FROM personas.persona_feedback ORDER BY created_at, persona_id, id`)
		require.NoError(t, err)
		defer rows.Close()
		for rows.Next() {
			rec := make([]string, 7)
			dest := make([]any, 7)
			for i := range rec {
				dest[i] = &rec[i]
			}
			require.NoError(t, rows.Scan(dest...))
			require.NoError(t, cw.Write(rec))
		}
		require.NoError(t, rows.Err())
		cw.Flush()
		require.Equal(t, want.String(), got)
	})

	t.Run("EmptyCSVHasItsHeader", func(t *testing.T) {
		got, n := b.export(t, personas.ExportTicks, personas.ExportFilter{Format: personas.FormatCSV})
		require.Zero(t, n)
		require.Equal(t, strings.Join(personas.ExportColumns(personas.ExportTicks), ",")+"\n", got)
		got, _ = b.export(t, personas.ExportTicks, personas.ExportFilter{})
		require.Empty(t, got)
	})
}

func TestExportFilters(t *testing.T) {
	t.Parallel()
	b := exportSetup(t)
	ctx := context.Background()
	// Day d (0..3) at 12:00: each persona one action per tool and a rating
	// per module, one parse marker, and a tick.
	for d := range 4 {
		b.clock.Set(exportT0.AddDate(0, 0, d))
		for _, id := range []string{"a", "b"} {
			tick := fmt.Sprintf("%s-d%d", id, d)
			_, err := b.store.StartTick(ctx, id, personas.TickStart{TickID: tick, RunnerID: "r1"})
			require.NoError(t, err)
			_, err = b.store.InsertActions(ctx, id, []personas.ActionInput{
				{TickID: tick, ToolName: "todo.create", Result: personas.ResultOK},
				{TickID: tick, ToolName: "todo.list", Result: personas.ResultOK},
				{TickID: tick, ToolName: "journal.write", Result: personas.ResultOK},
			}, personas.WriteOptions{})
			require.NoError(t, err)
			_, err = b.store.InsertFeedback(ctx, id, []personas.FeedbackInput{
				{TickID: tick, Module: "todo", Rating: 4}, {TickID: tick, Module: "journal", Rating: 3},
				{TickID: tick, Module: "__parse", Rating: 3},
			}, personas.WriteOptions{})
			require.NoError(t, err)
		}
	}
	day := func(d int) *time.Time { t := exportT0.AddDate(0, 0, d).Truncate(24 * time.Hour); return &t }
	count := func(kind string, f personas.ExportFilter) int64 {
		_, n := b.export(t, kind, f)
		return n
	}
	for name, tc := range map[string]struct {
		kind string
		f    personas.ExportFilter
		want int64
	}{
		"ActionsAll":          {personas.ExportActions, personas.ExportFilter{}, 24},
		"ActionsFrom":         {personas.ExportActions, personas.ExportFilter{From: day(2)}, 12},
		"ActionsTo":           {personas.ExportActions, personas.ExportFilter{To: day(1)}, 6},
		"ActionsFromTo":       {personas.ExportActions, personas.ExportFilter{From: day(1), To: day(3)}, 12},
		"ActionsPersona":      {personas.ExportActions, personas.ExportFilter{Persona: "b"}, 12},
		"ActionsToolModule":   {personas.ExportActions, personas.ExportFilter{Module: "todo"}, 16},
		"ActionsNoSuchModule": {personas.ExportActions, personas.ExportFilter{Module: "todo.create"}, 0},
		"ActionsAllFilters":   {personas.ExportActions, personas.ExportFilter{Persona: "a", Module: "journal", From: day(3)}, 1},
		"FeedbackMarkers":     {personas.ExportFeedback, personas.ExportFilter{Module: "__parse"}, 8},
		"FeedbackAll":         {personas.ExportFeedback, personas.ExportFilter{Format: personas.FormatCSV}, 24},
		"FeedbackPersonaDay":  {personas.ExportFeedback, personas.ExportFilter{Persona: "a", From: day(0), To: day(1)}, 3},
		"TicksAll":            {personas.ExportTicks, personas.ExportFilter{}, 8},
		"TicksPersonaFrom":    {personas.ExportTicks, personas.ExportFilter{Persona: "a", From: day(3)}, 1},
		"UnknownPersona":      {personas.ExportTicks, personas.ExportFilter{Persona: "zz"}, 0},
	} {
		require.Equal(t, tc.want, count(tc.kind, tc.f), name)
	}

	t.Run("Order", func(t *testing.T) {
		got, _ := b.export(t, personas.ExportActions, personas.ExportFilter{To: day(1)})
		var ids []string
		for _, line := range strings.Split(strings.TrimSpace(got), "\n") {
			var row struct{ PersonaID, ID string }
			require.NoError(t, json.Unmarshal([]byte(line), &row))
			ids = append(ids, row.PersonaID+"/"+row.ID)
		}
		require.Equal(t, []string{
			"a/a-d0-0-todo.create", "a/a-d0-1-todo.list", "a/a-d0-2-journal.write",
			"b/b-d0-0-todo.create", "b/b-d0-1-todo.list", "b/b-d0-2-journal.write",
		}, ids, "by time, persona, then the order written")
	})

	t.Run("Invalid", func(t *testing.T) {
		var buf bytes.Buffer
		_, err := b.store.Export(ctx, "users", personas.ExportFilter{Format: "xml", Persona: strings.Repeat("x", 300), From: day(2), To: day(1)},
			personas.ExportSink{W: bufio.NewWriter(&buf)})
		var e *errs.Error
		require.ErrorAs(t, err, &e)
		var fields []string
		for _, d := range e.Details {
			fields = append(fields, d.Field)
		}
		require.ElementsMatch(t, []string{"kind", "format", "persona", "from"}, fields)
		_, err = b.store.Export(ctx, personas.ExportTicks, personas.ExportFilter{Module: "todo"}, personas.ExportSink{W: bufio.NewWriter(&buf)})
		require.ErrorContains(t, err, "ticks have no module")
	})
}

func TestExportSnapshot(t *testing.T) {
	t.Parallel()
	b := exportSetup(t)
	ctx := context.Background()
	rows := make([]personas.FeedbackInput, 100)
	for i := range rows {
		rows[i] = personas.FeedbackInput{TickID: fmt.Sprintf("t%d", i), Module: "todo", Rating: 3}
	}
	_, err := b.store.InsertFeedback(ctx, "a", rows, personas.WriteOptions{})
	require.NoError(t, err)

	t.Run("WritesDuringTheExportAreNotInIt", func(t *testing.T) {
		var buf bytes.Buffer
		w := bufio.NewWriter(&buf)
		n, err := b.store.Export(ctx, personas.ExportFeedback, personas.ExportFilter{}, personas.ExportSink{W: w,
			Row: func(n int64) error {
				if n == 1 { // the export is under way: write more, and delete some
					more := []personas.FeedbackInput{{TickID: "late", Module: "todo", Rating: 5}}
					if _, err := b.store.InsertFeedback(ctx, "b", more, personas.WriteOptions{}); err != nil {
						return err
					}
					_, err := b.db.ExecContext(ctx, `DELETE FROM personas.persona_feedback WHERE tick_id IN ('t50', 't99')`)
					return err
				}
				return nil
			}})
		require.NoError(t, err)
		require.NoError(t, w.Flush())
		require.EqualValues(t, 100, n)
		require.Contains(t, buf.String(), `"tickId":"t99"`)
		require.NotContains(t, buf.String(), `"tickId":"late"`)
	})

	t.Run("ASinkErrorEndsItAndIsReturned", func(t *testing.T) {
		stop := errors.New("client went away")
		var buf bytes.Buffer
		n, err := b.store.Export(ctx, personas.ExportFeedback, personas.ExportFilter{}, personas.ExportSink{W: bufio.NewWriter(&buf),
			Row: func(n int64) error {
				if n == 10 {
					return stop
				}
				return nil
			}})
		require.ErrorIs(t, err, stop)
		require.EqualValues(t, 10, n)
		// The store is fine afterwards.
		_, n = b.export(t, personas.ExportFeedback, personas.ExportFilter{Persona: "a"})
		require.EqualValues(t, 98, n)
	})

	t.Run("ABeginErrorComesBeforeAnyByte", func(t *testing.T) {
		stop := errors.New("no")
		var buf bytes.Buffer
		w := bufio.NewWriter(&buf)
		_, err := b.store.Export(ctx, personas.ExportFeedback, personas.ExportFilter{Format: personas.FormatCSV},
			personas.ExportSink{W: w, Begin: func() error { return stop }})
		require.ErrorIs(t, err, stop)
		require.NoError(t, w.Flush())
		require.Empty(t, buf.String())
	})
}
