package main

import (
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/mana/personas/pkg/edge"
	"github.com/mana/personas/pkg/errs"
	"github.com/mana/personas/pkg/jsondec"
	"github.com/mana/personas/pkg/personas"
)

// Tick records: the runner opens a tick when it starts driving a persona
// and closes it with its verdict. Both calls are idempotent by tick id, so
// the runner may retry them like any write. Limits and rules are the
// store's (TickStart.Validate, TickFinish.Validate); this file only
// decodes types.

// tickResponse is the answer of start and finish: the stored tick and what
// this call did (see personas.TickResult).
type tickResponse struct {
	OK bool `json:"ok"`
	personas.TickResult
}

func newTickResponse(res personas.TickResult) tickResponse {
	t := &res.Tick
	t.StartedAt, t.FinishedAt = utcPtr(t.StartedAt), utcPtr(t.FinishedAt)
	t.CreatedAt = t.CreatedAt.UTC()
	return tickResponse{OK: true, TickResult: res}
}

// POST /:id/ticks {tickId, runnerId, leaseToken?, model?, platformVersion?, startedAt?}
//
// 201 when this call created the record, 200 for a repeat (the stored
// record, unchanged); the body's "created" says the same. The lease token
// may come in the body or in X-Lease-Token; both at once must agree.
func (h *handlers) startTick(c echo.Context) error {
	var p errs.Problems
	var in personas.TickStart
	err := edge.ReadJSON(c, &p, func(r *jsondec.Reader) {
		r.Object("", func(key string) {
			switch key {
			case "tickId":
				in.TickID, _ = r.String(key, personas.MaxTickIDLen)
			case "runnerId":
				in.RunnerID, _ = r.String(key, personas.MaxRunnerIDLen)
			case "leaseToken":
				in.LeaseToken, _ = r.String(key, personas.MaxLeaseTokenLen)
			case "model":
				in.Model = optString(r, key, personas.MaxModelLen)
			case "platformVersion":
				in.PlatformVersion = optString(r, key, personas.MaxPlatformVersionLen)
			case "startedAt":
				in.StartedAt = optTime(r, key)
			default:
				edge.Unknown(&p, key)
				r.Skip()
			}
		})
	})
	if err != nil {
		return err
	}
	if header := c.Request().Header.Get(headerLeaseToken); header != "" {
		switch in.LeaseToken {
		case "":
			in.LeaseToken = header
		case header:
		default:
			p.Add("leaseToken", "differs from the %s header; send the token once", headerLeaseToken)
		}
	}
	if p.Len() > 0 {
		return invalid(&p, in.Validate(h.store.Now()))
	}
	res, err := h.store.StartTick(c.Request().Context(), c.Param("id"), in)
	if err != nil {
		return err
	}
	status := http.StatusOK
	if res.Created {
		status = http.StatusCreated
	}
	return c.JSON(status, newTickResponse(res))
}

// POST /:id/ticks/:tickId/finish {status, errorKind?, errorMessage?, summary?, ratingStatus?, tokensIn?, tokensOut?, finishedAt?}
//
// Always 200: a finish of a tick never started creates its record; a
// repeat (or a finish after the crash sweep closed the tick) changes
// nothing and says alreadyFinished.
func (h *handlers) finishTick(c echo.Context) error {
	var p errs.Problems
	var in personas.TickFinish
	err := edge.ReadJSON(c, &p, func(r *jsondec.Reader) {
		r.Object("", func(key string) {
			switch key {
			case "status":
				s, _ := r.String(key, len(personas.TickTimeout)+1)
				in.Status = personas.TickStatus(s)
			case "errorKind":
				if s := optString(r, key, len(personas.ErrorRateLimited)+1); s != nil {
					k := personas.ErrorKind(*s)
					in.ErrorKind = &k
				}
			case "errorMessage":
				in.ErrorMessage = optString(r, key, personas.MaxErrorMessageLen)
			case "summary":
				in.Summary = optString(r, key, personas.MaxSummaryLen)
			case "ratingStatus":
				if s := optString(r, key, len(personas.RatingUnparsable)+1); s != nil {
					rs := personas.RatingStatus(*s)
					in.RatingStatus = &rs
				}
			case "tokensIn":
				in.TokensIn = optInt64(r, key)
			case "tokensOut":
				in.TokensOut = optInt64(r, key)
			case "finishedAt":
				in.FinishedAt = optTime(r, key)
			default:
				edge.Unknown(&p, key)
				r.Skip()
			}
		})
	})
	if err != nil {
		return err
	}
	if p.Len() > 0 {
		return invalid(&p, in.Validate(h.store.Now()))
	}
	res, err := h.store.FinishTick(c.Request().Context(), c.Param("id"), c.Param("tickId"), in, writeOptions(c).LeaseToken)
	if err != nil {
		return err
	}
	if !res.AlreadyFinished {
		kind := "none"
		if in.ErrorKind != nil {
			kind = string(*in.ErrorKind)
		}
		h.metrics.ticksFinished.WithLabelValues(string(in.Status), kind).Inc()
	}
	return c.JSON(http.StatusOK, newTickResponse(res))
}

// optTime reads an optional RFC 3339 time (a string; null is absent).
func optTime(r *jsondec.Reader, path string) *time.Time {
	s, ok := r.String(path, 64)
	if !ok {
		return nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		r.Problem(path, "must be an RFC 3339 time such as 2026-11-23T12:00:00Z")
		return nil
	}
	return &t
}

// optInt64 reads an optional integer (ranges are the store's).
func optInt64(r *jsondec.Reader, path string) *int64 {
	v, ok := r.Int(path)
	if !ok {
		return nil
	}
	return &v
}

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}
