package catalog_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mana/personas/pkg/catalog"
	"github.com/mana/personas/pkg/personas"
)

// validDoc returns a small valid catalog as generic JSON values, so each case
// can break exactly one thing.
func validDoc() map[string]any {
	persona := func(name string) map[string]any {
		return map[string]any{
			"email":        "persona." + name + "@mana.test",
			"name":         name,
			"archetype":    "solo-dev",
			"tickCadence":  "daily",
			"moduleMix":    map[string]any{"todo": 0.5, "notes": 0.5},
			"systemPrompt": "Du bist eine Testperson mit genug Text.",
		}
	}
	return map[string]any{
		"$schema":  "./personas.schema.json",
		"personas": []any{persona("anna"), persona("ben"), persona("kai")},
		"sharedSpaces": []any{
			map[string]any{"name": "Familie", "kind": "family", "members": []any{"persona.anna@mana.test", "persona.ben@mana.test"}},
		},
	}
}

func personaAt(doc map[string]any, i int) map[string]any {
	return doc["personas"].([]any)[i].(map[string]any)
}

func spaceAt(doc map[string]any, i int) map[string]any {
	return doc["sharedSpaces"].([]any)[i].(map[string]any)
}

func problemsOf(t *testing.T, doc any) []string {
	t.Helper()
	data, err := json.Marshal(doc)
	require.NoError(t, err)
	c, err := catalog.Decode(data)
	require.NoError(t, err)
	var out []string
	for _, p := range c.Validate() {
		out = append(out, p.String())
	}
	return out
}

