package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/mana/personas/pkg/errs"
	"github.com/mana/personas/pkg/personas"
)

// exportTimeout bounds one export (the API's usual 15 s deadline is for
// ordinary requests; an export of millions of rows takes longer).
const exportTimeout = 30 * time.Minute

// Flushing: after exportFlushRows rows, or exportFlushEvery after the
// last flush, whichever comes first (the buffer also goes out whenever it
// fills), so a client sees rows arrive even when a filter makes them slow.
const (
	exportFlushRows  = 1000
	exportFlushEvery = time.Second
	exportBufferSize = 64 << 10
)

// export streams raw actions, feedback or ticks as NDJSON (default) or CSV,
// row by row from one consistent snapshot, flushing as it goes. Problems
// with the request are 400s before anything is sent; a failure half-way
// is logged and aborts the response (the status is already sent).
func (h *handlers) export(c echo.Context) error {
	var p errs.Problems
	kind := c.Param("kind")
	f := personas.ExportFilter{
		From: queryTime(c, "from", &p), To: queryTime(c, "to", &p),
		Persona: c.QueryParam("persona"), Module: c.QueryParam("module"), Format: c.QueryParam("format"),
	}
	if f.Format == "" {
		f.Format = personas.FormatNDJSON
	}
	f.Check(&p, kind)
	if err := p.Err(); err != nil {
		return err
	}
	// The export outlives the ordinary request deadline, not the client.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.Request().Context()), exportTimeout)
	defer cancel()
	stop := context.AfterFunc(c.Request().Context(), func() {
		if errors.Is(context.Cause(c.Request().Context()), context.Canceled) {
			cancel()
		}
	})
	defer stop()
	rc := http.NewResponseController(c.Response().Writer)
	_ = rc.SetWriteDeadline(time.Now().Add(exportTimeout))

	res := c.Response()
	w := bufio.NewWriterSize(res, exportBufferSize)
	started := false
	lastFlush, flushedAt := int64(0), time.Now()
	n, err := h.store.Export(ctx, kind, f, personas.ExportSink{
		W: w,
		Begin: func() error {
			started = true
			if f.Format == personas.FormatCSV {
				res.Header().Set(echo.HeaderContentType, "text/csv; charset=utf-8")
			} else {
				res.Header().Set(echo.HeaderContentType, "application/x-ndjson")
			}
			res.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="%s.%s"`, kind, f.Format))
			res.WriteHeader(http.StatusOK)
			return nil
		},
		Row: func(rows int64) error {
			if rows-lastFlush < exportFlushRows && (rows%64 != 0 || time.Since(flushedAt) < exportFlushEvery) {
				return nil
			}
			lastFlush, flushedAt = rows, time.Now()
			if err := w.Flush(); err != nil {
				return err
			}
			return rc.Flush()
		},
	})
	if err != nil && !started {
		return err // nothing sent yet: an ordinary error answer
	}
	if ferr := w.Flush(); err == nil {
		err = ferr
	}
	_ = rc.Flush()
	if err != nil {
		// The status is sent: abort the response (no final chunk), so the
		// client sees a broken stream rather than a short, complete-looking
		// file.
		h.logger.WarnContext(c.Request().Context(), "export ended early", "kind", kind, "rows", n, "error", err.Error())
		panic(http.ErrAbortHandler)
	}
	return nil
}
