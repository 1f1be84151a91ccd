package main

import (
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/mana/personas/pkg/edge"
	"github.com/mana/personas/pkg/errs"
	"github.com/mana/personas/pkg/jsondec"
	"github.com/mana/personas/pkg/personas"
)

type handlers struct {
	store   *personas.Store
	logger  *slog.Logger
	metrics *rowMetrics
}

// writeDue answers the /due and claim body, {"personas":[…],"serverTime",
// "paused"?, "leaseExpiresAt"?}: leaseExpiresAt is set by claims (each
// persona also carries its own); paused while the fleet is paused. Each
// persona is appended by DuePersona.AppendJSON, which reuses its cached
// encoding: the prompts that make up most of the body are not re-encoded.
func writeDue(c echo.Context, res personas.DueResult, leaseExpiresAt *string) error {
	buf := dueBufs.Get().(*[]byte)
	b := append((*buf)[:0], `{"personas":[`...)
	for i := range res.Personas {
		if i > 0 {
			b = append(b, ',')
		}
		b = res.Personas[i].AppendJSON(b)
	}
	b = append(b, `],"serverTime":"`...)
	b = append(b, edge.ISOTime(res.ServerTime)...)
	b = append(b, '"')
	if res.Paused {
		b = append(b, `,"paused":true`...)
	}
	if leaseExpiresAt != nil {
		b = append(b, `,"leaseExpiresAt":"`...)
		b = append(b, *leaseExpiresAt...)
		b = append(b, '"')
	}
	b = append(b, "}\n"...)
	// With its length known, net/http sends the body as it is instead of
	// in chunks (a default answer is tens of kB).
	c.Response().Header().Set(echo.HeaderContentLength, strconv.Itoa(len(b)))
	err := c.Blob(http.StatusOK, echo.MIMEApplicationJSON, b)
	if cap(b) <= maxPooledDueBuf {
		*buf = b
		dueBufs.Put(buf)
	}
	return err
}

// dueBufs recycles response buffers (a default /due is tens of kB).
var dueBufs = sync.Pool{New: func() any { b := make([]byte, 0, 64<<10); return &b }}

const maxPooledDueBuf = 1 << 20

// GET /due?limit=N
func (h *handlers) listDue(c echo.Context) error {
	var p errs.Problems
	limit := edge.QueryInt(c, "limit", &p)
	if err := p.Err(); err != nil {
		return err
	}
	res, err := h.store.Due(c.Request().Context(), limit)
	if err != nil {
		return err
	}
	return writeDue(c, res, nil)
}

// POST /due/claim {"runnerId","limit","leaseSeconds"}
func (h *handlers) claim(c echo.Context) error {
	var p errs.Problems
	var req personas.ClaimRequest
	err := edge.ReadJSON(c, &p, func(r *jsondec.Reader) { req = readClaim(r, &p) })
	if err != nil {
		return err
	}
	if p.Len() > 0 {
		return invalid(&p, req.Validate())
	}
	res, err := h.store.Claim(c.Request().Context(), req)
	if err != nil {
		return err
	}
	var until *string
	if !res.Paused {
		t := edge.ISOTime(res.ServerTime.Add(req.Lease().Truncate(time.Second)))
		until = &t
	}
	return writeDue(c, res, until)
}

// readClaim reads a claim request. Unknown fields are problems: a typo
// must not silently take a default.
func readClaim(r *jsondec.Reader, p *errs.Problems) personas.ClaimRequest {
	var req personas.ClaimRequest
	r.Object("", func(key string) {
		switch key {
		case "runnerId":
			req.RunnerID, _ = r.String(key, personas.MaxRunnerIDLen)
		case "limit":
			req.Limit = optInt(r, key)
		case "leaseSeconds":
			req.LeaseSeconds = optInt(r, key)
		default:
			edge.Unknown(p, key)
			r.Skip()
		}
	})
	return req
}

// writeResponse: StaleLease when the batch's X-Lease-Token no longer holds
// the lease (the rows were stored all the same and counted on the tick).
type writeResponse struct {
	OK         bool `json:"ok"`
	Written    int  `json:"written"`
	Duplicates int  `json:"duplicates"`
	StaleLease bool `json:"staleLease,omitempty"`
}

// POST /:id/actions {"actions":[{tickId,seq?,toolName,inputHash?,result,errorMessage?,latencyMs?}]}
func (h *handlers) postActions(c echo.Context) error {
	var p errs.Problems
	var rows []personas.ActionInput
	if err := edge.ReadJSON(c, &p, func(r *jsondec.Reader) { rows = readActions(r, &p) }); err != nil {
		return err
	}
	if p.Len() > 0 {
		return invalid(&p, personas.ValidateActions(rows))
	}
	res, err := h.store.InsertActions(c.Request().Context(), c.Param("id"), rows, writeOptions(c))
	if err != nil {
		return err
	}
	h.metrics.written.WithLabelValues("actions").Add(float64(res.Written))
	h.metrics.countActions(rows, res)
	h.metrics.duplicates.WithLabelValues("actions").Add(float64(res.Duplicates))
	return c.JSON(http.StatusOK, writeResponse{OK: true, Written: res.Written, Duplicates: res.Duplicates, StaleLease: res.StaleLease})
}

