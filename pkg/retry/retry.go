// Package retry is the one retry policy of this repository's HTTP clients
// (manaauth, adminclient, internalclient): which failures are worth another
// attempt, how long to wait before it, and how long each attempt and the
// whole call may take.
//
// The policy follows hashicorp/go-retryablehttp's defaults, with two
// deliberate differences:
//
//   - Retried: network errors (connection refused or reset, an EOF before
//     the answer, a per-attempt timeout), 502, 503 and 504, and 429 after
//     the server's Retry-After (seconds or an HTTP-date, capped at
//     MaxDelay). Never another 4xx, and — unlike go-retryablehttp — never
//     500 or 501: our servers answer 500 for a bug, which a second attempt
//     will meet again, while 502/503/504 are what a gateway, a restarting
//     service or a database still migrating answer.
//   - Only requests the caller marks idempotent are retried after an
//     ambiguous failure (an answer, a timeout, a reset: the request may have
//     had its effect). A non-idempotent one is retried only when it
//     certainly never reached the server (the connection could not be
//     made). go-retryablehttp retries every method alike.
//
// Waits are exponential with full jitter (uniform in [0, min(MaxDelay,
// BaseDelay·2ⁿ)]), so replicas that failed together do not retry together.
//
// Why not the library: go-retryablehttp wraps the whole http.Client, logs
// through its own logger interface, retries 500 and non-idempotent POSTs,
// and has no per-attempt deadline; what we need is some sixty lines around
// our clients' own http.Client, which we can read and test in one place.
package retry

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Policy says how often and how patiently a call is attempted. The zero
// value makes one attempt without a per-attempt deadline.
type Policy struct {
	// MaxAttempts counts every attempt, the first included (< 1: one).
	MaxAttempts int
	// BaseDelay is the ceiling of the first wait; it doubles per retry.
	BaseDelay time.Duration
	// MaxDelay caps every wait, a server's Retry-After included.
	// Zero means BaseDelay's doubling is not capped (and Retry-After is
	// ignored).
	MaxDelay time.Duration
	// PerAttempt bounds one attempt, reading the response body included
	// (0: only the caller's context bounds it). The whole call is bounded
	// by the caller's context alone.
	PerAttempt time.Duration
}

// Default is the policy of the three clients unless they are told
// otherwise: three attempts, waits of up to 100 ms, 200 ms (capped at 2 s),
// 10 s per attempt.
var Default = Policy{MaxAttempts: 3, BaseDelay: 100 * time.Millisecond, MaxDelay: 2 * time.Second, PerAttempt: 10 * time.Second}

// Attempt sends one request under ctx (build the request from ctx and from
// bytes, so every attempt sends the same body) and returns the response
// with its body unread, or the transport's error.
type Attempt func(ctx context.Context) (*http.Response, error)

// Do runs attempt until it succeeds, fails for good, or the policy or ctx
// says stop. It returns the last response — any status, the caller maps it —
// or the last error. The returned body stays under the per-attempt
// deadline until it is closed; the caller must close it. Bodies of
// responses that are retried are drained and closed here.
//
// When ctx ends during a wait the error wraps both ctx.Err() and the last
// failure. When the next wait would outlast ctx's deadline, Do stops early
// and returns the last result as it is.
func (p Policy) Do(ctx context.Context, idempotent bool, attempt Attempt) (*http.Response, error) {
	attempts := max(p.MaxAttempts, 1)
	for n := 1; ; n++ {
		res, err := p.once(ctx, attempt)
		if ctx.Err() != nil || n >= attempts {
			return res, err
		}
		wait, retry := p.decide(idempotent, n, res, err)
		if !retry {
			return res, err
		}
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
			return res, err // waiting would only turn this answer into a timeout
		}
		last := err
		if res != nil {
			last = fmt.Errorf("status %d", res.StatusCode)
			discard(res)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("retry: gave up after %d attempts: %w (last: %w)", n, ctx.Err(), last)
		case <-t.C:
		}
	}
}

