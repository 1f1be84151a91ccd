package adminclient

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"unicode/utf8"
)

// Sentinel errors, matched with errors.Is against an *APIError.
var (
	// ErrNotFound: 404, e.g. an unknown persona id.
	ErrNotFound = errors.New("adminclient: not found")
	// ErrUnauthorized: 401, a missing, expired or otherwise bad token.
	ErrUnauthorized = errors.New("adminclient: unauthorized")
	// ErrForbidden: 403, a valid token without role "admin".
	ErrForbidden = errors.New("adminclient: forbidden")
)

// APIError is a non-2xx answer of the admin API. Its body follows the
// contract {"error": code, "message"?: text, "details"?: [...]}; a body that
// does not (an HTML page from a proxy, say) is kept as a short excerpt in
// Message.
type APIError struct {
	Method string
	Path   string
	Status int
	// Code is the body's "error" field, e.g. "ValidationError".
	Code    string
	Message string
	// Details are the body's "details" items as sent (strings or objects);
	// DetailMessages renders them.
	Details []json.RawMessage
}

// Error renders method, path, status, code, message and details. It never
// contains request headers or the request body.
func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "adminclient: %s %s: %d %s", e.Method, e.Path, e.Status, http.StatusText(e.Status))
	if e.Code != "" && e.Code != http.StatusText(e.Status) {
		b.WriteString(": " + e.Code)
	}
	if e.Message != "" && e.Message != e.Code {
		b.WriteString(": " + e.Message)
	}
	if d := e.DetailMessages(); len(d) > 0 {
		b.WriteString(" [" + strings.Join(d, "; ") + "]")
	}
	return b.String()
}

// Is lets errors.Is match the sentinel errors by status.
func (e *APIError) Is(target error) bool {
	switch target {
	case ErrNotFound:
		return e.Status == http.StatusNotFound
	case ErrUnauthorized:
		return e.Status == http.StatusUnauthorized
	case ErrForbidden:
		return e.Status == http.StatusForbidden
	}
	return false
}

// DetailMessages renders each detail as text: a string as is, an object with
// a message as "path: message" (path from "path" or "field"), anything else as
// compact JSON.
func (e *APIError) DetailMessages() []string {
	out := make([]string, 0, len(e.Details))
	for _, raw := range e.Details {
		var s string
		if json.Unmarshal(raw, &s) == nil {
			out = append(out, s)
			continue
		}
		var obj struct {
			Path    any    `json:"path"`
			Field   string `json:"field"`
			Message string `json:"message"`
		}
		if json.Unmarshal(raw, &obj) == nil && obj.Message != "" {
			where := obj.Field
			switch p := obj.Path.(type) {
			case string:
				where = p
			case []any:
				parts := make([]string, len(p))
				for i, v := range p {
					parts[i] = fmt.Sprint(v)
				}
				where = strings.Join(parts, ".")
			}
			if where != "" {
				out = append(out, where+": "+obj.Message)
			} else {
				out = append(out, obj.Message)
			}
			continue
		}
		var buf bytes.Buffer
		if json.Compact(&buf, raw) == nil {
			out = append(out, buf.String())
		}
	}
	return out
}

// newAPIError builds the error for a non-2xx answer.
func newAPIError(method, path string, status int, body []byte) *APIError {
	e := &APIError{Method: method, Path: path, Status: status}
	var parsed struct {
		Error   json.RawMessage   `json:"error"`
		Message string            `json:"message"`
		Details []json.RawMessage `json:"details"`
	}
	if err := json.Unmarshal(body, &parsed); err == nil && (parsed.Error != nil || parsed.Message != "") {
		// "error" is a string in the contract; tolerate an object or number.
		if json.Unmarshal(parsed.Error, &e.Code) != nil {
			e.Code = strings.TrimSpace(string(parsed.Error))
		}
		e.Message = parsed.Message
		e.Details = parsed.Details
		return e
	}
	e.Message = excerpt(body)
	return e
}

// excerpt returns the start of a body as one line of at most 200 characters.
func excerpt(body []byte) string {
	s := strings.Join(strings.Fields(string(body)), " ")
	const limit = 200
	if utf8.RuneCountInString(s) <= limit {
		return s
	}
	r := []rune(s)
	return string(r[:limit]) + "…"
}
