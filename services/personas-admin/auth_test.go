package main

import (
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

var b64 = base64.RawURLEncoding

// jws assembles a compact JWS from a header, claims and a signing function
// (nil: empty signature).
func jws(t *testing.T, header, claims map[string]any, sign func(input []byte) []byte) string {
	t.Helper()
	h, err := json.Marshal(header)
	require.NoError(t, err)
	c, err := json.Marshal(claims)
	require.NoError(t, err)
	input := b64.EncodeToString(h) + "." + b64.EncodeToString(c)
	sig := []byte{}
	if sign != nil {
		sig = sign([]byte(input))
	}
	return input + "." + b64.EncodeToString(sig)
}

func edSigner(key ed25519.PrivateKey) func([]byte) []byte {
	return func(in []byte) []byte { return ed25519.Sign(key, in) }
}

func TestAdminJWT(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	kid, seed := signingKey(t, b.authDB)
	realKey := ed25519.NewKeyFromSeed(seed)
	_, foreignKey, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)

	// Claims as mana-auth mints them for the admin; each case changes one thing.
	now := time.Now()
	claims := func(change map[string]any) map[string]any {
		c := map[string]any{
			"sub": "admin-id", "email": testAdminEmail, "role": "admin", "sid": "s1", "tier": "public",
			"iat": now.Unix(), "exp": now.Add(15 * time.Minute).Unix(), "iss": b.authURL, "aud": "mana",
		}
		for k, v := range change {
			if v == nil {
				delete(c, k)
				continue
			}
			c[k] = v
		}
		return c
	}
	edHeader := map[string]any{"alg": "EdDSA", "kid": kid}
	genuine := func(change map[string]any) string { return jws(t, edHeader, claims(change), edSigner(realKey)) }

	userID := b.registerUser(t, "someone@mana.test")
	userToken := b.login(t, "someone@mana.test", "user-password-1")
	parts := strings.Split(userToken, ".")
	var userClaims map[string]any
	raw, err := b64.DecodeString(parts[1])
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(raw, &userClaims))
	require.Equal(t, userID, userClaims["sub"])
	userClaims["role"] = "admin"
	escalated, err := json.Marshal(userClaims)
	require.NoError(t, err)
	alteredToken := parts[0] + "." + b64.EncodeToString(escalated) + "." + parts[2]

	pub := realKey.Public().(ed25519.PublicKey)
	hs256 := func(key []byte) func([]byte) []byte {
		return func(in []byte) []byte {
			m := hmac.New(sha256.New, key)
			m.Write(in)
			return m.Sum(nil)
		}
	}
	jwksJSON, err := json.Marshal(map[string]string{"alg": "EdDSA", "crv": "Ed25519", "kty": "OKP", "kid": kid, "x": b64.EncodeToString(pub)})
	require.NoError(t, err)

	// A genuine admin token of another mana-auth (its own key and issuer).
	other := setup(t)
	require.NotEqual(t, b.auth.KeyID(), other.auth.KeyID())

	bearer := func(tok string) []string { return []string{"Authorization", "Bearer " + tok} }
	cases := []struct {
		name    string
		headers []string
		status  int
	}{
		{"GenuineAdminLogin", bearer(b.admin), http.StatusOK},
		{"ForgedWithTheRealKeyIsAccepted", bearer(genuine(nil)), http.StatusOK}, // proves the forgeries below differ only where named
		{"AlgNone", bearer(jws(t, map[string]any{"alg": "none", "kid": kid}, claims(nil), nil)), http.StatusUnauthorized},
		{"AlgNoneWithSignature", bearer(jws(t, map[string]any{"alg": "none", "kid": kid}, claims(nil), edSigner(realKey))), http.StatusUnauthorized},
		{"HS256KeyedWithPublicKeyBytes", bearer(jws(t, map[string]any{"alg": "HS256", "kid": kid}, claims(nil), hs256(pub))), http.StatusUnauthorized},
		{"HS256KeyedWithPublicJWK", bearer(jws(t, map[string]any{"alg": "HS256", "kid": kid}, claims(nil), hs256(jwksJSON))), http.StatusUnauthorized},
		{"UnknownKid", bearer(jws(t, map[string]any{"alg": "EdDSA", "kid": "no-such-kid"}, claims(nil), edSigner(foreignKey))), http.StatusUnauthorized},
		{"NoKid", bearer(jws(t, map[string]any{"alg": "EdDSA"}, claims(nil), edSigner(realKey))), http.StatusUnauthorized},
		{"ForeignKeyUnderTheRealKid", bearer(jws(t, edHeader, claims(nil), edSigner(foreignKey))), http.StatusUnauthorized},
		{"AdminTokenOfAnotherManaAuth", bearer(other.admin), http.StatusUnauthorized},
		{"Expired", bearer(genuine(map[string]any{"iat": now.Add(-20 * time.Minute).Unix(), "exp": now.Add(-5 * time.Minute).Unix()})), http.StatusUnauthorized},
		{"NoExp", bearer(genuine(map[string]any{"exp": nil})), http.StatusUnauthorized},
		{"OtherAudience", bearer(genuine(map[string]any{"aud": "other-app"})), http.StatusUnauthorized},
		{"OtherIssuer", bearer(genuine(map[string]any{"iss": "https://evil.example"})), http.StatusUnauthorized},
		{"RoleUserFromLogin", bearer(userToken), http.StatusForbidden},
		{"NoRoleClaim", bearer(genuine(map[string]any{"role": nil})), http.StatusForbidden},
		{"PayloadAlteredAfterSigning", bearer(alteredToken), http.StatusUnauthorized},
		{"NoBearer", []string{"Authorization", ""}, http.StatusUnauthorized},
		{"MalformedToken", bearer("not-a-jwt"), http.StatusUnauthorized},
		{"MalformedThreeSegments", bearer("a.b.c"), http.StatusUnauthorized},
		{"BearerWithoutToken", []string{"Authorization", "Bearer "}, http.StatusUnauthorized},
		{"BearerInXAuthorization", []string{"Authorization", "", "X-Authorization", "Bearer " + b.admin}, http.StatusUnauthorized},
		{"TokenScheme", []string{"Authorization", "Token " + b.admin}, http.StatusUnauthorized},
		{"NoScheme", []string{"Authorization", b.admin}, http.StatusUnauthorized},
		{"BasicScheme", []string{"Authorization", "Basic " + base64.StdEncoding.EncodeToString([]byte(testAdminEmail+":"+testAdminPassword))}, http.StatusUnauthorized},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			status, body := b.call(t, http.MethodGet, apiPath, "", tc.headers...)
			require.Equal(t, tc.status, status, body)
			switch tc.status {
			case http.StatusUnauthorized:
				var e struct{ Error, Message string }
				require.NoError(t, json.Unmarshal([]byte(body), &e))
				require.Equal(t, "Unauthorized", e.Error)
				require.NotEmpty(t, e.Message)
				require.NotContains(t, body, b.admin)
			case http.StatusForbidden:
				require.JSONEq(t, `{"error":"Forbidden","message":"Admin access required"}`, body)
			}
		})
	}

	t.Run("TokenInQueryIsIgnored", func(t *testing.T) {
		t.Parallel()
		status, _ := b.call(t, http.MethodGet, apiPath+"?access_token="+b.admin, "", "Authorization", "")
		require.Equal(t, http.StatusUnauthorized, status)
	})

	t.Run("EveryRouteIsGated", func(t *testing.T) {
		t.Parallel()
		for _, r := range []struct{ method, path, body string }{
			{http.MethodPost, apiPath, upsertBody("gated@mana.test", nil)},
			{http.MethodGet, apiPath, ""},
			{http.MethodGet, apiPath + "/" + userID, ""},
			{http.MethodDelete, apiPath + "/" + userID, ""},
			{http.MethodGet, apiPath + "/runner", ""},
			{http.MethodPut, apiPath + "/runner", `{"paused":true}`},
			{http.MethodPatch, apiPath + "/" + userID, `{"enabled":false}`},
			{http.MethodPost, apiPath + "/" + userID + "/lease/release", ""},
			{http.MethodPost, apiPath + "/" + userID + "/unquarantine", ""},
			{http.MethodGet, apiPath + "/" + userID + "/ticks", ""},
			{http.MethodGet, apiPath + "/" + userID + "/ticks/t1", ""},
		} {
			status, _ := b.call(t, r.method, r.path, r.body, "Authorization", "")
			require.Equal(t, http.StatusUnauthorized, status, r.method+" "+r.path)
			status, body := b.call(t, r.method, r.path, r.body, "Authorization", "Bearer "+userToken)
			require.Equal(t, http.StatusForbidden, status, r.method+" "+r.path)
			require.JSONEq(t, `{"error":"Forbidden","message":"Admin access required"}`, body)
		}
		// Nothing happened on behalf of the refused callers.
		require.Empty(t, b.authUsers(t, "gated@mana.test"))
		st, stErr := b.store.FleetState(ctx)
		require.NoError(t, stErr)
		require.False(t, st.Paused)
		_, err := b.mana.GetUser(ctx, b.admin, userID)
		require.NoError(t, err)
	})
}

