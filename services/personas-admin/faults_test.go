package main

import (
	"context"
	"fmt"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mana/personas/pkg/manaauth"
	"github.com/mana/personas/pkg/personas"
	"github.com/mana/personas/services/mana-auth-dev/devauth"
)

// TestUpstreamFaults injects one fault into the stand-in per case: the
// request fails with 502/504, leaves no half state, and succeeds when
// repeated after the fault is gone. Faults last until cleared, so calls the
// client retries fail on every attempt.
func TestUpstreamFaults(t *testing.T) {
	t.Parallel()

	upserts := []struct {
		name    string
		op      devauth.Op
		fault   devauth.Fault
		status  int
		message string
	}{
		{"SearchFails", devauth.OpSearch, devauth.Fault{Status: 503}, 502, "mana-auth find user failed: status 503"},
		{"RegisterFails", devauth.OpRegister, devauth.Fault{Status: 500}, 502, "mana-auth register failed: status 500"},
		{"RegisterHangs", devauth.OpRegister, devauth.Fault{Hang: true}, 504, "mana-auth did not answer in time (register)"},
		{"RegisterAnswerLost", devauth.OpRegister, devauth.Fault{Status: 500, After: true}, 502, "mana-auth register failed: status 500"},
		{"StampFails", devauth.OpStamp, devauth.Fault{Status: 500}, 502, "mana-auth persona-stamp failed: status 500"},
		{"StampHangs", devauth.OpStamp, devauth.Fault{Hang: true}, 504, "mana-auth did not answer in time (persona-stamp)"},
		{"StampAnswerLost", devauth.OpStamp, devauth.Fault{Status: 500, After: true}, 502, "mana-auth persona-stamp failed: status 500"},
		{"StampAnswerLostInAHang", devauth.OpStamp, devauth.Fault{Hang: true, After: true}, 504, "mana-auth did not answer in time (persona-stamp)"},
	}
	for _, tc := range upserts {
		t.Run("Upsert"+tc.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			email := "persona.fault@mana.test"
			require.NoError(t, b.auth.Faults().Set(tc.op, tc.fault))
			status, body := b.call(t, http.MethodPost, apiPath, upsertBody(email, nil))
			require.Equal(t, tc.status, status, body)
			errName := map[int]string{502: "Bad Gateway", 504: "Gateway Timeout"}[tc.status]
			require.JSONEq(t, fmt.Sprintf(`{"error":%q,"message":%q}`, errName, tc.message), body)
			require.Empty(t, b.personaRows(t, email), "no persona row unless the stamp succeeded")
			b.auth.Faults().ClearAll()
			require.LessOrEqual(t, len(b.authUsers(t, email)), 1)

			res := b.upsert(t, email, nil)
			require.True(t, res.Created)
			users := b.authUsers(t, email)
			require.Len(t, users, 1)
			require.Equal(t, users[0].ID, res.UserID)
			u, err := b.mana.GetUser(context.Background(), b.admin, res.UserID)
			require.NoError(t, err)
			require.Equal(t, "persona", u.Kind)
			rows := b.personaRows(t, email)
			require.Len(t, rows, 1)
			require.Equal(t, res.UserID, rows[0].UserID)
		})
	}

	deletes := []struct {
		name     string
		fault    devauth.Fault
		status   int
		message  string
		userGone bool // the fault let the deletion happen in mana-auth
	}{
		{"Fails", devauth.Fault{Status: 500}, 502, "mana-auth delete user failed: status 500", false},
		{"Hangs", devauth.Fault{Hang: true}, 504, "mana-auth did not answer in time (delete user)", false},
		{"AnswerLost", devauth.Fault{Status: 500, After: true}, 502, "mana-auth delete user failed: status 500", true},
		{"AnswerLostInAHang", devauth.Fault{Hang: true, After: true}, 504, "mana-auth did not answer in time (delete user)", true},
	}
	for _, tc := range deletes {
		t.Run("Delete"+tc.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			ctx := context.Background()
			res := b.upsert(t, "persona.gone@mana.test", nil)
			require.NoError(t, b.auth.Faults().Set(devauth.OpDelete, tc.fault))
			status, body := b.call(t, http.MethodDelete, apiPath+"/"+res.UserID, "")
			require.Equal(t, tc.status, status, body)
			errName := map[int]string{502: "Bad Gateway", 504: "Gateway Timeout"}[tc.status]
			require.JSONEq(t, fmt.Sprintf(`{"error":%q,"message":%q}`, errName, tc.message), body)
			_, err := b.store.GetPersona(ctx, res.UserID)
			require.NoError(t, err, "the row stays while mana-auth has not confirmed")
			_, err = b.mana.GetUser(ctx, b.admin, res.UserID)
			if tc.userGone {
				require.ErrorIs(t, err, manaauth.ErrNotFound)
			} else {
				require.NoError(t, err)
			}

			b.auth.Faults().ClearAll()
			status, body = b.call(t, http.MethodDelete, apiPath+"/"+res.UserID, "")
			require.Equal(t, http.StatusOK, status, body)
			_, err = b.store.GetPersona(ctx, res.UserID)
			require.ErrorIs(t, err, personas.ErrNotFound)
			_, err = b.mana.GetUser(ctx, b.admin, res.UserID)
			require.ErrorIs(t, err, manaauth.ErrNotFound)
		})
	}

	t.Run("DeleteLookupFails", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		id := b.registerUser(t, "human@mana.test")
		require.NoError(t, b.auth.Faults().Set(devauth.OpGetUser, devauth.Fault{Status: 500}))
		status, body := b.call(t, http.MethodDelete, apiPath+"/"+id, "")
		require.Equal(t, http.StatusBadGateway, status, body)
		require.JSONEq(t, `{"error":"Bad Gateway","message":"mana-auth get user failed: status 500"}`, body)
	})

	t.Run("MetricsCountFailures", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		require.NoError(t, b.auth.Faults().Set(devauth.OpStamp, devauth.Fault{Status: 500}))
		status, _ := b.call(t, http.MethodPost, apiPath, upsertBody("persona.m@mana.test", nil))
		require.Equal(t, http.StatusBadGateway, status)
		_, body := b.call(t, http.MethodGet, "/metrics", "")
		require.Contains(t, body, `personas_admin_mana_auth_failures_total{kind="error",op="persona-stamp"} 1`)
	})
}
