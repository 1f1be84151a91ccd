package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mana/personas/pkg/errs"
	"github.com/mana/personas/pkg/personas"
)

// rawPost sends body as is (no OpenAPI validation: some bodies here are not
// even UTF-8) and returns the status, the Retry-After header and the body.
func rawPost(t testing.TB, url, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), "POST", url, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("X-Service-Key", testKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(raw)
}

// escaped writes s the way Python's json.dumps does by default
// (ensure_ascii): every non-ASCII character as \u escapes, characters
// beyond the BMP as a surrogate pair.
func escaped(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r >= 0x10000:
			r -= 0x10000
			fmt.Fprintf(&b, `\u%04x\u%04x`, 0xD800+(r>>10), 0xDC00+(r&0x3FF))
		case r >= 0x80 || r < 0x20 || r == '"' || r == '\\':
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// escapedKey writes an ASCII key with every character escaped (\u0074…).
func escapedKey(k string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range k {
		fmt.Fprintf(&b, `\u%04x`, r)
	}
	b.WriteByte('"')
	return b.String()
}

// paddedInt writes n as an integer padded with a fraction of zeros to
// verboseNumber bytes: 86400000.000…0 is still the integer 86400000.
func paddedInt(n int) string {
	s := fmt.Sprint(n) + "."
	return s + strings.Repeat("0", verboseNumber-len(s))
}

const emoji = "\U0001F600"

// largestActionsBody is the largest valid actions batch in the most verbose
// legal encoding that maxBodyBytes accounts for.
func largestActionsBody() string {
	sp := strings.Repeat(" ", verboseSpace)
	member := func(k, v string) string { return sp + escapedKey(k) + sp + ":" + sp + v }
	long := func(n int) string { return escaped(strings.Repeat(emoji, n)) }
	tick, tool, hash, msg := long(personas.MaxTickIDLen), long(personas.MaxToolNameLen), long(personas.MaxInputHashLen), long(personas.MaxErrorMessageLen)
	rows := make([]string, personas.MaxActionsPerBatch)
	for i := range rows {
		rows[i] = sp + "{" + strings.Join([]string{
			member("tickId", tick), member("seq", paddedInt(i)), member("toolName", tool),
			member("inputHash", hash), member("result", escaped("error")),
			member("errorMessage", msg), member("latencyMs", paddedInt(personas.MaxLatencyMs)),
		}, ",") + sp + "}"
	}
	return sp + "{" + member("actions", "["+strings.Join(rows, ",")+sp+"]") + sp + "}"
}

// TestLargestValidBatch: a valid batch is never refused for its size (B6).
// The body limit is derived from the store's limits; the largest valid
// batch in its most verbose encoding, and the runner's own Python-encoded
// batch of emoji, both get 200.
func TestLargestValidBatch(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.persona(t, "p1", personas.CadenceDaily)
	url := b.url + "/api/v1/personas/internal/p1/actions"

	t.Run("MostVerboseEncoding", func(t *testing.T) {
		body := largestActionsBody()
		require.LessOrEqual(t, int64(len(body)), bodyLimit)
		require.Greater(t, int64(len(body)), bodyLimit-2<<20, "the limit is sized from the request, not generous by accident")
		status, resp := rawPost(t, url, body)
		require.Equal(t, http.StatusOK, status, resp)
		require.JSONEq(t, fmt.Sprintf(`{"ok":true,"written":%d,"duplicates":0}`, personas.MaxActionsPerBatch), resp)
	})

	t.Run("PythonJSONDumpsOfEmoji", func(t *testing.T) {
		// json.dumps({"actions": [...]}) of 500 actions with a 4,000-emoji
		// errorMessage: ~24 MB, refused 413 with the old 16 MiB limit.
		rows := make([]string, personas.MaxActionsPerBatch)
		msg := escaped(strings.Repeat(emoji, personas.MaxErrorMessageLen))
		for i := range rows {
			rows[i] = fmt.Sprintf(`{"tickId": "py", "toolName": "tool%d", "result": "error", "errorMessage": %s, "latencyMs": %d}`, i, msg, i)
		}
		body := `{"actions": [` + strings.Join(rows, ", ") + `]}`
		require.Greater(t, len(body), 16<<20)
		status, resp := rawPost(t, url, body)
		require.Equal(t, http.StatusOK, status, resp)
		require.Contains(t, resp, fmt.Sprintf(`"written":%d`, personas.MaxActionsPerBatch))
		recent, err := b.store.RecentActions(context.Background(), "p1", 1)
		require.NoError(t, err)
		require.Equal(t, strings.Repeat(emoji, personas.MaxErrorMessageLen), *recent[0].ErrorMessage)
	})

	t.Run("OneByteBeyondTheLimitIs413", func(t *testing.T) {
		body := `{"actions":[{"tickId":"` + strings.Repeat("t", int(bodyLimit)) + `"}]}`
		status, resp := rawPost(t, url, body)
		require.Equal(t, http.StatusRequestEntityTooLarge, status, resp)
	})
}

// TestInvalidUTF8 (B8): invalid UTF-8 — raw bytes or lone surrogate
// escapes — is a 400 on every body endpoint, wherever it appears (a value
// that is kept, one that is skipped, a key), however the numbers around it
// are written.
func TestInvalidUTF8(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.persona(t, "p1", personas.CadenceDaily)
	bads := map[string]string{
		"RawByte":       "\xff",
		"Truncated":     "\xe2\x82",
		"Overlong":      "\xc0\xaf",
		"RawSurrogate":  "\xed\xa0\x80",
		"LoneHigh":      `\ud83d`,
		"LoneLow":       `\ude00`,
		"HighThenASCII": `\ud83dx`,
		"HighThenHigh":  `\ud83d\ud83d`,
	}
	endpoints := map[string]func(bad, num string) string{
		"ActionsValue": func(bad, num string) string {
			return `{"actions":[{"tickId":"t","toolName":"x` + bad + `","result":"ok","latencyMs":` + num + `}]}`
		},
		"ActionsErrorMessage": func(bad, num string) string {
			return `{"actions":[{"tickId":"t","toolName":"x","result":"error","latencyMs":` + num + `,"errorMessage":"` + bad + `"}]}`
		},
		"ActionsUnknownField": func(bad, num string) string {
			return `{"actions":[{"tickId":"t","toolName":"x","result":"ok","latencyMs":` + num + `,"extra":"` + bad + `"}]}`
		},
		"ActionsKey": func(bad, num string) string {
			return `{"actions":[{"tickId":"t","toolName":"x","result":"ok","latencyMs":` + num + `,"k` + bad + `":1}]}`
		},
		"FeedbackNotes": func(bad, num string) string {
			return `{"feedback":[{"tickId":"t","module":"todo","rating":` + num + `,"notes":"` + bad + `"}]}`
		},
		"Claim": func(bad, num string) string {
			return `{"runnerId":"r` + bad + `","limit":` + num + `}`
		},
	}
	paths := map[string]string{"Actions": "p1/actions", "Feedback": "p1/feedback", "Claim": "due/claim"}
	for ename, mk := range endpoints {
		path := ""
		for prefix, p := range paths {
			if strings.HasPrefix(ename, prefix) {
				path = p
			}
		}
		for bname, bad := range bads {
			for _, num := range []string{"5", "5.0", "5e0", "50e-1"} {
				status, body := rawPost(t, b.url+"/api/v1/personas/internal/"+path, mk(bad, num))
				require.Equal(t, http.StatusBadRequest, status, "%s %s %s: %s", ename, bname, num, body)
				require.Contains(t, body, `"field":"body"`, "%s %s %s", ename, bname, num)
			}
		}
	}
	recent, err := b.store.RecentActions(context.Background(), "p1", 10)
	require.NoError(t, err)
	require.Empty(t, recent, "nothing was stored with U+FFFD in place of the bad bytes")
}

// TestBoundedProblems (B9): a 400 lists at most errs.MaxProblems problems,
// counts the rest in moreProblems and does not repeat them in message, so a
// large invalid request earns a small error.
func TestBoundedProblems(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.persona(t, "p1", personas.CadenceDaily)
	// 500 rows, each wrong in four fields: 2,000 problems in ~255 KB.
	row := `{"tickId":7,"toolName":"","result":"maybe","latencyMs":-` + strings.Repeat("1", 400) + `}`
	rows := make([]string, personas.MaxActionsPerBatch)
	for i := range rows {
		rows[i] = row
	}
	req := `{"actions":[` + strings.Join(rows, ",") + `]}`
	require.Greater(t, len(req), 200<<10)
	status, body := rawPost(t, b.url+"/api/v1/personas/internal/p1/actions", req)
	require.Equal(t, http.StatusBadRequest, status)
	require.Less(t, len(body), 8<<10, "a small error for a large request")
	var e struct {
		Message string            `json:"message"`
		Details []errs.FieldError `json:"details"`
		More    int               `json:"moreProblems"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &e))
	require.Len(t, e.Details, errs.MaxProblems)
	require.Positive(t, e.More)
	require.Less(t, len(e.Message), 200, e.Message)
	require.Contains(t, e.Message, fmt.Sprintf("(and %d more problems)", len(e.Details)-1+e.More), "message and moreProblems agree")
	require.NotContains(t, e.Message, e.Details[1].Field, "the message names the first problem only")
}
