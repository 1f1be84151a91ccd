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

// Leases: a claim hands each persona out with a token; the holder renews
// while its tick runs and releases at shutdown. A token that no longer
// holds the lease is 409 (personas.ErrLeaseLost): the runner must stop
// driving that persona.

type renewResponse struct {
	OK             bool   `json:"ok"`
	LeaseExpiresAt string `json:"leaseExpiresAt"`
}

// POST /:id/lease/renew {leaseToken, leaseSeconds?} → {ok, leaseExpiresAt}
func (h *handlers) renewLease(c echo.Context) error {
	var p errs.Problems
	var token string
	var secs *int
	err := edge.ReadJSON(c, &p, func(r *jsondec.Reader) {
		r.Object("", func(key string) {
			switch key {
			case "leaseToken":
				token, _ = r.String(key, personas.MaxLeaseTokenLen)
			case "leaseSeconds":
				secs = optInt(r, key)
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
		return invalid(&p, personas.ValidateRenew(token, leaseArg(secs)))
	}
	until, err := h.store.RenewLease(c.Request().Context(), c.Param("id"), token, leaseArg(secs))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, renewResponse{OK: true, LeaseExpiresAt: edge.ISOTime(until)})
}

// leaseArg is the store's lease argument for an optional leaseSeconds: nil
// is 0 (the length the claim asked for). An explicit 0 or a negative value
// is passed as a negative duration, which the store's range check refuses;
// huge values are clamped first so the multiplication cannot overflow into
// the valid range.
func leaseArg(secs *int) time.Duration {
	if secs == nil {
		return 0
	}
	n := min(*secs, 1<<31)
	if n <= 0 {
		return -time.Second
	}
	return time.Duration(n) * time.Second
}

// POST /:id/lease/release {leaseToken, outcome?: abandoned|done|failed} → {ok}
func (h *handlers) releaseLease(c echo.Context) error {
	var p errs.Problems
	var token string
	var outcome personas.ReleaseOutcome
	err := edge.ReadJSON(c, &p, func(r *jsondec.Reader) {
		r.Object("", func(key string) {
			switch key {
			case "leaseToken":
				token, _ = r.String(key, personas.MaxLeaseTokenLen)
			case "outcome":
				if s := optString(r, key, len(personas.ReleaseAbandoned)+1); s != nil {
					outcome = personas.ReleaseOutcome(*s)
				}
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
		return invalid(&p, personas.ValidateRelease(token, outcome))
	}
	if err := h.store.ReleaseLease(c.Request().Context(), c.Param("id"), token, outcome); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, struct {
		OK bool `json:"ok"`
	}{true})
}
