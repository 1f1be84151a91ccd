package main

import (
	"errors"
	"log/slog"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/mana/personas/pkg/errs"
	"github.com/mana/personas/pkg/manaauth"
)

// Context keys set by requireAdmin: the caller's verified admin JWT
// (forwarded to mana-auth's admin endpoints) and its verified claims (who
// the operator is, for records such as who paused the fleet).
const (
	ctxKeyBearer = "admin_bearer"
	ctxKeyClaims = "admin_claims"
)

// forbidden is the contract's exact 403 body.
func forbidden() error { return errs.E(errs.Forbidden, "Admin access required") }

func unauthorized(msg string) error { return errs.E(errs.Unauthorized, "%s", msg) }

// requireAdmin admits requests carrying exactly one "Authorization: Bearer
// <jwt>" header whose token the verifier accepts and whose role claim is
// "admin". The token is the only credential looked at: no other header,
// scheme, cookie or query parameter counts. A token that is not genuine is
// 401; a genuine one without the admin role is 403; no signing keys at all
// (mana-auth unreachable since start) is 503, since no token can be judged.
func requireAdmin(verifier tokenVerifier, logger *slog.Logger) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			values := c.Request().Header.Values(echo.HeaderAuthorization)
			if len(values) == 0 {
				return unauthorized("missing Authorization: Bearer <token> header")
			}
			if len(values) > 1 {
				return unauthorized("more than one Authorization header")
			}
			scheme, token, ok := strings.Cut(values[0], " ")
			if !ok || !strings.EqualFold(scheme, "Bearer") {
				return unauthorized("Authorization must use the Bearer scheme")
			}
			token = strings.TrimSpace(token)
			if token == "" || strings.ContainsAny(token, " \t") {
				return unauthorized("malformed bearer token")
			}
			claims, err := verifier.Verify(c.Request().Context(), token)
			if err != nil {
				if errors.Is(err, manaauth.ErrKeysUnavailable) {
					return errs.Wrap(err, errs.Unavailable, "mana-auth keys unavailable; admin tokens cannot be checked, retry later")
				}
				// The reason (never the token) helps operators; the
				// client only learns that the token was refused.
				logger.InfoContext(c.Request().Context(), "admin token refused", "reason", err.Error())
				return unauthorized("invalid or expired token")
			}
			if !claims.IsAdmin() {
				logger.InfoContext(c.Request().Context(), "token without admin role refused",
					"sub", claims.Subject, "role", claims.Role)
				return forbidden()
			}
			c.Set(ctxKeyBearer, token)
			c.Set(ctxKeyClaims, claims)
			return next(c)
		}
	}
}

// bearer returns the verified admin JWT of the request.
func bearer(c echo.Context) string {
	s, _ := c.Get(ctxKeyBearer).(string)
	return s
}

// operator names the admin of the request for the records it leaves: the
// email of the verified token, else its subject (the mana-auth user id).
func operator(c echo.Context) string {
	claims, _ := c.Get(ctxKeyClaims).(*manaauth.Claims)
	if claims == nil {
		return ""
	}
	if claims.Email != "" {
		return claims.Email
	}
	return claims.Subject
}