func TestManaAuthDownAtStart(t *testing.T) {
	t.Parallel()
	b := setupWith(t, setupOptions{callTimeout: 300 * time.Millisecond})
	kid, seed := signingKey(t, b.authDB)
	now := time.Now()
	token := jws(t, map[string]any{"alg": "EdDSA", "kid": kid}, map[string]any{
		"sub": "admin-id", "role": "admin", "iat": now.Unix(), "exp": now.Add(15 * time.Minute).Unix(),
		"iss": b.authURL, "aud": "mana",
	}, edSigner(ed25519.NewKeyFromSeed(seed)))

	t.Run("NotReadyAndAPIUnavailable", func(t *testing.T) {
		status, body := b.call(t, http.MethodGet, "/readyz", "")
		require.Equal(t, http.StatusServiceUnavailable, status, body)
		require.Contains(t, body, "mana-auth")
		status, body = b.call(t, http.MethodGet, apiPath, "", "Authorization", "Bearer "+token)
		require.Equal(t, http.StatusServiceUnavailable, status, body)
		require.JSONEq(t, `{"error":"Service Unavailable","message":"mana-auth keys unavailable; admin tokens cannot be checked, retry later"}`, body)
		status, _ = b.call(t, http.MethodGet, "/healthz", "")
		require.Equal(t, http.StatusOK, status, "alive, only not ready")
	})

	t.Run("RecoversOnceManaAuthAnswers", func(t *testing.T) {
		b.startAuth()
		require.Eventually(t, func() bool {
			status, _ := b.call(t, http.MethodGet, "/readyz", "")
			return status == http.StatusOK
		}, 20*time.Second, 20*time.Millisecond)
		status, body := b.call(t, http.MethodGet, apiPath, "", "Authorization", "Bearer "+token)
		require.Equal(t, http.StatusOK, status, body)
		status, body = b.call(t, http.MethodGet, apiPath, "")
		require.Equal(t, http.StatusOK, status, body)
	})
}
