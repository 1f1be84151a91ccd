package main

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mana/personas/pkg/errs"
	"github.com/mana/personas/pkg/manaauth"
)

// The steps of a request that call mana-auth, as named in error messages
// and metrics.
const (
	opFindUser   = "find user"
	opRegister   = "register"
	opLogin      = "login"
	opStamp      = "persona-stamp"
	opGetUser    = "get user"
	opDeleteUser = "delete user"
)

// upstreamFailure is the error for a failed call to mana-auth: 504 when
// mana-auth did not answer in time, 502 otherwise (a 5xx, no answer, an
// answer outside the contract, or a refusal of the forwarded bearer, which
// after our own check means the two services disagree).
func upstreamFailure(op string, err error) error {
	if errors.Is(err, manaauth.ErrTimeout) {
		return errs.Wrap(err, errs.UpstreamTimeout, fmt.Sprintf("mana-auth did not answer in time (%s)", op))
	}
	return errs.Wrap(err, errs.UpstreamFailed, fmt.Sprintf("mana-auth %s failed: %s", op, upstreamStatus(err)))
}

// upstreamStatus describes what mana-auth answered, for the client.
func upstreamStatus(err error) string {
	var se *manaauth.StatusError
	var ue *manaauth.UpstreamError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("status %d", se.Status)
	case errors.As(err, &ue) && ue.Status != 0:
		if ue.Status >= 200 && ue.Status < 300 {
			return fmt.Sprintf("status %d with an unexpected body", ue.Status)
		}
		return fmt.Sprintf("status %d", ue.Status)
	}
	return "no answer"
}

// upstreamMetrics counts failed calls to mana-auth by step and outcome.
type upstreamMetrics struct {
	failures *prometheus.CounterVec
}

func newUpstreamMetrics(reg prometheus.Registerer) *upstreamMetrics {
	m := &upstreamMetrics{
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "personas_admin_mana_auth_failures_total",
			Help: "Calls to mana-auth that failed, by step and kind (timeout, error).",
		}, []string{"op", "kind"}),
	}
	reg.MustRegister(m.failures)
	return m
}

// upstream wraps a mana-auth failure of op and counts it.
func (h *handlers) upstream(op string, err error) error {
	kind := "error"
	if errors.Is(err, manaauth.ErrTimeout) {
		kind = "timeout"
	}
	h.metrics.failures.WithLabelValues(op, kind).Inc()
	return upstreamFailure(op, err)
}