func TestValidate(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		mutate func(doc map[string]any)
		want   []string
	}{
		{"ValidCatalog", func(map[string]any) {}, nil},
		{"EmptyPersonaListIsValid", func(d map[string]any) { d["personas"] = []any{}; delete(d, "sharedSpaces") }, nil},
		{"CadenceOmittedMeansDaily", func(d map[string]any) { delete(personaAt(d, 0), "tickCadence") }, nil},
		{"CadenceNullMeansDaily", func(d map[string]any) { personaAt(d, 0)["tickCadence"] = nil }, nil},
		{"MaxHistoryDaysSet", func(d map[string]any) { personaAt(d, 0)["maxHistoryDays"] = 30 }, nil},
		{"TagsSet", func(d map[string]any) { personaAt(d, 0)["tags"] = []any{"chaos", "beta-2"} }, nil},
		{"TagsEmptyClears", func(d map[string]any) { personaAt(d, 0)["tags"] = []any{} }, nil},
		{"MaxHistoryDaysNull", func(d map[string]any) { personaAt(d, 0)["maxHistoryDays"] = nil }, nil},
		{"ZeroWeightBesidePositiveIsValid", func(d map[string]any) { personaAt(d, 0)["moduleMix"] = map[string]any{"todo": 0, "notes": 1} }, nil},

		// email
		{"EmailMissing", func(d map[string]any) { delete(personaAt(d, 1), "email") },
			[]string{"personas[1].email: is required", `sharedSpaces[0].members[1]: no persona with email "persona.ben@mana.test" in this catalog`}},
		{"EmailNotAnAddress", func(d map[string]any) { personaAt(d, 2)["email"] = "kai at mana.test" },
			[]string{`personas[2].email: "kai at mana.test" is not a plain email address`}},
		{"EmailWithDisplayName", func(d map[string]any) { personaAt(d, 2)["email"] = "Kai <persona.kai@mana.test>" },
			[]string{`personas[2].email: "Kai <persona.kai@mana.test>" is not a plain email address`}},
		{"EmailOtherDomain", func(d map[string]any) { personaAt(d, 2)["email"] = "persona.kai@example.com" },
			[]string{"personas[2].email: must end in @mana.test"}},
		{"EmailLookalikeDomain", func(d map[string]any) { personaAt(d, 2)["email"] = "persona.kai@mana.test.example.com" },
			[]string{"personas[2].email: must end in @mana.test"}},
		{"EmailSubdomain", func(d map[string]any) { personaAt(d, 2)["email"] = "persona.kai@evil.mana.testing" },
			[]string{"personas[2].email: must end in @mana.test"}},
		{"EmailUppercase", func(d map[string]any) { personaAt(d, 2)["email"] = "Persona.Kai@mana.test" },
			[]string{"personas[2].email: must be lowercase"}},
		{"EmailSurroundingSpace", func(d map[string]any) { personaAt(d, 2)["email"] = " persona.kai@mana.test" },
			[]string{"personas[2].email: must not have leading or trailing spaces"}},
		{"EmailDuplicate", func(d map[string]any) { personaAt(d, 2)["email"] = "persona.anna@mana.test" },
			[]string{"personas[2].email: duplicate of personas[0].email (persona.anna@mana.test)"}},
		{"EmailNotAString", func(d map[string]any) { personaAt(d, 2)["email"] = 42 },
			[]string{"personas[2].email: must be a string"}},

		// name and archetype
		{"NameBlank", func(d map[string]any) { personaAt(d, 0)["name"] = "   " },
			[]string{"personas[0].name: is required"}},
		{"ArchetypeMissing", func(d map[string]any) { delete(personaAt(d, 0), "archetype") },
			[]string{"personas[0].archetype: is required"}},

		// prompt
		{"PromptTooShort", func(d map[string]any) { personaAt(d, 1)["systemPrompt"] = "Du bist Ben." },
			[]string{"personas[1].systemPrompt: must be at least 20 characters (has 12)"}},
		{"PromptCountsCharactersNotBytes", func(d map[string]any) { personaAt(d, 1)["systemPrompt"] = "Du bist Bär, älter." },
			[]string{"personas[1].systemPrompt: must be at least 20 characters (has 19)"}},
		{"PromptBlank", func(d map[string]any) { personaAt(d, 1)["systemPrompt"] = "                         " },
			[]string{"personas[1].systemPrompt: is required"}},
		{"PromptMissing", func(d map[string]any) { delete(personaAt(d, 1), "systemPrompt") },
			[]string{"personas[1].systemPrompt: is required"}},

		// module mix
		{"MixMissing", func(d map[string]any) { delete(personaAt(d, 0), "moduleMix") },
			[]string{"personas[0].moduleMix: must name at least one module"}},
		{"MixEmpty", func(d map[string]any) { personaAt(d, 0)["moduleMix"] = map[string]any{} },
			[]string{"personas[0].moduleMix: must name at least one module"}},
		{"MixNegativeWeight", func(d map[string]any) { personaAt(d, 0)["moduleMix"] = map[string]any{"todo": -0.1, "notes": 1} },
			[]string{"personas[0].moduleMix.todo: weight must not be negative (got -0.1)"}},
		{"MixAllZero", func(d map[string]any) { personaAt(d, 0)["moduleMix"] = map[string]any{"todo": 0, "notes": 0} },
			[]string{"personas[0].moduleMix: at least one weight must be positive"}},
		{"MixWeightNotANumber", func(d map[string]any) { personaAt(d, 0)["moduleMix"] = map[string]any{"todo": "viel", "notes": 1} },
			[]string{"personas[0].moduleMix.todo: weight must be a number"}},
		{"MixBlankModuleName", func(d map[string]any) { personaAt(d, 0)["moduleMix"] = map[string]any{" ": 1} },
			[]string{"personas[0].moduleMix: module names must not be blank"}},
		{"MixNotAnObject", func(d map[string]any) { personaAt(d, 0)["moduleMix"] = []any{"todo"} },
			[]string{"personas[0].moduleMix: must be an object mapping module names to weights"}},

		// cadence
		{"MaxHistoryDaysZero", func(d map[string]any) { personaAt(d, 0)["maxHistoryDays"] = 0 },
			[]string{"personas[0].maxHistoryDays: must be at least 1 day (got 0)"}},
		{"MaxHistoryDaysTooLong", func(d map[string]any) { personaAt(d, 0)["maxHistoryDays"] = 3651 },
			[]string{"personas[0].maxHistoryDays: must be at most 3650 days (got 3651)"}},
		{"MaxHistoryDaysFraction", func(d map[string]any) { personaAt(d, 0)["maxHistoryDays"] = 4.5 },
			[]string{"personas[0].maxHistoryDays: must be a whole number of days from 1 to 3650, or null for the global retention"}},
		// tags
		{"TagNotASlug", func(d map[string]any) { personaAt(d, 0)["tags"] = []any{"Chaos"} },
			[]string{`personas[0].tags[0]: must be a lowercase slug: letters a-z and digits, words joined by '-' (got "Chaos")`}},
		{"TagTooLong", func(d map[string]any) { personaAt(d, 1)["tags"] = []any{"ok", strings.Repeat("a", 33)} },
			[]string{"personas[1].tags[1]: must be at most 32 characters"}},
		{"TagNotAString", func(d map[string]any) { personaAt(d, 0)["tags"] = []any{7} },
			[]string{"personas[0].tags[0]: must be a string"}},
		{"TagsNotAnArray", func(d map[string]any) { personaAt(d, 0)["tags"] = "chaos" },
			[]string{"personas[0].tags: must be an array of tags"}},
		{"TooManyTags", func(d map[string]any) {
			tags := make([]any, 11)
			for i := range tags {
				tags[i] = fmt.Sprintf("t%d", i)
			}
			personaAt(d, 0)["tags"] = tags
		}, []string{"personas[0].tags: at most 10 tags (has 11)"}},

		{"CadenceUnknown", func(d map[string]any) { personaAt(d, 0)["tickCadence"] = "monthly" },
			[]string{`personas[0].tickCadence: must be one of daily, weekdays, hourly (got "monthly")`}},
		{"CadenceEmptyString", func(d map[string]any) { personaAt(d, 0)["tickCadence"] = "" },
			[]string{"personas[0].tickCadence: must be one of daily, weekdays, hourly; omit it for daily"}},
		{"CadenceNotAString", func(d map[string]any) { personaAt(d, 0)["tickCadence"] = 1 },
			[]string{"personas[0].tickCadence: must be a string, one of daily, weekdays, hourly"}},
		{"CadenceWrongCase", func(d map[string]any) { personaAt(d, 0)["tickCadence"] = "Daily" },
			[]string{`personas[0].tickCadence: must be one of daily, weekdays, hourly (got "Daily")`}},

		// shared spaces
		{"SpaceMemberUnknown", func(d map[string]any) {
			spaceAt(d, 0)["members"] = []any{"persona.anna@mana.test", "persona.zoe@mana.test"}
		}, []string{`sharedSpaces[0].members[1]: no persona with email "persona.zoe@mana.test" in this catalog`}},
		{"SpaceSingleMember", func(d map[string]any) { spaceAt(d, 0)["members"] = []any{"persona.anna@mana.test"} },
			[]string{"sharedSpaces[0].members: must name at least two personas (has 1)"}},
		{"SpaceDuplicateMember", func(d map[string]any) {
			spaceAt(d, 0)["members"] = []any{"persona.anna@mana.test", "persona.anna@mana.test"}
		}, []string{"sharedSpaces[0].members[1]: duplicate of sharedSpaces[0].members[0]"}},
		{"SpaceMemberNotAPersonaEmail", func(d map[string]any) {
			spaceAt(d, 0)["members"] = []any{"persona.anna@mana.test", "Persona.Ben@mana.test"}
		}, []string{"sharedSpaces[0].members[1]: must be lowercase"}},
		{"SpaceMembersNotAnArray", func(d map[string]any) { spaceAt(d, 0)["members"] = "persona.anna@mana.test" },
			[]string{"sharedSpaces[0].members: must be an array of persona emails"}},
		{"SpaceKindMissing", func(d map[string]any) { delete(spaceAt(d, 0), "kind") },
			[]string{"sharedSpaces[0].kind: is required"}},

		// structure
		{"PersonasMissing", func(d map[string]any) { delete(d, "personas"); delete(d, "sharedSpaces") },
			[]string{"personas: is required"}},
		{"PersonasNotAnArray", func(d map[string]any) { d["personas"] = map[string]any{}; delete(d, "sharedSpaces") },
			[]string{"personas: must be an array of persona objects"}},
		{"PersonaNotAnObject", func(d map[string]any) { d["personas"] = []any{"anna"}; delete(d, "sharedSpaces") },
			[]string{"personas[0]: must be an object"}},
		{"UnknownTopLevelField", func(d map[string]any) { d["persona"] = []any{} },
			[]string{"persona: unknown field"}},
		{"SharedSpacesNotAnArray", func(d map[string]any) { d["sharedSpaces"] = map[string]any{} },
			[]string{"sharedSpaces: must be an array of shared-space objects"}},
		{"UnknownSpaceField", func(d map[string]any) { spaceAt(d, 0)["owner"] = "anna" },
			[]string{"sharedSpaces[0].owner: unknown field"}},
		{"UnknownPersonaField", func(d map[string]any) { personaAt(d, 1)["tickcadence"] = "daily" },
			[]string{"personas[1].tickcadence: unknown field"}},

		// reporting
		{"EveryProblemReportedInDocumentOrder", func(d map[string]any) {
			personaAt(d, 2)["email"] = "kai@example.com"
			personaAt(d, 0)["name"] = ""
			spaceAt(d, 0)["kind"] = ""
			d["extra"] = true
		}, []string{
			"extra: unknown field",
			"personas[0].name: is required",
			"personas[2].email: must end in @mana.test",
			"sharedSpaces[0].kind: is required",
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			doc := validDoc()
			tc.mutate(doc)
			require.Equal(t, tc.want, problemsOf(t, doc))
		})
	}
}

