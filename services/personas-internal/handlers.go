package main

import (
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/mana/personas/pkg/httpx"
	"github.com/mana/personas/pkg/jsonin"
	"github.com/mana/personas/pkg/personas"
)

type handlers struct {
	store   *personas.Store
	logger  *slog.Logger
	metrics *rowMetrics
}

// dueResponse is the /due and claim body. LeaseExpiresAt is set by claims.
type dueResponse struct {
	Personas       []personas.DuePersona `json:"personas"`
	ServerTime     string                `json:"serverTime"`
	LeaseExpiresAt *string               `json:"leaseExpiresAt,omitempty"`
}

// isoTime formats like JavaScript's toISOString, which existing callers
// were written against: UTC, milliseconds, "Z".
func isoTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

func newDueResponse(list []personas.DuePersona, now time.Time) dueResponse {
	for i := range list {
		if t := list[i].LastActiveAt; t != nil {
			u := t.UTC()
			list[i].LastActiveAt = &u
		}
		if t := list[i].LeaseExpiresAt; t != nil {
			u := t.UTC()
			list[i].LeaseExpiresAt = &u
		}
	}
	return dueResponse{Personas: list, ServerTime: isoTime(now)}
}

// GET /due?limit=N
func (h *handlers) listDue(c echo.Context) error {
	limit := 0
	if v := c.QueryParam("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > personas.MaxDueLimit {
			return validation("limit", "must be an integer from 1 to "+strconv.Itoa(personas.MaxDueLimit))
		}
		limit = n
	}
	list, now, err := h.store.Due(c.Request().Context(), limit)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, newDueResponse(list, now))
}

// POST /due/claim {"runnerId","limit","leaseSeconds"}
func (h *handlers) claim(c echo.Context) error {
	var p personas.Problems
	obj, err := readObject(c, &p)
	if err != nil {
		return err
	}
	req := personas.ClaimRequest{RunnerID: obj.String("runnerId")}
	if v := obj.OptInt("limit", 1, personas.MaxClaimLimit); v != nil {
		req.Limit = *v
	}
	if v := obj.OptInt("leaseSeconds", int(personas.MinLease.Seconds()), int(personas.MaxLease.Seconds())); v != nil {
		req.Lease = time.Duration(*v) * time.Second
	}
	if err := p.Err(); err != nil {
		return err
	}
	list, now, err := h.store.Claim(c.Request().Context(), req)
	if err != nil {
		return err
	}
	resp := newDueResponse(list, now)
	lease := req.Lease
	if lease == 0 {
		lease = personas.DefaultLease
	}
	until := isoTime(now.Add(lease))
	resp.LeaseExpiresAt = &until
	return c.JSON(http.StatusOK, resp)
}

type writeResponse struct {
	OK         bool `json:"ok"`
	Written    int  `json:"written"`
	Duplicates int  `json:"duplicates"`
}

// POST /:id/actions {"actions":[{tickId,seq?,toolName,inputHash?,result,errorMessage?,latencyMs?}]}
func (h *handlers) postActions(c echo.Context) error {
	var p personas.Problems
	obj, err := readObject(c, &p)
	if err != nil {
		return err
	}
	items, ok := obj.Array("actions")
	if ok {
		checkBatchSize(&p, "actions", len(items), personas.MaxActionsPerBatch)
	}
	if err := p.Err(); err != nil {
		return err
	}
	rows := make([]personas.ActionInput, 0, len(items))
	for i, raw := range items {
		o, ok := jsonin.AsObject(raw, jsonin.Path("", "actions", i), &p)
		if !ok {
			continue
		}
		rows = append(rows, personas.ActionInput{
			TickID:       o.String("tickId"),
			Seq:          o.OptInt("seq", 0, personas.MaxSeq),
			ToolName:     o.String("toolName"),
			InputHash:    o.OptString("inputHash"),
			Result:       personas.Result(o.String("result")),
			ErrorMessage: o.OptString("errorMessage"),
			LatencyMs:    o.OptInt("latencyMs", 0, personas.MaxLatencyMs),
		})
	}
	if err := p.Err(); err != nil {
		return err
	}
	res, err := h.store.InsertActions(c.Request().Context(), c.Param("id"), rows)
	if err != nil {
		return err
	}
	h.metrics.written.WithLabelValues("actions").Add(float64(res.Written))
	h.metrics.duplicates.WithLabelValues("actions").Add(float64(res.Duplicates))
	return c.JSON(http.StatusOK, writeResponse{OK: true, Written: res.Written, Duplicates: res.Duplicates})
}

// POST /:id/feedback {"feedback":[{tickId,module,rating,notes?}]}
func (h *handlers) postFeedback(c echo.Context) error {
	var p personas.Problems
	obj, err := readObject(c, &p)
	if err != nil {
		return err
	}
	items, ok := obj.Array("feedback")
	if ok {
		checkBatchSize(&p, "feedback", len(items), personas.MaxFeedbackPerBatch)
	}
	if err := p.Err(); err != nil {
		return err
	}
	rows := make([]personas.FeedbackInput, 0, len(items))
	for i, raw := range items {
		o, ok := jsonin.AsObject(raw, jsonin.Path("", "feedback", i), &p)
		if !ok {
			continue
		}
		rows = append(rows, personas.FeedbackInput{
			TickID: o.String("tickId"),
			Module: o.String("module"),
			Rating: o.Int("rating", 1, 5),
			Notes:  o.OptString("notes"),
		})
	}
	if err := p.Err(); err != nil {
		return err
	}
	res, err := h.store.InsertFeedback(c.Request().Context(), c.Param("id"), rows)
	if err != nil {
		return err
	}
	h.metrics.written.WithLabelValues("feedback").Add(float64(res.Written))
	h.metrics.duplicates.WithLabelValues("feedback").Add(float64(res.Duplicates))
	return c.JSON(http.StatusOK, writeResponse{OK: true, Written: res.Written, Duplicates: res.Duplicates})
}

func checkBatchSize(p *personas.Problems, field string, n, maxRows int) {
	switch {
	case n == 0:
		p.Add(field, "must contain at least one item")
	case n > maxRows:
		p.Add(field, "at most %d items per request, got %d", maxRows, n)
	}
}

// readObject reads the (bounded) body as a JSON object. Malformed JSON is a
// 400 naming the parser's complaint; an oversize body is a 413.
func readObject(c echo.Context, p *personas.Problems) (jsonin.Object, error) {
	body, err := io.ReadAll(c.Request().Body)
	if err != nil {
		var maxErr *http.MaxBytesError
		if errors.As(err, &maxErr) {
			return jsonin.Object{}, err
		}
		return jsonin.Object{}, httpx.BadRequest("could not read request body")
	}
	obj, ok, err := jsonin.ParseObject(body, p)
	if err != nil {
		return jsonin.Object{}, httpx.BadRequest(err.Error())
	}
	if !ok {
		return jsonin.Object{}, p.Err()
	}
	return obj, nil
}

func validation(field, msg string) error {
	return (&personas.Problems{{Field: field, Message: msg}}).Err()
}

