package main

import (
	"context"
	_ "embed"
	"log/slog"

	"github.com/mana/personas/pkg/edge"
	"github.com/mana/personas/pkg/errs"
	"github.com/mana/personas/pkg/manaauth"
	"github.com/mana/personas/pkg/personas"
)

//go:embed openapi.yaml
var openAPIDoc []byte

// bodyLimit bounds request bodies: an upsert with a 20 000-character prompt
// and 50 modules is far below it.
const bodyLimit = 256 << 10

// identity is what the handlers need from mana-auth; *manaauth.Client
// provides it. bearer is the caller's admin JWT, forwarded as is.
type identity interface {
	FindUserByEmail(ctx context.Context, bearer, email string) (*manaauth.User, error)
	Register(ctx context.Context, r manaauth.RegisterRequest) (*manaauth.RegisterResponse, error)
	Login(ctx context.Context, email, password string) (*manaauth.LoginResponse, error)
	StampPersona(ctx context.Context, userID string) (*manaauth.StampResponse, error)
	GetUser(ctx context.Context, bearer, id string) (*manaauth.User, error)
	DeleteUser(ctx context.Context, bearer, id string) error
}

// tokenVerifier checks admin JWTs; *manaauth.Verifier provides it.
type tokenVerifier interface {
	Verify(ctx context.Context, token string) (*manaauth.Claims, error)
	Ready(ctx context.Context) error
}

// newServer wires the whole HTTP surface. Every endpoint is listed here.
func newServer(store *personas.Store, auth identity, verifier tokenVerifier, logger *slog.Logger) *edge.Server {
	h := &handlers{store: store, auth: auth, verifier: verifier, logger: logger}
	srv := edge.New(edge.Options{
		Name:      serviceName,
		Logger:    logger,
		BodyLimit: bodyLimit,
		DB:        store.DB().DB,
		Ready:     h.ready,
		OpenAPI:   openAPIDoc,
	})
	h.metrics = newUpstreamMetrics(srv.Registry)
	e := srv.Echo
	api := e.Group("/api/v1/personas/admin",
		requireAdmin(verifier, logger),
		edge.Gate(edge.SchemaGate(serviceName, store)),
	)
	api.POST("", h.upsert)
	api.GET("", h.list)
	// The fleet switch. A static segment wins over /:id in echo's router,
	// so no persona id can shadow it (mana-auth ids are never "runner").
	api.GET("/runner", h.getRunner)
	api.PUT("/runner", h.putRunner)
	api.GET("/:id", h.detail)
	api.PATCH("/:id", h.patch)
	api.DELETE("/:id", h.remove)
	api.POST("/:id/lease/release", h.releaseLease)
	api.POST("/:id/unquarantine", h.unquarantine)
	api.GET("/:id/ticks", h.listTicks)
	api.GET("/:id/ticks/:tickId", h.getTick)

	// Insight (insight.go): product-wide views over the store's rollups,
	// and their alerting figures on /metrics (insight_metrics.go).
	srv.Registry.MustRegister(newInsightMetrics(store, logger))
	api.GET("/modules", h.modules)
	api.GET("/modules/:module/trend", h.trend)
	api.GET("/tools", h.tools)
	api.GET("/overview", h.overview)
	api.GET("/feedback", h.feedback)
	api.GET("/export/:kind", h.export)

	// Dashboard (ui.go): the embedded SPA at /personas/, public (it holds no
	// data; every call it makes carries the admin JWT).
	registerUI(e)

	return srv
}

// ready: the database answers, the schema is current, and mana-auth's
// signing keys are at hand (without them no request can be admitted).
func (h *handlers) ready(ctx context.Context) error {
	if err := edge.StoreReady(ctx, serviceName, h.store); err != nil {
		return err
	}
	if err := h.verifier.Ready(ctx); err != nil {
		return errs.Wrap(err, errs.Unavailable, "mana-auth signing keys unavailable (JWKS not fetched)")
	}
	return nil
}
