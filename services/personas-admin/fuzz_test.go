package main

import (
	"bytes"
	"net/http/httptest"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/mana/personas/pkg/errs"
	"github.com/mana/personas/pkg/personas"
)

// FuzzReadUpsert fuzzes the admin upsert body decoder (`make fuzz`). It is
// driven through an echo context built from httptest, so readUpsert runs
// unchanged. Whatever the body: no panic; either a request whose every
// field passed validation, or a 400 with at most errs.MaxProblems details
// (or 413, beyond the limit: not reached here).
func FuzzReadUpsert(f *testing.F) {
	for _, s := range []string{
		``, `{}`, `[]`, `null`, `{"email":`,
		`{"email":"persona.kai@mana.test","password":"long-enough","archetype":"solo-dev","systemPrompt":"Du bist Kai.","moduleMix":{"notes":0.5,"todo":0.5}}`,
		`{"email":"persona.kai@mana.test","name":"Kai","password":"long-enough","archetype":"solo-dev","systemPrompt":"Du bist Kai.","moduleMix":{"notes":1},"tickCadence":"weekdays"}`,
		`{"email":"x","password":"short","moduleMix":{"a":-1,"b":"x"},"tickCadence":"monthly"}`,
		`{"email":"persona.kai@mana.test\ud800","password":"long-enough"}`,
		"{\"email\":\"persona.kai@mana.test\xff\"}",
		`{"moduleMix":{` + strings.Repeat(`"m":1,`, 60) + `"z":1}}`,
		`{"systemPrompt":"` + strings.Repeat("\\ud83d\\ude00", 100) + `"}`,
	} {
		f.Add([]byte(s))
	}
	e := echo.New()
	f.Fuzz(func(t *testing.T, body []byte) {
		c := e.NewContext(httptest.NewRequest("POST", "/api/v1/personas/admin", bytes.NewReader(body)), httptest.NewRecorder())
		req, err := readUpsert(c)
		if err != nil {
			ee := errs.As(err)
			if ee == nil || ee.Code != errs.Invalid {
				t.Fatalf("not a 400: %v", err)
			}
			if len(ee.Details) > errs.MaxProblems {
				t.Fatalf("%d problems listed", len(ee.Details))
			}
			return
		}
		if !utf8.ValidString(req.Email) || !utf8.ValidString(req.SystemPrompt) {
			t.Fatalf("invalid UTF-8 accepted")
		}
		if utf8.RuneCountInString(req.SystemPrompt) > personas.MaxSystemPromptLen || len(req.ModuleMix) > personas.MaxModules {
			t.Fatalf("an over-limit request passed validation")
		}
	})
}
