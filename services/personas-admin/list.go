package main

import (
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/labstack/echo/v4"

	"github.com/mana/personas/pkg/edge"
	"github.com/mana/personas/pkg/errs"
	"github.com/mana/personas/pkg/personas"
)

// ---- GET / --------------------------------------------------------------

// listFlushBytes is how much of the list is buffered before it is written
// and flushed to the client.
const listFlushBytes = 32 << 10

// listBufs recycles the list's write buffers.
var listBufs = sync.Pool{New: func() any { b := make([]byte, 0, listFlushBytes+8<<10); return &b }}

// readListFilter reads the list's query: limit, cursor (needs limit),
// archetype, cadence, q, tag (repeatable, or comma-separated: every tag
// given), status, fields (summary: items without systemPrompt).
func readListFilter(c echo.Context) (personas.ListFilter, bool, error) {
	q := c.QueryParams()
	f := personas.ListFilter{
		Cursor:    q.Get("cursor"),
		Archetype: q.Get("archetype"),
		Cadence:   personas.Cadence(q.Get("cadence")),
		Q:         q.Get("q"),
		Status:    q.Get("status"),
	}
	var p errs.Problems
	for _, v := range q["tag"] {
		for _, t := range strings.Split(v, ",") {
			if t = strings.TrimSpace(t); t != "" {
				f.Tags = append(f.Tags, t)
			}
		}
	}
	switch fields := q.Get("fields"); fields {
	case "", "full":
	case "summary":
		f.Lean = true
	default:
		p.Add("fields", "must be full or summary")
	}
	limit := edge.QueryInt(c, "limit", &p)
	paged := limit != nil
	if paged {
		f.Limit = *limit
		if f.Limit == 0 {
			f.Limit = -1 // explicit 0 is out of range, not "unpaged"
		}
	} else if f.Cursor != "" {
		p.Add("cursor", "needs limit")
	}
	return f, paged, p.Err()
}