func TestValidateGoValues(t *testing.T) {
	t.Parallel()
	t.Run("NonFiniteWeightRejected", func(t *testing.T) {
		t.Parallel()
		c := &catalog.Catalog{Personas: []catalog.Persona{{
			Email: "persona.x@mana.test", Name: "X", Archetype: "a",
			SystemPrompt: "Du bist eine Testperson mit Text.", ModuleMix: map[string]float64{"todo": math.NaN(), "notes": 1},
		}}}
		probs := c.Validate()
		require.Len(t, probs, 1)
		require.Equal(t, "personas[0].moduleMix.todo: weight must be a finite number", probs[0].String())
		require.Equal(t, 0, probs[0].Persona)
	})
	t.Run("EmptyCadenceMeansDefault", func(t *testing.T) {
		t.Parallel()
		p := catalog.Persona{}
		require.Equal(t, catalog.CadenceDaily, p.Cadence())
	})
}

func TestProblemsByPersona(t *testing.T) {
	t.Parallel()
	doc := validDoc()
	personaAt(doc, 1)["email"] = "ben@example.com"
	personaAt(doc, 1)["name"] = ""
	data, err := json.Marshal(doc)
	require.NoError(t, err)
	c, err := catalog.Decode(data)
	require.NoError(t, err)

	groups := catalog.ProblemsByPersona(c.Validate())
	require.Len(t, groups[1], 2, "both problems of the broken persona")
	require.Len(t, groups[-1], 1, "the shared space now names a missing persona")
	require.Empty(t, groups[0])
}

