package personas_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mana/personas/pkg/personas"
)

// TestDueNeverServesAStaleProfile: /due and claims take a persona's static
// fields from the profile cache; an edit, even one at the same clock
// reading as the previous write, is seen by the next call.
func TestDueNeverServesAStaleProfile(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t) // the clock stands still unless advanced
	in := persona("p1", personas.CadenceHourly)
	createPersona(t, b.store, "p1", personas.CadenceHourly)

	due := func() personas.DuePersona {
		t.Helper()
		res, err := b.store.Due(ctx, nil)
		require.NoError(t, err)
		require.Len(t, res.Personas, 1)
		return res.Personas[0]
	}
	require.Equal(t, in.SystemPrompt, due().SystemPrompt)
	require.Equal(t, in.SystemPrompt, due().SystemPrompt, "second call, from the cache")

	for i, edit := range []func(in *personas.PersonaInput){
		func(in *personas.PersonaInput) { in.SystemPrompt = "Du bist jetzt jemand anderes." },
		func(in *personas.PersonaInput) { in.Email = "persona.other@mana.test" },
		func(in *personas.PersonaInput) { in.Archetype = "ceo-busy" },
		func(in *personas.PersonaInput) { in.ModuleMix = map[string]float64{"notes": 2} },
		func(in *personas.PersonaInput) { in.SystemPrompt = "Ein \"Zitat\" <b> & ein Tab\t." },
	} {
		edit(&in)
		_, err := b.store.UpsertPersona(ctx, in) // same clock reading as the last write
		require.NoError(t, err)
		got := due()
		require.Equal(t, in.SystemPrompt, got.SystemPrompt, "edit %d", i)
		require.Equal(t, in.Email, got.Email, "edit %d", i)
		require.Equal(t, in.Archetype, got.Archetype, "edit %d", i)
		var mix map[string]float64
		require.NoError(t, json.Unmarshal(got.ModuleMix, &mix))
		require.Equal(t, in.ModuleMix, mix, "edit %d", i)
		// The encoded object says the same as the fields.
		var wire map[string]any
		require.NoError(t, json.Unmarshal(got.AppendJSON(nil), &wire), "edit %d: valid JSON", i)
		require.Equal(t, in.SystemPrompt, wire["systemPrompt"], "edit %d", i)
		require.Equal(t, in.Email, wire["email"], "edit %d", i)
	}

	// A claim after the edit carries the edit too, and its own lease fields.
	in.SystemPrompt = "Vor dem Claim geändert."
	_, err := b.store.UpsertPersona(ctx, in)
	require.NoError(t, err)
	res, err := b.store.Claim(ctx, personas.ClaimRequest{RunnerID: "r1"})
	require.NoError(t, err)
	require.Len(t, res.Personas, 1)
	require.Equal(t, in.SystemPrompt, res.Personas[0].SystemPrompt)
	var wire map[string]any
	require.NoError(t, json.Unmarshal(res.Personas[0].AppendJSON(nil), &wire))
	require.Equal(t, in.SystemPrompt, wire["systemPrompt"])
	require.Equal(t, res.Personas[0].LeaseToken, wire["leaseToken"])
	require.NotEmpty(t, wire["leaseExpiresAt"])
}

// TestUpsertMovesUpdatedAtForward: the profile cache's invariant.
func TestUpsertMovesUpdatedAtForward(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	in := persona("p1", personas.CadenceDaily)
	createPersona(t, b.store, "p1", personas.CadenceDaily)
	before, err := b.store.GetPersona(ctx, "p1")
	require.NoError(t, err)
	in.SystemPrompt = "Neu."
	_, err = b.store.UpsertPersona(ctx, in)
	require.NoError(t, err)
	after, err := b.store.GetPersona(ctx, "p1")
	require.NoError(t, err)
	require.True(t, after.UpdatedAt.After(before.UpdatedAt), "changed at the same clock reading: still later")
	require.Less(t, after.UpdatedAt.Sub(before.UpdatedAt), time.Millisecond)
}
