package main

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mana/personas/pkg/adminclient"
	"github.com/mana/personas/pkg/personas"
)

// TestAdminClientOperator runs the client's operator calls against this
// server, so the two cannot drift apart.
func TestAdminClientOperator(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	admin, err := adminclient.New(b.url, b.admin, adminclient.WithHTTPClient(b.http), adminclient.WithRetries(0))
	require.NoError(t, err)
	seedPersona(t, b, "p1", "solo-dev", personas.CadenceDaily)

	st, err := admin.FleetState(ctx)
	require.NoError(t, err)
	require.False(t, st.Paused)
	require.Empty(t, st.UpdatedBy)
	st, err = admin.SetFleetPaused(ctx, true)
	require.NoError(t, err)
	require.True(t, st.Paused)
	require.Equal(t, testAdminEmail, st.UpdatedBy)
	require.Equal(t, t0, st.UpdatedAt)
	_, err = admin.SetFleetPaused(ctx, false)
	require.NoError(t, err)

	p, err := admin.SetEnabled(ctx, "p1", false)
	require.NoError(t, err)
	require.NotNil(t, p.Enabled)
	require.False(t, *p.Enabled)
	require.NotNil(t, p.TickHour)
	require.Equal(t, personas.DefaultTickHour("p1"), *p.TickHour)
	_, err = admin.SetEnabled(ctx, "nobody", false)
	require.ErrorIs(t, err, adminclient.ErrNotFound)
	_, err = admin.PatchPersona(ctx, "p1", adminclient.PersonaPatch{})
	var apiErr *adminclient.APIError
	require.ErrorAs(t, err, &apiErr)
	require.Equal(t, 400, apiErr.Status)
	_, err = admin.SetEnabled(ctx, "p1", true)
	require.NoError(t, err)

	_, err = b.store.Claim(ctx, personas.ClaimRequest{RunnerID: "runner-a"})
	require.NoError(t, err)
	page, err := admin.ListPersonas(ctx, adminclient.ListOptions{})
	require.NoError(t, err)
	require.NotNil(t, page.Personas[0].Lease)
	require.Equal(t, "runner-a", page.Personas[0].Lease.RunnerID)
	released, err := admin.ReleaseLease(ctx, "p1")
	require.NoError(t, err)
	require.True(t, released)
	released, err = admin.ReleaseLease(ctx, "p1")
	require.NoError(t, err)
	require.False(t, released)

	summary := "Ein ruhiger Tag."
	for _, id := range []string{"a", "b", "c"} {
		_, err = b.store.StartTick(ctx, "p1", personas.TickStart{TickID: id, RunnerID: "runner-a"})
		require.NoError(t, err)
		b.clock.Advance(time.Second)
	}
	_, err = b.store.FinishTick(ctx, "p1", "c", personas.TickFinish{Status: personas.TickFailed, Summary: &summary}, "")
	require.NoError(t, err)
	ticks, err := admin.ListTicks(ctx, "p1", adminclient.TickListOptions{Limit: 2})
	require.NoError(t, err)
	require.Len(t, ticks.Ticks, 2)
	require.Equal(t, "c", ticks.Ticks[0].TickID)
	require.Equal(t, "failed", ticks.Ticks[0].Status)
	require.NotEmpty(t, ticks.NextCursor)
	rest, err := admin.ListTicks(ctx, "p1", adminclient.TickListOptions{Limit: 2, Cursor: ticks.NextCursor})
	require.NoError(t, err)
	require.Len(t, rest.Ticks, 1)
	require.Empty(t, rest.NextCursor)
	failed, err := admin.ListTicks(ctx, "p1", adminclient.TickListOptions{Status: "failed"})
	require.NoError(t, err)
	require.Len(t, failed.Ticks, 1)

	d, err := admin.GetTick(ctx, "p1", "c")
	require.NoError(t, err)
	require.Equal(t, summary, d.Tick.Summary)
	require.True(t, d.Tick.Recorded)
	require.Empty(t, d.Actions)
	_, err = admin.GetTick(ctx, "p1", "zzz")
	require.ErrorIs(t, err, adminclient.ErrNotFound)

	q, err := admin.Unquarantine(ctx, "p1")
	require.NoError(t, err)
	require.Zero(t, q.ConsecutiveFailures)
	require.False(t, q.Quarantined)
	require.NotNil(t, q.LastTick)
	require.Equal(t, "failed", q.LastTick.Status)
}
