package manaauth_test

import (
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mana/personas/pkg/manaauth"
	"github.com/stretchr/testify/require"
)

var b64 = base64.RawURLEncoding

type edKey struct {
	kid  string
	priv ed25519.PrivateKey
}

func newKey(t *testing.T, kid string) edKey {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	return edKey{kid: kid, priv: priv}
}

func (k edKey) jwk() map[string]string {
	return map[string]string{
		"alg": "EdDSA", "crv": "Ed25519", "kty": "OKP", "kid": k.kid,
		"x": b64.EncodeToString(k.priv.Public().(ed25519.PublicKey)),
	}
}

// jwksServer is a fake mana-auth JWKS endpoint whose keys, availability
// and fetch count the test controls.
type jwksServer struct {
	*httptest.Server
	mu      sync.Mutex
	keys    []edKey
	down    bool
	fetches atomic.Int64
}

func newJWKSServer(t *testing.T, keys ...edKey) *jwksServer {
	t.Helper()
	s := &jwksServer{keys: keys}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/auth/jwks" {
			http.NotFound(w, r)
			return
		}
		s.fetches.Add(1)
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.down {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		out := map[string][]map[string]string{"keys": {}}
		for _, k := range s.keys {
			out["keys"] = append(out["keys"], k.jwk())
		}
		_ = json.NewEncoder(w).Encode(out)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) set(down bool, keys ...edKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.down, s.keys = down, keys
}

// fakeClock is a settable clock shared by the verifier and the minted tokens.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func segment(t *testing.T, v any) string {
	t.Helper()
	raw, err := json.Marshal(v)
	require.NoError(t, err)
	return b64.EncodeToString(raw)
}

func sign(t *testing.T, k edKey, header, claims map[string]any) string {
	t.Helper()
	input := segment(t, header) + "." + segment(t, claims)
	return input + "." + b64.EncodeToString(ed25519.Sign(k.priv, []byte(input)))
}

type vsetup struct {
	srv    *jwksServer
	key    edKey
	clock  *fakeClock
	ver    *manaauth.Verifier
	claims func(role string) map[string]any
	token  func(k edKey, claims map[string]any) string
}

func setupVerifier(t *testing.T) *vsetup {
	t.Helper()
	key := newKey(t, "key-1")
	srv := newJWKSServer(t, key)
	clock := &fakeClock{now: time.Unix(1_800_000_000, 0).UTC()}
	ver, err := manaauth.NewVerifier(context.Background(), srv.URL, manaauth.WithClock(clock.Now))
	require.NoError(t, err)
	t.Cleanup(ver.Close)
	s := &vsetup{srv: srv, key: key, clock: clock, ver: ver}
	s.claims = func(role string) map[string]any {
		iat := clock.Now().Unix()
		return map[string]any{
			"sub": "user-1", "email": "admin@mana.test", "role": role, "sid": "sess-1", "tier": "founder",
			"iat": iat, "exp": iat + 900, "iss": srv.URL, "aud": "mana",
		}
	}
	s.token = func(k edKey, claims map[string]any) string {
		return sign(t, k, map[string]any{"alg": "EdDSA", "kid": k.kid}, claims)
	}
	return s
}

