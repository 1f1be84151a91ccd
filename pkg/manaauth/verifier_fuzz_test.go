package manaauth_test

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/mana/personas/pkg/manaauth"
	"github.com/stretchr/testify/require"
)

// FuzzVerify feeds the verifier arbitrary strings, seeded with a valid
// token, every accepted form and every attack and malformed case of the
// tests. Whatever the input:
//
//   - Verify does not panic and refuses with ErrInvalidToken (the keys are
//     static, so never ErrKeysUnavailable), without quoting the token;
//   - a verifier with the token cache and one without agree;
//   - a token it accepts is in canonical form: decoding its segments
//     leniently (padding, standard alphabet, line breaks allowed) and
//     re-encoding them as unpadded base64url gives back the exact input, so
//     no accepted token has a second spelling.
//
// The key and the clock are fixed, so a seed or a found input stays valid
// (or invalid) between runs.
func FuzzVerify(f *testing.F) {
	ctx := context.Background()
	seed := sha256.Sum256([]byte("manaauth FuzzVerify signing key"))
	key := edKey{kid: "fuzz-key", priv: ed25519.NewKeyFromSeed(seed[:])}
	raw, err := json.Marshal(map[string]any{"keys": []map[string]string{key.jwk()}})
	require.NoError(f, err)
	set, err := jwk.Parse(raw)
	require.NoError(f, err)

	s := &vsetup{iss: "https://auth.mana.test", key: key, clock: &fakeClock{now: time.Unix(1_800_000_000, 0).UTC()}}
	s.mint(f)
	uncached, err := manaauth.NewStaticVerifier(set, s.iss, manaauth.WithClock(s.clock.Now), manaauth.WithTokenCache(0))
	require.NoError(f, err)
	cached, err := manaauth.NewStaticVerifier(set, s.iss, manaauth.WithClock(s.clock.Now), manaauth.WithTokenCache(64))
	require.NoError(f, err)
	s.ver = uncached

	valid := s.token(key, s.claims("admin"))
	_, err = uncached.Verify(ctx, valid)
	require.NoError(f, err, "the valid seed must verify")
	f.Add(valid)
	for _, cases := range []map[string]func(testing.TB, *vsetup) string{acceptedCases(), strictCases(), attackCases()} {
		names := make([]string, 0, len(cases))
		for name := range cases {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			f.Add(cases[name](f, s))
		}
	}

	f.Fuzz(func(t *testing.T, token string) {
		claims, err := uncached.Verify(ctx, token)
		cclaims, cerr := cached.Verify(ctx, token)
		if cerr == nil {
			// Second call: served from the cache when the first was
			// accepted.
			cclaims, cerr = cached.Verify(ctx, token)
		}
		if err != nil {
			require.Nil(t, claims)
			require.True(t, errors.Is(err, manaauth.ErrInvalidToken), "unexpected error class: %v", err)
			if len(token) > 20 {
				require.NotContains(t, err.Error(), token, "the token never appears in errors")
			}
			require.Error(t, cerr, "the cached verifier accepted what the uncached one refused")
			require.Nil(t, cclaims)
			return
		}
		require.NoError(t, cerr, "the cached verifier refused what the uncached one accepted")
		require.Equal(t, claims, cclaims)
		require.NotEmpty(t, claims.Subject)
		require.False(t, claims.ExpiresAt.IsZero())

		segs := strings.Split(token, ".")
		require.Len(t, segs, 3)
		for i, seg := range segs {
			decoded, err := lenientDecode(seg)
			require.NoError(t, err, "accepted segment %d does not decode", i)
			segs[i] = base64.RawURLEncoding.EncodeToString(decoded)
		}
		require.Equal(t, token, strings.Join(segs, "."), "an accepted token is in its one canonical spelling")
	})
}

// lenientDecode decodes seg the way a permissive JWT library might:
// padding, the standard alphabet and line breaks all allowed, unused low
// bits ignored.
func lenientDecode(seg string) ([]byte, error) {
	seg = strings.NewReplacer("+", "-", "/", "_", "\r", "", "\n", "").Replace(seg)
	return base64.RawURLEncoding.DecodeString(strings.TrimRight(seg, "="))
}
