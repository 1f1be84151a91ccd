package devauth

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
)

// This file is the browser side of Better Auth that a dashboard uses through
// the gateway, same origin: sign-in with a signed session cookie, the JWT for
// that session, get-session and sign-out; and the organization plugin's
// list, which the platform's runner calls with the opaque session token as a
// bearer (Better Auth's bearer plugin).

// cookiePrefix is the platform's Better Auth cookiePrefix.
const cookiePrefix = "mana"

// secureCookiePrefix is what Better Auth puts before every cookie name when
// its cookies are Secure (a https base URL).
const secureCookiePrefix = "__Secure-"

// cookieJar names, signs and checks the stand-in's cookies the way Better
// Auth (better-call) does: the value is "<token>.<signature>", the signature
// the standard, padded base64 of HMAC-SHA256(key, token), and the whole
// value URL-encoded.
type cookieJar struct {
	key    []byte
	secure bool
}

func newCookieJar(key []byte, secure bool) cookieJar { return cookieJar{key: key, secure: secure} }

func (j cookieJar) name(cookie string) string {
	n := cookiePrefix + "." + cookie
	if j.secure {
		return secureCookiePrefix + n
	}
	return n
}

// sessionCookie is the session token cookie's name.
func (j cookieJar) sessionCookie() string { return j.name("session_token") }

func (j cookieJar) signature(value string) string {
	m := hmac.New(sha256.New, j.key)
	m.Write([]byte(value))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// sign returns the cookie value for value.
func (j cookieJar) sign(value string) string {
	return url.QueryEscape(value + "." + j.signature(value))
}

// verify returns the value a signed cookie value carries, or false when it
// is not one of ours. It accepts the URL-encoded form and the decoded one.
func (j cookieJar) verify(signed string) (string, bool) {
	// Only the encoded form has '%' (neither the token nor base64 does);
	// unescaping a decoded value would turn its '+' into a space.
	if strings.Contains(signed, "%") {
		dec, err := url.QueryUnescape(signed)
		if err != nil {
			return "", false
		}
		signed = dec
	}
	i := strings.LastIndexByte(signed, '.')
	if i <= 0 {
		return "", false
	}
	value, sig := signed[:i], signed[i+1:]
	want := j.signature(value)
	if len(sig) != len(want) || !hmac.Equal([]byte(sig), []byte(want)) {
		return "", false
	}
	return value, true
}

// cookie builds a cookie with Better Auth's attributes: Path=/, HttpOnly,
// SameSite=Lax, Secure on a https base URL. maxAge 0 makes it a browser
// session cookie; negative expires it (Max-Age=0).
func (j cookieJar) cookie(name, value string, maxAge int) *http.Cookie {
	//nolint:gosec // Secure follows the base URL's scheme, as in Better Auth; HttpOnly and SameSite are set
	return &http.Cookie{
		Name: name, Value: value, Path: "/", MaxAge: maxAge,
		HttpOnly: true, Secure: j.secure, SameSite: http.SameSiteLaxMode,
	}
}

// parseOrigin normalises an origin (scheme://host[:port], lower-cased). A
// base URL may carry a path, which is not part of its origin.
func parseOrigin(raw string, allowPath bool) (string, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("%q is not an http(s) origin", raw)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" || (!allowPath && strings.Trim(u.Path, "/") != "") {
		return "", fmt.Errorf("%q is not an origin (scheme://host[:port])", raw)
	}
	return strings.ToLower(u.Scheme + "://" + u.Host), nil
}

// requireJSON refuses a POST whose body is not declared JSON, so a plain
// HTML form on another site cannot drive the endpoint.
func (s *Server) requireJSON(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		mt, _, err := mime.ParseMediaType(c.Request().Header.Get(echo.HeaderContentType))
		if err != nil || mt != echo.MIMEApplicationJSON {
			return c.JSON(http.StatusUnsupportedMediaType,
				authErr("UNSUPPORTED_MEDIA_TYPE", "Content-Type must be application/json"))
		}
		return next(c)
	}
}