func TestDecode(t *testing.T) {
	t.Parallel()
	t.Run("SyntaxErrorNamesLineAndColumn", func(t *testing.T) {
		t.Parallel()
		_, err := catalog.Decode([]byte("{\n  \"personas\": [,]\n}"))
		require.ErrorContains(t, err, "line 2, column")
	})
	t.Run("NotAnObject", func(t *testing.T) {
		t.Parallel()
		_, err := catalog.Decode([]byte(`[]`))
		require.ErrorContains(t, err, "not a JSON object")
	})
	t.Run("Null", func(t *testing.T) {
		t.Parallel()
		_, err := catalog.Decode([]byte(`null`))
		require.ErrorContains(t, err, "not a JSON object")
	})
	t.Run("KeepsFieldsAndDefaults", func(t *testing.T) {
		t.Parallel()
		doc := validDoc()
		delete(personaAt(doc, 0), "tickCadence")
		data, err := json.Marshal(doc)
		require.NoError(t, err)
		c, err := catalog.Parse(data)
		require.NoError(t, err)
		require.Equal(t, "./personas.schema.json", c.Schema)
		require.Len(t, c.Personas, 3)
		require.Equal(t, catalog.CadenceDaily, c.Personas[0].Cadence())
		require.Equal(t, map[string]float64{"todo": 0.5, "notes": 0.5}, c.Personas[0].ModuleMix)
		p, ok := c.Lookup("PERSONA.BEN@mana.test")
		require.True(t, ok)
		require.Equal(t, "ben", p.Name)
	})
}