// list answers every persona newest first ({"personas":[...]}), or, with
// limit, one page of them plus nextCursor (null on the last page).
//
// The answer is streamed: each row is encoded as PostgreSQL sends it and
// written out every listFlushBytes, so memory stays flat whatever the
// fleet's size. A bad query is a 400 and a database fault before the first
// write a 503, as everywhere. A fault after streaming began cannot change
// the status any more: the handler logs it (with how many personas were
// sent) and aborts the response, leaving the JSON unterminated and the
// chunked body without its last chunk, so no client takes a cut list for
// a whole one.
func (h *handlers) list(c echo.Context) error {
	f, paged, err := readListFilter(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	w := c.Response()
	bp := listBufs.Get().(*[]byte)
	defer listBufs.Put(bp)
	b := append((*bp)[:0], `{"personas":[`...)
	sent := 0
	flush := func() error {
		if !w.Committed {
			w.Header().Set(echo.HeaderContentType, echo.MIMEApplicationJSON)
			w.WriteHeader(http.StatusOK)
		}
		if _, err := w.Write(b); err != nil {
			return err
		}
		w.Flush()
		b = b[:0]
		return nil
	}
	next, err := h.store.StreamPersonas(ctx, f, func(it *personas.PersonaSummary) error {
		if sent > 0 {
			b = append(b, ',')
		}
		b = appendListItem(b, it, f.Lean)
		sent++
		if len(b) >= listFlushBytes {
			return flush()
		}
		return nil
	})
	*bp = b[:0]
	if err != nil {
		if !w.Committed {
			return err
		}
		h.logger.ErrorContext(ctx, "admin list: aborted after streaming began; the response is left unterminated",
			"personas_sent", sent, "error", err)
		panic(http.ErrAbortHandler)
	}
	b = append(b, ']')
	if paged {
		b = append(b, `,"nextCursor":`...)
		if next == "" {
			b = append(b, "null"...)
		} else {
			b = strconv.AppendQuote(b, next) // base64url: nothing to escape
		}
	}
	b = append(b, "}\n"...)
	*bp = b[:0]
	if err := flush(); err != nil && !w.Committed {
		return err
	}
	return nil
}

// appendListItem appends one list item: personaJSON's document (the
// detail's persona), without systemPrompt when lean. moduleMix is passed
// through as PostgreSQL sent it.
func appendListItem(b []byte, it *personas.PersonaSummary, lean bool) []byte {
	p := &it.Persona
	b = append(b, `{"userId":`...)
	b = personas.AppendJSONString(b, p.UserID)
	b = append(b, `,"email":`...)
	b = personas.AppendJSONString(b, p.Email)
	b = append(b, `,"name":`...)
	b = personas.AppendJSONString(b, p.Name)
	b = append(b, `,"archetype":`...)
	b = personas.AppendJSONString(b, p.Archetype)
	if !lean {
		b = append(b, `,"systemPrompt":`...)
		b = personas.AppendJSONString(b, p.SystemPrompt)
	}
	b = append(b, `,"moduleMix":`...)
	if len(it.ModuleMixJSON) == 0 {
		b = append(b, "{}"...)
	} else {
		b = append(b, it.ModuleMixJSON...)
	}
	b = append(b, `,"tickCadence":`...)
	b = personas.AppendJSONString(b, string(p.TickCadence))
	b = append(b, `,"lastActiveAt":`...)
	b = appendTime(b, edge.ISOTimePtr(p.LastActiveAt))
	b = append(b, `,"createdAt":"`...)
	b = append(b, edge.ISOTime(p.CreatedAt)...)
	b = append(b, `","updatedAt":"`...)
	b = append(b, edge.ISOTime(p.UpdatedAt)...)
	b = append(b, `","actions7d":`...)
	b = strconv.AppendInt(b, it.Actions7d, 10)
	b = append(b, `,"overdue":`...)
	b = strconv.AppendBool(b, it.Overdue)
	b = append(b, `,"tags":[`...)
	for i, t := range p.Tags {
		if i > 0 {
			b = append(b, ',')
		}
		b = personas.AppendJSONString(b, t)
	}
	b = append(b, `],"maxHistoryDays":`...)
	b = appendIntPtr(b, p.MaxHistoryDays)
	b = append(b, `,"tickHour":`...)
	b = strconv.AppendInt(b, int64(p.TickHour), 10)
	b = append(b, `,"enabled":`...)
	b = strconv.AppendBool(b, p.Enabled)
	b = append(b, `,"quarantined":`...)
	b = strconv.AppendBool(b, p.Quarantined)
	b = append(b, `,"consecutiveFailures":`...)
	b = strconv.AppendInt(b, int64(p.ConsecutiveFailures), 10)
	b = append(b, `,"nextAttemptAt":`...)
	b = appendTime(b, edge.ISOTimePtr(p.NextAttemptAt))
	b = append(b, `,"lastTick":`...)
	if p.LastTick == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, `{"status":`...)
		b = personas.AppendJSONString(b, string(p.LastTick.Status))
		b = append(b, `,"finishedAt":`...)
		b = appendTime(b, edge.ISOTimePtr(p.LastTick.FinishedAt))
		b = append(b, '}')
	}
	b = append(b, `,"lease":`...)
	if p.Lease == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, `{"runnerId":`...)
		b = personas.AppendJSONString(b, p.Lease.RunnerID)
		b = append(b, `,"expiresAt":"`...)
		b = append(b, edge.ISOTime(p.Lease.ExpiresAt)...)
		b = append(b, '"')
		if p.Lease.TickID != nil {
			b = append(b, `,"tickId":`...)
			b = personas.AppendJSONString(b, *p.Lease.TickID)
		}
		b = append(b, '}')
	}
	return append(b, '}')
}

func appendTime(b []byte, s *string) []byte {
	if s == nil {
		return append(b, "null"...)
	}
	b = append(b, '"')
	b = append(b, *s...)
	return append(b, '"')
}

func appendIntPtr(b []byte, n *int) []byte {
	if n == nil {
		return append(b, "null"...)
	}
	return strconv.AppendInt(b, int64(*n), 10)
}