// checkOrigin refuses a request whose Origin header names an origin that is
// neither the base URL's nor trusted ("null" included), like Better Auth's
// origin check.
func (s *Server) checkOrigin(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		origin, present := c.Request().Header[echo.HeaderOrigin]
		if present {
			n, err := parseOrigin(strings.Join(origin, ","), false)
			if err != nil || !s.origins[n] {
				return c.JSON(http.StatusForbidden, authErr("INVALID_ORIGIN", "Invalid origin"))
			}
		}
		return next(c)
	}
}

// presentedToken is the session token a request carries: a bearer (the
// opaque token as register and login answer it, or its signed form), else
// the signed session cookie. ok is false when it carries none that is ours;
// a bearer that is not a session token (a JWT, say) falls through to the
// cookie, as with Better Auth's bearer plugin.
func (s *Server) presentedToken(r *http.Request) (string, bool) {
	if scheme, tok, ok := strings.Cut(r.Header.Get(echo.HeaderAuthorization), " "); ok && strings.EqualFold(scheme, "Bearer") {
		tok = strings.TrimSpace(tok)
		switch {
		case tok == "":
		case strings.ContainsAny(tok, ".%"):
			if v, ok := s.cookies.verify(tok); ok {
				return v, true
			}
		default:
			return tok, true
		}
	}
	if ck, err := r.Cookie(s.cookies.sessionCookie()); err == nil {
		if v, ok := s.cookies.verify(ck.Value); ok {
			return v, true
		}
	}
	return "", false
}

// currentSession resolves the request's session; errNotFound when it has no
// live one.
func (s *Server) currentSession(ctx context.Context, r *http.Request) (*session, *user, error) {
	tok, ok := s.presentedToken(r)
	if !ok {
		return nil, nil, errNotFound
	}
	return s.store.sessionByToken(ctx, tok)
}

func unauthorized(c echo.Context) error {
	return c.JSON(http.StatusUnauthorized, authErr("UNAUTHORIZED", "Unauthorized"))
}

func (s *Server) signInEmail(c echo.Context) error {
	var in struct {
		Email      string `json:"email"`
		Password   string `json:"password"`
		RememberMe *bool  `json:"rememberMe"`
	}
	if err := decode(c, &in); err != nil {
		return c.JSON(http.StatusBadRequest, authErr("VALIDATION_ERROR", "body must be a JSON object"))
	}
	if !validEmail(strings.ToLower(strings.TrimSpace(in.Email))) {
		return c.JSON(http.StatusBadRequest, authErr("INVALID_EMAIL", "Invalid email"))
	}
	ctx := c.Request().Context()
	u, err := s.checkPassword(ctx, in.Email, in.Password)
	if errors.Is(err, errBadCredentials) {
		return c.JSON(http.StatusUnauthorized, authErr("INVALID_EMAIL_OR_PASSWORD", "Invalid email or password"))
	}
	if err != nil {
		return err
	}
	dontRemember := in.RememberMe != nil && !*in.RememberMe
	ttl, maxAge := sessionTTL, int(sessionTTL/time.Second)
	if dontRemember {
		ttl, maxAge = dontRememberSessTTL, 0
	}
	ss, err := s.store.createSession(ctx, u.ID, ttl, c.RealIP(), c.Request().UserAgent())
	if err != nil {
		return err
	}
	c.SetCookie(s.cookies.cookie(s.cookies.sessionCookie(), s.cookies.sign(ss.Token), maxAge))
	if dontRemember {
		c.SetCookie(s.cookies.cookie(s.cookies.name("dont_remember"), s.cookies.sign("true"), 0))
	}
	return c.JSON(http.StatusOK, map[string]any{
		"redirect": false, "token": ss.Token, "url": nil, "user": toJSON(u),
	})
}