func TestVerifier(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("ValidAdminToken", func(t *testing.T) {
		t.Parallel()
		s := setupVerifier(t)
		claims, err := s.ver.Verify(ctx, s.token(s.key, s.claims("admin")))
		require.NoError(t, err)
		require.Equal(t, &manaauth.Claims{
			Subject: "user-1", Email: "admin@mana.test", Role: "admin", SessionID: "sess-1", Tier: "founder",
			IssuedAt: s.clock.Now(), ExpiresAt: s.clock.Now().Add(900 * time.Second),
		}, claims)
		require.True(t, claims.IsAdmin())
		require.NoError(t, s.ver.Ready(ctx))
	})

	t.Run("RoleUserIsValidButNotAdmin", func(t *testing.T) {
		t.Parallel()
		s := setupVerifier(t)
		claims, err := s.ver.Verify(ctx, s.token(s.key, s.claims("user")))
		require.NoError(t, err)
		require.False(t, claims.IsAdmin())
	})

	t.Run("ExpiredWithinSkewIsAccepted", func(t *testing.T) {
		t.Parallel()
		s := setupVerifier(t)
		tok := s.token(s.key, s.claims("admin"))
		s.clock.Advance(900*time.Second + 20*time.Second)
		_, err := s.ver.Verify(ctx, tok)
		require.NoError(t, err)
	})

	t.Run("AudienceArrayContainingManaIsAccepted", func(t *testing.T) {
		t.Parallel()
		s := setupVerifier(t)
		c := s.claims("admin")
		c["aud"] = []string{"other", "mana"}
		_, err := s.ver.Verify(ctx, s.token(s.key, c))
		require.NoError(t, err)
	})

	// The attack matrix: every case must be ErrInvalidToken.
	attacks := map[string]func(t *testing.T, s *vsetup) string{
		"AlgNone": func(t *testing.T, s *vsetup) string {
			return segment(t, map[string]any{"alg": "none", "kid": s.key.kid}) + "." + segment(t, s.claims("admin")) + "."
		},
		"AlgNoneWithSignature": func(t *testing.T, s *vsetup) string {
			tok := s.token(s.key, s.claims("admin"))
			parts := strings.Split(tok, ".")
			return segment(t, map[string]any{"alg": "none", "kid": s.key.kid}) + "." + parts[1] + "." + parts[2]
		},
		"HS256SignedWithPublicKeyBytes": func(t *testing.T, s *vsetup) string {
			input := segment(t, map[string]any{"alg": "HS256", "kid": s.key.kid}) + "." + segment(t, s.claims("admin"))
			mac := hmac.New(sha256.New, s.key.priv.Public().(ed25519.PublicKey))
			mac.Write([]byte(input))
			return input + "." + b64.EncodeToString(mac.Sum(nil))
		},
		"HS256SignedWithJWKJSON": func(t *testing.T, s *vsetup) string {
			input := segment(t, map[string]any{"alg": "HS256", "kid": s.key.kid}) + "." + segment(t, s.claims("admin"))
			raw, _ := json.Marshal(s.key.jwk())
			mac := hmac.New(sha256.New, raw)
			mac.Write([]byte(input))
			return input + "." + b64.EncodeToString(mac.Sum(nil))
		},
		"ES256Header": func(t *testing.T, s *vsetup) string {
			return sign(t, s.key, map[string]any{"alg": "ES256", "kid": s.key.kid}, s.claims("admin"))
		},
		"KeyFromAnotherJWKSWithRealKid": func(t *testing.T, s *vsetup) string {
			return s.token(newKey(t, s.key.kid), s.claims("admin"))
		},
		"EmbeddedJWKHeader": func(t *testing.T, s *vsetup) string {
			evil := newKey(t, s.key.kid)
			return sign(t, evil, map[string]any{"alg": "EdDSA", "kid": s.key.kid, "jwk": evil.jwk()}, s.claims("admin"))
		},
		"NoKid": func(t *testing.T, s *vsetup) string {
			return sign(t, s.key, map[string]any{"alg": "EdDSA"}, s.claims("admin"))
		},
		"Expired": func(t *testing.T, s *vsetup) string {
			c := s.claims("admin")
			c["exp"] = s.clock.Now().Add(-31 * time.Second).Unix()
			c["iat"] = s.clock.Now().Add(-931 * time.Second).Unix()
			return s.token(s.key, c)
		},
		"NoExp": func(t *testing.T, s *vsetup) string {
			c := s.claims("admin")
			delete(c, "exp")
			return s.token(s.key, c)
		},
		"NotYetValid": func(t *testing.T, s *vsetup) string {
			c := s.claims("admin")
			c["nbf"] = s.clock.Now().Add(5 * time.Minute).Unix()
			return s.token(s.key, c)
		},
		"OtherAudience": func(t *testing.T, s *vsetup) string {
			c := s.claims("admin")
			c["aud"] = "other"
			return s.token(s.key, c)
		},
		"NoAudience": func(t *testing.T, s *vsetup) string {
			c := s.claims("admin")
			delete(c, "aud")
			return s.token(s.key, c)
		},
		"OtherIssuer": func(t *testing.T, s *vsetup) string {
			c := s.claims("admin")
			c["iss"] = "https://evil.example"
			return s.token(s.key, c)
		},
		"NoSubject": func(t *testing.T, s *vsetup) string {
			c := s.claims("admin")
			delete(c, "sub")
			return s.token(s.key, c)
		},
		"RoleNotAString": func(t *testing.T, s *vsetup) string {
			c := s.claims("admin")
			c["role"] = []string{"admin"}
			return s.token(s.key, c)
		},
		"PayloadAlteredAfterSigning": func(t *testing.T, s *vsetup) string {
			parts := strings.Split(s.token(s.key, s.claims("user")), ".")
			return parts[0] + "." + segment(t, s.claims("admin")) + "." + parts[2]
		},
		"HeaderAlteredAfterSigning": func(t *testing.T, s *vsetup) string {
			parts := strings.Split(s.token(s.key, s.claims("admin")), ".")
			return segment(t, map[string]any{"alg": "EdDSA", "kid": s.key.kid, "x": 1}) + "." + parts[1] + "." + parts[2]
		},
		"SignatureStripped": func(t *testing.T, s *vsetup) string {
			parts := strings.Split(s.token(s.key, s.claims("admin")), ".")
			return parts[0] + "." + parts[1] + "."
		},
		"Empty":          func(*testing.T, *vsetup) string { return "" },
		"Garbage":        func(*testing.T, *vsetup) string { return "not-a-token" },
		"TwoSegments":    func(*testing.T, *vsetup) string { return "abc.def" },
		"FourSegments":   func(*testing.T, *vsetup) string { return "a.b.c.d" },
		"BadBase64":      func(*testing.T, *vsetup) string { return "!!!.???.***" },
		"BearerPrefixed": func(t *testing.T, s *vsetup) string { return "Bearer " + s.token(s.key, s.claims("admin")) },
		"JSONSerialization": func(t *testing.T, s *vsetup) string {
			parts := strings.Split(s.token(s.key, s.claims("admin")), ".")
			raw, _ := json.Marshal(map[string]string{"protected": parts[0], "payload": parts[1], "signature": parts[2]})
			return string(raw)
		},
		"Oversized": func(t *testing.T, s *vsetup) string {
			c := s.claims("admin")
			c["pad"] = strings.Repeat("x", 10_000)
			return s.token(s.key, c)
		},
	}
	for name, forge := range attacks {
		t.Run("Rejects"+name, func(t *testing.T) {
			t.Parallel()
			s := setupVerifier(t)
			tok := forge(t, s)
			claims, err := s.ver.Verify(ctx, tok)
			t.Log(err)
			require.ErrorIs(t, err, manaauth.ErrInvalidToken)
			require.NotErrorIs(t, err, manaauth.ErrKeysUnavailable)
			require.Nil(t, claims)
			if len(tok) > 20 {
				require.NotContains(t, err.Error(), tok, "the token never appears in errors")
			}
		})
	}

	t.Run("UnknownKidRefetchesAtMostOncePerInterval", func(t *testing.T) {
		t.Parallel()
		s := setupVerifier(t)
		_, err := s.ver.Verify(ctx, s.token(s.key, s.claims("admin")))
		require.NoError(t, err)
		base := s.srv.fetches.Load()

		stranger := newKey(t, "unknown-kid")
		_, err = s.ver.Verify(ctx, s.token(stranger, s.claims("admin")))
		require.ErrorIs(t, err, manaauth.ErrInvalidToken)
		require.Equal(t, base+1, s.srv.fetches.Load(), "an unknown kid triggers one refetch")

		for range 5 {
			_, err = s.ver.Verify(ctx, s.token(newKey(t, "forged-"+randomHex(t)), s.claims("admin")))
			require.ErrorIs(t, err, manaauth.ErrInvalidToken)
		}
		require.Equal(t, base+1, s.srv.fetches.Load(), "further unknown kids within the interval fetch nothing")

		s.clock.Advance(manaauth.DefaultRefetchInterval + time.Second)
		_, err = s.ver.Verify(ctx, s.token(stranger, s.claims("admin")))
		require.ErrorIs(t, err, manaauth.ErrInvalidToken)
		require.Equal(t, base+2, s.srv.fetches.Load(), "after the interval, a refetch is allowed again")
	})

	t.Run("KeyRotationNewKidIsAcceptedAfterRefetch", func(t *testing.T) {
		t.Parallel()
		s := setupVerifier(t)
		_, err := s.ver.Verify(ctx, s.token(s.key, s.claims("admin")))
		require.NoError(t, err)

		next := newKey(t, "key-2")
		s.srv.set(false, s.key, next) // the old key stays listed for a grace period
		claims, err := s.ver.Verify(ctx, s.token(next, s.claims("admin")))
		require.NoError(t, err)
		require.True(t, claims.IsAdmin())
		_, err = s.ver.Verify(ctx, s.token(s.key, s.claims("admin")))
		require.NoError(t, err, "the old key still verifies during the grace period")
	})

	t.Run("AuthDownAtStartThenRecovers", func(t *testing.T) {
		t.Parallel()
		key := newKey(t, "key-1")
		srv := newJWKSServer(t, key)
		srv.set(true, key)
		clock := &fakeClock{now: time.Unix(1_800_000_000, 0).UTC()}
		ver, err := manaauth.NewVerifier(ctx, srv.URL, manaauth.WithClock(clock.Now))
		require.NoError(t, err, "construction does not depend on mana-auth")
		t.Cleanup(ver.Close)

		iat := clock.Now().Unix()
		tok := sign(t, key, map[string]any{"alg": "EdDSA", "kid": key.kid}, map[string]any{
			"sub": "u", "role": "admin", "iat": iat, "exp": iat + 900, "iss": srv.URL, "aud": "mana",
		})
		_, err = ver.Verify(ctx, tok)
		require.ErrorIs(t, err, manaauth.ErrKeysUnavailable)
		require.NotErrorIs(t, err, manaauth.ErrInvalidToken)
		require.ErrorIs(t, ver.Ready(ctx), manaauth.ErrKeysUnavailable)

		srv.set(false, key)
		clock.Advance(manaauth.DefaultRefetchInterval + time.Second)
		require.NoError(t, ver.Ready(ctx))
		claims, err := ver.Verify(ctx, tok)
		require.NoError(t, err)
		require.True(t, claims.IsAdmin())
	})

	t.Run("AuthUnreachableDoesNotBlockPastTheDeadline", func(t *testing.T) {
		t.Parallel()
		// A listener that accepts and never answers.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		t.Cleanup(func() { _ = ln.Close() })
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				t.Cleanup(func() { _ = c.Close() })
			}
		}()
		ver, err := manaauth.NewVerifier(ctx, "http://"+ln.Addr().String(), manaauth.WithTimeout(200*time.Millisecond))
		require.NoError(t, err)
		t.Cleanup(ver.Close)
		key := newKey(t, "k")
		_, err = ver.Verify(ctx, sign(t, key, map[string]any{"alg": "EdDSA", "kid": "k"}, map[string]any{"sub": "u"}))
		require.ErrorIs(t, err, manaauth.ErrKeysUnavailable)
		require.Error(t, ver.Ready(ctx))
	})

	t.Run("StaticVerifierUsesTheSameRules", func(t *testing.T) {
		t.Parallel()
		s := setupVerifier(t)
		c, err := manaauth.New(s.srv.URL)
		require.NoError(t, err)
		set, err := c.JWKS(ctx)
		require.NoError(t, err)
		ver, err := manaauth.NewStaticVerifier(set, s.srv.URL, manaauth.WithClock(s.clock.Now))
		require.NoError(t, err)
		_, err = ver.Verify(ctx, s.token(s.key, s.claims("admin")))
		require.NoError(t, err)
		_, err = ver.Verify(ctx, segment(t, map[string]any{"alg": "none"})+"."+segment(t, s.claims("admin"))+".")
		require.ErrorIs(t, err, manaauth.ErrInvalidToken)
	})
}

func randomHex(t *testing.T) string {
	t.Helper()
	b := make([]byte, 6)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return base64.RawURLEncoding.EncodeToString(b)
}
