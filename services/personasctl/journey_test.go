package main

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mana/personas/pkg/adminclient"
	"github.com/mana/personas/pkg/catalog"
)

// SeedJourney is the end-to-end operator journey of issue 4, run against a
// real gateway (or personas-admin) at apiURL with a real admin JWT, on a
// system that has no personas yet. No test calls it yet: the test that starts
// PostgreSQL, mana-auth-dev, personas-admin and the gateway calls it once
// they exist, e.g.
//
//	func TestOperatorJourney(t *testing.T) {
//		env := devstack.Start(t)             // services over real HTTP
//		SeedJourney(t, env.GatewayURL, env.AdminJWT(t))
//	}
//
// Steps: seed → the list shows the ten personas with the right archetypes
// and cadences → seed again → nothing new, same user ids → seed with one
// persona made invalid → the other nine still land, exit 1 → cleanup with an
// empty catalog → the list is empty.
func SeedJourney(t *testing.T, apiURL, adminJWT string) {
	t.Helper()
	ctx := context.Background()
	env := map[string]string{"MANA_API_URL": apiURL, "MANA_ADMIN_JWT": adminJWT, "PERSONA_SEED_SECRET": "journey-secret"}
	client, err := adminclient.New(apiURL, adminJWT)
	require.NoError(t, err)
	want, err := catalog.Parse(builtinCatalog)
	require.NoError(t, err)

	listed := func() map[string]adminclient.Persona {
		t.Helper()
		all, err := client.ListAllPersonas(ctx, adminclient.ListOptions{}, 0)
		require.NoError(t, err)
		byEmail := make(map[string]adminclient.Persona, len(all))
		for _, p := range all {
			byEmail[p.Email] = p
		}
		require.Len(t, byEmail, len(all), "no email listed twice")
		return byEmail
	}

	// 1. First seed creates all ten.
	r := runCLI(t, env, "", "seed", "--output", "json")
	require.Equal(t, exitOK, r.code, r.stderr)
	first := decodeSeed(t, r.stdout)
	require.Equal(t, 10, first.Summary.Created, r.stdout)
	require.Zero(t, first.Summary.Failed)

	live := listed()
	require.Len(t, live, 10)
	for _, p := range want.Personas {
		got, ok := live[p.Email]
		require.True(t, ok, "%s listed", p.Email)
		require.Equal(t, p.Archetype, got.Archetype, p.Email)
		require.Equal(t, string(p.Cadence()), got.TickCadence, p.Email)
		require.NotEmpty(t, got.UserID)
	}

	// 2. Seeding again changes nothing.
	r = runCLI(t, env, "", "seed", "--output", "json")
	require.Equal(t, exitOK, r.code, r.stderr)
	second := decodeSeed(t, r.stdout)
	require.Zero(t, second.Summary.Created, r.stdout)
	require.Equal(t, 10, second.Summary.Updated, r.stdout)
	again := listed()
	require.Len(t, again, 10)
	for email, p := range live {
		require.Equal(t, p.UserID, again[email].UserID, email)
	}

	// 3. One invalid persona fails alone.
	doc := builtinDoc(t)
	docPersona(doc, 4)["moduleMix"] = map[string]any{"journal": -1}
	r = runCLI(t, env, "", "seed", "--output", "json", "--catalog", writeCatalog(t, doc))
	require.Equal(t, exitFailure, r.code)
	third := decodeSeed(t, r.stdout)
	require.Equal(t, 9, third.Summary.Updated, r.stdout)
	require.Equal(t, 1, third.Summary.Failed)
	require.Equal(t, "failed", third.Results[4].Status)

	// 4. Cleanup against an empty catalog removes them all.
	empty := writeCatalog(t, map[string]any{"personas": []any{}})
	r = runCLI(t, env, "", "cleanup", "--dry-run", "--catalog", empty)
	require.Equal(t, exitOK, r.code, r.stderr)
	require.Len(t, listed(), 10, "a dry run deletes nothing")
	r = runCLI(t, env, "", "cleanup", "--yes", "--catalog", empty)
	require.Equal(t, exitOK, r.code, r.stdout+r.stderr)
	require.Contains(t, r.stdout, "summary: 10 deleted, 0 failed, 0 kept")
	require.Empty(t, listed())

	// 5. A second cleanup has nothing to do.
	r = runCLI(t, env, "", "cleanup", "--yes", "--all")
	require.Equal(t, exitOK, r.code, r.stderr)
	require.Contains(t, r.stdout, "nothing to delete")
}
