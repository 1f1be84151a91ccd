package main

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mana/personas/pkg/openapitest"
	"github.com/mana/personas/pkg/personas"
)

// TestOpenAPILimitsAreTheStoresRules: every limit the document states is
// the store's constant, so a limit changed in the store without the
// document (or the other way round) fails here.
func TestOpenAPILimitsAreTheStoresRules(t *testing.T) {
	t.Parallel()
	l := openapitest.LoadLimits(t, openAPIDoc)

	action := l.Schema("Action")
	require.Equal(t, personas.MaxTickIDLen, l.MaxLength(l.Prop(action, "tickId")))
	require.Equal(t, personas.MaxToolNameLen, l.MaxLength(l.Prop(action, "toolName")))
	require.Equal(t, personas.MaxInputHashLen, l.MaxLength(l.Prop(action, "inputHash")))
	require.Equal(t, personas.MaxErrorMessageLen, l.MaxLength(l.Prop(action, "errorMessage")))
	require.Equal(t, personas.MaxLatencyMs, l.Max(l.Prop(action, "latencyMs")))
	require.Equal(t, personas.MaxSeq, l.Max(l.Prop(action, "seq")))

	feedback := l.Schema("Feedback")
	require.Equal(t, personas.MaxTickIDLen, l.MaxLength(l.Prop(feedback, "tickId")))
	require.Equal(t, personas.MaxModuleLen, l.MaxLength(l.Prop(feedback, "module")))
	require.Equal(t, personas.MaxNotesLen, l.MaxLength(l.Prop(feedback, "notes")))
	require.Equal(t, personas.MaxRating, l.Max(l.Prop(feedback, "rating")))
	require.Equal(t, personas.MinRating, l.Min(l.Prop(feedback, "rating")))

	require.Equal(t, personas.MaxActionsPerBatch, l.MaxItems(l.Prop(l.Body("POST", "/api/v1/personas/internal/{id}/actions"), "actions")))
	require.Equal(t, personas.MaxFeedbackPerBatch, l.MaxItems(l.Prop(l.Body("POST", "/api/v1/personas/internal/{id}/feedback"), "feedback")))

	claim := l.Body("POST", "/api/v1/personas/internal/due/claim")
	require.Equal(t, personas.MaxRunnerIDLen, l.MaxLength(l.Prop(claim, "runnerId")))
	require.Equal(t, personas.MaxClaimLimit, l.Max(l.Prop(claim, "limit")))
	require.Equal(t, int(personas.MaxLease.Seconds()), l.Max(l.Prop(claim, "leaseSeconds")))
	require.Equal(t, int(personas.MinLease.Seconds()), l.Min(l.Prop(claim, "leaseSeconds")))

	limit := l.Query("GET", "/api/v1/personas/internal/due", "limit")
	require.Equal(t, personas.MaxDueLimit, l.Max(limit))
	require.InDelta(t, personas.DefaultDueLimit, limit.Default, 0)
}
