package devauth

import (
	"errors"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
)

// routes is the stand-in's whole route table.
func (s *Server) routes() *echo.Echo {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = s.errorHandler
	e.Use(middleware.Recover(), s.requestLog, middleware.BodyLimit("1M"))

	e.GET("/healthz", s.healthz)

	// Better Auth (public).
	e.GET("/api/auth/jwks", s.jwks, s.fault(OpJWKS))
	e.POST("/api/v1/auth/register", s.register, s.fault(OpRegister))
	e.POST("/api/v1/auth/login", s.login, s.fault(OpLogin))

	// Better Auth's browser flow (cookie or bearer session token) and the
	// organization plugin. The POSTs refuse non-JSON bodies and foreign
	// origins, so another site cannot sign a browser in or out.
	e.POST("/api/auth/sign-in/email", s.signInEmail, s.requireJSON, s.checkOrigin, s.fault(OpSignIn))
	e.GET("/api/auth/token", s.token, s.fault(OpToken))
	e.GET("/api/auth/get-session", s.getSession, s.fault(OpGetSession))
	e.POST("/api/auth/sign-out", s.signOut, s.requireJSON, s.checkOrigin, s.fault(OpSignOut))
	e.GET("/api/auth/organization/list", s.listOrganizations, s.fault(OpListOrgs))

	// Platform admin API (admin JWT).
	admin := e.Group("/api/v1/admin", s.requireAdmin)
	admin.GET("/users", s.searchUsers, s.fault(OpSearch))
	admin.GET("/users/:id/data", s.getUser, s.fault(OpGetUser))
	admin.DELETE("/users/:id/data", s.deleteUser, s.fault(OpDelete))

	// Internal API (X-Service-Key).
	internal := e.Group("/api/v1/internal", s.requireServiceKey)
	internal.POST("/users/:id/persona-stamp", s.stampPersona, s.fault(OpStamp))

	// Development only: fault injection (X-Service-Key).
	faults := e.Group("/__faults", s.requireServiceKey)
	faults.GET("", s.listFaults)
	faults.POST("", s.setFault)
	faults.DELETE("", s.clearFaults)
	return e
}

// errBody is the platform's error shape, {error, message}.
func errBody(code, message string) map[string]string {
	return map[string]string{"error": code, "message": message}
}

// authErr is Better Auth's error shape, {code, message}.
func authErr(code, message string) map[string]string {
	return map[string]string{"code": code, "message": message}
}

// errorHandler is the one place errors become responses: echo's own errors
// keep their status, anything else is a 500 whose detail stays in the log.
func (s *Server) errorHandler(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	var he *echo.HTTPError
	if errors.As(err, &he) {
		msg := http.StatusText(he.Code)
		if m, ok := he.Message.(string); ok {
			msg = m
		}
		_ = c.JSON(he.Code, errBody(http.StatusText(he.Code), msg))
		return
	}
	s.log.ErrorContext(c.Request().Context(), "request failed", "route", c.Path(), "err", err)
	_ = c.JSON(http.StatusInternalServerError, errBody("InternalServerError", "internal error"))
}

// requestLog logs the route template, never the query, headers or body: the
// query carries searched emails, headers carry tokens and keys.
func (s *Server) requestLog(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		err := next(c)
		if err != nil {
			c.Error(err)
		}
		s.log.InfoContext(c.Request().Context(), "request",
			"method", c.Request().Method, "route", c.Path(),
			"status", c.Response().Status, "duration_ms", time.Since(start).Milliseconds())
		return nil
	}
}

// fault applies an injected fault of op, if any, to the request.
func (s *Server) fault(op Op) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			ft := s.faults.take(op)
			if ft == nil {
				return next(c)
			}
			s.log.WarnContext(c.Request().Context(), "injecting fault", "op", op, "status", ft.Status, "hang", ft.Hang, "after", ft.After)
			if ft.After {
				// Do the work against a throw-away writer, then fail.
				res := c.Response()
				orig := res.Writer
				res.Writer = &discardWriter{header: http.Header{}}
				err := next(c)
				res.Writer, res.Committed, res.Status, res.Size = orig, false, 0, 0
				if err != nil {
					return err
				}
			}
			return s.faults.misbehave(c, op, ft)
		}
	}
}

type discardWriter struct {
	header http.Header
}

func (d *discardWriter) Header() http.Header         { return d.header }
func (d *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (d *discardWriter) WriteHeader(int)             {}