// token is the jwt plugin's GET /token: the session's JWT.
func (s *Server) token(c echo.Context) error {
	ss, u, err := s.currentSession(c.Request().Context(), c.Request())
	if errors.Is(err, errNotFound) {
		return unauthorized(c)
	}
	if err != nil {
		return err
	}
	jwt, err := s.signer.mint(u, ss.ID, s.now())
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]string{"token": jwt})
}

// sessionJSON is Better Auth's session object.
type sessionJSON struct {
	ID        string    `json:"id"`
	Token     string    `json:"token"`
	UserID    string    `json:"userId"`
	ExpiresAt time.Time `json:"expiresAt"`
	CreatedAt time.Time `json:"createdAt"`
	UpdatedAt time.Time `json:"updatedAt"`
	IPAddress *string   `json:"ipAddress"`
	UserAgent *string   `json:"userAgent"`
}

func (s *Server) getSession(c echo.Context) error {
	ss, u, err := s.currentSession(c.Request().Context(), c.Request())
	if errors.Is(err, errNotFound) {
		return c.JSON(http.StatusOK, nil)
	}
	if err != nil {
		return err
	}
	out := sessionJSON{
		ID: ss.ID, Token: ss.Token, UserID: ss.UserID, ExpiresAt: ss.ExpiresAt.UTC(),
		CreatedAt: ss.CreatedAt.UTC(), UpdatedAt: ss.UpdatedAt.UTC(),
	}
	if ss.IPAddress.Valid {
		out.IPAddress = &ss.IPAddress.String
	}
	if ss.UserAgent.Valid {
		out.UserAgent = &ss.UserAgent.String
	}
	return c.JSON(http.StatusOK, map[string]any{"session": out, "user": toJSON(u)})
}

// signOut ends the presented session and expires the cookies. Like Better
// Auth, a request without a session token of ours is a 400
// FAILED_TO_GET_SESSION (its cookies are expired all the same).
func (s *Server) signOut(c echo.Context) error {
	tok, ok := s.presentedToken(c.Request())
	c.SetCookie(s.cookies.cookie(s.cookies.sessionCookie(), "", -1))
	c.SetCookie(s.cookies.cookie(s.cookies.name("dont_remember"), "", -1))
	if !ok {
		return c.JSON(http.StatusBadRequest, authErr("FAILED_TO_GET_SESSION", "Failed to get session"))
	}
	if err := s.store.deleteSession(c.Request().Context(), tok); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]bool{"success": true})
}

// organizationJSON is the organization plugin's organization object;
// metadata is a JSON string (or null), not an object.
type organizationJSON struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Slug      string    `json:"slug"`
	Logo      *string   `json:"logo"`
	CreatedAt time.Time `json:"createdAt"`
	Metadata  *string   `json:"metadata"`
}

// listOrganizations is the organization plugin's GET /organization/list:
// the caller's organizations, the personal one first.
func (s *Server) listOrganizations(c echo.Context) error {
	ctx := c.Request().Context()
	_, u, err := s.currentSession(ctx, c.Request())
	if errors.Is(err, errNotFound) {
		return unauthorized(c)
	}
	if err != nil {
		return err
	}
	// Every account has a personal organization; one created behind the
	// stand-in's back gets it now.
	if err := ensurePersonalOrg(ctx, s.store.db, u); err != nil {
		return err
	}
	orgs, err := s.store.organizationsOf(ctx, u.ID)
	if err != nil {
		return err
	}
	out := make([]organizationJSON, 0, len(orgs))
	for _, o := range orgs {
		j := organizationJSON{ID: o.ID, Name: o.Name, Slug: o.Slug, CreatedAt: o.CreatedAt.UTC()}
		if o.Logo.Valid {
			j.Logo = &o.Logo.String
		}
		if o.Metadata.Valid {
			j.Metadata = &o.Metadata.String
		}
		out = append(out, j)
	}
	return c.JSON(http.StatusOK, out)
}
