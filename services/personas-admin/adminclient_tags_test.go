package main

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mana/personas/pkg/adminclient"
)

// The typed client personasctl seed uses sends tags (nil: keep, empty:
// clear) and reads them back.
func TestAdminClientTags(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	c, err := adminclient.New(b.url, b.admin, adminclient.WithHTTPClient(b.http), adminclient.WithRetries(0))
	require.NoError(t, err)
	req := adminclient.UpsertRequest{
		Email: "persona.chaos@mana.test", Name: "Chaos", Password: "persona-password-1", Archetype: "chaos-monkey",
		SystemPrompt: "Du bist Chaos.", ModuleMix: map[string]float64{"todo": 1}, Tags: &[]string{"chaos", "beta"},
	}
	tagsNow := func() []string {
		t.Helper()
		page, err := c.ListPersonas(ctx, adminclient.ListOptions{})
		require.NoError(t, err)
		require.Len(t, page.Personas, 1)
		return page.Personas[0].Tags
	}
	_, err = c.UpsertPersona(ctx, req)
	require.NoError(t, err)
	require.Equal(t, []string{"beta", "chaos"}, tagsNow())
	req.Tags = nil
	_, err = c.UpsertPersona(ctx, req)
	require.NoError(t, err)
	require.Equal(t, []string{"beta", "chaos"}, tagsNow(), "left out: kept")
	req.Tags = &[]string{}
	_, err = c.UpsertPersona(ctx, req)
	require.NoError(t, err)
	require.Empty(t, tagsNow(), "empty: cleared")
}
