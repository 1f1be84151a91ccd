package main

import (
	"log/slog"
	"net/http"
	"strconv"
	"time"

	fastjson "github.com/goccy/go-json"
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
	return dueResponse{Personas: list, ServerTime: httpx.ISOTime(now)}
}

// GET /due?limit=N
func (h *handlers) listDue(c echo.Context) error {
	limit := 0
	if v := c.QueryParam("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > personas.MaxDueLimit {
			return personas.Invalid("limit", "must be an integer from 1 to "+strconv.Itoa(personas.MaxDueLimit))
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
	obj, err := httpx.ReadObject(c, &p)
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
	until := httpx.ISOTime(now.Add(lease))
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
	body, err := httpx.ReadBody(c)
	if err != nil {
		return err
	}
	rows, err := decodeActions(body)
	if err != nil {
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

// wireAction is the fast path's view of one row: a well-formed batch
// decodes straight into it (with goccy/go-json, a drop-in decoder several
// times faster than encoding/json on this shape; it is already in the
// build through jwx). Anything it cannot take (a wrong type, a
// missing field) falls back to field-by-field reading, which names every
// problem.
type wireAction struct {
	TickID       *string `json:"tickId"`
	Seq          *int    `json:"seq"`
	ToolName     *string `json:"toolName"`
	InputHash    *string `json:"inputHash"`
	Result       *string `json:"result"`
	ErrorMessage *string `json:"errorMessage"`
	LatencyMs    *int    `json:"latencyMs"`
}

// The keys the fast paths know. Their decoder matches keys ignoring case;
// the contract does not, so a body with "TickId" takes the slow path, which
// reports tickId as missing.
var (
	actionKeys   = []string{"actions", "tickId", "seq", "toolName", "inputHash", "result", "errorMessage", "latencyMs"}
	feedbackKeys = []string{"feedback", "tickId", "module", "rating", "notes"}
)

func decodeActions(body []byte) ([]personas.ActionInput, error) {
	var fast struct {
		Actions []wireAction `json:"actions"`
	}
	if fastjson.Unmarshal(body, &fast) == nil && fast.Actions != nil && len(fast.Actions) <= personas.MaxActionsPerBatch &&
		!jsonin.HasCaseVariant(body, actionKeys...) {
		rows := make([]personas.ActionInput, 0, len(fast.Actions))
		for _, a := range fast.Actions {
			if a.TickID == nil || a.ToolName == nil || a.Result == nil {
				break
			}
			rows = append(rows, personas.ActionInput{
				TickID: *a.TickID, Seq: a.Seq, ToolName: *a.ToolName, InputHash: a.InputHash,
				Result: personas.Result(*a.Result), ErrorMessage: a.ErrorMessage, LatencyMs: a.LatencyMs,
			})
		}
		if len(rows) == len(fast.Actions) {
			return rows, nil // ranges and lengths are checked by the store
		}
	}
	return readActions(body)
}

// readActions is the slow path: every problem, by path.
func readActions(body []byte) ([]personas.ActionInput, error) {
	var p personas.Problems
	obj, err := httpx.ParseObject(body, &p)
	if err != nil {
		return nil, err
	}
	items, ok := obj.Array("actions")
	if ok {
		checkBatchSize(&p, "actions", len(items), personas.MaxActionsPerBatch)
	}
	if err := p.Err(); err != nil {
		return nil, err
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
		return nil, err
	}
	return rows, nil
}

// POST /:id/feedback {"feedback":[{tickId,module,rating,notes?}]}
func (h *handlers) postFeedback(c echo.Context) error {
	body, err := httpx.ReadBody(c)
	if err != nil {
		return err
	}
	rows, err := decodeFeedback(body)
	if err != nil {
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

type wireFeedback struct {
	TickID *string `json:"tickId"`
	Module *string `json:"module"`
	Rating *int    `json:"rating"`
	Notes  *string `json:"notes"`
}

func decodeFeedback(body []byte) ([]personas.FeedbackInput, error) {
	var fast struct {
		Feedback []wireFeedback `json:"feedback"`
	}
	if fastjson.Unmarshal(body, &fast) == nil && fast.Feedback != nil && len(fast.Feedback) <= personas.MaxFeedbackPerBatch &&
		!jsonin.HasCaseVariant(body, feedbackKeys...) {
		rows := make([]personas.FeedbackInput, 0, len(fast.Feedback))
		for _, f := range fast.Feedback {
			if f.TickID == nil || f.Module == nil || f.Rating == nil {
				break
			}
			rows = append(rows, personas.FeedbackInput{TickID: *f.TickID, Module: *f.Module, Rating: *f.Rating, Notes: f.Notes})
		}
		if len(rows) == len(fast.Feedback) {
			return rows, nil
		}
	}
	return readFeedback(body)
}

func readFeedback(body []byte) ([]personas.FeedbackInput, error) {
	var p personas.Problems
	obj, err := httpx.ParseObject(body, &p)
	if err != nil {
		return nil, err
	}
	items, ok := obj.Array("feedback")
	if ok {
		checkBatchSize(&p, "feedback", len(items), personas.MaxFeedbackPerBatch)
	}
	if err := p.Err(); err != nil {
		return nil, err
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
		return nil, err
	}
	return rows, nil
}

func checkBatchSize(p *personas.Problems, field string, n, maxRows int) {
	switch {
	case n == 0:
		p.Add(field, "must contain at least one item")
	case n > maxRows:
		p.Add(field, "at most %d items per request, got %d", maxRows, n)
	}
}