// readActions reads an actions batch. Rows are read up to one past the
// batch limit (the store's validation reports the excess); strings are kept
// up to one character past their limit. Unknown fields are ignored: older
// runners send more than the contract names.
func readActions(r *jsondec.Reader, p *errs.Problems) []personas.ActionInput {
	var rows []personas.ActionInput
	found := false
	r.Object("", func(key string) {
		if key != "actions" {
			r.Skip()
			return
		}
		found = true
		r.Array(key, personas.MaxActionsPerBatch+1, func(i int) {
			path := jsondec.Index(key, i)
			var a personas.ActionInput
			r.Object(path, func(k string) {
				f := jsondec.Field(path, k)
				switch k {
				case "tickId":
					a.TickID, _ = r.String(f, personas.MaxTickIDLen)
				case "seq":
					a.Seq = optInt(r, f)
				case "toolName":
					a.ToolName, _ = r.String(f, personas.MaxToolNameLen)
				case "inputHash":
					a.InputHash = optString(r, f, personas.MaxInputHashLen)
				case "result":
					s, _ := r.String(f, len("error"))
					a.Result = personas.Result(s)
				case "errorMessage":
					a.ErrorMessage = optString(r, f, personas.MaxErrorMessageLen)
				case "latencyMs":
					a.LatencyMs = optInt(r, f)
				default:
					r.Skip()
				}
			})
			rows = append(rows, a)
		})
	})
	if !found {
		p.Add("actions", "is required")
	}
	return rows
}

// POST /:id/feedback {"feedback":[{tickId,module,rating,notes?}]}
func (h *handlers) postFeedback(c echo.Context) error {
	var p errs.Problems
	var rows []personas.FeedbackInput
	if err := edge.ReadJSON(c, &p, func(r *jsondec.Reader) { rows = readFeedback(r, &p) }); err != nil {
		return err
	}
	if p.Len() > 0 {
		return invalid(&p, personas.ValidateFeedback(rows))
	}
	res, err := h.store.InsertFeedback(c.Request().Context(), c.Param("id"), rows, writeOptions(c))
	if err != nil {
		return err
	}
	h.metrics.written.WithLabelValues("feedback").Add(float64(res.Written))
	h.metrics.duplicates.WithLabelValues("feedback").Add(float64(res.Duplicates))
	return c.JSON(http.StatusOK, writeResponse{OK: true, Written: res.Written, Duplicates: res.Duplicates, StaleLease: res.StaleLease})
}

// readFeedback reads a feedback batch, like readActions.
func readFeedback(r *jsondec.Reader, p *errs.Problems) []personas.FeedbackInput {
	var rows []personas.FeedbackInput
	found := false
	r.Object("", func(key string) {
		if key != "feedback" {
			r.Skip()
			return
		}
		found = true
		r.Array(key, personas.MaxFeedbackPerBatch+1, func(i int) {
			path := jsondec.Index(key, i)
			var fb personas.FeedbackInput
			hasRating := false
			r.Object(path, func(k string) {
				f := jsondec.Field(path, k)
				switch k {
				case "tickId":
					fb.TickID, _ = r.String(f, personas.MaxTickIDLen)
				case "module":
					fb.Module, _ = r.String(f, personas.MaxModuleLen)
				case "rating":
					if v := optInt(r, f); v != nil {
						fb.Rating, hasRating = *v, true
					}
				case "notes":
					fb.Notes = optString(r, f, personas.MaxNotesLen)
				default:
					r.Skip()
				}
			})
			if !hasRating {
				p.Add(jsondec.Field(path, "rating"), "is required")
			}
			rows = append(rows, fb)
		})
	})
	if !found {
		p.Add("feedback", "is required")
	}
	return rows
}

// writeOptions reads the optional X-Lease-Token header of a write.
func writeOptions(c echo.Context) personas.WriteOptions {
	return personas.WriteOptions{LeaseToken: c.Request().Header.Get(headerLeaseToken)}
}

// headerLeaseToken carries the claim's lease token on tick starts, writes
// and finishes (optional: runners that predate leases send none).
const headerLeaseToken = "X-Lease-Token" //nolint:gosec // a header name, not a credential

// invalid answers a request whose decoding found problems: those, plus
// every problem validation finds in the fields that did decode.
func invalid(p *errs.Problems, validation error) error {
	p.AddFrom(validation)
	return p.Err()
}

// optInt reads an optional integer; values beyond int's range are clamped
// so the store's range check reports them.
func optInt(r *jsondec.Reader, path string) *int {
	v, ok := r.Int(path)
	if !ok {
		return nil
	}
	n := int(max(min(v, 1<<53), -(1 << 53)))
	return &n
}

func optString(r *jsondec.Reader, path string, keep int) *string {
	s, ok := r.String(path, keep)
	if !ok {
		return nil
	}
	return &s
}