// once makes one attempt under the per-attempt deadline. The deadline's
// cancel runs when the response body is closed (or at once on error).
func (p Policy) once(ctx context.Context, attempt Attempt) (*http.Response, error) {
	if p.PerAttempt <= 0 {
		return attempt(ctx)
	}
	actx, cancel := context.WithTimeout(ctx, p.PerAttempt)
	res, err := attempt(actx)
	if err != nil || res == nil {
		cancel()
		return res, err
	}
	res.Body = &cancelBody{ReadCloser: res.Body, cancel: cancel}
	return res, nil
}

// decide says whether the n-th attempt's outcome is retried and after how
// long.
func (p Policy) decide(idempotent bool, n int, res *http.Response, err error) (time.Duration, bool) {
	if err != nil {
		if NotSent(err) || (idempotent && Transient(err)) {
			return p.Backoff(n), true
		}
		return 0, false
	}
	if !idempotent || res == nil || !RetryableStatus(res.StatusCode) {
		return 0, false
	}
	if d, ok := RetryAfter(res.Header.Get("Retry-After"), time.Now()); ok && p.MaxDelay > 0 {
		return min(d, p.MaxDelay), true
	}
	return p.Backoff(n), true
}

// Backoff returns the wait after the n-th failed attempt (n ≥ 1): uniform
// in [0, min(MaxDelay, BaseDelay·2ⁿ⁻¹)].
func (p Policy) Backoff(n int) time.Duration {
	if p.BaseDelay <= 0 {
		return 0
	}
	ceiling := p.BaseDelay
	for i := 1; i < n; i++ {
		if p.MaxDelay > 0 && ceiling >= p.MaxDelay {
			break
		}
		if ceiling > time.Duration(1<<62)/2 {
			break // no overflow for absurd attempt counts
		}
		ceiling *= 2
	}
	if p.MaxDelay > 0 {
		ceiling = min(ceiling, p.MaxDelay)
	}
	return rand.N(ceiling + 1)
}

// RetryableStatus reports the statuses worth another attempt of an
// idempotent request: 429, 502, 503, 504.
func RetryableStatus(status int) bool {
	switch status {
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// Transient reports whether a transport error may go away on its own: a
// refused or reset connection, an EOF before the answer, a timeout of the
// attempt. A certificate the client does not trust, a malformed URL or a
// cancelled context are not.
func Transient(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	var unknownCA x509.UnknownAuthorityError
	var invalid x509.CertificateInvalidError
	var hostname x509.HostnameError
	var verify *tls.CertificateVerificationError
	if errors.As(err, &unknownCA) || errors.As(err, &invalid) || errors.As(err, &hostname) || errors.As(err, &verify) {
		return false
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && !strings.Contains(err.Error(), "unsupported protocol scheme")
}

// NotSent reports whether err means the request never left the client: the
// connection could not be made (refused, no route, a failed DNS lookup).
// Such a request can be repeated whatever its method.
func NotSent(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// RetryAfter parses a Retry-After header: delay-seconds or an HTTP-date
// (relative to now; a date in the past is zero). ok is false when the
// header is absent or malformed.
func RetryAfter(h string, now time.Time) (d time.Duration, ok bool) {
	h = strings.TrimSpace(h)
	if h == "" {
		return 0, false
	}
	if secs, err := strconv.ParseInt(h, 10, 64); err == nil {
		if secs < 0 {
			return 0, false
		}
		if secs > int64(time.Duration(1<<62)/time.Second) {
			return time.Duration(1 << 62), true
		}
		return time.Duration(secs) * time.Second, true
	}
	t, err := http.ParseTime(h)
	if err != nil {
		return 0, false
	}
	return max(t.Sub(now), 0), true
}

// maxDrain bounds how much of a retried response is read so its
// connection can be reused; a larger body costs a new connection instead.
const maxDrain = 64 << 10

func discard(res *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, maxDrain))
	_ = res.Body.Close()
}

// cancelBody ends the attempt's deadline once the caller is done with the
// body.
type cancelBody struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b *cancelBody) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}
