// Package contracttest is the contract suite for mana-auth: it drives every
// endpoint of pkg/manaauth/CONTRACT.md through the typed client (the
// browser's cookie flow, which the client does not speak, through raw HTTP
// as a dashboard page would) and checks the answers. The same suite runs against the development stand-in
// (services/mana-auth-dev) and against a real mana-auth given by URL, which
// is how the stand-in is kept honest.
//
// The suite creates one throw-away user under @mana.test and deletes it;
// its sessions (one signed out on purpose) go with it.
package contracttest

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/mana/personas/pkg/manaauth"
	"github.com/stretchr/testify/require"
)

// Config names the mana-auth under test.
type Config struct {
	BaseURL       string
	AdminEmail    string
	AdminPassword string
	ServiceKey    string
	// Issuer expected in tokens; default BaseURL.
	Issuer string
	// RequireAdminRole makes the suite insist that the admin's JWT says
	// role "admin". Real mana-auth may mint role "user" for admins (see
	// CONTRACT.md); without this flag the suite only logs that quirk.
	RequireAdminRole bool
	// TokenTTL is the expected JWT lifetime (exp - iat); default 15 minutes.
	TokenTTL time.Duration
	// Origin is a trusted origin the browser steps send as Origin; default
	// the origin of BaseURL.
	Origin string
}

// Run runs the suite against the mana-auth at baseURL.
func Run(t *testing.T, baseURL, adminEmail, adminPassword, serviceKey string) {
	t.Helper()
	RunConfig(t, Config{BaseURL: baseURL, AdminEmail: adminEmail, AdminPassword: adminPassword, ServiceKey: serviceKey})
}

