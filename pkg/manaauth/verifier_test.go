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
	"strconv"
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

func newKey(t testing.TB, kid string) edKey {
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

func newJWKSServer(t testing.TB, keys ...edKey) *jwksServer {
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

func segment(t testing.TB, v any) string {
	t.Helper()
	raw, err := json.Marshal(v)
	require.NoError(t, err)
	return b64.EncodeToString(raw)
}

func sign(t testing.TB, k edKey, header, claims map[string]any) string {
	t.Helper()
	input := segment(t, header) + "." + segment(t, claims)
	return input + "." + b64.EncodeToString(ed25519.Sign(k.priv, []byte(input)))
}

type vsetup struct {
	srv    *jwksServer
	iss    string // the issuer the verifier expects and claims carries
	key    edKey
	clock  *fakeClock
	ver    *manaauth.Verifier
	claims func(role string) map[string]any
	token  func(k edKey, claims map[string]any) string
}

func setupVerifier(t testing.TB, opts ...manaauth.Option) *vsetup {
	t.Helper()
	key := newKey(t, "key-1")
	srv := newJWKSServer(t, key)
	clock := &fakeClock{now: time.Unix(1_800_000_000, 0).UTC()}
	ver, err := manaauth.NewVerifier(context.Background(), srv.URL, append([]manaauth.Option{manaauth.WithClock(clock.Now)}, opts...)...)
	require.NoError(t, err)
	t.Cleanup(ver.Close)
	s := &vsetup{srv: srv, iss: srv.URL, key: key, clock: clock, ver: ver}
	s.mint(t)
	return s
}

// mint sets the claims and token helpers of s.
func (s *vsetup) mint(t testing.TB) {
	s.claims = func(role string) map[string]any {
		iat := s.clock.Now().Unix()
		return map[string]any{
			"sub": "user-1", "email": "admin@mana.test", "role": role, "sid": "sess-1", "tier": "founder",
			"iat": iat, "exp": iat + 900, "iss": s.iss, "aud": "mana",
		}
	}
	s.token = func(k edKey, claims map[string]any) string {
		return sign(t, k, map[string]any{"alg": "EdDSA", "kid": k.kid}, claims)
	}
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

	attacks := attackCases()
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
		iat := time.Now().Unix()
		_, err = ver.Verify(ctx, sign(t, key, map[string]any{"alg": "EdDSA", "kid": "k"}, map[string]any{
			"sub": "u", "iat": iat, "exp": iat + 900, "iss": "http://" + ln.Addr().String(), "aud": "mana",
		}))
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

func randomHex(t testing.TB) string {
	t.Helper()
	b := make([]byte, 6)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return base64.RawURLEncoding.EncodeToString(b)
}

// signRaw signs exact header and payload bytes, for JSON that json.Marshal
// of a map cannot produce (duplicate keys, invalid UTF-8, odd numbers).
func signRaw(k edKey, header, payload string) string {
	input := b64.EncodeToString([]byte(header)) + "." + b64.EncodeToString([]byte(payload))
	return input + "." + b64.EncodeToString(ed25519.Sign(k.priv, []byte(input)))
}

// tokenWhere mints valid admin tokens, varying a filler claim, until ok
// holds for the token's segments: a form test needs, say, a signature that
// contains '-' or a payload whose length is not a multiple of four.
func tokenWhere(t testing.TB, s *vsetup, ok func(parts []string) bool) []string {
	t.Helper()
	for i := range 512 {
		c := s.claims("admin")
		// '?' (0x3f) encodes to '-' or '_' in most alignments.
		c["n"] = strings.Repeat("?", 3+i%8) + randomHex(t)
		parts := strings.Split(s.token(s.key, c), ".")
		if ok(parts) {
			return parts
		}
	}
	t.Fatal("no token with the wanted form")
	return nil
}

func stdAlphabet(seg string) string {
	return strings.NewReplacer("-", "+", "_", "/").Replace(seg)
}

func padded(seg string) string {
	if n := len(seg) % 4; n != 0 {
		return seg + strings.Repeat("=", 4-n)
	}
	return seg
}

// strictCases are tokens that carry a genuine signature by the JWKS key yet
// are not in the one form mana-auth mints. Cases marked in the comments were
// accepted before the verifier checked the form itself (issue 9, D12).
func strictCases() map[string]func(t testing.TB, s *vsetup) string {
	hasURLChars := func(seg string) bool { return strings.ContainsAny(seg, "-_") }
	unaligned := func(seg string) bool { return len(seg)%4 != 0 }
	withClaims := func(edit func(c map[string]any)) func(t testing.TB, s *vsetup) string {
		return func(t testing.TB, s *vsetup) string {
			c := s.claims("admin")
			edit(c)
			return s.token(s.key, c)
		}
	}
	withHeader := func(extra map[string]any) func(t testing.TB, s *vsetup) string {
		return func(t testing.TB, s *vsetup) string {
			h := map[string]any{"alg": "EdDSA", "kid": s.key.kid}
			for k, v := range extra {
				h[k] = v
			}
			return sign(t, s.key, h, s.claims("admin"))
		}
	}
	rawPayload := func(format string) func(t testing.TB, s *vsetup) string {
		return func(t testing.TB, s *vsetup) string {
			now := s.clock.Now().Unix()
			return signRaw(s.key, `{"alg":"EdDSA","kid":"`+s.key.kid+`"}`,
				strings.NewReplacer("ISS", s.iss, "IAT", itoa(now), "EXP", itoa(now+900)).Replace(format))
		}
	}
	const claimsTail = `"iss":"ISS","aud":"mana","iat":IAT,"exp":EXP`
	return map[string]func(t testing.TB, s *vsetup) string{
		// Segment form: one token, one spelling.
		"SignaturePadded": func(t testing.TB, s *vsetup) string { // accepted before
			p := strings.Split(s.token(s.key, s.claims("admin")), ".")
			return p[0] + "." + p[1] + "." + padded(p[2])
		},
		"PayloadPadded": func(t testing.TB, s *vsetup) string { // accepted before
			p := tokenWhere(t, s, func(p []string) bool { return unaligned(p[1]) })
			return p[0] + "." + padded(p[1]) + "." + p[2]
		},
		"HeaderPadded": func(t testing.TB, s *vsetup) string {
			h := segment(t, map[string]any{"alg": "EdDSA", "kid": s.key.kid, "typ": "JWT"})
			require.True(t, unaligned(h), "the header must need padding for this case")
			input := padded(h) + "." + segment(t, s.claims("admin"))
			return input + "." + b64.EncodeToString(ed25519.Sign(s.key.priv, []byte(input)))
		},
		"SignatureStdAlphabet": func(t testing.TB, s *vsetup) string { // accepted before
			p := tokenWhere(t, s, func(p []string) bool { return hasURLChars(p[2]) })
			return p[0] + "." + p[1] + "." + stdAlphabet(p[2])
		},
		"SignatureStdAlphabetPadded": func(t testing.TB, s *vsetup) string { // accepted before
			p := tokenWhere(t, s, func(p []string) bool { return hasURLChars(p[2]) })
			return p[0] + "." + p[1] + "." + padded(stdAlphabet(p[2]))
		},
		"PayloadStdAlphabet": func(t testing.TB, s *vsetup) string {
			p := tokenWhere(t, s, func(p []string) bool { return hasURLChars(p[1]) })
			input := p[0] + "." + stdAlphabet(p[1])
			return input + "." + b64.EncodeToString(ed25519.Sign(s.key.priv, []byte(input)))
		},
		"SignatureTrailingBitsSet": func(t testing.TB, s *vsetup) string { // accepted before
			// 64 bytes are 85⅓ characters: the last character's low four
			// bits are padding, and a lenient decoder ignores them.
			p := strings.Split(s.token(s.key, s.claims("admin")), ".")
			const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
			last := strings.IndexByte(alphabet, p[2][len(p[2])-1])
			return p[0] + "." + p[1] + "." + p[2][:len(p[2])-1] + string(alphabet[last|1])
		},
		"NewlineInSignature": func(t testing.TB, s *vsetup) string { // accepted before
			p := strings.Split(s.token(s.key, s.claims("admin")), ".")
			return p[0] + "." + p[1] + "." + p[2][:40] + "\r\n" + p[2][40:]
		},
		"SurroundingWhitespace": func(t testing.TB, s *vsetup) string { // accepted before
			return " " + s.token(s.key, s.claims("admin")) + "\n"
		},
		"SegmentLengthOneMod4": func(t testing.TB, s *vsetup) string {
			p := tokenWhere(t, s, func(p []string) bool { return len(p[1])%4 == 0 })
			return p[0] + "." + p[1] + "A." + p[2]
		},
		"SignatureTooLong": func(t testing.TB, s *vsetup) string {
			p := strings.Split(s.token(s.key, s.claims("admin")), ".")
			return p[0] + "." + p[1] + "." + p[2] + "AA"
		},

		// Header: exactly alg, kid and optionally typ "JWT".
		"TypNotJWT":        withHeader(map[string]any{"typ": "at+jwt"}),                                                          // accepted before
		"JWKWithRealKey":   func(t testing.TB, s *vsetup) string { return withHeader(map[string]any{"jwk": s.key.jwk()})(t, s) }, // accepted before
		"JKUHeader":        withHeader(map[string]any{"jku": "https://evil.example/jwks"}),                                       // accepted before
		"X5UHeader":        withHeader(map[string]any{"x5u": "https://evil.example/cert"}),                                       // accepted before
		"X5CHeader":        withHeader(map[string]any{"x5c": []string{"MIIB"}}),                                                  // accepted before
		"CritHeader":       withHeader(map[string]any{"crit": []string{"exp"}}),
		"UnencodedPayload": withHeader(map[string]any{"b64": false, "crit": []string{"b64"}}),
		"UnknownHeader":    withHeader(map[string]any{"foo": "bar"}), // accepted before
		"KidNotString":     withHeader(map[string]any{"kid": 1}),
		"KidEmpty":         withHeader(map[string]any{"kid": ""}),
		"AlgLowercase":     withHeader(map[string]any{"alg": "eddsa"}),
		"DuplicateAlg": func(t testing.TB, s *vsetup) string { // accepted before
			return signRaw(s.key, `{"alg":"none","kid":"`+s.key.kid+`","alg":"EdDSA"}`, string(mustJSON(t, s.claims("admin"))))
		},
		"HeaderNotObject": func(t testing.TB, s *vsetup) string {
			return signRaw(s.key, `["EdDSA"]`, string(mustJSON(t, s.claims("admin"))))
		},

		// Payload: typed claims.
		"ExpAsString":   withClaims(func(c map[string]any) { c["exp"] = itoa(c["exp"].(int64)) }), // accepted before
		"IatAsString":   withClaims(func(c map[string]any) { c["iat"] = itoa(c["iat"].(int64)) }), // accepted before
		"NbfAsString":   withClaims(func(c map[string]any) { c["nbf"] = itoa(c["iat"].(int64)) }), // accepted before
		"ExpNull":       withClaims(func(c map[string]any) { c["exp"] = nil }),
		"ExpBool":       withClaims(func(c map[string]any) { c["exp"] = true }),
		"ExpFractional": withClaims(func(c map[string]any) { c["exp"] = float64(c["exp"].(int64)) + 0.5 }),                           // accepted before
		"ExpExponent":   rawPayload(`{"sub":"u","role":"admin",` + strings.Replace(claimsTail, `"exp":EXP`, `"exp":1.9e9`, 1) + `}`), // accepted before
		"ExpHuge":       withClaims(func(c map[string]any) { c["exp"] = 1e300 }),
		"SubEmpty":      withClaims(func(c map[string]any) { c["sub"] = "" }), // accepted before
		"SubNotString":  withClaims(func(c map[string]any) { c["sub"] = 42 }),
		"SubNull":       withClaims(func(c map[string]any) { c["sub"] = nil }), // accepted before
		"IssNotString":  withClaims(func(c map[string]any) { c["iss"] = []string{s0(c["iss"])} }),
		"AudNumber":     withClaims(func(c map[string]any) { c["aud"] = 7 }),
		"DuplicateRole": rawPayload(`{"sub":"u","role":"user","role":"admin",` + claimsTail + `}`), // accepted before
		"DuplicateSub":  rawPayload(`{"sub":"","sub":"u","role":"admin",` + claimsTail + `}`),      // accepted before
		"PayloadNotObject": func(t testing.TB, s *vsetup) string {
			return signRaw(s.key, `{"alg":"EdDSA","kid":"`+s.key.kid+`"}`, `"admin"`)
		},
		"PayloadInvalidUTF8":  rawPayload(`{"sub":"u","email":"a` + "\xff" + `@mana.test","role":"admin",` + claimsTail + `}`), // accepted before
		"PayloadTrailingData": rawPayload(`{"sub":"u","role":"admin",` + claimsTail + `} {}`),                                  // accepted before
	}
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	raw, err := json.Marshal(v)
	require.NoError(t, err)
	return raw
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func s0(v any) string { s, _ := v.(string); return s }

func TestVerifierStrictForm(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for name, forge := range strictCases() {
		t.Run("Rejects"+name, func(t *testing.T) {
			t.Parallel()
			s := setupVerifier(t)
			tok := forge(t, s)
			claims, err := s.ver.Verify(ctx, tok)
			t.Log(err)
			require.ErrorIs(t, err, manaauth.ErrInvalidToken)
			require.NotErrorIs(t, err, manaauth.ErrKeysUnavailable)
			require.Nil(t, claims)
		})
	}

	accepted := acceptedCases()
	for name, mint := range accepted {
		t.Run("Accepts"+name, func(t *testing.T) {
			t.Parallel()
			s := setupVerifier(t)
			claims, err := s.ver.Verify(ctx, mint(t, s))
			require.NoError(t, err)
			require.True(t, claims.IsAdmin())
			require.NotEmpty(t, claims.Subject)
		})
	}
}

func TestVerifierTokenCache(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("RepeatedTokenSkipsTheFullCheck", func(t *testing.T) {
		t.Parallel()
		s := setupVerifier(t)
		tok := s.token(s.key, s.claims("admin"))
		first, err := s.ver.Verify(ctx, tok)
		require.NoError(t, err)
		first.Role = "tampered by the caller"
		for range 3 {
			again, err := s.ver.Verify(ctx, tok)
			require.NoError(t, err)
			require.Equal(t, "admin", again.Role, "callers get their own copy")
			require.Equal(t, "user-1", again.Subject)
		}
		require.Equal(t, int64(1), manaauth.FullChecks(s.ver))
		require.Equal(t, 1, manaauth.CachedTokens(s.ver))
	})

	t.Run("CachedTokenFailsAfterItsExp", func(t *testing.T) {
		t.Parallel()
		s := setupVerifier(t)
		c := s.claims("admin")
		c["exp"] = s.clock.Now().Add(time.Minute).Unix()
		tok := s.token(s.key, c)
		_, err := s.ver.Verify(ctx, tok)
		require.NoError(t, err)

		s.clock.Advance(time.Minute - time.Second)
		_, err = s.ver.Verify(ctx, tok)
		require.NoError(t, err)
		require.Equal(t, int64(1), manaauth.FullChecks(s.ver), "served from the cache before exp")

		s.clock.Advance(time.Second + manaauth.DefaultClockSkew + time.Second)
		claims, err := s.ver.Verify(ctx, tok)
		require.ErrorIs(t, err, manaauth.ErrInvalidToken)
		require.Nil(t, claims)
		require.Equal(t, int64(2), manaauth.FullChecks(s.ver), "at exp the cache no longer answers")
		require.Zero(t, manaauth.CachedTokens(s.ver))
	})

	t.Run("WithinSkewAfterExpIsCheckedAgain", func(t *testing.T) {
		t.Parallel()
		s := setupVerifier(t)
		tok := s.token(s.key, s.claims("admin"))
		_, err := s.ver.Verify(ctx, tok)
		require.NoError(t, err)
		s.clock.Advance(900*time.Second + 10*time.Second)
		_, err = s.ver.Verify(ctx, tok)
		require.NoError(t, err, "the skew still applies, as without a cache")
		require.Equal(t, int64(2), manaauth.FullChecks(s.ver))
	})

	t.Run("EntriesLiveAtMostMaxAge", func(t *testing.T) {
		t.Parallel()
		s := setupVerifier(t)
		tok := s.token(s.key, s.claims("admin")) // exp in 15 minutes
		_, err := s.ver.Verify(ctx, tok)
		require.NoError(t, err)
		s.clock.Advance(manaauth.MaxTokenCacheAge - time.Second)
		_, err = s.ver.Verify(ctx, tok)
		require.NoError(t, err)
		require.Equal(t, int64(1), manaauth.FullChecks(s.ver))
		s.clock.Advance(time.Second)
		_, err = s.ver.Verify(ctx, tok)
		require.NoError(t, err)
		require.Equal(t, int64(2), manaauth.FullChecks(s.ver), "re-verified after MaxTokenCacheAge")
	})

	t.Run("ClockBeforeVerificationIsCheckedAgain", func(t *testing.T) {
		t.Parallel()
		s := setupVerifier(t)
		tok := s.token(s.key, s.claims("admin"))
		_, err := s.ver.Verify(ctx, tok)
		require.NoError(t, err)
		s.clock.Advance(-time.Second)
		_, err = s.ver.Verify(ctx, tok)
		require.NoError(t, err)
		require.Equal(t, int64(2), manaauth.FullChecks(s.ver))
	})

	t.Run("KidLeavingTheJWKSDropsItsTokens", func(t *testing.T) {
		t.Parallel()
		s := setupVerifier(t)
		old := s.token(s.key, s.claims("admin"))
		_, err := s.ver.Verify(ctx, old)
		require.NoError(t, err)
		require.Equal(t, 1, manaauth.CachedTokens(s.ver))

		next := newKey(t, "key-2")
		s.srv.set(false, next) // key-1 revoked
		_, err = s.ver.Verify(ctx, s.token(next, s.claims("admin")))
		require.NoError(t, err, "the unknown kid triggers a refetch")
		require.Equal(t, 1, manaauth.CachedTokens(s.ver), "the refetch dropped key-1's token, key-2's is cached")

		claims, err := s.ver.Verify(ctx, old)
		require.ErrorIs(t, err, manaauth.ErrInvalidToken)
		require.Nil(t, claims)
	})

	t.Run("KeyReplacedUnderTheSameKidDropsItsTokens", func(t *testing.T) {
		t.Parallel()
		s := setupVerifier(t)
		old := s.token(s.key, s.claims("admin"))
		_, err := s.ver.Verify(ctx, old)
		require.NoError(t, err)

		s.srv.set(false, newKey(t, s.key.kid))
		_, err = s.ver.Verify(ctx, s.token(newKey(t, "other"), s.claims("admin")))
		require.ErrorIs(t, err, manaauth.ErrInvalidToken, "an unknown kid, but it makes the verifier refetch")
		require.Zero(t, manaauth.CachedTokens(s.ver))
		_, err = s.ver.Verify(ctx, old)
		require.ErrorIs(t, err, manaauth.ErrInvalidToken)
	})

	t.Run("BackgroundRefreshDropsRevokedTokens", func(t *testing.T) {
		t.Parallel()
		s := setupVerifier(t, manaauth.WithRefreshInterval(time.Second))
		old := s.token(s.key, s.claims("admin"))
		_, err := s.ver.Verify(ctx, old)
		require.NoError(t, err)
		s.srv.set(false, newKey(t, "key-2"))
		require.Eventually(t, func() bool { return manaauth.CachedTokens(s.ver) == 0 },
			10*time.Second, 50*time.Millisecond, "a refresh without key-1 empties the cache")
		_, err = s.ver.Verify(ctx, old)
		require.ErrorIs(t, err, manaauth.ErrInvalidToken)
	})

	t.Run("BoundHoldsOldestGoesFirst", func(t *testing.T) {
		t.Parallel()
		s := setupVerifier(t, manaauth.WithTokenCache(3))
		var toks []string
		for i := range 5 {
			c := s.claims("admin")
			c["sid"] = "sess-" + itoa(int64(i))
			toks = append(toks, s.token(s.key, c))
			_, err := s.ver.Verify(ctx, toks[i])
			require.NoError(t, err)
			require.LessOrEqual(t, manaauth.CachedTokens(s.ver), 3)
		}
		require.Equal(t, 3, manaauth.CachedTokens(s.ver))
		require.Equal(t, int64(5), manaauth.FullChecks(s.ver))
		for _, tok := range toks[2:] {
			_, err := s.ver.Verify(ctx, tok)
			require.NoError(t, err)
		}
		require.Equal(t, int64(5), manaauth.FullChecks(s.ver), "the three newest are cached")
		_, err := s.ver.Verify(ctx, toks[0])
		require.NoError(t, err)
		require.Equal(t, int64(6), manaauth.FullChecks(s.ver), "the oldest was evicted")
		require.Equal(t, 3, manaauth.CachedTokens(s.ver))
	})

	t.Run("Disabled", func(t *testing.T) {
		t.Parallel()
		s := setupVerifier(t, manaauth.WithTokenCache(0))
		tok := s.token(s.key, s.claims("admin"))
		for range 3 {
			_, err := s.ver.Verify(ctx, tok)
			require.NoError(t, err)
		}
		require.Equal(t, int64(3), manaauth.FullChecks(s.ver))
		require.Zero(t, manaauth.CachedTokens(s.ver))
	})

	t.Run("RefusedTokensAreNotCached", func(t *testing.T) {
		t.Parallel()
		s := setupVerifier(t)
		c := s.claims("admin")
		c["iss"] = "https://evil.example"
		tok := s.token(s.key, c)
		for range 2 {
			_, err := s.ver.Verify(ctx, tok)
			require.ErrorIs(t, err, manaauth.ErrInvalidToken)
		}
		require.Equal(t, int64(2), manaauth.FullChecks(s.ver))
		require.Zero(t, manaauth.CachedTokens(s.ver))
	})

	t.Run("StaticVerifierCachesToo", func(t *testing.T) {
		t.Parallel()
		s := setupVerifier(t)
		c, err := manaauth.New(s.srv.URL)
		require.NoError(t, err)
		set, err := c.JWKS(ctx)
		require.NoError(t, err)
		ver, err := manaauth.NewStaticVerifier(set, s.srv.URL, manaauth.WithClock(s.clock.Now))
		require.NoError(t, err)
		tok := s.token(s.key, s.claims("admin"))
		for range 2 {
			_, err = ver.Verify(ctx, tok)
			require.NoError(t, err)
		}
		require.Equal(t, int64(1), manaauth.FullChecks(ver))
	})

	t.Run("ConcurrentUse", func(t *testing.T) {
		t.Parallel()
		s := setupVerifier(t, manaauth.WithTokenCache(4))
		var toks []string
		for i := range 8 {
			c := s.claims("admin")
			c["sid"] = "sess-" + itoa(int64(i))
			toks = append(toks, s.token(s.key, c))
		}
		var wg sync.WaitGroup
		for g := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range 200 {
					claims, err := s.ver.Verify(ctx, toks[(g+i)%len(toks)])
					if err != nil || !claims.IsAdmin() {
						t.Errorf("verify: %v", err)
						return
					}
				}
			}()
		}
		wg.Wait()
		require.LessOrEqual(t, manaauth.CachedTokens(s.ver), 4)
	})
}

// attackCases is the attack matrix: every case must be ErrInvalidToken.
func attackCases() map[string]func(t testing.TB, s *vsetup) string {
	return map[string]func(t testing.TB, s *vsetup) string{
		"AlgNone": func(t testing.TB, s *vsetup) string {
			return segment(t, map[string]any{"alg": "none", "kid": s.key.kid}) + "." + segment(t, s.claims("admin")) + "."
		},
		"AlgNoneWithSignature": func(t testing.TB, s *vsetup) string {
			tok := s.token(s.key, s.claims("admin"))
			parts := strings.Split(tok, ".")
			return segment(t, map[string]any{"alg": "none", "kid": s.key.kid}) + "." + parts[1] + "." + parts[2]
		},
		"HS256SignedWithPublicKeyBytes": func(t testing.TB, s *vsetup) string {
			input := segment(t, map[string]any{"alg": "HS256", "kid": s.key.kid}) + "." + segment(t, s.claims("admin"))
			mac := hmac.New(sha256.New, s.key.priv.Public().(ed25519.PublicKey))
			mac.Write([]byte(input))
			return input + "." + b64.EncodeToString(mac.Sum(nil))
		},
		"HS256SignedWithJWKJSON": func(t testing.TB, s *vsetup) string {
			input := segment(t, map[string]any{"alg": "HS256", "kid": s.key.kid}) + "." + segment(t, s.claims("admin"))
			raw, _ := json.Marshal(s.key.jwk())
			mac := hmac.New(sha256.New, raw)
			mac.Write([]byte(input))
			return input + "." + b64.EncodeToString(mac.Sum(nil))
		},
		"ES256Header": func(t testing.TB, s *vsetup) string {
			return sign(t, s.key, map[string]any{"alg": "ES256", "kid": s.key.kid}, s.claims("admin"))
		},
		"KeyFromAnotherJWKSWithRealKid": func(t testing.TB, s *vsetup) string {
			return s.token(newKey(t, s.key.kid), s.claims("admin"))
		},
		"EmbeddedJWKHeader": func(t testing.TB, s *vsetup) string {
			evil := newKey(t, s.key.kid)
			return sign(t, evil, map[string]any{"alg": "EdDSA", "kid": s.key.kid, "jwk": evil.jwk()}, s.claims("admin"))
		},
		"NoKid": func(t testing.TB, s *vsetup) string {
			return sign(t, s.key, map[string]any{"alg": "EdDSA"}, s.claims("admin"))
		},
		"Expired": func(t testing.TB, s *vsetup) string {
			c := s.claims("admin")
			c["exp"] = s.clock.Now().Add(-31 * time.Second).Unix()
			c["iat"] = s.clock.Now().Add(-931 * time.Second).Unix()
			return s.token(s.key, c)
		},
		"NoExp": func(t testing.TB, s *vsetup) string {
			c := s.claims("admin")
			delete(c, "exp")
			return s.token(s.key, c)
		},
		"NotYetValid": func(t testing.TB, s *vsetup) string {
			c := s.claims("admin")
			c["nbf"] = s.clock.Now().Add(5 * time.Minute).Unix()
			return s.token(s.key, c)
		},
		"OtherAudience": func(t testing.TB, s *vsetup) string {
			c := s.claims("admin")
			c["aud"] = "other"
			return s.token(s.key, c)
		},
		"NoAudience": func(t testing.TB, s *vsetup) string {
			c := s.claims("admin")
			delete(c, "aud")
			return s.token(s.key, c)
		},
		"OtherIssuer": func(t testing.TB, s *vsetup) string {
			c := s.claims("admin")
			c["iss"] = "https://evil.example"
			return s.token(s.key, c)
		},
		"NoSubject": func(t testing.TB, s *vsetup) string {
			c := s.claims("admin")
			delete(c, "sub")
			return s.token(s.key, c)
		},
		"RoleNotAString": func(t testing.TB, s *vsetup) string {
			c := s.claims("admin")
			c["role"] = []string{"admin"}
			return s.token(s.key, c)
		},
		"PayloadAlteredAfterSigning": func(t testing.TB, s *vsetup) string {
			parts := strings.Split(s.token(s.key, s.claims("user")), ".")
			return parts[0] + "." + segment(t, s.claims("admin")) + "." + parts[2]
		},
		"HeaderAlteredAfterSigning": func(t testing.TB, s *vsetup) string {
			parts := strings.Split(s.token(s.key, s.claims("admin")), ".")
			return segment(t, map[string]any{"alg": "EdDSA", "kid": s.key.kid, "x": 1}) + "." + parts[1] + "." + parts[2]
		},
		"SignatureStripped": func(t testing.TB, s *vsetup) string {
			parts := strings.Split(s.token(s.key, s.claims("admin")), ".")
			return parts[0] + "." + parts[1] + "."
		},
		"Empty":          func(testing.TB, *vsetup) string { return "" },
		"Garbage":        func(testing.TB, *vsetup) string { return "not-a-token" },
		"TwoSegments":    func(testing.TB, *vsetup) string { return "abc.def" },
		"FourSegments":   func(testing.TB, *vsetup) string { return "a.b.c.d" },
		"BadBase64":      func(testing.TB, *vsetup) string { return "!!!.???.***" },
		"BearerPrefixed": func(t testing.TB, s *vsetup) string { return "Bearer " + s.token(s.key, s.claims("admin")) },
		"JSONSerialization": func(t testing.TB, s *vsetup) string {
			parts := strings.Split(s.token(s.key, s.claims("admin")), ".")
			raw, _ := json.Marshal(map[string]string{"protected": parts[0], "payload": parts[1], "signature": parts[2]})
			return string(raw)
		},
		"Oversized": func(t testing.TB, s *vsetup) string {
			c := s.claims("admin")
			c["pad"] = strings.Repeat("x", 10_000)
			return s.token(s.key, c)
		},
	}
}

// acceptedCases are tokens in the accepted form other than the one minted.
func acceptedCases() map[string]func(t testing.TB, s *vsetup) string {
	return map[string]func(t testing.TB, s *vsetup) string{
		"AsMinted": func(t testing.TB, s *vsetup) string { return s.token(s.key, s.claims("admin")) },
		"TypJWT": func(t testing.TB, s *vsetup) string {
			return sign(t, s.key, map[string]any{"alg": "EdDSA", "kid": s.key.kid, "typ": "JWT"}, s.claims("admin"))
		},
		"NoIat": func(t testing.TB, s *vsetup) string {
			c := s.claims("admin")
			delete(c, "iat")
			return s.token(s.key, c)
		},
		"NullOptionalClaims": func(t testing.TB, s *vsetup) string {
			c := s.claims("admin")
			c["email"], c["tier"] = nil, nil
			return s.token(s.key, c)
		},
		"WhitespaceInsideJSON": func(t testing.TB, s *vsetup) string {
			now := s.clock.Now().Unix()
			return signRaw(s.key, "{ \"alg\": \"EdDSA\",\n \"kid\": \""+s.key.kid+"\" }",
				`{ "sub": "u", "role": "admin", "iss": "`+s.iss+`", "aud": ["mana"], "iat": `+itoa(now)+`, "exp": `+itoa(now+900)+" }\n")
		},
	}
}
