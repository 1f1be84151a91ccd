package main

import (
	"bytes"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/mana/personas/pkg/errs"
	"github.com/mana/personas/pkg/jsondec"
	"github.com/mana/personas/pkg/personas"
)

// The body decoders are fuzzed with the bodies the tests send as seeds
// (`make fuzz` runs each target for FUZZTIME). Whatever the input, a
// decoder must not panic, must keep no more than a valid request needs
// (rows up to one past the batch limit, strings up to one character past
// their field's), must report problems within errs.MaxProblems, and
// validation must accept what it hands over without panicking.

func seedBodies(f *testing.F, extra ...string) {
	seeds := []string{
		``, `{}`, `[]`, `null`, `{"actions":`, `{"actions":[]}`, `{"actions":{}}`, `{"actions":[5]}`,
		actionsBody("t", 3, -1), actionsBody("t", 3, 10), batch("tick", 2),
		`{"actions":[{"tickId":"t","toolName":"x","result":"ok","latencyMs":12.5}]}`,
		`{"actions":[{"tickId":"t","toolName":"x","result":"ok","latencyMs":5.0,"seq":1e3}]}`,
		`{"actions":[{"tickId":"t","toolName":"x\ud83d","result":"ok"}]}`,
		"{\"actions\":[{\"tickId\":\"t\xff\",\"toolName\":\"x\",\"result\":\"ok\"}]}",
		`{"actions":[{"tickId":"t","toolName":"x","result":"error","errorMessage":"\ud83d\ude00\u00e4"}]}`,
		`{"feedback":[{"tickId":"t","module":"todo","rating":4,"notes":"gut"}]}`,
		`{"feedback":[{"tickId":"t","module":"a","rating":3},{"tickId":"t","module":"a","rating":4}]}`,
		`{"feedback":[{"tickId":"t","module":"todo","rating":4.5}]}`,
		`{"runnerId":"r","limit":2,"leaseSeconds":300}`, `{"limt":2}`, `{"runnerId":null}`,
		`{"a":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}`,
		`{"actions":[` + strings.Repeat(`{},`, 600) + `{}]}`,
		strings.Repeat("1,", 1000),
	}
	for _, s := range append(seeds, extra...) {
		f.Add([]byte(s))
	}
}

func checkDecoded(t *testing.T, r *jsondec.Reader, p *errs.Problems) {
	t.Helper()
	_ = r.End()
	if len(p.List()) > errs.MaxProblems {
		t.Fatalf("%d problems listed", len(p.List()))
	}
	if err := p.Err(); err != nil && errs.CodeOf(err) != errs.Invalid {
		t.Fatalf("problems are not a 400: %v", err)
	}
}

func checkKept(t *testing.T, field, s string, limit int) {
	t.Helper()
	if n := utf8.RuneCountInString(s); n > limit+1 {
		t.Fatalf("%s kept %d characters, limit %d", field, n, limit)
	}
	if !utf8.ValidString(s) {
		t.Fatalf("%s kept invalid UTF-8 %q", field, s)
	}
}

func FuzzReadActions(f *testing.F) {
	seedBodies(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		var p errs.Problems
		r := jsondec.New(bytes.NewReader(body), &p)
		rows := readActions(r, &p)
		checkDecoded(t, r, &p)
		if len(rows) > personas.MaxActionsPerBatch+1 {
			t.Fatalf("%d rows kept", len(rows))
		}
		for _, a := range rows {
			checkKept(t, "tickId", a.TickID, personas.MaxTickIDLen)
			checkKept(t, "toolName", a.ToolName, personas.MaxToolNameLen)
			if a.ErrorMessage != nil {
				checkKept(t, "errorMessage", *a.ErrorMessage, personas.MaxErrorMessageLen)
			}
			if a.InputHash != nil {
				checkKept(t, "inputHash", *a.InputHash, personas.MaxInputHashLen)
			}
		}
		_ = personas.ValidateActions(rows)
	})
}

func FuzzReadFeedback(f *testing.F) {
	seedBodies(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		var p errs.Problems
		r := jsondec.New(bytes.NewReader(body), &p)
		rows := readFeedback(r, &p)
		checkDecoded(t, r, &p)
		if len(rows) > personas.MaxFeedbackPerBatch+1 {
			t.Fatalf("%d rows kept", len(rows))
		}
		for _, fb := range rows {
			checkKept(t, "tickId", fb.TickID, personas.MaxTickIDLen)
			checkKept(t, "module", fb.Module, personas.MaxModuleLen)
			if fb.Notes != nil {
				checkKept(t, "notes", *fb.Notes, personas.MaxNotesLen)
			}
		}
		_ = personas.ValidateFeedback(rows)
	})
}

func FuzzReadClaim(f *testing.F) {
	seedBodies(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		var p errs.Problems
		r := jsondec.New(bytes.NewReader(body), &p)
		req := readClaim(r, &p)
		checkDecoded(t, r, &p)
		checkKept(t, "runnerId", req.RunnerID, personas.MaxRunnerIDLen)
		_ = req.Validate()
	})
}
