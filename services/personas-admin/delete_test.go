package main

import (
	"context"
	"fmt"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mana/personas/pkg/manaauth"
	"github.com/mana/personas/pkg/personas"
)

func TestDelete(t *testing.T) {
	t.Parallel()

	t.Run("OKThenRepeatIs404", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		ctx := context.Background()
		res := b.upsert(t, "persona.paul@mana.test", nil)
		_, err := b.store.InsertActions(ctx, res.UserID, []personas.ActionInput{{TickID: "t1", ToolName: "x", Result: personas.ResultOK}}, personas.WriteOptions{})
		require.NoError(t, err)

		status, body := b.call(t, http.MethodDelete, apiPath+"/"+res.UserID, "")
		require.Equal(t, http.StatusOK, status, body)
		require.JSONEq(t, fmt.Sprintf(`{"ok":true,"deleted":%q,"userId":%q}`, res.UserID, res.UserID), body)
		_, err = b.mana.GetUser(ctx, b.admin, res.UserID)
		require.ErrorIs(t, err, manaauth.ErrNotFound)
		_, err = b.store.GetPersona(ctx, res.UserID)
		require.ErrorIs(t, err, personas.ErrNotFound)
		recent, err := b.store.RecentActions(ctx, res.UserID, 10)
		require.NoError(t, err)
		require.Empty(t, recent)

		status, body = b.call(t, http.MethodDelete, apiPath+"/"+res.UserID, "")
		require.Equal(t, http.StatusNotFound, status, body)
		require.JSONEq(t, `{"error":"Persona not found"}`, body)
	})

	t.Run("RefusesRegularUser", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		id := b.registerUser(t, "human@mana.test")
		status, body := b.call(t, http.MethodDelete, apiPath+"/"+id, "")
		require.Equal(t, http.StatusBadRequest, status, body)
		require.JSONEq(t, fmt.Sprintf(`{"error":"Not a persona","message":"%s is not a persona; delete regular users with DELETE /api/v1/admin/users/%s/data"}`, id, id), body)
		_, err := b.mana.GetUser(context.Background(), b.admin, id)
		require.NoError(t, err, "the user is untouched")
	})

	t.Run("HalfCreatedPersona", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		ctx := context.Background()
		id := b.registerUser(t, "persona.half@mana.test")
		_, err := b.mana.StampPersona(ctx, id)
		require.NoError(t, err)

		status, body := b.call(t, http.MethodDelete, apiPath+"/"+id, "")
		require.Equal(t, http.StatusOK, status, body)
		require.JSONEq(t, fmt.Sprintf(`{"ok":true,"deleted":%q,"userId":%q}`, id, id), body)
		_, err = b.mana.GetUser(ctx, b.admin, id)
		require.ErrorIs(t, err, manaauth.ErrNotFound)
		status, _ = b.call(t, http.MethodDelete, apiPath+"/"+id, "")
		require.Equal(t, http.StatusNotFound, status)
	})

	t.Run("ErrUnknownEverywhere", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		status, body := b.call(t, http.MethodDelete, apiPath+"/no-such-id", "")
		require.Equal(t, http.StatusNotFound, status, body)
		require.JSONEq(t, `{"error":"Persona not found"}`, body)
	})

	t.Run("RowWhoseUserIsAlreadyGone", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		res := b.upsert(t, "persona.orphan@mana.test", nil)
		require.NoError(t, b.mana.DeleteUser(context.Background(), b.admin, res.UserID))
		status, body := b.call(t, http.MethodDelete, apiPath+"/"+res.UserID, "")
		require.Equal(t, http.StatusOK, status, body)
		require.Empty(t, b.personaRows(t, "persona.orphan@mana.test"))
	})
}
