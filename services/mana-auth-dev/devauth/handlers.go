package devauth

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/mail"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"golang.org/x/crypto/bcrypt"
)

// Password bounds; bcrypt reads at most 72 bytes, so longer is refused
// rather than silently truncated.
const (
	minPassword = 8
	maxPassword = 72
)

// userJSON is Better Auth's user object.
type userJSON struct {
	ID            string    `json:"id"`
	Email         string    `json:"email"`
	Name          string    `json:"name"`
	EmailVerified bool      `json:"emailVerified"`
	Image         *string   `json:"image"`
	CreatedAt     time.Time `json:"createdAt"`
	UpdatedAt     time.Time `json:"updatedAt"`
	Role          string    `json:"role"`
	AccessTier    string    `json:"accessTier"`
	Kind          string    `json:"kind"`
}

func toJSON(u *user) userJSON {
	j := userJSON{
		ID: u.ID, Email: u.Email, Name: u.Name, EmailVerified: u.EmailVerified,
		CreatedAt: u.CreatedAt.UTC(), UpdatedAt: u.UpdatedAt.UTC(),
		Role: u.Role, AccessTier: u.AccessTier, Kind: u.Kind,
	}
	if u.Image.Valid {
		j.Image = &u.Image.String
	}
	return j
}

func (s *Server) healthz(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), 2*time.Second)
	defer cancel()
	if err := s.Ping(ctx); err != nil {
		return c.JSON(http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "error": "database unreachable"})
	}
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) jwks(c echo.Context) error {
	return c.JSON(http.StatusOK, s.signer.jwks())
}

// decode reads a JSON object body; nil error means the body was a valid
// object.
func decode(c echo.Context, dst any) error {
	dec := json.NewDecoder(c.Request().Body)
	if err := dec.Decode(dst); err != nil {
		return err
	}
	return nil
}

func validEmail(e string) bool {
	a, err := mail.ParseAddress(e)
	return err == nil && a.Address == e && strings.Contains(e, "@")
}

func (s *Server) register(c echo.Context) error {
	var in struct {
		Email    string `json:"email"`
		Password string `json:"password"`
		Name     string `json:"name"`
	}
	if err := decode(c, &in); err != nil {
		return c.JSON(http.StatusBadRequest, authErr("VALIDATION_ERROR", "body must be a JSON object"))
	}
	email := strings.ToLower(strings.TrimSpace(in.Email))
	switch {
	case !validEmail(email):
		return c.JSON(http.StatusBadRequest, authErr("INVALID_EMAIL", "Invalid email"))
	case len(in.Password) < minPassword:
		return c.JSON(http.StatusBadRequest, authErr("PASSWORD_TOO_SHORT", "Password too short"))
	case len(in.Password) > maxPassword:
		return c.JSON(http.StatusBadRequest, authErr("PASSWORD_TOO_LONG", "Password too long"))
	}
	ctx := c.Request().Context()
	hash, err := bcrypt.GenerateFromPassword([]byte(in.Password), s.cfg.PasswordCost)
	if err != nil {
		return err
	}
	u, ok, err := s.store.createUser(ctx, &user{
		ID: randomID(32), Email: email, Name: strings.TrimSpace(in.Name), PasswordHash: string(hash), Role: "user",
	})
	if err != nil {
		return err
	}
	if !ok {
		return c.JSON(http.StatusUnprocessableEntity,
			authErr("USER_ALREADY_EXISTS_USE_ANOTHER_EMAIL", "User already exists. Use another email."))
	}
	ss, err := s.store.createSession(ctx, u.ID, sessionTTL, c.RealIP(), c.Request().UserAgent())
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"token": ss.Token, "user": toJSON(u)})
}

func (s *Server) login(c echo.Context) error {
	var in struct {
		Email    string `json:"email"`
		Password string `json:"password"`
	}
	if err := decode(c, &in); err != nil {
		return c.JSON(http.StatusBadRequest, authErr("VALIDATION_ERROR", "body must be a JSON object"))
	}
	ctx := c.Request().Context()
	u, err := s.checkPassword(ctx, in.Email, in.Password)
	if errors.Is(err, errBadCredentials) {
		return c.JSON(http.StatusUnauthorized, authErr("INVALID_EMAIL_OR_PASSWORD", "Invalid email or password"))
	}
	if err != nil {
		return err
	}
	ss, err := s.store.createSession(ctx, u.ID, sessionTTL, c.RealIP(), c.Request().UserAgent())
	if err != nil {
		return err
	}
	jwt, err := s.signer.mint(u, ss.ID, s.now())
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{
		"redirect": false, "token": ss.Token, "user": toJSON(u),
		"accessToken": jwt, "refreshToken": ss.Token,
	})
}

// Session lifetimes, as Better Auth's defaults: 7 days, or 1 day for a
// sign-in with rememberMe false (whose cookie then lasts the browser session).
const (
	sessionTTL          = 7 * 24 * time.Hour
	dontRememberSessTTL = 24 * time.Hour
)

// errBadCredentials is an unknown email or a wrong password; both answer
// the same, and an unknown email still costs a hash comparison.
var errBadCredentials = errors.New("invalid email or password")

