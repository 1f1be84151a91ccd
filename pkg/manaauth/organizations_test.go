package manaauth_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/mana/personas/pkg/manaauth"
	"github.com/stretchr/testify/require"
)

func TestOrganizations(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("DecodesBetterAuthShapeAndPicksFirstPersonal", func(t *testing.T) {
		t.Parallel()
		var gotAuth string
		f := newFake(t, func(w http.ResponseWriter, r *http.Request) {
			gotAuth = r.Header.Get("Authorization")
			require.Equal(t, manaauth.OrganizationsPath, r.URL.Path)
			reply(http.StatusOK, `[
				{"id":"t1","name":"Team","slug":"team","logo":"https://x/l.png","createdAt":"2026-01-02T03:04:05.000Z","metadata":null},
				{"id":"p1","name":"Me","slug":"me","logo":null,"createdAt":1767323045000,"metadata":"{\"type\":\"personal\"}"},
				{"id":"p2","name":"Me too","slug":"me2","logo":null,"createdAt":"2026-01-03T00:00:00Z","metadata":{"type":"personal"}}
			]`)(w, r)
		})
		c, _ := newClient(t, f.URL)
		orgs, err := c.ListOrganizations(ctx, "opaque-session-token")
		require.NoError(t, err)
		require.Equal(t, "Bearer opaque-session-token", gotAuth)
		require.Len(t, orgs, 3)
		require.Equal(t, "https://x/l.png", orgs[0].Logo)
		require.Empty(t, orgs[0].Metadata)
		require.Empty(t, orgs[0].Type())
		require.Equal(t, `{"type":"personal"}`, orgs[1].Metadata)
		require.Equal(t, time.UnixMilli(1767323045000).UTC(), orgs[1].CreatedAt)
		require.Equal(t, "personal", orgs[2].Type(), "an object metadata is read as well")
		p, ok := manaauth.PersonalOrganization(orgs)
		require.True(t, ok)
		require.Equal(t, "p1", p.ID)
	})

	t.Run("TypeIgnoresBadMetadata", func(t *testing.T) {
		t.Parallel()
		for _, md := range []string{"", "not json", `{"type":1}`, `["personal"]`, `{"kind":"personal"}`} {
			require.Empty(t, manaauth.Organization{Metadata: md}.Type(), md)
		}
		_, ok := manaauth.PersonalOrganization([]manaauth.Organization{{Metadata: `{"type":"team"}`}})
		require.False(t, ok)
		_, ok = manaauth.PersonalOrganization(nil)
		require.False(t, ok)
	})

	t.Run("UnauthorizedAndNonListAnswers", func(t *testing.T) {
		t.Parallel()
		f := newFake(t, reply(http.StatusUnauthorized, `{"code":"UNAUTHORIZED","message":"Unauthorized"}`))
		c, _ := newClient(t, f.URL)
		_, err := c.ListOrganizations(ctx, "tok-abcdef")
		require.ErrorIs(t, err, manaauth.ErrUnauthorized)

		f = newFake(t, reply(http.StatusOK, `null`))
		c, _ = newClient(t, f.URL)
		_, err = c.ListOrganizations(ctx, "tok-abcdef")
		var ue *manaauth.UpstreamError
		require.ErrorAs(t, err, &ue)

		_, err = c.ListOrganizations(ctx, "")
		require.Error(t, err)
	})

	t.Run("RoundTripsThroughJSON", func(t *testing.T) {
		t.Parallel()
		in := manaauth.Organization{ID: "o", Name: "n", Slug: "s", Metadata: `{"type":"personal"}`, CreatedAt: time.Unix(1, 0).UTC()}
		raw, err := json.Marshal(in)
		require.NoError(t, err)
		var out manaauth.Organization
		require.NoError(t, json.Unmarshal(raw, &out))
		require.Equal(t, in, out)
	})
}
