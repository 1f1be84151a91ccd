package main

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mana/personas/pkg/openapitest"
	"github.com/mana/personas/pkg/personas"
)

// TestOpenAPILimitsAreTheStoresRules: the limits the document states are
// the store's (and, for the password, this service's) constants.
func TestOpenAPILimitsAreTheStoresRules(t *testing.T) {
	t.Parallel()
	l := openapitest.LoadLimits(t, openAPIDoc)

	up := l.Schema("UpsertRequest")
	require.Equal(t, personas.MaxEmailLen, l.MaxLength(l.Prop(up, "email")))
	require.Equal(t, personas.MaxNameLen, l.MaxLength(l.Prop(up, "name")))
	require.Equal(t, maxPassword, l.MaxLength(l.Prop(up, "password")))
	require.Equal(t, minPassword, int(l.Prop(up, "password").MinLength))
	require.Equal(t, personas.MaxArchetypeLen, l.MaxLength(l.Prop(up, "archetype")))
	require.Equal(t, personas.MaxSystemPromptLen, l.MaxLength(l.Prop(up, "systemPrompt")))
	mix := l.Prop(up, "moduleMix")
	require.Equal(t, personas.MaxModules, l.MaxItems(mix))
	require.Equal(t, personas.MaxModuleWeight, l.Max(mix.AdditionalProperties.Schema.Value))

	const list = "/api/v1/personas/admin"
	require.Equal(t, personas.MaxListLimit, l.Max(l.Query("GET", list, "limit")))
	require.Equal(t, personas.MaxArchetypeLen, l.MaxLength(l.Query("GET", list, "archetype")))
	require.Equal(t, personas.MaxQueryLen, l.MaxLength(l.Query("GET", list, "q")))
}
