package main

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mana/personas/pkg/personas"
)

// TestSources: the detail and the insight views say which of their parts
// came from the rollups and which from raw rows, as the store decides it
// (the responses are checked against openapi.yaml by the test client).
func TestSources(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	seedPersona(t, b, "p1", "solo-dev", personas.CadenceDaily)
	_, err := b.store.InsertActions(ctx, "p1", []personas.ActionInput{{TickID: "t", ToolName: "todo.create", Result: personas.ResultOK}}, personas.WriteOptions{})
	require.NoError(t, err)
	_, err = b.store.InsertFeedback(ctx, "p1", []personas.FeedbackInput{{TickID: "t", Module: "todo", Rating: 4}}, personas.WriteOptions{})
	require.NoError(t, err)

	for _, tc := range []struct {
		path string
		want personas.Sources
	}{
		{"/p1", personas.DetailSources()},
		{"/modules", personas.ModulesSources()},
		{"/modules/todo/trend", personas.TrendSources()},
		{"/tools", personas.ToolsSources()},
		{"/overview", personas.OverviewSources()},
	} {
		status, body := b.call(t, http.MethodGet, apiPath+tc.path, "")
		require.Equal(t, http.StatusOK, status, body)
		var got struct {
			Sources *personas.Sources `json:"sources"`
		}
		require.NoError(t, json.Unmarshal([]byte(body), &got))
		require.NotNil(t, got.Sources, tc.path)
		require.Equal(t, tc.want, *got.Sources, tc.path)
		require.NotEmpty(t, got.Sources.Rollups, tc.path)
	}
}
