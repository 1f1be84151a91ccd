package contracttest

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/mana/personas/pkg/manaauth"
	"github.com/stretchr/testify/require"
)

// Cookie names of the platform's Better Auth (cookiePrefix "mana"); with
// Secure cookies Better Auth prefixes every name with "__Secure-".
const (
	sessionCookie       = "mana.session_token"
	secureCookiePrefix  = "__Secure-"
	foreignOrigin       = "https://evil.example"
	formContentType     = "application/x-www-form-urlencoded"
	jsonContentType     = "application/json"
	signInPath          = "/api/auth/sign-in/email"
	signOutPath         = "/api/auth/sign-out"
	tokenPath           = "/api/auth/token" //nolint:gosec // a URL path, not a credential
	getSessionPath      = "/api/auth/get-session"
	maxBrowserBodyBytes = 1 << 20
)

// browser speaks to mana-auth the way a dashboard page does: raw HTTP, no
// cookie jar (each step says which cookie it sends), no redirects followed.
type browser struct {
	base   string
	origin string
	secure bool
	http   *http.Client
}

func newBrowser(cfg Config) *browser {
	base := strings.TrimRight(cfg.BaseURL, "/")
	return &browser{
		base: base, origin: cfg.Origin, secure: strings.HasPrefix(base, "https://"),
		http: &http.Client{
			Timeout:       15 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
}

// cookieName is the session cookie's name for this base URL's scheme.
func (b *browser) cookieName() string {
	if b.secure {
		return secureCookiePrefix + sessionCookie
	}
	return sessionCookie
}

// answer is one response, body read.
type answer struct {
	status int
	header http.Header
	body   []byte
	res    *http.Response
}

// do sends one request; header values "" are left out.
func (b *browser) do(ctx context.Context, t *testing.T, method, path, contentType, body string, header map[string]string) answer {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, b.base+path, rd)
	require.NoError(t, err)
	req.Header.Set("Accept", "application/json")
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for k, v := range header {
		if v != "" {
			req.Header.Set(k, v)
		}
	}
	res, err := b.http.Do(req)
	require.NoError(t, err)
	defer func() { _ = res.Body.Close() }()
	raw, err := io.ReadAll(io.LimitReader(res.Body, maxBrowserBodyBytes))
	require.NoError(t, err)
	return answer{status: res.StatusCode, header: res.Header, body: raw, res: res}
}

// withCookie is the Cookie header carrying only the session cookie.
func (b *browser) withCookie(value string) map[string]string {
	return map[string]string{"Cookie": b.cookieName() + "=" + value}
}

// sessionCookieOf returns the session cookie an answer sets, if any.
func (b *browser) sessionCookieOf(a answer) *http.Cookie {
	for _, c := range a.res.Cookies() {
		if c.Name == b.cookieName() {
			return c
		}
	}
	return nil
}

// rawSetCookie is the Set-Cookie line of the session cookie, for attribute
// checks Go's parser does not keep.
func (b *browser) rawSetCookie(a answer) string {
	for _, line := range a.header.Values("Set-Cookie") {
		if strings.HasPrefix(line, b.cookieName()+"=") {
			return line
		}
	}
	return ""
}

// signIn signs in through the browser endpoint and returns the answer.
func (b *browser) signIn(ctx context.Context, t *testing.T, email, password string, rememberMe *bool) answer {
	t.Helper()
	body := map[string]any{"email": email, "password": password}
	if rememberMe != nil {
		body["rememberMe"] = *rememberMe
	}
	raw, err := json.Marshal(body)
	require.NoError(t, err)
	return b.do(ctx, t, http.MethodPost, signInPath, jsonContentType, string(raw), map[string]string{"Origin": b.origin})
}

func decodeInto(t *testing.T, a answer, dst any) {
	t.Helper()
	require.NoError(t, json.Unmarshal(a.body, dst), "body %s", a.body)
}

// runOrganizations checks the organization list as the platform's runner
// uses it: login, then the list with the opaque session token as a bearer.
func runOrganizations(ctx context.Context, t *testing.T, client *manaauth.Client, web *browser, email, password string) {
	t.Helper()

	t.Run("RunnerFindsPersonalOrganizationWithSessionToken", func(t *testing.T) {
		login, err := client.Login(ctx, email, password)
		require.NoError(t, err)
		orgs, err := client.ListOrganizations(ctx, login.Token)
		require.NoError(t, err)
		personal, ok := manaauth.PersonalOrganization(orgs)
		require.True(t, ok, "every account has a personal organization from sign-up: %+v", orgs)
		require.NotEmpty(t, personal.ID)
		require.NotEmpty(t, personal.Name)
		require.NotEmpty(t, personal.Slug)
		require.False(t, personal.CreatedAt.IsZero())

		// On the wire, metadata is a JSON string, not an object.
		a := web.do(ctx, t, http.MethodGet, manaauth.OrganizationsPath, "", "", map[string]string{"Authorization": "Bearer " + login.Token})
		require.Equal(t, http.StatusOK, a.status)
		var raw []map[string]any
		decodeInto(t, a, &raw)
		var found bool
		for _, o := range raw {
			if o["id"] != personal.ID {
				continue
			}
			found = true
			md, isString := o["metadata"].(string)
			require.True(t, isString, "metadata is a JSON string: %#v", o["metadata"])
			var parsed map[string]any
			require.NoError(t, json.Unmarshal([]byte(md), &parsed))
			require.Equal(t, "personal", parsed["type"])
			for _, k := range []string{"id", "name", "slug", "logo", "createdAt", "metadata"} {
				require.Contains(t, o, k)
			}
		}
		require.True(t, found)

		again, err := client.ListOrganizations(ctx, login.Token)
		require.NoError(t, err)
		p2, _ := manaauth.PersonalOrganization(again)
		require.Equal(t, personal.ID, p2.ID, "the personal organization is stable")
	})

	t.Run("OrganizationListRefusesJWTUnknownAndMissingTokens", func(t *testing.T) {
		login, err := client.Login(ctx, email, password)
		require.NoError(t, err)
		_, err = client.ListOrganizations(ctx, login.AccessToken)
		require.ErrorIs(t, err, manaauth.ErrUnauthorized, "the JWT is not a session token")
		_, err = client.ListOrganizations(ctx, "unknown"+randHex(16))
		require.ErrorIs(t, err, manaauth.ErrUnauthorized)
		a := web.do(ctx, t, http.MethodGet, manaauth.OrganizationsPath, "", "", nil)
		require.Equal(t, http.StatusUnauthorized, a.status)
	})
}

// runBrowser checks the dashboard's sign-in flow: cookie session, its JWT,
// get-session, sign-out, and the cross-site refusals.
func runBrowser(ctx context.Context, t *testing.T, client *manaauth.Client, verifier *manaauth.Verifier, web *browser, cfg Config, email, password, userID string) {
	t.Helper()
	var cookieValue, sessionToken string

	t.Run("BrowserSignInSetsSignedHttpOnlySessionCookie", func(t *testing.T) {
		a := web.signIn(ctx, t, email, password, nil)
		require.Equal(t, http.StatusOK, a.status, "body %s", a.body)
		var body map[string]any
		decodeInto(t, a, &body)
		require.Equal(t, false, body["redirect"])
		require.Nil(t, body["url"], "url is null or absent without a callbackURL")
		tok, _ := body["token"].(string)
		require.NotEmpty(t, tok)
		require.NotEqual(t, 2, strings.Count(tok, "."), "token is the opaque session token, not a JWT")
		user, _ := body["user"].(map[string]any)
		require.Equal(t, userID, user["id"])

		ck := web.sessionCookieOf(a)
		require.NotNil(t, ck, "Set-Cookie %s", a.header.Values("Set-Cookie"))
		require.True(t, ck.HttpOnly)
		require.Equal(t, "/", ck.Path)
		require.Equal(t, http.SameSiteLaxMode, ck.SameSite)
		require.Equal(t, web.secure, ck.Secure, "Secure exactly when the base URL is https")
		require.Positive(t, ck.MaxAge, "a remembered session outlives the browser")
		line := web.rawSetCookie(a)
		require.Contains(t, line, "HttpOnly")
		require.Contains(t, line, "SameSite=Lax")

		signed, err := url.QueryUnescape(ck.Value)
		require.NoError(t, err)
		require.True(t, strings.HasPrefix(signed, tok+"."), "cookie value is <token>.<signature>")
		require.Greater(t, len(signed), len(tok)+1)
		cookieValue, sessionToken = ck.Value, tok
	})
	require.NotEmpty(t, cookieValue, "later browser steps need the session cookie")

	t.Run("TokenEndpointMintsTheLoginJWTForTheCookieSession", func(t *testing.T) {
		a := web.do(ctx, t, http.MethodGet, tokenPath, "", "", web.withCookie(cookieValue))
		require.Equal(t, http.StatusOK, a.status, "body %s", a.body)
		var body struct {
			Token string `json:"token"`
		}
		decodeInto(t, a, &body)
		claims, err := verifier.Verify(ctx, body.Token)
		require.NoError(t, err, "the JWT verifies against the JWKS")
		require.Equal(t, userID, claims.Subject)
		require.Equal(t, email, strings.ToLower(claims.Email))
		require.NotEmpty(t, claims.SessionID)
		require.WithinDuration(t, claims.IssuedAt.Add(cfg.TokenTTL), claims.ExpiresAt, time.Second)
		hdr, payload := decodeJWT(t, body.Token)
		require.Equal(t, map[string]any{"alg": "EdDSA", "kid": hdr["kid"]}, hdr)
		require.Equal(t, "mana", payload["aud"])
		require.Equal(t, cfg.Issuer, payload["iss"])
		require.Equal(t, cfg.TokenTTL.Seconds(), payload["exp"].(float64)-payload["iat"].(float64))

		// The opaque session token works as a bearer, like for the runner.
		b := web.do(ctx, t, http.MethodGet, tokenPath, "", "", map[string]string{"Authorization": "Bearer " + sessionToken})
		require.Equal(t, http.StatusOK, b.status)

		for name, h := range map[string]map[string]string{
			"NoSession":      nil,
			"ForgedCookie":   web.withCookie(url.QueryEscape(sessionToken + ".AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")),
			"UnsignedCookie": web.withCookie(sessionToken),
			"JWTBearer":      {"Authorization": "Bearer " + body.Token},
		} {
			a := web.do(ctx, t, http.MethodGet, tokenPath, "", "", h)
			require.Equal(t, http.StatusUnauthorized, a.status, name)
		}
	})

	t.Run("GetSessionAnswersTheSessionOrNull", func(t *testing.T) {
		a := web.do(ctx, t, http.MethodGet, getSessionPath, "", "", web.withCookie(cookieValue))
		require.Equal(t, http.StatusOK, a.status)
		var body struct {
			Session *struct {
				ID        string `json:"id"`
				UserID    string `json:"userId"`
				Token     string `json:"token"`
				ExpiresAt string `json:"expiresAt"`
			} `json:"session"`
			User *manaauth.User `json:"user"`
		}
		decodeInto(t, a, &body)
		require.NotNil(t, body.Session)
		require.NotNil(t, body.User)
		require.NotEmpty(t, body.Session.ID)
		require.Equal(t, userID, body.Session.UserID)
		require.Equal(t, sessionToken, body.Session.Token)
		require.Equal(t, userID, body.User.ID)
		exp, err := time.Parse(time.RFC3339Nano, body.Session.ExpiresAt)
		require.NoError(t, err)
		require.True(t, exp.After(time.Now()))

		none := web.do(ctx, t, http.MethodGet, getSessionPath, "", "", nil)
		require.Equal(t, http.StatusOK, none.status)
		require.Equal(t, "null", strings.TrimSpace(string(none.body)))
	})

	t.Run("OrganizationListAcceptsTheSessionCookie", func(t *testing.T) {
		byBearer, err := client.ListOrganizations(ctx, sessionToken)
		require.NoError(t, err)
		want, ok := manaauth.PersonalOrganization(byBearer)
		require.True(t, ok)
		a := web.do(ctx, t, http.MethodGet, manaauth.OrganizationsPath, "", "", web.withCookie(cookieValue))
		require.Equal(t, http.StatusOK, a.status)
		var orgs []manaauth.Organization
		decodeInto(t, a, &orgs)
		got, ok := manaauth.PersonalOrganization(orgs)
		require.True(t, ok)
		require.Equal(t, want.ID, got.ID)
	})

	t.Run("SignInWithRememberMeFalseSetsABrowserSessionCookie", func(t *testing.T) {
		no := false
		a := web.signIn(ctx, t, email, password, &no)
		require.Equal(t, http.StatusOK, a.status)
		ck := web.sessionCookieOf(a)
		require.NotNil(t, ck)
		require.Zero(t, ck.MaxAge, "no Max-Age")
		require.True(t, ck.Expires.IsZero(), "no Expires")
	})

	t.Run("SignInWithWrongPasswordIsUnauthorizedWithoutCookie", func(t *testing.T) {
		a := web.signIn(ctx, t, email, "wrong-"+randHex(6), nil)
		require.Equal(t, http.StatusUnauthorized, a.status)
		var body map[string]string
		decodeInto(t, a, &body)
		require.Equal(t, "INVALID_EMAIL_OR_PASSWORD", body["code"])
		require.Equal(t, "Invalid email or password", body["message"])
		if ck := web.sessionCookieOf(a); ck != nil {
			require.Empty(t, ck.Value, "no session cookie for a failed sign-in")
		}
	})

	t.Run("SignInRefusesFormPostsAndForeignOrigins", func(t *testing.T) {
		form := url.Values{"email": {email}, "password": {password}}.Encode()
		a := web.do(ctx, t, http.MethodPost, signInPath, formContentType, form, map[string]string{"Origin": web.origin})
		require.Contains(t, []int{http.StatusBadRequest, http.StatusUnsupportedMediaType}, a.status, "a form post is refused: body %s", a.body)
		require.Nil(t, web.sessionCookieOf(a))

		// Sec-Fetch-* as a browser sends them: Better Auth checks the
		// origin of a sign-in that carries them (or cookies).
		raw, _ := json.Marshal(map[string]string{"email": email, "password": password})
		a = web.do(ctx, t, http.MethodPost, signInPath, jsonContentType, string(raw), map[string]string{
			"Origin": foreignOrigin, "Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "cors", "Sec-Fetch-Dest": "empty",
		})
		require.Equal(t, http.StatusForbidden, a.status, "body %s", a.body)
		require.Nil(t, web.sessionCookieOf(a))
	})

	t.Run("SignOutRefusesForeignOriginsAndFormPosts", func(t *testing.T) {
		h := web.withCookie(cookieValue)
		h["Origin"] = foreignOrigin
		a := web.do(ctx, t, http.MethodPost, signOutPath, jsonContentType, "{}", h)
		require.Equal(t, http.StatusForbidden, a.status)
		h["Origin"] = web.origin
		a = web.do(ctx, t, http.MethodPost, signOutPath, formContentType, "", h)
		require.Contains(t, []int{http.StatusBadRequest, http.StatusUnsupportedMediaType}, a.status)
		still := web.do(ctx, t, http.MethodGet, tokenPath, "", "", web.withCookie(cookieValue))
		require.Equal(t, http.StatusOK, still.status, "a refused sign-out ends nothing")
	})

	t.Run("SignOutEndsTheSessionAndClearsTheCookie", func(t *testing.T) {
		h := web.withCookie(cookieValue)
		h["Origin"] = web.origin
		a := web.do(ctx, t, http.MethodPost, signOutPath, jsonContentType, "{}", h)
		require.Equal(t, http.StatusOK, a.status, "body %s", a.body)
		var body map[string]any
		decodeInto(t, a, &body)
		require.Equal(t, true, body["success"])
		ck := web.sessionCookieOf(a)
		require.NotNil(t, ck, "sign-out expires the session cookie")
		require.Negative(t, ck.MaxAge, "Max-Age=0")
		require.Empty(t, ck.Value)
		require.Contains(t, web.rawSetCookie(a), "Max-Age=0")

		require.Equal(t, http.StatusUnauthorized, web.do(ctx, t, http.MethodGet, tokenPath, "", "", web.withCookie(cookieValue)).status)
		gs := web.do(ctx, t, http.MethodGet, getSessionPath, "", "", web.withCookie(cookieValue))
		require.Equal(t, http.StatusOK, gs.status)
		require.Equal(t, "null", strings.TrimSpace(string(gs.body)))
		_, err := client.ListOrganizations(ctx, sessionToken)
		require.ErrorIs(t, err, manaauth.ErrUnauthorized, "the session token stops working too")
		org := web.do(ctx, t, http.MethodGet, manaauth.OrganizationsPath, "", "", web.withCookie(cookieValue))
		require.Equal(t, http.StatusUnauthorized, org.status)
	})
}
