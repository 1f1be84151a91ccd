package manaauth

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors. Every error a Client method returns for a mapped status
// wraps exactly one of them, so callers branch with errors.Is and never parse
// messages. Anything mana-auth answers that the contract does not foresee is
// an *UpstreamError instead.
var (
	// ErrNotFound: the user (or other resource) does not exist (404).
	ErrNotFound = errors.New("manaauth: not found")
	// ErrAlreadyExists: registration with an email that is taken
	// (422 USER_ALREADY_EXISTS*, or 409).
	ErrAlreadyExists = errors.New("manaauth: already exists")
	// ErrUnauthorized: bad credentials, a missing or invalid bearer, or a
	// wrong service key (401).
	ErrUnauthorized = errors.New("manaauth: unauthorized")
	// ErrForbidden: authenticated but not allowed, e.g. a non-admin bearer on
	// an admin endpoint (403).
	ErrForbidden = errors.New("manaauth: forbidden")
	// ErrRefused: mana-auth refused a registration's input with a 400 or
	// 422 other than "already exists" (a password its policy rejects, say).
	// The error is a *RefusedError with mana-auth's code and message.
	ErrRefused = errors.New("manaauth: refused")
	// ErrTimeout: the call's deadline passed before mana-auth answered.
	// Errors wrapping it also wrap context.DeadlineExceeded.
	ErrTimeout = errors.New("manaauth: timeout")
)

// StatusError is returned for a status the contract maps to a sentinel
// (404, 401, 403, 409/422 already-exists; a refused registration is a
// *RefusedError around one). It unwraps to that sentinel.
type StatusError struct {
	Op      string // client operation, e.g. "register"
	Status  int    // HTTP status mana-auth answered
	Code    string // machine code from the body ("code" or "error"), if any
	Message string // human message from the body, shortened and scrubbed
	kind    error
}

func (e *StatusError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "manaauth: %s: %s (status %d", e.Op, strings.TrimPrefix(e.kind.Error(), "manaauth: "), e.Status)
	if e.Code != "" {
		fmt.Fprintf(&b, ", code %s", e.Code)
	}
	b.WriteString(")")
	if e.Message != "" {
		fmt.Fprintf(&b, ": %s", e.Message)
	}
	return b.String()
}

// Unwrap returns the sentinel (ErrNotFound, ErrUnauthorized, ...).
func (e *StatusError) Unwrap() error { return e.kind }

// RefusedError is mana-auth's refusal of a registration's input (400 or
// 422, other than already-exists), with its machine code (e.g.
// "PASSWORD_TOO_SHORT") and message decoded once from the whole body, the
// message scrubbed of the request's secrets. It wraps ErrRefused, and its
// embedded *StatusError is found by errors.As as well, so callers that
// match StatusError by status keep working.
type RefusedError struct {
	*StatusError
}

// Unwrap returns the embedded *StatusError (which unwraps to ErrRefused).
func (e *RefusedError) Unwrap() error { return e.StatusError }

// UpstreamError reports that mana-auth failed or answered outside the
// contract: a 5xx, an unexpected status, an undecodable body, or no answer at
// all (Status 0, network error in Err). Callers typically map it to 502.
type UpstreamError struct {
	Op     string // client operation, e.g. "stamp persona"
	Status int    // HTTP status, 0 when no response arrived
	Body   string // short, scrubbed excerpt of the response body
	Err    error  // underlying cause (network or decode error), may be nil
}

func (e *UpstreamError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "manaauth: %s: upstream failure", e.Op)
	if e.Status != 0 {
		fmt.Fprintf(&b, " (status %d)", e.Status)
	}
	if e.Err != nil {
		fmt.Fprintf(&b, ": %v", e.Err)
	}
	if e.Body != "" {
		fmt.Fprintf(&b, ": body %q", e.Body)
	}
	return b.String()
}

// Unwrap returns the underlying cause, if any.
func (e *UpstreamError) Unwrap() error { return e.Err }

// maxExcerpt bounds how much of a response body an error carries.
const maxExcerpt = 200

// excerpt shortens body to a single line of at most maxExcerpt bytes and
// replaces every secret in it (a password, a bearer token) with "[redacted]",
// so an upstream that echoes a request cannot leak it into our errors or logs.
func excerpt(body []byte, secrets ...string) string {
	s := string(body)
	for _, sec := range secrets {
		if len(sec) >= 4 {
			s = strings.ReplaceAll(s, sec, "[redacted]")
		}
	}
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > maxExcerpt {
		cut := maxExcerpt
		// Do not split a UTF-8 sequence.
		for cut > 0 && s[cut]&0xC0 == 0x80 {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}