func (s *Server) checkPassword(ctx context.Context, email, password string) (*user, error) {
	u, err := s.store.userByEmail(ctx, strings.TrimSpace(email))
	if err != nil && !errors.Is(err, errNotFound) {
		return nil, err
	}
	if u == nil {
		_ = bcrypt.CompareHashAndPassword(s.dummyHash, []byte(password))
		return nil, errBadCredentials
	}
	if bcrypt.CompareHashAndPassword([]byte(u.PasswordHash), []byte(password)) != nil {
		return nil, errBadCredentials
	}
	return u, nil
}

// requireAdmin admits a valid admin JWT: 401 for a missing or bad token,
// 403 for a valid token without role admin.
func (s *Server) requireAdmin(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		scheme, token, ok := strings.Cut(c.Request().Header.Get(echo.HeaderAuthorization), " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
			return c.JSON(http.StatusUnauthorized, errBody("Unauthorized", "Bearer token required"))
		}
		claims, err := s.verifier.Verify(c.Request().Context(), token)
		if err != nil {
			return c.JSON(http.StatusUnauthorized, errBody("Unauthorized", "Invalid or expired token"))
		}
		if !claims.IsAdmin() {
			return c.JSON(http.StatusForbidden, errBody("Forbidden", "Admin access required"))
		}
		return next(c)
	}
}

func (s *Server) requireServiceKey(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if !s.validServiceKey(c.Request().Header.Get("X-Service-Key")) {
			return c.JSON(http.StatusUnauthorized, errBody("Unauthorized", "Invalid service key"))
		}
		return next(c)
	}
}

// intParam reads a positive integer query parameter with a default.
func intParam(c echo.Context, name string, def, maxV int) (int, bool) {
	raw := c.QueryParam(name)
	if raw == "" {
		return def, true
	}
	n, err := strconv.Atoi(raw)
	if err != nil || n < 1 {
		return 0, false
	}
	return min(n, maxV), true
}

func (s *Server) searchUsers(c echo.Context) error {
	page, ok := intParam(c, "page", 1, 1<<20)
	if !ok {
		return c.JSON(http.StatusBadRequest, errBody("BadRequest", "page must be a positive integer"))
	}
	limit, ok := intParam(c, "limit", 20, 100)
	if !ok {
		return c.JSON(http.StatusBadRequest, errBody("BadRequest", "limit must be a positive integer"))
	}
	users, total, err := s.store.searchUsers(c.Request().Context(), strings.TrimSpace(c.QueryParam("search")), page, limit)
	if err != nil {
		return err
	}
	type item struct {
		ID        string    `json:"id"`
		Email     string    `json:"email"`
		Name      string    `json:"name"`
		Role      string    `json:"role"`
		CreatedAt time.Time `json:"createdAt"`
	}
	out := make([]item, 0, len(users))
	for _, u := range users {
		out = append(out, item{ID: u.ID, Email: u.Email, Name: u.Name, Role: u.Role, CreatedAt: u.CreatedAt.UTC()})
	}
	return c.JSON(http.StatusOK, map[string]any{"users": out, "total": total, "page": page, "limit": limit})
}

func (s *Server) getUser(c echo.Context) error {
	u, err := s.store.userByID(c.Request().Context(), c.Param("id"))
	if errors.Is(err, errNotFound) {
		return c.JSON(http.StatusNotFound, errBody("NotFound", "User not found"))
	}
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"user": toJSON(u)})
}

func (s *Server) deleteUser(c echo.Context) error {
	id := c.Param("id")
	err := s.store.deleteUser(c.Request().Context(), id)
	if errors.Is(err, errNotFound) {
		return c.JSON(http.StatusNotFound, errBody("NotFound", "User not found"))
	}
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"success": true, "userId": id})
}

func (s *Server) stampPersona(c echo.Context) error {
	u, err := s.store.stampPersona(c.Request().Context(), c.Param("id"))
	if errors.Is(err, errNotFound) {
		return c.JSON(http.StatusNotFound, errBody("NotFound", "User not found"))
	}
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{
		"ok": true, "userId": u.ID, "kind": u.Kind, "tier": u.AccessTier, "emailVerified": u.EmailVerified,
	})
}

func (s *Server) listFaults(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]any{"faults": s.faults.Active()})
}

func (s *Server) setFault(c echo.Context) error {
	var in faultRequest
	if err := decode(c, &in); err != nil {
		return c.JSON(http.StatusBadRequest, errBody("BadRequest", "body must be {op, status|hang, after?, times?}"))
	}
	if err := s.faults.Set(in.Op, in.Fault); err != nil {
		return c.JSON(http.StatusBadRequest, errBody("BadRequest", err.Error()))
	}
	return c.JSON(http.StatusOK, map[string]any{"ok": true, "faults": s.faults.Active()})
}

func (s *Server) clearFaults(c echo.Context) error {
	if op := c.QueryParam("op"); op != "" {
		s.faults.Clear(Op(op))
	} else {
		s.faults.ClearAll()
	}
	return c.JSON(http.StatusOK, map[string]any{"ok": true, "faults": s.faults.Active()})
}
