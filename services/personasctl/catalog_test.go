package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mana/personas/pkg/catalog"
)

// TestBuiltinCatalogFacts pins the shipped catalog to the platform's
// persona catalog: ten personas, seven archetypes, their cadences and mixes.
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

	// Tags follow the facts: each member of a shared space carries the
	// space's kind; the facts name no persona that makes mistakes on
	// purpose, so none is tagged chaos (which would hide its ratings from
	// regression verdicts).
	kindOf := map[string]string{}
	for _, s := range c.SharedSpaces {
		for _, m := range s.Members {
			kindOf[m] = s.Kind
		}
	}
	for _, p := range c.Personas {
		if k, ok := kindOf[p.Email]; ok {
			require.Equal(t, []string{k}, p.Tags, p.Email)
		} else {
			require.Nil(t, p.Tags, p.Email)
		}
	}
}

func TestBuiltinCatalogIsTheFile(t *testing.T) {
	t.Parallel()
	onDisk, err := os.ReadFile(filepath.Join("catalog", "personas.json"))
	require.NoError(t, err)
	require.True(t, bytes.Equal(onDisk, builtinCatalog))
}

// TestCatalogSchemaReference keeps editors on the schema the binary
// validates with: the catalog's "$schema" resolves to the very file
// pkg/catalog embeds.
func TestCatalogSchemaReference(t *testing.T) {
	t.Parallel()
	c, err := catalog.Decode(builtinCatalog)
	require.NoError(t, err)
	require.NotEmpty(t, c.Schema)
	referenced, err := os.ReadFile(filepath.Join("catalog", filepath.FromSlash(c.Schema)))
	require.NoError(t, err)
	require.True(t, bytes.Equal(catalog.SchemaJSON(), referenced), "%s is not the schema pkg/catalog embeds", c.Schema)
}