// RunConfig runs the suite with full configuration.
func RunConfig(t *testing.T, cfg Config) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if cfg.Issuer == "" {
		cfg.Issuer = strings.TrimRight(cfg.BaseURL, "/")
	}
	if cfg.TokenTTL == 0 {
		cfg.TokenTTL = 15 * time.Minute
	}
	if cfg.Origin == "" {
		u, err := url.Parse(cfg.BaseURL)
		require.NoError(t, err)
		cfg.Origin = u.Scheme + "://" + u.Host
	}
	web := newBrowser(cfg)
	client, err := manaauth.New(cfg.BaseURL, manaauth.WithServiceKey(cfg.ServiceKey))
	require.NoError(t, err)
	wrongKey, err := manaauth.New(cfg.BaseURL, manaauth.WithServiceKey("wrong-"+randHex(8)))
	require.NoError(t, err)
	verifier, err := manaauth.NewVerifier(ctx, cfg.BaseURL, manaauth.WithIssuer(cfg.Issuer))
	require.NoError(t, err)
	t.Cleanup(verifier.Close)

	email := "contract-" + randHex(6) + "@mana.test"
	password := "pw-" + randHex(12)
	var admin, userJWT, userID string
	t.Cleanup(func() {
		// Best effort, for a run that failed before the delete step.
		if admin != "" && userID != "" {
			cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer ccancel()
			_ = client.DeleteUser(cctx, admin, userID)
		}
	})

	// The steps depend on each other, so they run in order as subtests.
	t.Run("JWKSPublishesEd25519KeysWithAlgAndKid", func(t *testing.T) {
		set, err := client.JWKS(ctx)
		require.NoError(t, err)
		require.Positive(t, set.Len())
		for i := 0; i < set.Len(); i++ {
			k, _ := set.Key(i)
			require.Equal(t, "OKP", string(k.KeyType()))
			require.NotEmpty(t, k.KeyID())
			require.NotNil(t, k.Algorithm())
			require.Equal(t, jwa.EdDSA.String(), k.Algorithm().String())
			crv, ok := k.Get("crv")
			require.True(t, ok)
			require.Equal(t, "Ed25519", toString(crv))
		}
		require.NoError(t, verifier.Ready(ctx))
	})

	t.Run("AdminLoginReturnsJWTAsAccessToken", func(t *testing.T) {
		res, err := client.Login(ctx, cfg.AdminEmail, cfg.AdminPassword)
		require.NoError(t, err)
		require.NotEmpty(t, res.Token)
		require.NotEqual(t, res.Token, res.AccessToken, "token is the opaque session token, accessToken the JWT")
		require.Equal(t, 2, strings.Count(res.AccessToken, "."))
		require.False(t, res.Redirect)
		admin = res.AccessToken

		claims, err := verifier.Verify(ctx, admin)
		require.NoError(t, err)
		require.True(t, strings.EqualFold(cfg.AdminEmail, claims.Email))
		require.Equal(t, res.User.ID, claims.Subject)
		require.NotEmpty(t, claims.SessionID)
		if cfg.RequireAdminRole {
			require.True(t, claims.IsAdmin(), "admin JWT must carry role admin")
		} else if !claims.IsAdmin() {
			t.Logf("upstream quirk: the admin's JWT carries role %q, not \"admin\"", claims.Role)
		}

		hdr, payload := decodeJWT(t, admin)
		require.Equal(t, map[string]any{"alg": "EdDSA", "kid": hdr["kid"]}, hdr, "header is exactly alg and kid")
		require.Equal(t, "mana", payload["aud"], "aud is the plain string mana")
		require.NotContains(t, payload, "nbf")
		require.NotContains(t, payload, "jti")
		require.Equal(t, cfg.TokenTTL.Seconds(), payload["exp"].(float64)-payload["iat"].(float64))
	})

	t.Run("LoginWithWrongPasswordIsUnauthorizedWithoutEchoingIt", func(t *testing.T) {
		wrong := "not-the-password-" + randHex(6)
		_, err := client.Login(ctx, cfg.AdminEmail, wrong)
		require.ErrorIs(t, err, manaauth.ErrUnauthorized)
		require.NotContains(t, err.Error(), wrong)
	})

	t.Run("RegisterCreatesUser", func(t *testing.T) {
		res, err := client.Register(ctx, manaauth.RegisterRequest{Email: email, Password: password, Name: "Contract Test"})
		require.NoError(t, err)
		require.NotEmpty(t, res.User.ID)
		require.Equal(t, email, strings.ToLower(res.User.Email))
		require.NotEmpty(t, res.Token)
		require.NotEqual(t, 2, strings.Count(res.Token, "."), "register token is opaque, not a JWT")
		userID = res.User.ID
	})
	require.NotEmpty(t, userID, "later steps need the registered user")

	t.Run("RegisterSameEmailInOtherCaseIsAlreadyExists", func(t *testing.T) {
		_, err := client.Register(ctx, manaauth.RegisterRequest{Email: strings.ToUpper(email), Password: password, Name: "Again"})
		require.ErrorIs(t, err, manaauth.ErrAlreadyExists)
		var se *manaauth.StatusError
		require.ErrorAs(t, err, &se)
		require.Equal(t, 422, se.Status)
		require.Equal(t, "USER_ALREADY_EXISTS_USE_ANOTHER_EMAIL", se.Code)
		require.NotContains(t, err.Error(), password)
	})

	t.Run("UserLoginCarriesUserClaims", func(t *testing.T) {
		res, err := client.Login(ctx, email, password)
		require.NoError(t, err)
		claims, err := verifier.Verify(ctx, res.AccessToken)
		require.NoError(t, err)
		require.Equal(t, userID, claims.Subject)
		require.Equal(t, email, strings.ToLower(claims.Email))
		require.False(t, claims.IsAdmin())
		require.WithinDuration(t, claims.ExpiresAt, claims.IssuedAt.Add(cfg.TokenTTL), time.Second)
		userJWT = res.AccessToken
	})

	runOrganizations(ctx, t, client, web, email, password)
	runBrowser(ctx, t, client, verifier, web, cfg, email, password, userID)

	t.Run("SearchFindsUserBySubstring", func(t *testing.T) {
		local, _, _ := strings.Cut(email, "@")
		page, err := client.SearchUsers(ctx, admin, strings.ToUpper(local[3:]), 1, 50)
		require.NoError(t, err)
		require.GreaterOrEqual(t, page.Total, 1)
		require.Equal(t, 1, page.Page)
		require.Equal(t, 50, page.Limit)
		var ids []string
		for _, u := range page.Users {
			ids = append(ids, u.ID)
		}
		require.Contains(t, ids, userID)
	})

	t.Run("FindUserByEmailIsExactAndCaseInsensitive", func(t *testing.T) {
		u, err := client.FindUserByEmail(ctx, admin, strings.ToUpper(email))
		require.NoError(t, err)
		require.Equal(t, userID, u.ID)
		require.False(t, u.CreatedAt.IsZero())

		_, err = client.FindUserByEmail(ctx, admin, "x"+email)
		require.ErrorIs(t, err, manaauth.ErrNotFound)
	})

	t.Run("AdminEndpointsRefuseNonAdminAndMissingTokens", func(t *testing.T) {
		_, err := client.SearchUsers(ctx, userJWT, email, 1, 10)
		require.ErrorIs(t, err, manaauth.ErrForbidden)
		_, err = client.GetUser(ctx, "", userID)
		require.ErrorIs(t, err, manaauth.ErrUnauthorized)
		_, err = client.GetUser(ctx, "not.a.jwt", userID)
		require.ErrorIs(t, err, manaauth.ErrUnauthorized)
		err = client.DeleteUser(ctx, userJWT, userID)
		require.ErrorIs(t, err, manaauth.ErrForbidden)
	})

	t.Run("GetUserReturnsDetail", func(t *testing.T) {
		u, err := client.GetUser(ctx, admin, userID)
		require.NoError(t, err)
		require.Equal(t, userID, u.ID)
		require.Equal(t, email, strings.ToLower(u.Email))
		require.False(t, u.EmailVerified)

		_, err = client.GetUser(ctx, admin, "unknown-"+randHex(8))
		require.ErrorIs(t, err, manaauth.ErrNotFound)
	})

	t.Run("StampPersonaNeedsTheServiceKey", func(t *testing.T) {
		_, err := wrongKey.StampPersona(ctx, userID)
		require.ErrorIs(t, err, manaauth.ErrUnauthorized)
		require.NotContains(t, err.Error(), "wrong-")
	})

	t.Run("StampPersonaUnknownUserIsNotFound", func(t *testing.T) {
		_, err := client.StampPersona(ctx, "unknown-"+randHex(8))
		require.ErrorIs(t, err, manaauth.ErrNotFound)
	})

	t.Run("StampPersonaIsIdempotent", func(t *testing.T) {
		for range 2 {
			res, err := client.StampPersona(ctx, userID)
			require.NoError(t, err)
			require.Equal(t, manaauth.StampResponse{OK: true, UserID: userID, Kind: "persona", Tier: "founder", EmailVerified: true}, *res)
		}
		u, err := client.GetUser(ctx, admin, userID)
		require.NoError(t, err)
		require.True(t, u.EmailVerified)

		res, err := client.Login(ctx, email, password)
		require.NoError(t, err)
		claims, err := verifier.Verify(ctx, res.AccessToken)
		require.NoError(t, err)
		require.Equal(t, "founder", claims.Tier)
	})

	t.Run("DeleteUserRemovesItAndRepeatsAsNotFound", func(t *testing.T) {
		require.NoError(t, client.DeleteUser(ctx, admin, userID))
		_, err := client.GetUser(ctx, admin, userID)
		require.ErrorIs(t, err, manaauth.ErrNotFound)
		require.ErrorIs(t, client.DeleteUser(ctx, admin, userID), manaauth.ErrNotFound)
		_, err = client.FindUserByEmail(ctx, admin, email)
		require.ErrorIs(t, err, manaauth.ErrNotFound)
		_, err = client.Login(ctx, email, password)
		require.ErrorIs(t, err, manaauth.ErrUnauthorized)
	})
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func toString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case interface{ String() string }:
		return x.String()
	}
	return ""
}

// decodeJWT returns the header and payload of a compact JWT, unverified.
func decodeJWT(t *testing.T, token string) (map[string]any, map[string]any) {
	t.Helper()
	parts := strings.Split(token, ".")
	require.Len(t, parts, 3)
	dec := func(s string) map[string]any {
		raw, err := base64.RawURLEncoding.DecodeString(s)
		require.NoError(t, err)
		var m map[string]any
		require.NoError(t, json.Unmarshal(raw, &m))
		return m
	}
	return dec(parts[0]), dec(parts[1])
}
