package main

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mana/personas/pkg/adminclient"
	"github.com/mana/personas/pkg/personas"
)

// TestAdminClient runs the typed client the CLI uses against this server,
// so the two cannot drift apart.
func TestAdminClient(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	client := func(token string) *adminclient.Client {
		c, err := adminclient.New(b.url, token, adminclient.WithHTTPClient(b.http), adminclient.WithRetries(0))
		require.NoError(t, err)
		return c
	}
	admin := client(b.admin)

	req := adminclient.UpsertRequest{
		Email: "persona.julia@mana.test", Name: "Julia", Password: "persona-password-1", Archetype: "researcher",
		SystemPrompt: "Du bist Julia.", ModuleMix: map[string]float64{"articles": 0.4, "notes": 0.4, "newsResearch": 0.2},
		TickCadence: "weekdays",
	}
	res, err := admin.UpsertPersona(ctx, req)
	require.NoError(t, err)
	require.True(t, res.OK)
	require.NotNil(t, res.Created)
	require.True(t, *res.Created)
	again, err := admin.UpsertPersona(ctx, req)
	require.NoError(t, err)
	require.False(t, *again.Created)
	require.Equal(t, res.UserID, again.UserID)

	req.Email, req.Name = "persona.paul@mana.test", "Paul"
	b.clock.Advance(time.Second)
	other, err := admin.UpsertPersona(ctx, req)
	require.NoError(t, err)

	_, err = b.store.InsertActions(ctx, res.UserID, []personas.ActionInput{{TickID: "t1", ToolName: "notes.create", Result: personas.ResultOK}}, personas.WriteOptions{})
	require.NoError(t, err)
	_, err = b.store.InsertFeedback(ctx, res.UserID, []personas.FeedbackInput{{TickID: "t1", Module: "notes", Rating: 4}}, personas.WriteOptions{})
	require.NoError(t, err)

	page, err := admin.ListPersonas(ctx, adminclient.ListOptions{})
	require.NoError(t, err)
	require.Len(t, page.Personas, 2)
	require.Empty(t, page.NextCursor)
	require.Equal(t, other.UserID, page.Personas[0].UserID, "newest first")
	julia := page.Personas[1]
	require.Equal(t, "Julia", julia.Name)
	require.Equal(t, "researcher", julia.Archetype)
	require.Equal(t, "weekdays", julia.TickCadence)
	require.Equal(t, 1, julia.Actions7d)
	require.NotNil(t, julia.LastActiveAt)
	require.NotNil(t, julia.CreatedAt)

	all, err := admin.ListAllPersonas(ctx, adminclient.ListOptions{Archetype: "researcher"}, 1)
	require.NoError(t, err)
	require.Len(t, all, 2, "followed the cursor over two pages")
	found, err := admin.FindByEmail(ctx, "PERSONA.JULIA@mana.test")
	require.NoError(t, err)
	require.Equal(t, res.UserID, found.UserID)

	detail, err := admin.GetPersona(ctx, res.UserID)
	require.NoError(t, err)
	require.Equal(t, res.UserID, detail.Persona.UserID)
	require.Len(t, detail.RecentActions, 1)
	require.Equal(t, "notes.create", detail.RecentActions[0].ToolName)
	require.Empty(t, detail.RecentActions[0].InputHash, "null decodes as empty")
	var feedback []struct {
		Module    string  `json:"module"`
		AvgRating float64 `json:"avgRating"`
	}
	require.NoError(t, json.Unmarshal(detail.FeedbackByModule, &feedback))
	require.Len(t, feedback, 1)
	require.InDelta(t, 4.0, feedback[0].AvgRating, 1e-9)

	require.NoError(t, admin.DeletePersona(ctx, res.UserID))
	_, err = admin.GetPersona(ctx, res.UserID)
	require.ErrorIs(t, err, adminclient.ErrNotFound)
	require.ErrorIs(t, admin.DeletePersona(ctx, res.UserID), adminclient.ErrNotFound)

	req.Password = "short"
	_, err = admin.UpsertPersona(ctx, req)
	var apiErr *adminclient.APIError
	require.ErrorAs(t, err, &apiErr)
	require.Equal(t, "ValidationError", apiErr.Code)
	require.Equal(t, []string{"password: must be 8 to 128 characters"}, apiErr.DetailMessages())
	require.NotContains(t, err.Error(), "short\"")

	b.registerUser(t, "someone@mana.test")
	_, err = client(b.login(t, "someone@mana.test", "user-password-1")).ListPersonas(ctx, adminclient.ListOptions{})
	require.ErrorIs(t, err, adminclient.ErrForbidden)
	_, err = client("not-a-token").ListPersonas(ctx, adminclient.ListOptions{})
	require.ErrorIs(t, err, adminclient.ErrUnauthorized)
}
