package main

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mana/personas/pkg/manaauth"
	"github.com/mana/personas/pkg/personas"
)

func TestUpsert(t *testing.T) {
	t.Parallel()

	t.Run("TwiceIsOneUserCreatedThenUpdated", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		ctx := context.Background()
		first := b.upsert(t, "persona.anna@mana.test", nil)
		require.True(t, first.OK)
		require.True(t, first.Created)
		require.Equal(t, "persona.anna@mana.test", first.Email)

		b.clock.Advance(time.Minute)
		second := b.upsert(t, "persona.anna@mana.test", map[string]any{"archetype": "solo-dev", "tickCadence": "hourly"})
		require.False(t, second.Created)
		require.Equal(t, first.UserID, second.UserID)

		users := b.authUsers(t, "persona.anna@mana.test")
		require.Len(t, users, 1)
		require.Equal(t, first.UserID, users[0].ID)
		u, err := b.mana.GetUser(ctx, b.admin, first.UserID)
		require.NoError(t, err)
		require.Equal(t, "persona", u.Kind)
		require.Equal(t, "founder", u.AccessTier)
		require.True(t, u.EmailVerified)

		rows := b.personaRows(t, "persona.anna@mana.test")
		require.Len(t, rows, 1)
		require.Equal(t, "solo-dev", rows[0].Archetype)
		require.Equal(t, personas.CadenceHourly, rows[0].TickCadence)
		require.True(t, t0.Equal(rows[0].CreatedAt))
		require.True(t, t0.Add(time.Minute).Equal(rows[0].UpdatedAt))

		// The persona can log in with the password it was registered with.
		_, err = b.mana.Login(ctx, "persona.anna@mana.test", "persona-password-1")
		require.NoError(t, err)
	})

	t.Run("OmittedOptionalFieldsKeepTheirValues", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.upsert(t, "persona.ben@mana.test", map[string]any{"name": "Ben", "tickCadence": "weekdays"})
		b.upsert(t, "persona.ben@mana.test", map[string]any{"name": nil, "tickCadence": nil, "archetype": "ceo-busy"})
		rows := b.personaRows(t, "persona.ben@mana.test")
		require.Len(t, rows, 1)
		require.Equal(t, "Ben", rows[0].Name)
		require.Equal(t, personas.CadenceWeekdays, rows[0].TickCadence)
		require.Equal(t, "ceo-busy", rows[0].Archetype)
	})

	t.Run("DefaultsOnCreate", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.upsert(t, "persona.maya@mana.test", map[string]any{"name": nil, "tickCadence": nil})
		rows := b.personaRows(t, "persona.maya@mana.test")
		require.Len(t, rows, 1)
		require.Equal(t, "persona.maya", rows[0].Name, "mana-auth's name for the user")
		require.Equal(t, personas.CadenceDaily, rows[0].TickCadence)
	})

	t.Run("ExistingUnstampedUserIsAdoptedWithItsPassword", func(t *testing.T) {
		// An earlier attempt registered the user and failed before the stamp:
		// the same request (same password) converges.
		t.Parallel()
		b := setup(t)
		res, err := b.mana.Register(context.Background(), manaauth.RegisterRequest{Email: "persona.kai@mana.test", Password: "persona-password-1"})
		require.NoError(t, err)
		got := b.upsert(t, "PERSONA.KAI@mana.test", nil)
		require.Equal(t, res.User.ID, got.UserID, "found by exact, case-insensitive email")
		require.True(t, got.Created)
		require.Len(t, b.authUsers(t, "persona.kai@mana.test"), 1)
	})

	t.Run("InputMana-authRefusesIsA400", func(t *testing.T) {
		// 100 characters pass our bounds (8-128) but not the stand-in's
		// (72 bytes, bcrypt's): mana-auth's refusal is the caller's to fix.
		t.Parallel()
		b := setup(t)
		status, body := b.call(t, http.MethodPost, apiPath, upsertBody("persona.long@mana.test", map[string]any{"password": strings.Repeat("p", 100)}))
		require.Equal(t, http.StatusBadRequest, status, body)
		require.Contains(t, body, `"error":"ValidationError"`)
		require.Contains(t, body, `"field":"password"`)
		require.Empty(t, b.personaRows(t, "persona.long@mana.test"))
	})

	t.Run("SomeoneElsesAccountIsNotAdopted", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		id := b.registerUser(t, "human@example.com") // a password the admin does not know
		status, body := b.call(t, http.MethodPost, apiPath, upsertBody("human@example.com", nil))
		require.Equal(t, http.StatusConflict, status, body)
		require.Contains(t, body, "not a persona")
		user, err := b.mana.GetUser(context.Background(), b.admin, id)
		require.NoError(t, err)
		require.NotEqual(t, "persona", user.Kind, "the account was not stamped")
		require.Empty(t, b.personaRows(t, "human@example.com"))

		status, body = b.call(t, http.MethodPost, apiPath, upsertBody("admin@mana.test", nil))
		require.Equal(t, http.StatusConflict, status, body)
		require.Contains(t, body, "an admin account")
	})

	t.Run("ConcurrentUpsertsConverge", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		const n = 6
		results := make([]upsertResult, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() { results[i] = b.upsert(t, "persona.tom@mana.test", nil) })
		}
		wg.Wait()
		created := 0
		for _, r := range results {
			require.Equal(t, results[0].UserID, r.UserID)
			if r.Created {
				created++
			}
		}
		require.Equal(t, 1, created)
		require.Len(t, b.authUsers(t, "persona.tom@mana.test"), 1)
		require.Len(t, b.personaRows(t, "persona.tom@mana.test"), 1)
	})

	t.Run("ErrEmailOfAnotherPersona", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		_, err := b.store.UpsertPersona(context.Background(), personas.PersonaInput{
			UserID: "stale-user", Email: "persona.lena@mana.test", Archetype: "ceo-busy",
			SystemPrompt: "Du bist Lena.", ModuleMix: map[string]float64{"notes": 1},
		})
		require.NoError(t, err)
		status, body := b.call(t, http.MethodPost, apiPath, upsertBody("persona.lena@mana.test", nil))
		require.Equal(t, http.StatusConflict, status, body)
		require.Contains(t, body, `"error":"Conflict"`)
		require.Contains(t, body, "stale-user")
		require.Empty(t, b.authUsers(t, "persona.lena@mana.test"), "nothing registered for a request that cannot succeed")
	})
}

