package manaauth_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mana/personas/pkg/manaauth"
)

// TestTokenCacheExactToken: the cache is keyed by the exact token. A twin
// of a cached token (same header and claims, byte for byte, signed by
// another key under the same kid) is checked in full and refused, and the
// cached token is still served.
func TestTokenCacheExactToken(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := setupVerifier(t)
	claims := s.claims("admin")
	tok := s.token(s.key, claims)
	_, err := s.ver.Verify(ctx, tok)
	require.NoError(t, err)

	twin := s.token(newKey(t, s.key.kid), claims)
	require.Equal(t, tok[:len(tok)-86], twin[:len(twin)-86], "same header and claims")
	require.NotEqual(t, tok, twin)
	_, err = s.ver.Verify(ctx, twin)
	require.ErrorIs(t, err, manaauth.ErrInvalidToken)
	require.Equal(t, int64(2), manaauth.FullChecks(s.ver), "the twin was checked in full")

	got, err := s.ver.Verify(ctx, tok)
	require.NoError(t, err)
	require.Equal(t, "admin", got.Role)
	require.Equal(t, int64(2), manaauth.FullChecks(s.ver), "the cached token is still served from the cache")
	require.Equal(t, 1, manaauth.CachedTokens(s.ver))
}