func TestLoad(t *testing.T) {
	t.Parallel()
	write := func(t *testing.T, doc any) string {
		t.Helper()
		data, err := json.Marshal(doc)
		require.NoError(t, err)
		path := filepath.Join(t.TempDir(), "personas.json")
		require.NoError(t, os.WriteFile(path, data, 0o600))
		return path
	}
	t.Run("Valid", func(t *testing.T) {
		t.Parallel()
		c, err := catalog.Load(write(t, validDoc()))
		require.NoError(t, err)
		require.Len(t, c.Personas, 3)
	})
	t.Run("InvalidReturnsCatalogAndAllProblems", func(t *testing.T) {
		t.Parallel()
		doc := validDoc()
		personaAt(doc, 0)["email"] = "anna@example.com"
		personaAt(doc, 2)["tickCadence"] = "sometimes"
		path := write(t, doc)
		c, err := catalog.Load(path)
		require.NotNil(t, c)
		var verr *catalog.ValidationError
		require.True(t, errors.As(err, &verr))
		require.Len(t, verr.Problems, 3) // email, cadence, and the space member that no longer exists
		require.ErrorContains(t, err, path)
		require.ErrorContains(t, err, "personas[0].email: must end in @mana.test")
	})
	t.Run("MissingFile", func(t *testing.T) {
		t.Parallel()
		_, err := catalog.Load(filepath.Join(t.TempDir(), "nope.json"))
		require.ErrorIs(t, err, os.ErrNotExist)
	})
}

// The catalog's schema and the store agree on what a tag is: every list
// one accepts, the other does too.
func TestTagsAgreeWithTheStore(t *testing.T) {
	t.Parallel()
	many := func(n int) []any {
		out := make([]any, n)
		for i := range out {
			out[i] = fmt.Sprintf("t%d", i)
		}
		return out
	}
	for _, tags := range [][]any{
		{"chaos"}, {"a-b-c", "x9"}, {"Chaos"}, {"-a"}, {"a-"}, {"a--b"}, {"a_b"}, {"ü"}, {""},
		{strings.Repeat("a", personas.MaxTagLen)}, {strings.Repeat("a", personas.MaxTagLen+1)},
		many(personas.MaxTags), many(personas.MaxTags + 1),
	} {
		doc := validDoc()
		personaAt(doc, 0)["tags"] = tags
		catalogOK := len(problemsOf(t, doc)) == 0
		strs := make([]string, len(tags))
		for i, v := range tags {
			strs[i] = v.(string)
		}
		var p personas.Problems
		personas.CheckTags(&p, "tags", strs)
		require.Equal(t, p.Err() == nil, catalogOK, "%q", strs)
	}
}