func TestUpsertValidation(t *testing.T) {
	t.Parallel()
	b := setup(t)
	const email = "persona.valid@mana.test"
	cases := []struct {
		name   string
		body   string
		status int
		fields []string // the detail fields expected (any order); nil for non-validation errors
	}{
		{"MissingEmail", upsertBody(email, map[string]any{"email": nil}), 400, []string{"email"}},
		{"BadEmail", upsertBody("not-an-email", nil), 400, []string{"email"}},
		{"EmailWithDisplayName", upsertBody("Anna <persona.anna@mana.test>", nil), 400, []string{"email"}},
		{"MissingPassword", upsertBody(email, map[string]any{"password": nil}), 400, []string{"password"}},
		{"ShortPassword", upsertBody(email, map[string]any{"password": "1234567"}), 400, []string{"password"}},
		{"LongPassword", upsertBody(email, map[string]any{"password": strings.Repeat("p", 129)}), 400, []string{"password"}},
		{"PasswordNotString", upsertBody(email, map[string]any{"password": 12345678}), 400, []string{"password"}},
		{"BadCadence", upsertBody(email, map[string]any{"tickCadence": "monthly"}), 400, []string{"tickCadence"}},
		{"NegativeWeight", upsertBody(email, map[string]any{"moduleMix": map[string]any{"todo": -0.1}}), 400, []string{"moduleMix.todo"}},
		{"NonNumberWeight", upsertBody(email, map[string]any{"moduleMix": map[string]any{"todo": "lots"}}), 400, []string{"moduleMix.todo"}},
		{"ModuleMixNotObject", upsertBody(email, map[string]any{"moduleMix": []int{1}}), 400, []string{"moduleMix"}},
		{"EmptyModuleMix", upsertBody(email, map[string]any{"moduleMix": map[string]any{}}), 400, []string{"moduleMix"}},
		{"PromptTooLong", upsertBody(email, map[string]any{"systemPrompt": strings.Repeat("p", 20001)}), 400, []string{"systemPrompt"}},
		{"MissingArchetype", upsertBody(email, map[string]any{"archetype": nil}), 400, []string{"archetype"}},
		{"NameNotString", upsertBody(email, map[string]any{"name": 5}), 400, []string{"name"}},
		{"EveryProblemReported", `{"tickCadence":"yearly","moduleMix":{"a":-1,"b":"x"}}`, 400,
			[]string{"email", "archetype", "systemPrompt", "tickCadence", "password", "moduleMix.a", "moduleMix.b"}},
		{"BodyIsArray", `[]`, 400, []string{"body"}},
		{"BodyNotJSON", `{"email":`, 400, []string{"body"}},
		{"EmptyBody", ``, 400, []string{"body"}},
		{"BodyTooLarge", upsertBody(email, map[string]any{"systemPrompt": strings.Repeat("p", 300<<10)}), 413, nil},
	}
	t.Run("Cases", func(t *testing.T) {
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				status, body := b.call(t, http.MethodPost, apiPath, tc.body)
				require.Equal(t, tc.status, status, body)
				var e struct {
					Error   string `json:"error"`
					Message string `json:"message"`
					Details []struct{ Field, Message string }
				}
				require.NoError(t, json.Unmarshal([]byte(body), &e), body)
				require.NotEmpty(t, e.Message)
				require.NotContains(t, body, "persona-password-1", "the password is never echoed")
				if tc.fields == nil {
					require.NotEqual(t, "ValidationError", e.Error)
					return
				}
				require.Equal(t, "ValidationError", e.Error)
				got := make([]string, len(e.Details))
				for i, d := range e.Details {
					got[i] = d.Field
					require.NotEmpty(t, d.Message)
				}
				require.ElementsMatch(t, tc.fields, got, body)
			})
		}
	})
	// After every case above: none of them reached mana-auth.
	page, err := b.mana.SearchUsers(context.Background(), b.admin, "mana.test", 1, 100)
	require.NoError(t, err)
	require.Len(t, page.Users, 1)
	require.Equal(t, testAdminEmail, page.Users[0].Email)
}
