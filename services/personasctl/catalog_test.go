package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/stretchr/testify/require"

	"github.com/mana/personas/pkg/catalog"
)

// TestBuiltinCatalogFacts pins the shipped catalog to the facts in
// DESIGN.md ("Persona catalog facts").
func TestBuiltinCatalogFacts(t *testing.T) {
	t.Parallel()
	c, err := catalog.Parse(builtinCatalog)
	require.NoError(t, err)

	want := []struct {
		name, archetype string
		cadence         catalog.Cadence
		mix             map[string]float64
	}{
		{"Anna", "adhd-student", "daily", map[string]float64{"todo": .3, "journal": .3, "notes": .2, "mood": .2}},
		{"Ben", "adhd-student", "daily", map[string]float64{"todo": .4, "calendar": .3, "journal": .2, "habits": .1}},
		{"Marcus", "ceo-busy", "weekdays", map[string]float64{"contacts": .3, "calendar": .3, "todo": .2, "articles": .2}},
		{"Lena", "ceo-busy", "weekdays", map[string]float64{"journal": .3, "contacts": .2, "calendar": .2, "notes": .3}},
		{"Sofia", "creative-parent", "daily", map[string]float64{"journal": .3, "notes": .3, "dreams": .2, "mood": .2}},
		{"Tom", "creative-parent", "daily", map[string]float64{"todo": .4, "calendar": .3, "notes": .2, "habits": .1}},
		{"Kai", "solo-dev", "daily", map[string]float64{"articles": .3, "notes": .3, "library": .2, "goals": .2}},
		{"Julia", "researcher", "weekdays", map[string]float64{"articles": .4, "notes": .4, "newsResearch": .2}},
		{"Paul", "freelancer", "weekdays", map[string]float64{"invoices": .4, "contacts": .3, "calendar": .3}},
		{"Maya", "overwhelmed-newbie", "daily", map[string]float64{"todo": .6, "journal": .4}},
	}
	require.Len(t, c.Personas, len(want))
	archetypes := map[string]bool{}
	sentenceEnd := regexp.MustCompile(`[.!?](\s|$)`)
	for i, w := range want {
		p := c.Personas[i]
		t.Run(w.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, w.name, p.Name)
			require.Equal(t, "persona."+strings.ToLower(w.name)+"@mana.test", p.Email)
			require.Equal(t, w.archetype, p.Archetype)
			require.Equal(t, w.cadence, p.Cadence())
			require.Equal(t, w.mix, p.ModuleMix)
			// German, second person, 2–4 sentences, about this person.
			require.True(t, strings.HasPrefix(p.SystemPrompt, "Du bist "+w.name+", "), p.SystemPrompt)
			require.Contains(t, p.SystemPrompt, "Mana")
			require.Contains(t, p.SystemPrompt, "Du schreibst")
			n := len(sentenceEnd.FindAllStringIndex(p.SystemPrompt, -1))
			require.GreaterOrEqual(t, n, 2, "sentences")
			require.LessOrEqual(t, n, 4, "sentences")
		})
		archetypes[p.Archetype] = true
	}
	require.Len(t, archetypes, 7)

	pairs := make([][2]string, 0, len(c.SharedSpaces))
	for _, s := range c.SharedSpaces {
		require.Len(t, s.Members, 2)
		pairs = append(pairs, [2]string{s.Kind, s.Members[0] + "+" + s.Members[1]})
	}
	require.Equal(t, [][2]string{
		{"family", "persona.anna@mana.test+persona.ben@mana.test"},
		{"team", "persona.marcus@mana.test+persona.lena@mana.test"},
		{"family", "persona.sofia@mana.test+persona.tom@mana.test"},
	}, pairs)
}

func TestBuiltinCatalogIsTheFile(t *testing.T) {
	t.Parallel()
	onDisk, err := os.ReadFile(filepath.Join("catalog", "personas.json"))
	require.NoError(t, err)
	require.True(t, bytes.Equal(onDisk, builtinCatalog))
}

// compileSchema loads catalog/personas.schema.json the way an editor does.
func compileSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	f, err := os.Open(filepath.Join("catalog", "personas.schema.json"))
	require.NoError(t, err)
	defer f.Close()
	doc, err := jsonschema.UnmarshalJSON(f)
	require.NoError(t, err)
	c := jsonschema.NewCompiler()
	require.NoError(t, c.AddResource("personas.schema.json", doc))
	sch, err := c.Compile("personas.schema.json")
	require.NoError(t, err)
	return sch
}

func instance(t *testing.T, data []byte) any {
	t.Helper()
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	require.NoError(t, err)
	return v
}

// TestSchema keeps the editor schema and the Go rules in step: the catalog
// passes both, and each broken copy fails both.
func TestSchema(t *testing.T) {
	t.Parallel()
	sch := compileSchema(t)
	t.Run("CatalogReferencesSchema", func(t *testing.T) {
		t.Parallel()
		c, err := catalog.Decode(builtinCatalog)
		require.NoError(t, err)
		require.Equal(t, "./personas.schema.json", c.Schema)
	})
	t.Run("BuiltinCatalogPasses", func(t *testing.T) {
		t.Parallel()
		require.NoError(t, sch.Validate(instance(t, builtinCatalog)))
	})
	broken := map[string]func(doc map[string]any){
		"OtherDomain":      func(d map[string]any) { docPersona(d, 0)["email"] = "anna@example.com" },
		"UppercaseEmail":   func(d map[string]any) { docPersona(d, 0)["email"] = "Persona.Anna@mana.test" },
		"BlankName":        func(d map[string]any) { docPersona(d, 0)["name"] = " " },
		"MissingArchetype": func(d map[string]any) { delete(docPersona(d, 0), "archetype") },
		"ShortPrompt":      func(d map[string]any) { docPersona(d, 0)["systemPrompt"] = "Du bist Anna." },
		"NegativeWeight":   func(d map[string]any) { docPersona(d, 0)["moduleMix"] = map[string]any{"todo": -0.5, "notes": 1} },
		"EmptyMix":         func(d map[string]any) { docPersona(d, 0)["moduleMix"] = map[string]any{} },
		"UnknownCadence":   func(d map[string]any) { docPersona(d, 0)["tickCadence"] = "monthly" },
		"UnknownField":     func(d map[string]any) { docPersona(d, 0)["mood"] = "happy" },
		"SpaceOfOne": func(d map[string]any) {
			d["sharedSpaces"].([]any)[0].(map[string]any)["members"] = []any{"persona.anna@mana.test"}
		},
		"NoPersonas": func(d map[string]any) { delete(d, "personas"); delete(d, "sharedSpaces") },
	}
	for name, mutate := range broken {
		t.Run("Rejects"+name, func(t *testing.T) {
			t.Parallel()
			doc := builtinDoc(t)
			mutate(doc)
			path := writeCatalog(t, doc)
			data, err := os.ReadFile(path)
			require.NoError(t, err)
			require.Error(t, sch.Validate(instance(t, data)), "schema")
			_, err = catalog.Parse(data)
			require.Error(t, err, "Go validation")
		})
	}
}
